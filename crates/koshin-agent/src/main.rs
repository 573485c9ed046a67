//! `koshin-agent`: enroll, run, scan, send-now, status (cli.md).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand};
use koshin_agent::db::AgentDb;
use koshin_agent::mp::Mp;
use koshin_agent::{DEFAULT_STATE_DIR, enroll, runner, scan, send};
use koshin_domain::scan::ScanTrigger;

#[derive(Parser)]
#[command(
    name = "koshin-agent",
    version,
    about = "Scans this machine for software update compliance and reports to its koshin site"
)]
struct Cli {
    /// The agent's state folder (identity, cached catalog, queue).
    #[arg(long, global = true, env = "KOSHIN_AGENT_STATE", default_value = DEFAULT_STATE_DIR)]
    state: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register this machine with a site.
    Enroll {
        /// The site's URL: http://SITE:8530, or https://SITE:8531 with --ca-cert.
        #[arg(long)]
        site: String,
        /// The site CA certificate (the site's DATA/pki/ca.crt) to verify an https:// site
        /// with; the site's own copy is stored at enrollment and trusted from then on.
        #[arg(long, env = "KOSHIN_CA_CERT")]
        ca_cert: Option<PathBuf>,
        /// An enrollment token of the site (or an administrator's); without one the client
        /// waits for an administrator's approval.
        #[arg(long, env = "KOSHIN_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// The computer name to register (default: the host name).
        #[arg(long)]
        name: Option<String>,
        /// Another dpkg root (`<root>/var/lib/dpkg/status`).
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// How often queued state messages are sent (C4: 15 minutes).
        #[arg(long)]
        send_interval_minutes: Option<u64>,
        /// server or workstation: which restart suppression of a deployment applies.
        #[arg(long)]
        role: Option<String>,
        /// The command that restarts this computer when a deployment needs it (e.g.
        /// "systemctl reboot"); without one the agent reports the restart as pending.
        #[arg(long)]
        restart_command: Option<String>,
    },
    /// The long-running agent: policy, schedules, scans, state messages.
    Run,
    /// Scan now. By default the user's "software updates scan cycle": a forced online scan.
    Scan {
        /// A forced online scan (the default for a scan started by hand).
        #[arg(long)]
        force: bool,
        /// The "deployment evaluation cycle" action (forced online).
        #[arg(long)]
        deployment_evaluation: bool,
        /// A forced offline scan: local metadata only.
        #[arg(long)]
        offline: bool,
        /// Scan with no site, against a signed offline catalog file (`koshin catalog
        /// offline`); the results go to --results, for `koshin import scan-results`.
        #[arg(long)]
        offline_catalog: Option<PathBuf>,
        /// The site's public archive key (its DATA/pki/archive-key.pub.asc), to verify the
        /// offline catalog; trusted from then on.
        #[arg(long, requires = "offline_catalog")]
        key: Option<PathBuf>,
        /// Where an offline-catalog scan writes its results (default
        /// STATE/offline-scan-results.json).
        #[arg(long, requires = "offline_catalog")]
        results: Option<PathBuf>,
        /// The dpkg root an offline-catalog scan reads when this agent is not enrolled
        /// (default /).
        #[arg(long, requires = "offline_catalog")]
        root: Option<PathBuf>,
        /// Scan as this trigger of C5: schedule, reevaluation, before-download, before-install,
        /// after-install, after-restart.
        #[arg(long)]
        trigger: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Send queued state messages now.
    SendNow,
    /// Deployments targeted at this computer and their state here.
    Deployments {
        #[arg(long)]
        json: bool,
    },
    /// Postpone a deployment until its deadline (where it allows that).
    Postpone { deployment: String },
    /// Last scan, TTL expiry, queue length, next actions.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// This computer's hardware and software inventory, as collections will query it, with
    /// the custom inventory classes of the machine policy held in the state folder.
    Inventory {
        /// Another root (a test root or a mounted image) instead of this machine.
        #[arg(long, default_value = "/")]
        root: PathBuf,
        /// The installed packages too.
        #[arg(long)]
        packages: bool,
        /// Send it to the site now (what changed since the last one it took).
        #[arg(long)]
        send: bool,
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KOSHIN_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // The service keeps SIGPIPE ignored: a site that drops the connection mid-request must
    // cost that request, not the agent.
    if !matches!(cli.command, Command::Run) {
        koshin_agent::restore_sigpipe();
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("koshin-agent: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("koshin-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Enroll {
            site,
            ca_cert,
            token,
            name,
            root,
            send_interval_minutes,
            role,
            restart_command,
        } => {
            if let Some(r) = &role
                && r != "server"
                && r != "workstation"
            {
                anyhow::bail!("--role is server or workstation, not '{r}'");
            }
            let token = token.unwrap_or_default();
            let ca_certificate = match &ca_cert {
                Some(path) => Some(std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read the CA certificate {}", path.display())
                })?),
                None => None,
            };
            let (client_id, code) = enroll::enroll(&enroll::EnrollOptions {
                site: site.clone(),
                token,
                name,
                state: cli.state.clone(),
                root,
                ca_certificate,
            })
            .await?;
            if let Some(m) = send_interval_minutes {
                AgentDb::open(&cli.state)?.set_i64("send_interval_minutes", m as i64)?;
            }
            if let Some(r) = role {
                AgentDb::open(&cli.state)?.set("role", &r)?;
            }
            if let Some(c) = restart_command {
                AgentDb::open(&cli.state)?.set("restart_command", &c)?;
            }
            println!("Enrolled with site {code} at {site} as client {client_id}");
            if AgentDb::open(&cli.state)?.get("approval")?.as_deref() == Some("pending") {
                println!(
                    "Pending approval: the site answers this client once an administrator approves it (koshin clients approve NAME)"
                );
            }
            Ok(())
        }
        Command::Run => runner::run(&cli.state, shutdown_signal()).await,
        Command::Inventory {
            root,
            packages,
            send,
            json,
        } => {
            if send {
                let db = AgentDb::open(&cli.state)?;
                let id = db.identity()?;
                let mp = Mp::for_identity(&id)?;
                let s =
                    koshin_agent::inventory::send(&db, &mp, std::path::Path::new(&id.root)).await?;
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"whole": s.whole, "properties_sent": s.properties_sent,
                            "packages_sent": s.packages_sent, "hash": s.ack.hash,
                            "properties": s.ack.properties, "packages": s.ack.packages})
                    );
                } else {
                    println!(
                        "Inventory sent ({}): {} properties and {} packages changed; the site holds {} property values and {} packages",
                        if s.whole { "whole" } else { "changes" },
                        s.properties_sent,
                        s.packages_sent,
                        s.ack.properties,
                        s.ack.packages
                    );
                }
                return Ok(());
            }
            // The custom classes of the policy this agent holds, if it is enrolled.
            let classes = koshin_agent::inventory_classes::held_in(&cli.state);
            let inv = koshin_agent::inventory::collect_with(&root, &classes);
            if json {
                println!("{}", serde_json::to_string_pretty(&inv)?);
                return Ok(());
            }
            println!("{:<24} VALUE", "PROPERTY");
            for (k, values) in &inv.properties {
                for v in values {
                    println!("{k:<24} {v}");
                }
            }
            if packages {
                println!();
                println!("{:<40} VERSION", "PACKAGE");
                for (p, v) in &inv.packages {
                    println!("{p:<40} {v}");
                }
            }
            Ok(())
        }
        Command::Scan {
            force: _,
            deployment_evaluation,
            offline,
            offline_catalog,
            key,
            results,
            root,
            trigger,
            json,
        } => {
            if let Some(file) = offline_catalog {
                let key = match key {
                    Some(k) => Some(
                        std::fs::read_to_string(&k)
                            .with_context(|| format!("cannot read {}", k.display()))?,
                    ),
                    None => None,
                };
                std::fs::create_dir_all(&cli.state)
                    .with_context(|| format!("cannot create {}", cli.state.display()))?;
                let root = match root {
                    Some(r) => r,
                    None => AgentDb::open(&cli.state)?
                        .identity()
                        .map(|id| PathBuf::from(id.root))
                        .unwrap_or_else(|_| PathBuf::from("/")),
                };
                let results =
                    results.unwrap_or_else(|| cli.state.join("offline-scan-results.json"));
                let detail = if json {
                    scan::Detail::All
                } else {
                    scan::Detail::Applicable
                };
                let (out, r) = koshin_agent::offline::scan(
                    &cli.state,
                    &root,
                    &file,
                    key.as_deref(),
                    &results,
                    detail,
                )
                .await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&out)?);
                } else {
                    println!(
                        "Offline scan against site {}'s catalog (content version {}): {} required, {} installed, {} not required; results for {} in {} (koshin import scan-results)",
                        r.catalog_site,
                        r.content_version,
                        out.required,
                        out.installed,
                        out.not_required,
                        r.client.name,
                        results.display()
                    );
                }
                return Ok(());
            }
            let trigger = match (trigger, offline, deployment_evaluation) {
                (Some(t), _, _) => {
                    ScanTrigger::parse(&t).ok_or_else(|| anyhow!("unknown trigger '{t}'"))?
                }
                (None, true, _) => ScanTrigger::Offline,
                (None, false, true) => ScanTrigger::DeploymentEvaluationCycle,
                (None, false, false) => ScanTrigger::ScanCycle,
            };
            let mut db = AgentDb::open(&cli.state)?;
            let id = db.identity()?;
            // An offline scan never talks to the site: no HTTP client is set up for it.
            let mp = match trigger.kind() {
                koshin_domain::scan::ScanKind::ForcedOffline => None,
                _ => Some(Mp::for_identity(&id)?),
            };
            let detail = if json {
                scan::Detail::All
            } else {
                scan::Detail::Applicable
            };
            let root = std::path::PathBuf::from(&id.root);
            let out = scan::scan_detail(&mut db, mp.as_ref(), &root, trigger, detail).await?;
            // The deployment evaluation cycle also acts on the deployments now.
            if trigger == ScanTrigger::DeploymentEvaluationCycle
                && let Some(mp) = &mp
            {
                for e in
                    koshin_agent::deploy::evaluate(&mut db, mp, &root, &cli.state, true).await?
                {
                    eprintln!("deployment {}: {} {}", e.deployment, e.state, e.detail);
                }
            }

            if json {
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!(
                    "{} scan ({}, {}) in {} ms against content version {}: {} required, {} installed, {} not required; {} state messages queued",
                    trigger.name(),
                    out.kind,
                    if out.online {
                        "metadata fetched"
                    } else {
                        "local metadata"
                    },
                    out.duration_ms,
                    out.content_version,
                    out.required,
                    out.installed,
                    out.not_required,
                    out.state_messages
                );
                for u in out.updates.iter().filter(|u| u.state == "required") {
                    let pkgs: Vec<String> = u
                        .packages
                        .iter()
                        .map(|p| {
                            format!(
                                "{} {} -> {}",
                                p.name,
                                p.installed.as_deref().unwrap_or("-"),
                                p.target
                            )
                        })
                        .collect();
                    let flag = if u.restart_pending {
                        " (restart pending)"
                    } else {
                        ""
                    };
                    println!(
                        "  required  {:<18} {}{}  [{}]",
                        u.classification,
                        u.title,
                        flag,
                        pkgs.join(", ")
                    );
                }
            }
            Ok(())
        }
        Command::Deployments { json } => {
            let db = AgentDb::open(&cli.state)?;
            let list = koshin_agent::deploy::cached(&db)?;
            let mut rows = Vec::new();
            for d in &list {
                let (state, detail) = koshin_agent::deploy::local_state(&db, d)?;
                rows.push(serde_json::json!({
                    "id": d.id, "name": d.name, "state": state, "detail": detail,
                    "available": d.available, "deadline": d.deadline, "utc": d.utc,
                    "allow_postpone": d.allow_postpone, "notification": d.notification,
                    "updates": d.updates.iter().map(|u| u.title.clone()).collect::<Vec<_>>(),
                }));
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else if rows.is_empty() {
                println!("No deployment is targeted at this computer.");
            } else {
                for r in &rows {
                    println!(
                        "{} {}  {}  available {}{}  {}",
                        r["id"].as_str().unwrap_or_default(),
                        r["name"].as_str().unwrap_or_default(),
                        r["state"].as_str().unwrap_or_default(),
                        r["available"].as_str().unwrap_or_default(),
                        r["deadline"]
                            .as_str()
                            .map(|d| format!(", deadline {d}"))
                            .unwrap_or_default(),
                        r["notification"].as_str().unwrap_or_default()
                    );
                }
            }
            Ok(())
        }
        Command::Postpone { deployment } => {
            let db = AgentDb::open(&cli.state)?;
            let until = koshin_agent::deploy::postpone(&db, &deployment)?;
            println!("{deployment} postponed until its deadline, {until}");
            Ok(())
        }
        Command::SendNow => {
            let mut db = AgentDb::open(&cli.state)?;
            let id = db.identity()?;
            let mp = Mp::for_identity(&id)?;
            let sent = send::send_all(&mut db, &id, &mp)
                .await
                .context("state messages stay queued")?;
            println!(
                "Sent {} state messages in {} batches",
                sent.messages, sent.batches
            );
            Ok(())
        }
        Command::Status { json } => {
            let s = enroll::status(&cli.state)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                let t = |v: &Option<jiff::Timestamp>| {
                    v.map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
                        .unwrap_or_else(|| "-".into())
                };
                println!("Client:          {} ({})", s.name, s.client_id);
                println!("Site:            {} at {}", s.site_code, s.site);
                println!(
                    "Policy version:  {}",
                    s.policy_version
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "-".into())
                );
                match &s.last_scan {
                    Some(l) => println!(
                        "Last scan:       {} ({}, {}) {}: {} required, {} installed",
                        l.started.strftime("%Y-%m-%d %H:%M:%S UTC"),
                        l.trigger,
                        l.kind,
                        l.result,
                        l.required,
                        l.installed
                    ),
                    None => println!("Last scan:       -"),
                }
                println!(
                    "Metadata:        content version {}, fetched {}, TTL expires {}",
                    s.content_version,
                    t(&s.metadata_fetched),
                    t(&s.ttl_expires)
                );
                println!("Queue:           {} state messages", s.queue_length);
                println!("Next policy:     {}", t(&s.next_policy_poll));
                println!("Next scan:       {}", t(&s.next_scan));
                println!(
                    "Next send:       {} (every {} minutes)",
                    t(&s.next_send),
                    s.send_interval_minutes
                );
                match &s.distribution_point {
                    Some(d) => {
                        println!("Distribution point: {} at {} ({})", d.name, d.url, d.reason)
                    }
                    None => {
                        println!("Distribution point: - (none in policy may serve this client)")
                    }
                }
            }
            Ok(())
        }
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
