//! `koshin status-messages`: the status message viewer on the command line, and with
//! `--summary` the console's Component Status node.

use std::process::ExitCode;

use clap::Args;
use koshin_wire::{ComponentStatus, StatusMessageOut, StatusQuery, StatusSummaryQuery};

use crate::client::Api;
use crate::output;

#[derive(Args)]
pub struct StatusArgs {
    /// Only this component (e.g. SMS_WSUS_SYNC_MANAGER).
    #[arg(long)]
    component: Option<String>,
    /// Only this message ID (e.g. 6703).
    #[arg(long)]
    id: Option<u32>,
    /// I, W or E.
    #[arg(long)]
    severity: Option<String>,
    /// Only messages from this system.
    #[arg(long)]
    system: Option<String>,
    /// Only messages of the last DURATION (30m, 2h, 7d); with --summary the default is
    /// since 00:00 UTC today.
    #[arg(long)]
    since: Option<String>,
    /// At most this many (the newest).
    #[arg(long)]
    limit: Option<u32>,
    /// Component status instead of messages: per component and system, the errors,
    /// warnings and informational messages, the last one, and OK, Warning or Critical.
    #[arg(long)]
    summary: bool,
    #[arg(long)]
    json: bool,
}

pub async fn run(api: &Api, a: StatusArgs) -> anyhow::Result<ExitCode> {
    if a.summary {
        return summary(api, a).await;
    }
    if let Some(s) = &a.severity
        && koshin_domain::Severity::parse(s).is_none()
    {
        anyhow::bail!("--severity must be I, W or E, not '{s}'");
    }
    let since = match &a.since {
        Some(d) => {
            let d = output::parse_duration(d)?;
            Some(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(d.as_secs() as i64))
        }
        None => None,
    };
    let q = StatusQuery {
        component: a.component,
        id: a.id,
        severity: a.severity,
        system: a.system,
        since,
        after: None,
        before: None,
        limit: a.limit,
    };
    let list: Vec<StatusMessageOut> = api
        .get("/api/v1/status-messages", &q, "status messages")
        .await?;
    if a.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            message_id: u32,
            severity: &'a str,
            level: &'a str,
            component: &'a str,
            system: &'a str,
            site: &'a str,
            time: jiff::Timestamp,
            process_id: u32,
            thread_id: u64,
            insertion_strings: &'a [String],
            attributes: &'a std::collections::BTreeMap<String, String>,
            description: &'a str,
        }
        let out: Vec<Out> = list
            .iter()
            .map(|m| Out {
                message_id: m.message_id,
                severity: &m.severity,
                level: &m.level,
                component: &m.component,
                system: &m.system,
                site: &m.site,
                time: m.time,
                process_id: m.process_id,
                thread_id: m.thread_id,
                insertion_strings: &m.insertion_strings,
                attributes: &m.attributes,
                description: &m.description,
            })
            .collect();
        output::json(&out)?;
    } else {
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|m| {
                vec![
                    output::time(&m.time),
                    m.severity.clone(),
                    m.message_id.to_string(),
                    m.site.clone(),
                    m.system.clone(),
                    m.component.clone(),
                    m.description.clone(),
                ]
            })
            .collect();
        output::table(
            &[
                "TIME (UTC)",
                "SEV",
                "ID",
                "SITE",
                "SYSTEM",
                "COMPONENT",
                "DESCRIPTION",
            ],
            &rows,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--summary`: the component status summary, since 00:00 UTC today or the last `--since`.
async fn summary(api: &Api, a: StatusArgs) -> anyhow::Result<ExitCode> {
    if a.id.is_some() || a.severity.is_some() {
        anyhow::bail!(
            "--summary counts every message ID and severity: leave out --id and --severity"
        );
    }
    if a.limit.is_some() {
        anyhow::bail!("--summary gives one line per component: leave out --limit");
    }
    let now = jiff::Timestamp::now();
    let since = match &a.since {
        Some(text) => {
            let d = output::parse_duration(text)?;
            i64::try_from(d.as_secs())
                .ok()
                .and_then(|secs| now.checked_sub(jiff::SignedDuration::from_secs(secs)).ok())
                .ok_or_else(|| anyhow::anyhow!("--since {text} reaches back too far"))?
        }
        None => {
            let ms = koshin_domain::component_status::start_of_utc_day(now.as_millisecond());
            jiff::Timestamp::from_millisecond(ms)?
        }
    };
    let q = StatusSummaryQuery {
        component: a.component,
        system: a.system,
        since: Some(since),
    };
    let list: Vec<ComponentStatus> = api
        .get(
            "/api/v1/status-messages/summary",
            &q,
            "component status summary",
        )
        .await?;
    if a.json {
        output::json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("Component status since {} UTC", output::time(&since));
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            vec![
                c.status.clone(),
                c.component.clone(),
                c.system.clone(),
                c.site.clone(),
                c.errors.to_string(),
                c.warnings.to_string(),
                c.informational.to_string(),
                format!(
                    "{} {} {}",
                    output::time(&c.last_time),
                    c.last_message_id,
                    c.last_description
                ),
            ]
        })
        .collect();
    output::table(
        &[
            "STATUS",
            "COMPONENT",
            "SYSTEM",
            "SITE",
            "ERRORS",
            "WARNINGS",
            "INFO",
            "LAST",
        ],
        &rows,
    );
    Ok(ExitCode::SUCCESS)
}
