//! `koshin deployments` (create, list, show, disable, enable, rerun, remove-update,
//! rollback), `koshin update-groups` and `koshin windows` (maintenance windows of
//! collections).

use std::process::ExitCode;

use clap::Subcommand;
use koshin_wire::{
    DeploymentDetail, DeploymentOut, DisableDeployment, MembersChange, NewDeployment,
    NewUpdateGroup, NewWindow, RemoveUpdate, RollbackRequest, UpdateGroupOut, WindowOut,
};

use crate::client::Api;
use crate::cmd_updates::urlencode;
use crate::output;

#[derive(Subcommand)]
pub enum DeploymentsCommand {
    /// Deployments and how many clients are in each state.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One deployment and every targeted client's state.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Deploy an update group (or a program: the offline scan tool) to a collection.
    Create {
        name: String,
        #[arg(
            long = "group",
            required_unless_present = "program",
            conflicts_with = "program",
            default_value = ""
        )]
        update_group: String,
        /// Run a program instead of installing updates: offline-scan (the scan tool, which
        /// scans against the offline scan catalog package) or offline-scan-expedited (the
        /// same, and the inventory goes right after the scan).
        #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(koshin_wire::PROGRAMS))]
        program: Option<String>,
        #[arg(long)]
        collection: String,
        /// When clients may install: 2026-11-21T18:00 (default: now).
        #[arg(long)]
        available: Option<String>,
        /// When installation is forced: 2026-11-22T02:00.
        #[arg(long)]
        deadline: Option<String>,
        /// Read the times in UTC (the same moment everywhere), not each client's local time.
        #[arg(long)]
        utc: bool,
        /// Users may not postpone until the deadline.
        #[arg(long)]
        no_postpone: bool,
        /// The text users are notified with.
        #[arg(long, default_value = "")]
        notification: String,
        /// Do not restart servers / workstations after installing.
        #[arg(long)]
        suppress_restart_servers: bool,
        #[arg(long)]
        suppress_restart_workstations: bool,
        /// Install from the distribution point instead of downloading first.
        #[arg(long)]
        install_from_dp: bool,
        /// Evaluate again every N days (a recurring deployment).
        #[arg(long)]
        recurrence_days: Option<u32>,
        /// Clients send their inventory right after the scan that evaluates it, instead of
        /// at their next inventory cycle.
        #[arg(long)]
        expedited_inventory: bool,
        /// The priority of its content: high, medium or low.
        #[arg(long)]
        priority: Option<String>,
        /// Distribution points for its content (default: every one).
        #[arg(long = "dp")]
        dps: Vec<String>,
    },
    /// Stop a deployment on every client, optionally until a time.
    Disable {
        name: String,
        /// Enable it again at this time (RFC 3339, e.g. 2026-11-22T06:00:00Z).
        #[arg(long)]
        until: Option<jiff::Timestamp>,
    },
    Enable {
        name: String,
    },
    /// Run it again everywhere, even where it already ran.
    Rerun {
        name: String,
    },
    /// Remove one update; the others keep running.
    RemoveUpdate {
        name: String,
        update: String,
    },
    /// Deploy the previous version of every update of a deployment.
    Rollback {
        name: String,
        #[arg(long = "as")]
        rollback_name: Option<String>,
    },
    /// Export update groups (approvals) and deployment definitions to FILE, signed with the
    /// site's archive key, for another site (a test site's into production).
    Export {
        file: std::path::PathBuf,
        /// Only these deployments (and the groups they deploy); default: every one and
        /// every update group.
        #[arg(long = "deployment")]
        deployments: Vec<String>,
        /// These update groups besides.
        #[arg(long = "group")]
        groups: Vec<String>,
        #[arg(long)]
        json: bool,
    },
    /// Import update groups and deployment definitions exported by another site: verified,
    /// applied all or nothing; new deployments are created disabled unless --enable.
    Import {
        file: std::path::PathBuf,
        /// The exporting site's public archive key (its DATA/pki/archive-key.pub.asc), to
        /// trust from now on.
        #[arg(long)]
        key: Option<std::path::PathBuf>,
        /// Create the new deployments enabled, as they were at the exporting site.
        #[arg(long)]
        enable: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum GroupsCommand {
    List {
        #[arg(long)]
        json: bool,
    },
    /// A group of updates (by id, id prefix, article id or title).
    Create {
        name: String,
        #[arg(long = "update")]
        updates: Vec<String>,
        /// Every security update some client requires for this product (P12).
        #[arg(long)]
        security_rollup: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    Add {
        name: String,
        #[arg(required = true)]
        updates: Vec<String>,
    },
    Remove {
        name: String,
        #[arg(required = true)]
        updates: Vec<String>,
    },
}

#[derive(Subcommand)]
pub enum WindowsCommand {
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set a maintenance window of a collection: `daily 22:00 3h`, `weekly sat 22:00 4h`,
    /// `monthly 2 tue 22:00 3h`, `once 2026-12-01 22:00 2h`, optionally ending in `utc`.
    Set {
        collection: String,
        name: String,
        schedule: String,
    },
    Remove {
        collection: String,
        name: String,
    },
}

fn path(name: &str) -> String {
    format!("/api/v1/deployments/{}", urlencode(name))
}

fn summary(d: &DeploymentOut) -> String {
    d.summary
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn deployments(api: &Api, cmd: DeploymentsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DeploymentsCommand::List { json } => {
            let list: Vec<DeploymentOut> =
                api.get("/api/v1/deployments", &(), "deployments").await?;
            output::list(
                json,
                &list,
                &[
                    "ID",
                    "NAME",
                    "COLLECTION",
                    "AVAILABLE",
                    "DEADLINE",
                    "ENABLED",
                    "CLIENTS",
                ],
                |d| {
                    vec![
                        d.id.clone(),
                        d.name.clone(),
                        d.collection.clone(),
                        format!("{}{}", d.available, if d.utc { " UTC" } else { "" }),
                        d.deadline.clone().unwrap_or_default(),
                        if d.enabled { "yes" } else { "no" }.into(),
                        summary(d),
                    ]
                },
            )?;
        }
        DeploymentsCommand::Show { name, json } => {
            let d: DeploymentDetail = api.get(&path(&name), &(), "deployment").await?;
            if json {
                output::json(&d)?;
            } else {
                let k = &d.deployment;
                let what = match &k.program {
                    Some(p) => format!("program {p}"),
                    None => format!("group {}", k.update_group),
                };
                println!(
                    "{} ({}): {what} to {}; available {}, deadline {}{}; {}",
                    k.name,
                    k.id,
                    k.collection,
                    k.available,
                    k.deadline.as_deref().unwrap_or("none"),
                    if k.utc {
                        " (UTC)"
                    } else {
                        " (client local time)"
                    },
                    if k.enabled { "enabled" } else { "disabled" }
                );
                for u in &k.updates {
                    println!(
                        "  {}{}",
                        u.title,
                        if u.removed.is_some() {
                            " (removed)"
                        } else {
                            ""
                        }
                    );
                }
                println!();
                output::table(
                    &["COMPUTER", "STATE", "TIME", "DETAIL"],
                    &d.clients
                        .iter()
                        .map(|c| {
                            vec![
                                c.computer.clone(),
                                format!("{}{}", c.state, if c.overdue { " (overdue)" } else { "" }),
                                c.time.as_ref().map(output::time).unwrap_or_default(),
                                c.detail.clone(),
                            ]
                        })
                        .collect::<Vec<_>>(),
                );
            }
        }
        DeploymentsCommand::Create {
            name,
            update_group,
            collection,
            available,
            deadline,
            utc,
            no_postpone,
            notification,
            suppress_restart_servers,
            suppress_restart_workstations,
            install_from_dp,
            recurrence_days,
            expedited_inventory,
            program,
            priority,
            dps,
        } => {
            let d: DeploymentOut = api
                .post(
                    "/api/v1/deployments",
                    &NewDeployment {
                        name,
                        update_group,
                        collection,
                        available,
                        deadline,
                        utc,
                        allow_postpone: Some(!no_postpone),
                        notification,
                        suppress_restart_servers,
                        suppress_restart_workstations,
                        install_from_dp,
                        recurrence_days,
                        expedited_inventory,
                        program,
                        priority,
                        distribution_points: dps,
                    },
                    "create deployment",
                )
                .await?;
            match &d.program {
                Some(program) => println!(
                    "Deployment {} created ({}): program {program} to {}, content package {}",
                    d.name,
                    d.id,
                    d.collection,
                    d.package.unwrap_or_default()
                ),
                None => println!(
                    "Deployment {} created ({}): {} update(s) to {}, content package {}",
                    d.name,
                    d.id,
                    d.updates.len(),
                    d.collection,
                    d.package.unwrap_or_default()
                ),
            }
        }
        DeploymentsCommand::Export {
            file,
            deployments,
            groups,
            json,
        } => {
            let q = format!(
                "/api/v1/deployment-definitions?deployments={}&groups={}",
                urlencode(&deployments.join(",")),
                urlencode(&groups.join(","))
            );
            let bytes = api
                .get_bytes(&q, "export deployment definitions", |_| {})
                .await?;
            crate::cmd_catalog::write_atomically(&file, &bytes)?;
            let (fields, _) = koshin_apt::signed::read_header(
                koshin_wire::DEFINITIONS_MAGIC,
                "koshin deployment definitions",
                &bytes,
            )
            .map_err(|e| anyhow::anyhow!("the site sent something unexpected: {e}"))?;
            let field = |k: &str| fields.get(k).cloned().unwrap_or_default();
            if json {
                crate::output::json(&serde_json::json!({
                    "file": file.display().to_string(),
                    "bytes": bytes.len(),
                    "site": field("Site"),
                    "groups": field("Groups"),
                    "deployments": field("Deployments"),
                    "signed_by": field("Signed-By"),
                }))?;
            } else {
                println!(
                    "Exported {} update group(s) and {} deployment(s) of site {} to {} ({} bytes, signed by {})",
                    field("Groups"),
                    field("Deployments"),
                    field("Site"),
                    file.display(),
                    bytes.len(),
                    field("Signed-By")
                );
            }
        }
        DeploymentsCommand::Import {
            file,
            key,
            enable,
            json,
        } => {
            let bytes = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            if let Some(k) = key {
                let t = crate::cmd_catalog::trust(api, &k).await?;
                if !json {
                    println!("Trusting key {} ({})", t.fingerprint, t.user_ids.join(", "));
                }
            }
            let out: koshin_wire::DefinitionsImported = api
                .post_bytes(
                    &format!("/api/v1/deployment-definitions?enable={enable}"),
                    bytes,
                    "import deployment definitions",
                )
                .await?;
            if json {
                crate::output::json(&out)?;
            } else {
                let names = |v: &[String]| {
                    if v.is_empty() {
                        "none".to_string()
                    } else {
                        v.join(", ")
                    }
                };
                println!("Imported from site {}:", out.site);
                println!(
                    "  update groups created: {}; already here: {}",
                    names(&out.groups_created),
                    names(&out.groups_unchanged)
                );
                println!(
                    "  deployments created ({}): {}; already here: {}",
                    if out.enabled {
                        "enabled"
                    } else {
                        "disabled: koshin deployments enable NAME"
                    },
                    names(&out.deployments_created),
                    names(&out.deployments_unchanged)
                );
            }
        }
        DeploymentsCommand::Disable { name, until } => {
            let _: DeploymentOut = api
                .post(
                    &format!("{}/disable", path(&name)),
                    &DisableDeployment { reenable_at: until },
                    "disable",
                )
                .await?;
            println!("{name} disabled on every client");
        }
        DeploymentsCommand::Enable { name } => {
            let _: DeploymentOut = api
                .post(&format!("{}/enable", path(&name)), &(), "enable")
                .await?;
            println!("{name} enabled");
        }
        DeploymentsCommand::Rerun { name } => {
            let d: DeploymentOut = api
                .post(&format!("{}/rerun", path(&name)), &(), "re-run")
                .await?;
            println!("{name} runs again everywhere (generation {})", d.generation);
        }
        DeploymentsCommand::RemoveUpdate { name, update } => {
            let _: DeploymentOut = api
                .post(
                    &format!("{}/remove-update", path(&name)),
                    &RemoveUpdate {
                        update: update.clone(),
                    },
                    "remove update",
                )
                .await?;
            println!("{update} removed from {name}; the other updates keep running");
        }
        DeploymentsCommand::Rollback {
            name,
            rollback_name,
        } => {
            let d: DeploymentOut = api
                .post(
                    &format!("{}/rollback", path(&name)),
                    &RollbackRequest {
                        name: rollback_name,
                    },
                    "roll back",
                )
                .await?;
            println!(
                "Rollback deployment {} ({}) created; {name} is disabled",
                d.name, d.id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn groups(api: &Api, cmd: GroupsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        GroupsCommand::List { json } => {
            let list: Vec<UpdateGroupOut> = api
                .get("/api/v1/update-groups", &(), "update groups")
                .await?;
            output::list(json, &list, &["GROUP", "UPDATES", "DESCRIPTION"], |g| {
                vec![
                    g.name.clone(),
                    g.updates
                        .iter()
                        .map(|u| u.title.clone())
                        .collect::<Vec<_>>()
                        .join(", "),
                    g.description.clone(),
                ]
            })?;
        }
        GroupsCommand::Create {
            name,
            updates,
            security_rollup,
            description,
        } => {
            let g: UpdateGroupOut = api
                .post(
                    "/api/v1/update-groups",
                    &NewUpdateGroup {
                        name,
                        description,
                        updates,
                        security_rollup_for: security_rollup,
                    },
                    "create update group",
                )
                .await?;
            println!(
                "Update group {} created: {} update(s)",
                g.name,
                g.updates.len()
            );
        }
        GroupsCommand::Add { name, updates } => {
            change_group(api, &name, updates, Vec::new()).await?
        }
        GroupsCommand::Remove { name, updates } => {
            change_group(api, &name, Vec::new(), updates).await?
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn change_group(
    api: &Api,
    name: &str,
    add: Vec<String>,
    remove: Vec<String>,
) -> anyhow::Result<()> {
    let g: UpdateGroupOut = api
        .post(
            &format!("/api/v1/update-groups/{}/members", urlencode(name)),
            &MembersChange { add, remove },
            "change update group",
        )
        .await?;
    println!("{}: {} update(s)", g.name, g.updates.len());
    Ok(())
}

pub async fn windows(api: &Api, cmd: WindowsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        WindowsCommand::List { json } => {
            let list: Vec<WindowOut> = api
                .get("/api/v1/maintenance-windows", &(), "maintenance windows")
                .await?;
            output::list(json, &list, &["COLLECTION", "WINDOW", "SCHEDULE"], |w| {
                vec![w.collection.clone(), w.name.clone(), w.schedule.clone()]
            })?;
        }
        WindowsCommand::Set {
            collection,
            name,
            schedule,
        } => {
            let w: WindowOut = api
                .post(
                    &format!("/api/v1/collections/{}/windows", urlencode(&collection)),
                    &NewWindow { name, schedule },
                    "set maintenance window",
                )
                .await?;
            println!("{}: window {} is {}", w.collection, w.name, w.schedule);
        }
        WindowsCommand::Remove { collection, name } => {
            let _: serde_json::Value = api
                .post(
                    &format!(
                        "/api/v1/collections/{}/windows/{}/delete",
                        urlencode(&collection),
                        urlencode(&name)
                    ),
                    &(),
                    "remove maintenance window",
                )
                .await?;
            println!("{collection}: window {name} removed");
        }
    }
    Ok(ExitCode::SUCCESS)
}
