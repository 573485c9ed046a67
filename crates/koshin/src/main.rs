//! `koshin`: the site server and the admin CLI. Site commands (`up`, `site init`, `site serve`)
//! act on a data folder; every other command talks to a site over its HTTP API
//! (`--site`, `--token`), exactly as outside scripts do.

mod bench_ingest;
mod bench_load;
mod bench_reports;
mod bench_scan;
mod client;
mod cmd_bench;
mod cmd_catalog;
mod cmd_clients;
mod cmd_collections;
mod cmd_content;
mod cmd_deployments;
mod cmd_dp;
mod cmd_inventory;
mod cmd_report;
mod cmd_site;
mod cmd_status;
mod cmd_sync;
mod cmd_trust;
mod cmd_updates;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "koshin",
    version,
    about = "Self-hosted software update management: site server and admin CLI"
)]
struct Cli {
    /// The site to talk to.
    #[arg(
        long,
        global = true,
        env = "KOSHIN_SITE",
        default_value = "http://127.0.0.1:8530"
    )]
    site: String,
    /// Administrator token (default: the admin.token of the local data folder).
    #[arg(long, global = true, env = "KOSHIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The site CA certificate to verify an https:// site with (default: the local data
    /// folder's pki/ca.crt, when there is one).
    #[arg(long, global = true, env = "KOSHIN_CA_CERT")]
    ca_cert: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum SupCommand {
    /// Run a replica update point of a site: registers on first start (with an
    /// administrator's token), then serves the catalog and syncs when the site asks.
    Serve {
        #[arg(long)]
        data: std::path::PathBuf,
        #[arg(long, default_value = "0.0.0.0:8532")]
        listen: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        url: Option<String>,
        /// An internet-facing update point (S10): HTTPS only, with a server certificate from
        /// the site CA (or --tls-cert/--tls-key); it polls the site itself and is not synced
        /// in the site's sync.
        #[arg(long)]
        internet: bool,
        /// With --internet: the names its certificate is issued for (default: --url's host).
        #[arg(long = "hostname")]
        hostnames: Vec<String>,
        /// With --internet: a certificate of its own (PEM) instead of one the site issues.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// With --internet: seconds between two polls of the site's content version.
        #[arg(long, default_value_t = 300)]
        poll_seconds: u64,
    },
    /// Import a catalog export file into an internet-facing update point's database,
    /// offline (when it cannot reach its site).
    Import {
        file: PathBuf,
        #[arg(long)]
        data: PathBuf,
        /// Another exporter's public archive key to trust (its site's key is trusted
        /// already, from registration).
        #[arg(long)]
        key: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Quick start: create or reuse a top-level site, sync it from this machine's APT sources, and serve.
    Up {
        #[arg(long, default_value = "./koshin-data", env = "KOSHIN_DATA")]
        data: PathBuf,
        #[arg(long)]
        listen: Option<String>,
    },
    /// Create or run a site.
    Site {
        #[command(subcommand)]
        command: cmd_site::SiteCommand,
    },
    /// Ask the site for a sync now (delta by default).
    Sync(cmd_sync::SyncArgs),
    /// The update catalog.
    Updates {
        #[command(subcommand)]
        command: cmd_updates::UpdatesCommand,
    },
    /// Status messages, newest last; with --summary, component status (OK, Warning, Critical).
    StatusMessages(cmd_status::StatusArgs),
    /// Enrolled clients and their compliance.
    Clients {
        #[command(subcommand)]
        command: cmd_clients::ClientsCommand,
    },
    /// Log in with an administrator's name and password; the token is kept for this site.
    Login {
        /// The administrator's name.
        name: String,
        /// How long the token stays valid, in hours (default 12).
        #[arg(long)]
        hours: Option<u32>,
    },
    /// Revoke this CLI's token at the site and forget it.
    Logout,
    /// Administrators and their roles.
    Admins {
        #[command(subcommand)]
        command: cmd_trust::AdminsCommand,
    },
    /// Content packages: the files of updates, sent to distribution points by priority.
    Content {
        #[command(subcommand)]
        command: cmd_content::ContentCommand,
    },
    /// Distribution points and their groups; `koshin dp serve` runs a remote one.
    Dp {
        #[command(subcommand)]
        command: cmd_content::DpCommand,
    },
    /// Import what was made away from the site: `import scan-results FILE`.
    Import {
        #[command(subcommand)]
        command: cmd_catalog::ImportCommand,
    },
    /// Catalog export and import, signed with the site's archive key.
    Catalog {
        #[command(subcommand)]
        command: cmd_catalog::CatalogCommand,
    },
    /// Replica and internet-facing update points: `koshin sup serve` runs one.
    Sup {
        #[command(subcommand)]
        command: SupCommand,
    },
    /// Deployments of update groups to collections.
    Deployments {
        #[command(subcommand)]
        command: cmd_deployments::DeploymentsCommand,
    },
    /// Update groups (the seeds' update lists), and security rollups.
    UpdateGroups {
        #[command(subcommand)]
        command: cmd_deployments::GroupsCommand,
    },
    /// Maintenance windows of collections.
    Windows {
        #[command(subcommand)]
        command: cmd_deployments::WindowsCommand,
    },
    /// Collections: All Systems and collections with direct members.
    Collections {
        #[command(subcommand)]
        command: cmd_collections::CollectionsCommand,
    },
    /// Inventory the site defines: custom inventory classes.
    Inventory {
        #[command(subcommand)]
        command: cmd_inventory::InventoryCommand,
    },
    /// The audit log: who changed what, when, from where.
    Audit {
        /// Only entries of the last DURATION (30m, 2h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// At most this many (the newest).
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// Reports and the SQL behind them.
    Report {
        #[command(subcommand)]
        command: cmd_report::ReportCommand,
    },
    /// Benchmarks against peers, measured in the same run.
    Bench {
        #[command(subcommand)]
        command: cmd_bench::BenchCommand,
    },
}

/// Whether the command is a long-running server. A server keeps SIGPIPE ignored: a peer
/// that goes away mid-answer (a child site killed, a client gone) must cost that one
/// connection, never the process.
fn serves(command: &Command) -> bool {
    matches!(
        command,
        Command::Up { .. }
            | Command::Site {
                command: cmd_site::SiteCommand::Serve { .. }
            }
            | Command::Sup { .. }
            | Command::Dp {
                command: cmd_content::DpCommand::Serve { .. }
            }
    )
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KOSHIN_LOG")
                // The platform verifier logs a failed verification that koshin reports anyway.
                .unwrap_or_else(|_| "warn,rustls_platform_verifier=off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let site_given = matches!(
        matches.value_source("site"),
        Some(clap::parser::ValueSource::CommandLine)
    );
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if !serves(&cli.command) {
        koshin_agent::restore_sigpipe();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("koshin: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli, site_given)) {
        Ok(code) => code,
        Err(e) => {
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                msg.push_str(": ");
                msg.push_str(&cause.to_string());
            }
            eprintln!("koshin: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli, site_given: bool) -> anyhow::Result<ExitCode> {
    let api = || client::Api::with_ca(&cli.site, cli.token.clone(), cli.ca_cert.as_deref());
    match cli.command {
        Command::Up { data, listen } => cmd_site::up(&data, listen).await,
        Command::Site { command } => cmd_site::run(command, api).await,
        Command::Sync(args) => cmd_sync::run(&api()?, args).await,
        Command::Updates { command } => cmd_updates::run(&api()?, command).await,
        Command::StatusMessages(args) => cmd_status::run(&api()?, args).await,
        Command::Clients { command } => cmd_clients::run(&api()?, command).await,
        Command::Report { command } => cmd_report::run(&api()?, command).await,
        Command::Login { name, hours } => cmd_trust::login(&api()?, &cli.site, name, hours).await,
        Command::Logout => cmd_trust::logout(&api()?, &cli.site).await,
        Command::Admins { command } => cmd_trust::admins(&api()?, command).await,
        Command::Collections { command } => cmd_collections::run(&api()?, command).await,
        Command::Inventory { command } => cmd_inventory::run(&api()?, command).await,
        Command::Content { command } => cmd_content::content(&api()?, command).await,
        Command::Catalog { command } => cmd_catalog::run(&api()?, command).await,
        Command::Import { command } => cmd_catalog::import(&api()?, command).await,
        Command::Sup {
            command:
                SupCommand::Import {
                    file,
                    data,
                    key,
                    json,
                },
        } => cmd_catalog::sup_import(&file, &data, key.as_deref(), json),
        Command::Sup {
            command:
                SupCommand::Serve {
                    data,
                    listen,
                    name,
                    url,
                    internet: true,
                    hostnames,
                    tls_cert,
                    tls_key,
                    poll_seconds,
                },
        } => {
            let tls = tls_cert.zip(tls_key);
            cmd_dp::isup_serve(
                &api()?,
                &data,
                &listen,
                name,
                url,
                hostnames,
                tls,
                std::time::Duration::from_secs(poll_seconds.max(1)),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Sup {
            command:
                SupCommand::Serve {
                    data,
                    listen,
                    name,
                    url,
                    ..
                },
        } => {
            cmd_dp::sup_serve(&api()?, &data, &listen, name, url).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Deployments { command } => cmd_deployments::deployments(&api()?, command).await,
        Command::UpdateGroups { command } => cmd_deployments::groups(&api()?, command).await,
        Command::Windows { command } => cmd_deployments::windows(&api()?, command).await,
        Command::Dp { command } => cmd_content::dp(&api()?, command).await,
        Command::Audit { since, limit, json } => {
            cmd_trust::audit(&api()?, since, limit, json).await
        }
        Command::Bench { command } => {
            // Only a site named on the command line is loaded: never one that an
            // environment variable or the default happens to name.
            let target = bench_load::Target {
                site: site_given.then(|| cli.site.clone()),
                token: cli.token.clone(),
                ca_cert: cli.ca_cert.clone(),
            };
            cmd_bench::run(command, target).await
        }
    }
}
