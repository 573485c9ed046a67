//! `koshin report list|run|sql`: reports and the SQL behind them (P9).

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use koshin_wire::{ReportInfo, ReportResult};

use crate::client::Api;
use crate::output;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

#[derive(Subcommand)]
pub enum ReportCommand {
    /// The reports this site has.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Run a report.
    Run {
        name: String,
        /// A parameter, NAME=VALUE (repeatable).
        #[arg(long = "param", value_parser = parse_param)]
        params: Vec<(String, String)>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Print the SQL behind a report.
    Sql { name: String },
}

fn parse_param(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_string(), v.to_string()))
        .ok_or_else(|| format!("'{s}' is not NAME=VALUE"))
}

fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

pub async fn run(api: &Api, cmd: ReportCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ReportCommand::List { json } => {
            let list: Vec<ReportInfo> = api.get("/api/v1/reports", &(), "reports").await?;
            if json {
                output::json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|r| {
                        let note = match (&r.error, &r.completed_by) {
                            (Some(e), _) => format!("cannot run: {e}"),
                            (None, Some(c)) => format!("completed by {c}"),
                            (None, None) if r.source != "built-in" => r.source.clone(),
                            (None, None) => String::new(),
                        };
                        vec![
                            r.name.clone(),
                            r.category.clone(),
                            r.parameters
                                .iter()
                                .cloned()
                                .chain(r.optional_parameters.iter().map(|o| format!("[{o}]")))
                                .collect::<Vec<_>>()
                                .join(", "),
                            r.title.clone(),
                            note,
                        ]
                    })
                    .collect();
                output::table(&["NAME", "CATEGORY", "PARAMETERS", "TITLE", "NOTE"], &rows);
            }
        }
        ReportCommand::Sql { name } => {
            let list: Vec<ReportInfo> = api.get("/api/v1/reports", &(), "reports").await?;
            let r = list
                .iter()
                .find(|r| r.name == name)
                .ok_or_else(|| anyhow::anyhow!("no report named '{name}' (koshin report list)"))?;
            if let Some(e) = &r.error {
                eprintln!("koshin: report {name} cannot run: {e}");
            }
            println!("{}", r.sql);
        }
        ReportCommand::Run {
            name,
            params,
            format,
        } => {
            let path = format!("/api/v1/reports/{}", crate::cmd_updates::urlencode(&name));
            let res: ReportResult = api.get(&path, &params, "report").await?;
            match format {
                Format::Json => output::json(&res.rows)?,
                Format::Csv => {
                    println!(
                        "{}",
                        res.columns
                            .iter()
                            .map(|c| csv_field(c))
                            .collect::<Vec<_>>()
                            .join(",")
                    );
                    for row in &res.rows {
                        let cells: Vec<String> = res
                            .columns
                            .iter()
                            .map(|c| csv_field(&row.get(c).map(cell).unwrap_or_default()))
                            .collect();
                        println!("{}", cells.join(","));
                    }
                }
                Format::Table => {
                    let headers: Vec<String> =
                        res.columns.iter().map(|c| c.to_uppercase()).collect();
                    let rows: Vec<Vec<String>> = res
                        .rows
                        .iter()
                        .map(|row| {
                            res.columns
                                .iter()
                                .map(|c| row.get(c).map(cell).unwrap_or_default())
                                .collect()
                        })
                        .collect();
                    let h: Vec<&str> = headers.iter().map(String::as_str).collect();
                    output::table(&h, &rows);
                    eprintln!(
                        "{} rows, generated {} in {} ms",
                        res.rows.len(),
                        res.generated.strftime("%Y-%m-%d %H:%M:%S UTC"),
                        res.duration_ms
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
