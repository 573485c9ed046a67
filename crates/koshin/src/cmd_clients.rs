//! `koshin clients list|show`: enrolled clients, their last scan and compliance.

use std::process::ExitCode;

use clap::Subcommand;
use koshin_wire::{ClientDetail, ClientSummary, EnrollmentTokenOut, NewEnrollmentToken};

use crate::client::Api;
use crate::output;

#[derive(Subcommand)]
pub enum ClientsCommand {
    /// Enrolled clients with last policy, last scan and compliance counts.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One client: its last scan and the updates it requires or has installed.
    Show {
        /// Name or client id.
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Approve a client that enrolled without a token (pending approval).
    Approve { name: String },
    /// Revoke a client: every later request of it is refused.
    Revoke { name: String },
    /// Enrollment tokens: create one, or list them.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// Create an enrollment token (shown once).
    Create {
        /// How many enrollments it allows (default: any number until it expires).
        #[arg(long)]
        uses: Option<u32>,
        /// Hours until it expires (default 24).
        #[arg(long)]
        hours: Option<u32>,
        #[arg(long, default_value = "")]
        description: String,
        #[arg(long)]
        json: bool,
    },
    /// Enrollment tokens (never the tokens themselves).
    List {
        #[arg(long)]
        json: bool,
    },
}

fn opt_time(t: &Option<jiff::Timestamp>) -> String {
    t.as_ref().map(output::time).unwrap_or_else(|| "-".into())
}

pub async fn run(api: &Api, cmd: ClientsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ClientsCommand::List { json } => {
            let list: Vec<ClientSummary> = api.get("/api/v1/clients", &(), "clients").await?;
            output::list(
                json,
                &list,
                &[
                    "NAME",
                    "APPROVAL",
                    "OS",
                    "LAST POLICY",
                    "LAST SCAN",
                    "REQUIRED",
                    "INSTALLED",
                    "NOT REQUIRED",
                    "UNKNOWN",
                ],
                |c| {
                    vec![
                        c.name.clone(),
                        c.approval.clone(),
                        format!("{} {}", c.os, c.os_release),
                        opt_time(&c.last_policy),
                        opt_time(&c.last_scan),
                        c.required.to_string(),
                        c.installed.to_string(),
                        c.not_required.to_string(),
                        c.unknown.to_string(),
                    ]
                },
            )?;
        }
        ClientsCommand::Show { name, json } => {
            let path = format!("/api/v1/clients/{}", crate::cmd_updates::urlencode(&name));
            let c: ClientDetail = api.get(&path, &(), "client").await?;
            if json {
                output::json(&c)?;
            } else {
                let s = &c.summary;
                println!("{:<14}{}", "Name:", s.name);
                println!("{:<14}{}", "Client id:", s.client_id);
                println!("{:<14}{}", "Approval:", s.approval);
                println!(
                    "{:<14}{} {} ({})",
                    "OS:", s.os, s.os_release, s.architecture
                );
                println!("{:<14}{}", "Site:", s.site);
                println!("{:<14}{}", "Enrolled:", output::time(&s.enrolled));
                println!("{:<14}{}", "Last contact:", opt_time(&s.last_contact));
                println!("{:<14}{}", "Last policy:", opt_time(&s.last_policy));
                match &c.last_scan_record {
                    Some(r) => println!(
                        "{:<14}{} ({}, {}{}) {} in {} ms",
                        "Last scan:",
                        output::time(&r.started),
                        r.trigger,
                        r.kind,
                        if r.online { ", metadata fetched" } else { "" },
                        r.result,
                        r.duration_ms
                    ),
                    None => println!("{:<14}-", "Last scan:"),
                }
                println!(
                    "{:<14}{} required, {} installed, {} not required, {} unknown",
                    "Compliance:", s.required, s.installed, s.not_required, s.unknown
                );
                println!();
                let rows: Vec<Vec<String>> = c
                    .updates
                    .iter()
                    .map(|u| {
                        let state = if u.restart_pending {
                            format!("{} (restart pending)", u.state)
                        } else {
                            u.state.clone()
                        };
                        vec![
                            state,
                            u.classification.clone(),
                            u.title.clone(),
                            u.update_id.clone(),
                        ]
                    })
                    .collect();
                output::table(&["STATE", "CLASSIFICATION", "TITLE", "UPDATE"], &rows);
            }
        }
        ClientsCommand::Approve { name } => {
            let path = format!(
                "/api/v1/clients/{}/approve",
                crate::cmd_updates::urlencode(&name)
            );
            let c: ClientSummary = api.post(&path, &(), "approve client").await?;
            println!("Client {} ({}) is approved", c.name, c.client_id);
        }
        ClientsCommand::Revoke { name } => {
            let path = format!(
                "/api/v1/clients/{}/revoke",
                crate::cmd_updates::urlencode(&name)
            );
            let c: ClientSummary = api.post(&path, &(), "revoke client").await?;
            println!(
                "Client {} ({}) is revoked: the site refuses its every request",
                c.name, c.client_id
            );
        }
        ClientsCommand::Tokens { command } => match command {
            TokensCommand::Create {
                uses,
                hours,
                description,
                json,
            } => {
                let t: EnrollmentTokenOut = api
                    .post(
                        "/api/v1/enrollment-tokens",
                        &NewEnrollmentToken {
                            description,
                            uses,
                            hours,
                        },
                        "enrollment token",
                    )
                    .await?;
                if json {
                    output::json(&t)?;
                } else {
                    println!("{}", t.token.as_deref().unwrap_or_default());
                    eprintln!(
                        "Enrollment token {} ({} uses, expires {}): koshin-agent enroll --site URL --token TOKEN",
                        t.id,
                        t.uses_left
                            .map_or("unlimited".to_string(), |u| u.to_string()),
                        t.expires
                            .as_ref()
                            .map(output::time)
                            .unwrap_or_else(|| "never".into())
                    );
                }
            }
            TokensCommand::List { json } => {
                let list: Vec<EnrollmentTokenOut> = api
                    .get("/api/v1/enrollment-tokens", &(), "enrollment tokens")
                    .await?;
                output::list(
                    json,
                    &list,
                    &[
                        "ID",
                        "DESCRIPTION",
                        "BY",
                        "CREATED",
                        "EXPIRES",
                        "USES LEFT",
                        "USED",
                    ],
                    |t| {
                        vec![
                            t.id.to_string(),
                            t.description.clone(),
                            t.created_by.clone(),
                            output::time(&t.created),
                            t.expires.as_ref().map(output::time).unwrap_or_default(),
                            t.uses_left.map_or("unlimited".into(), |u| u.to_string()),
                            t.used.to_string(),
                        ]
                    },
                )?;
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}
