//! `koshin up`, `koshin site init`, `koshin site serve`: commands that act on a data folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use koshin_server::Site;
use koshin_server::init::{InitOptions, init_site};

use crate::client::Api;
use crate::output;

#[derive(Subcommand)]
pub enum SiteCommand {
    /// Write a site's configuration, database and admin token into a data folder.
    Init {
        /// Three-character site code (e.g. CS1).
        #[arg(long)]
        code: String,
        #[arg(long)]
        data: PathBuf,
        /// "system" (this machine's APT sources) or an APT one-line entry; repeatable.
        #[arg(long = "upstream")]
        upstreams: Vec<String>,
        /// The parent site's URL (child sites; comes with the hierarchy).
        #[arg(long)]
        parent: Option<String>,
        #[arg(long)]
        listen: Option<String>,
    },
    /// Run a site: API, update point, sync manager.
    Serve {
        #[arg(long, default_value = "./koshin-data", env = "KOSHIN_DATA")]
        data: PathBuf,
        #[arg(long)]
        listen: Option<String>,
    },
}

pub async fn run(cmd: SiteCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SiteCommand::Init {
            code,
            data,
            upstreams,
            parent,
            listen,
        } => {
            let out = init_site(&InitOptions {
                code: code.clone(),
                data,
                upstreams,
                listen,
                parent,
            })?;
            println!("Created site {code} in {}", out.data.display());
            println!("  configuration: {}", out.config_path.display());
            println!("  admin token:   {} (mode 0600)", out.token_path.display());
            println!(
                "Run it with: koshin site serve --data {}",
                out.data.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        SiteCommand::Serve { data, listen } => {
            let site = Site::open(&data)?;
            let addr = listen.unwrap_or_else(|| site.config.site.listen.clone());
            let listener = bind(&addr).await?;
            eprintln!(
                "Site {} serving on http://{} (data: {})",
                site.config.site.code,
                listener.local_addr().map(|a| a.to_string()).unwrap_or(addr),
                data.display()
            );
            koshin_server::serve(site, listener, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn bind(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}

pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Enrolls an agent for this machine (state in `<data>/agent`), scans it (the user's
/// "software updates scan cycle") and sends its state messages at once.
async fn scan_this_host(
    data: &Path,
    url: &str,
    token: &str,
) -> anyhow::Result<koshin_wire::ClientDetail> {
    use koshin_agent::{db::AgentDb, enroll, mp::Mp, scan, send};
    let state = data.join("agent");
    enroll::enroll(&enroll::EnrollOptions {
        site: url.to_string(),
        token: token.to_string(),
        name: None,
        state: state.clone(),
        root: PathBuf::from("/"),
    })
    .await?;
    let mut db = AgentDb::open(&state)?;
    let id = db.identity()?;
    let mp = Mp::new(&id.site_url, &id.credential)?;
    let out = scan::scan(
        &mut db,
        Some(&mp),
        Path::new("/"),
        koshin_domain::scan::ScanTrigger::ScanCycle,
    )
    .await?;
    println!(
        "Scanned this host in {} ms: {} state messages.",
        out.duration_ms, out.state_messages
    );
    send::send_all(&mut db, &id, &mp)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let api = Api::new(url, Some(token.to_string()))?;
    api.get(&format!("/api/v1/clients/{}", id.client_id), &(), "client")
        .await
}

/// `koshin up`: the quick start on the embedded default.
pub async fn up(data: &Path, listen: Option<String>) -> anyhow::Result<ExitCode> {
    if !data.join(koshin_server::init::CONFIG_FILE).exists() {
        init_site(&InitOptions {
            code: "CS1".into(),
            data: data.to_path_buf(),
            upstreams: vec!["system".into()],
            listen: listen.clone(),
            parent: None,
        })?;
        println!("Created top-level site CS1 in {}", data.display());
    } else {
        println!("Using the site in {}", data.display());
    }
    let site = Site::open(data)?;
    let addr = listen.unwrap_or_else(|| site.config.site.listen.clone());
    let listener = bind(&addr).await?;
    let local = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let url = format!("http://{local}");
    let token = std::fs::read_to_string(data.join(koshin_server::init::TOKEN_FILE))
        .with_context(|| format!("cannot read {}", data.join("admin.token").display()))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(koshin_server::serve(site.clone(), listener, async move {
        let _ = stop_rx.await;
    }));
    let api = Api::new(&url, Some(token.trim().to_string()))?;
    let full = site
        .store
        .content_version()
        .map(|(_, cv)| cv == 0)
        .unwrap_or(true);
    println!(
        "Synchronizing from {} ({} sync) ...",
        site.config.upstream.sources.join(", "),
        if full { "full" } else { "delta" }
    );
    let synced = crate::cmd_sync::request_and_wait(&api, full).await;
    match &synced {
        Ok(run) => println!(
            "Sync completed in {:.1} s: {} items updated, content version {}",
            run.finished
                .map(|f| (f.as_millisecond() - run.started.as_millisecond()) as f64 / 1000.0)
                .unwrap_or(0.0),
            run.items.unwrap_or(0),
            run.content_version.unwrap_or(0)
        ),
        Err(e) => eprintln!(
            "koshin: the sync failed: {e} (the site keeps serving; see koshin status-messages)"
        ),
    }
    let info: koshin_wire::SiteInfo = api.get("/api/v1/site", &(), "site").await?;
    println!();
    println!(
        "Catalog of site {} (content version {}):",
        info.site, info.content_version
    );
    let rows: Vec<Vec<String>> = info
        .catalog
        .iter()
        .map(|c| {
            vec![
                c.product.clone(),
                c.classification.clone(),
                c.updates.to_string(),
                c.superseded.to_string(),
                c.expired.to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "PRODUCT",
            "CLASSIFICATION",
            "UPDATES",
            "SUPERSEDED",
            "EXPIRED",
        ],
        &rows,
    );
    let total: u64 = info.catalog.iter().map(|c| c.updates).sum();
    println!("{total} updates in all.");
    println!();
    match scan_this_host(data, &url, token.trim()).await {
        Ok(detail) => {
            let required: Vec<_> = detail
                .updates
                .iter()
                .filter(|u| u.state == "required")
                .collect();
            let security = required
                .iter()
                .filter(|u| u.classification == "Security Updates")
                .count();
            println!(
                "This host ({}): {} updates required, {} of them security updates; {} installed.",
                detail.summary.name,
                required.len(),
                security,
                detail.summary.installed
            );
            println!("Details: koshin clients show {}", detail.summary.name);
        }
        Err(e) => eprintln!("koshin: could not scan this host: {e:#}"),
    }
    println!();
    println!(
        "API:     {url}/api/v1   (token: {})",
        data.join("admin.token").display()
    );
    println!("Logs:    {}", data.join("logs").display());
    println!("Try:     koshin updates list --classification \"Security Updates\"");
    println!("Serving; press Ctrl-C to stop.");
    shutdown_signal().await;
    let _ = stop_tx.send(());
    server.await.context("the server task failed")??;
    Ok(ExitCode::SUCCESS)
}
