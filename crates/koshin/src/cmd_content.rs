//! `koshin content` (packages: the files of updates, distributed together, with a
//! priority) and `koshin dp` (distribution points, their groups, settings and validation,
//! and `koshin dp serve`, a remote distribution point).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use koshin_wire::{
    DistributeRequest, DpGroupChange, DpGroupOut, DpOut, DpSettings, NewPackage, PackageDetail,
    PackageOut, PriorityChange, ValidationOut,
};

use crate::client::Api;
use crate::cmd_updates::urlencode;
use crate::output;

#[derive(Subcommand)]
pub enum ContentCommand {
    /// Content packages and how many distribution points hold each.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One package: its files and its state on every distribution point.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// A package of the files of some updates.
    Create {
        name: String,
        /// An update (id, unique id prefix or article id `source/version`); repeatable.
        #[arg(long = "update", required = true)]
        updates: Vec<String>,
        /// high, medium or low.
        #[arg(long, default_value = "medium")]
        priority: String,
    },
    /// Send a package to distribution points and to the current members of groups.
    Distribute {
        name: String,
        #[arg(long = "dp")]
        dps: Vec<String>,
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// Change a package's priority.
    Priority { name: String, priority: String },
}

#[derive(Subcommand)]
pub enum DpCommand {
    /// Distribution points, their status and what they hold.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One distribution point.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Change protection, boundaries, the sender's schedule and rate limit, or lift them.
    Set {
        name: String,
        /// true or false: a protected point serves only clients inside its boundaries.
        #[arg(long)]
        protected: Option<bool>,
        /// A subnet (10.1.0.0/16) or range (10.1.0.10-10.1.0.99); repeatable; replaces the list.
        #[arg(long = "boundary")]
        boundaries: Vec<String>,
        /// Remove every boundary.
        #[arg(long)]
        no_boundaries: bool,
        /// `HH-HH=all|medium-and-high|high-only|closed`; repeatable; replaces the schedule.
        #[arg(long = "schedule")]
        schedule: Vec<String>,
        /// Remove every schedule rule (always open).
        #[arg(long)]
        no_schedule: bool,
        /// The sender's limit in KiB per second; 0 for none.
        #[arg(long)]
        rate_limit_kib: Option<u64>,
        /// An emergency: lift the schedule and the rate limit for this many minutes (0 ends it).
        #[arg(long)]
        lift_minutes: Option<u64>,
    },
    /// Re-hash a distribution point's files; damaged ones are removed and sent again.
    Validate {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Distribution point groups.
    Groups {
        #[command(subcommand)]
        command: GroupsCommand,
    },
    /// Run a remote distribution point: registers at the site on first start (with an
    /// administrator's token) and serves what the site sends it.
    Serve {
        /// Where the point keeps its files and identity.
        #[arg(long)]
        data: PathBuf,
        #[arg(long, default_value = "0.0.0.0:8531")]
        listen: String,
        /// Its name at the site (default: this host's name).
        #[arg(long)]
        name: Option<String>,
        /// The URL the site and clients reach it at (default: http://LISTEN).
        #[arg(long)]
        url: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum GroupsCommand {
    List {
        #[arg(long)]
        json: bool,
    },
    Create {
        name: String,
    },
    /// Add points to a group: they get none of the group's packages until the group is
    /// assigned to a package again.
    Add {
        name: String,
        #[arg(required = true)]
        dps: Vec<String>,
    },
    Remove {
        name: String,
        #[arg(required = true)]
        dps: Vec<String>,
    },
}

fn size(bytes: i64) -> String {
    let b = bytes as f64;
    if b >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else if b >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{bytes} B")
    }
}

pub async fn content(api: &Api, cmd: ContentCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ContentCommand::List { json } => {
            let list: Vec<PackageOut> = api.get("/api/v1/content", &(), "content").await?;
            output::list(
                json,
                &list,
                &["ID", "NAME", "PRIORITY", "FILES", "SIZE", "DPS", "UPDATES"],
                |p| {
                    vec![
                        p.id.clone(),
                        p.name.clone(),
                        p.priority.clone(),
                        p.files.to_string(),
                        size(p.bytes),
                        format!("{}/{}", p.installed, p.targeted),
                        p.updates.len().to_string(),
                    ]
                },
            )?;
        }
        ContentCommand::Show { name, json } => {
            let p: PackageDetail = api
                .get(
                    &format!("/api/v1/content/{}", urlencode(&name)),
                    &(),
                    "content package",
                )
                .await?;
            if json {
                output::json(&p)?;
            } else {
                let k = &p.package;
                println!(
                    "{} ({}) priority {}, version {}; {} file(s), {}",
                    k.name,
                    k.id,
                    k.priority,
                    k.source_version,
                    k.files,
                    size(k.bytes)
                );
                println!();
                output::table(
                    &["FILE", "SIZE", "IN LIBRARY", "SHA-256"],
                    &p.file_list
                        .iter()
                        .map(|f| {
                            vec![
                                f.name.clone(),
                                size(f.size),
                                if f.in_library { "yes" } else { "no" }.into(),
                                f.sha256.clone(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
                println!();
                output::table(
                    &[
                        "DISTRIBUTION POINT",
                        "STATE",
                        "SENT",
                        "ATTEMPTS",
                        "VIA",
                        "ERROR",
                    ],
                    &p.targets
                        .iter()
                        .map(|t| {
                            vec![
                                t.distribution_point.clone(),
                                t.state.clone(),
                                format!("{}/{}", size(t.bytes_sent), size(t.bytes_total)),
                                t.attempts.to_string(),
                                t.via_group.clone().unwrap_or_default(),
                                t.error.clone().unwrap_or_default(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
        }
        ContentCommand::Create {
            name,
            updates,
            priority,
        } => {
            let p: PackageOut = api
                .post(
                    "/api/v1/content",
                    &NewPackage {
                        name,
                        priority: Some(priority),
                        updates,
                    },
                    "create content package",
                )
                .await?;
            println!(
                "Content package {} created ({}, priority {}): {} file(s), {}",
                p.name,
                p.id,
                p.priority,
                p.files,
                size(p.bytes)
            );
        }
        ContentCommand::Distribute { name, dps, groups } => {
            let r: serde_json::Value = api
                .post(
                    &format!("/api/v1/content/{}/distribute", urlencode(&name)),
                    &DistributeRequest {
                        distribution_points: dps,
                        groups,
                    },
                    "distribute",
                )
                .await?;
            println!(
                "{name}: {} distribution(s) queued; watch `koshin content show {name}` or `koshin status-messages --component {}`",
                r["queued"],
                koshin_server::content::DISTRIBUTION_MANAGER
            );
        }
        ContentCommand::Priority { name, priority } => {
            let _: serde_json::Value = api
                .post(
                    &format!("/api/v1/content/{}/priority", urlencode(&name)),
                    &PriorityChange { priority },
                    "change priority",
                )
                .await?;
            println!("{name}: priority changed");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn dp_row(d: &DpOut) -> Vec<String> {
    vec![
        d.name.clone(),
        if d.local { "site" } else { "remote" }.into(),
        d.status.clone(),
        format!("{}/{}/{}", d.installed, d.pending, d.failed),
        if d.protected { "yes" } else { "" }.into(),
        d.boundaries.join(" "),
        d.groups.join(", "),
        d.url.clone(),
    ]
}

const DP_HEADERS: &[&str] = &[
    "NAME",
    "KIND",
    "STATUS",
    "INSTALLED/PENDING/FAILED",
    "PROTECTED",
    "BOUNDARIES",
    "GROUPS",
    "URL",
];

pub async fn dp(api: &Api, cmd: DpCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DpCommand::List { json } => {
            let list: Vec<DpOut> = api.get("/api/v1/dps", &(), "distribution points").await?;
            output::list(json, &list, DP_HEADERS, dp_row)?;
        }
        DpCommand::Show { name, json } => {
            let d: DpOut = api
                .get(
                    &format!("/api/v1/dps/{}", urlencode(&name)),
                    &(),
                    "distribution point",
                )
                .await?;
            if json {
                output::json(&d)?;
            } else {
                output::table(DP_HEADERS, &[dp_row(&d)]);
                println!();
                println!(
                    "Sender: schedule {}; rate limit {}{}",
                    if d.schedule.is_empty() {
                        "always open".to_string()
                    } else {
                        d.schedule.join(", ")
                    },
                    d.rate_limit
                        .map(|r| format!("{} KiB/s", r / 1024))
                        .unwrap_or_else(|| "none".into()),
                    d.lifted_until
                        .map(|t| format!("; lifted until {}", output::time(&t)))
                        .unwrap_or_default()
                );
                if let Some(e) = &d.last_error {
                    println!("Last error: {e}");
                }
            }
        }
        DpCommand::Set {
            name,
            protected,
            boundaries,
            no_boundaries,
            schedule,
            no_schedule,
            rate_limit_kib,
            lift_minutes,
        } => {
            let req = DpSettings {
                protected,
                boundaries: (no_boundaries || !boundaries.is_empty()).then_some(boundaries),
                schedule: (no_schedule || !schedule.is_empty()).then_some(schedule),
                rate_limit: rate_limit_kib.map(|k| k * 1024),
                lift_minutes,
            };
            let d: DpOut = api
                .post(
                    &format!("/api/v1/dps/{}/settings", urlencode(&name)),
                    &req,
                    "change distribution point",
                )
                .await?;
            println!("{} changed", d.name);
        }
        DpCommand::Validate { name, json } => {
            let v: ValidationOut = api
                .post(
                    &format!("/api/v1/dps/{}/validate", urlencode(&name)),
                    &(),
                    "validate",
                )
                .await?;
            if json {
                output::json(&v)?;
            } else if v.damaged.is_empty() {
                println!(
                    "{}: {} file(s) checked, none damaged",
                    v.distribution_point, v.checked
                );
            } else {
                println!(
                    "{}: {} file(s) checked, {} damaged and removed; they are sent again:",
                    v.distribution_point,
                    v.checked,
                    v.damaged.len()
                );
                for d in &v.damaged {
                    println!("  {d}");
                }
            }
        }
        DpCommand::Groups { command } => match command {
            GroupsCommand::List { json } => {
                let list: Vec<DpGroupOut> = api.get("/api/v1/dp-groups", &(), "groups").await?;
                output::list(json, &list, &["GROUP", "MEMBERS"], |g| {
                    vec![g.name.clone(), g.members.join(", ")]
                })?;
            }
            GroupsCommand::Create { name } => {
                let _: DpGroupOut = api
                    .post(
                        "/api/v1/dp-groups",
                        &DpGroupChange {
                            name: name.clone(),
                            ..Default::default()
                        },
                        "create group",
                    )
                    .await?;
                println!("Distribution point group {name} created");
            }
            GroupsCommand::Add { name, dps } => {
                let g: DpGroupOut = api
                    .post(
                        &format!("/api/v1/dp-groups/{}/members", urlencode(&name)),
                        &DpGroupChange {
                            add: dps,
                            ..Default::default()
                        },
                        "change group",
                    )
                    .await?;
                println!(
                    "{}: {} (the group's packages are not sent to new members until the group is assigned again)",
                    g.name,
                    g.members.join(", ")
                );
            }
            GroupsCommand::Remove { name, dps } => {
                let g: DpGroupOut = api
                    .post(
                        &format!("/api/v1/dp-groups/{}/members", urlencode(&name)),
                        &DpGroupChange {
                            remove: dps,
                            ..Default::default()
                        },
                        "change group",
                    )
                    .await?;
                println!("{}: {}", g.name, g.members.join(", "));
            }
        },
        DpCommand::Serve {
            data,
            listen,
            name,
            url,
        } => {
            crate::cmd_dp::serve(api, &data, &listen, name, url).await?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
