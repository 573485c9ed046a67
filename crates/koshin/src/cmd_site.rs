//! `koshin up`, `koshin site init`, `koshin site serve`: commands that act on a data folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use koshin_server::init::{InitOptions, init_site};
use koshin_server::{Listeners, Site, SiteConfig};

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
        /// The parent site's URL: this site is its child, syncs from it and reports to it.
        #[arg(long, requires = "join_token")]
        parent: Option<String>,
        /// A join token of the parent (`koshin site join-token` there).
        #[arg(long, requires = "parent")]
        join_token: Option<String>,
        /// The parent's CA certificate (its DATA/pki/ca.crt), to join an https:// parent:
        /// the join then also gets this site a link certificate from the parent's CA.
        #[arg(long, requires = "parent")]
        parent_ca: Option<PathBuf>,
        /// A secondary site (under a primary) rather than a primary.
        #[arg(long, requires = "parent")]
        secondary: bool,
        #[arg(long)]
        listen: Option<String>,
        /// Serve HTTPS on this address too (`[tls] https_listen`, e.g. 0.0.0.0:8531).
        #[arg(long)]
        https_listen: Option<String>,
    },
    /// A token a child site joins this site with (`site init --parent URL --join-token T`).
    JoinToken {
        /// How long it may be used (default 24).
        #[arg(long)]
        hours: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// This site's parent and children, and how each link is.
    Links {
        #[arg(long)]
        json: bool,
    },
    /// Run a site: API, update point, sync manager.
    Serve {
        #[arg(long, default_value = "./koshin-data", env = "KOSHIN_DATA")]
        data: PathBuf,
        /// The plain HTTP address (default: `[site] listen`).
        #[arg(long)]
        listen: Option<String>,
        /// The HTTPS address (default: `[tls] https_listen`).
        #[arg(long)]
        https_listen: Option<String>,
    },
}

pub async fn run(
    cmd: SiteCommand,
    api: impl FnOnce() -> anyhow::Result<Api>,
) -> anyhow::Result<ExitCode> {
    match cmd {
        SiteCommand::JoinToken { hours, json } => {
            let t: koshin_wire::JoinTokenOut = api()?
                .post(
                    "/api/v1/sites/join-tokens",
                    &koshin_wire::NewJoinToken { hours },
                    "create a join token",
                )
                .await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"token": t.token, "expires": t.expires})
                );
            } else {
                println!("{}", t.token);
                eprintln!(
                    "A child site joins with it until {} (once): koshin site init --code CODE --data DIR --parent URL --join-token TOKEN",
                    output::time(&t.expires)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        SiteCommand::Links { json } => {
            let list: Vec<koshin_wire::SiteLinkOut> =
                api()?.get("/api/v1/sites/links", &(), "site links").await?;
            output::list(
                json,
                &list,
                &[
                    "SITE",
                    "RELATION",
                    "KIND",
                    "URL",
                    "LAST SEEN",
                    "REPLICATED CV",
                    "GLOBAL",
                    "QUEUED UP",
                    "STATE",
                ],
                |l| {
                    vec![
                        l.code.clone(),
                        l.relation.clone(),
                        if l.relation == "child" {
                            l.kind.clone()
                        } else {
                            String::new()
                        },
                        l.url.clone(),
                        l.last_seen.as_ref().map(output::time).unwrap_or_default(),
                        if l.relation == "parent" {
                            l.replicated_content_version.to_string()
                        } else {
                            String::new()
                        },
                        if l.relation == "parent" {
                            l.global_seq.to_string()
                        } else {
                            String::new()
                        },
                        if l.relation == "parent" {
                            l.queued_up.to_string()
                        } else {
                            String::new()
                        },
                        match (&l.last_error, l.notify_pending) {
                            (Some(e), _) => format!("down: {e}"),
                            (None, true) => "active, notification pending".into(),
                            (None, false) => "active".into(),
                        },
                    ]
                },
            )?;
            Ok(ExitCode::SUCCESS)
        }
        SiteCommand::Init {
            code,
            data,
            upstreams,
            parent,
            join_token,
            parent_ca,
            secondary,
            listen,
            https_listen,
        } => {
            let parent_ca = match &parent_ca {
                Some(p) => Some(
                    std::fs::read_to_string(p)
                        .with_context(|| format!("cannot read {}", p.display()))?,
                ),
                None => None,
            };
            let out = init_site(&InitOptions {
                code: code.clone(),
                data,
                upstreams,
                listen,
                parent: parent.clone(),
                secondary,
            })?;
            if let (Some(parent), Some(token)) = (&parent, &join_token) {
                let cfg = SiteConfig::load(&out.config_path)?;
                let store = koshin_store::SqliteStore::open(
                    &out.data.join(koshin_server::init::DATABASE_FILE),
                )?;
                let pki = koshin_server::pki::SitePki::ensure(&out.data, &cfg)?;
                let tls = koshin_server::hierarchy::JoinTls {
                    pki: &pki,
                    parent_ca: parent_ca.as_deref(),
                };
                match koshin_server::hierarchy::join_parent(
                    &store,
                    &tls,
                    &code,
                    secondary,
                    parent,
                    token,
                    &cfg.public_url(),
                )
                .await
                {
                    Ok(p) => println!("Joined parent site {p} at {parent}"),
                    Err(e) => {
                        // The folder is of no use without its parent: remove the config so a
                        // second init can run.
                        let _ = std::fs::remove_file(&out.config_path);
                        return Err(e.context(format!(
                            "site {code} was not created: it could not join its parent"
                        )));
                    }
                }
            }
            if let Some(addr) = https_listen {
                let mut cfg = SiteConfig::load(&out.config_path)?;
                cfg.tls.https_listen = addr;
                cfg.validate().map_err(anyhow::Error::msg)?;
                std::fs::write(&out.config_path, cfg.to_documented_toml())
                    .with_context(|| format!("cannot write {}", out.config_path.display()))?;
            }
            println!("Created site {code} in {}", out.data.display());
            println!("  configuration: {}", out.config_path.display());
            println!("  admin token:   {} (mode 0600)", out.token_path.display());
            println!(
                "  site CA:       {} (clients trust it for HTTPS)",
                out.ca_path.display()
            );
            println!(
                "Run it with: koshin site serve --data {}",
                out.data.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        SiteCommand::Serve {
            data,
            listen,
            https_listen,
        } => {
            let site = Site::open(&data)?;
            let listeners =
                Listeners::bind(&site.config, listen.as_deref(), https_listen.as_deref()).await?;
            // "serving on http://..." stays the first line that names a URL: scripts wait for it.
            if let Some(addr) = listeners.http_addr() {
                eprintln!(
                    "Site {} serving on http://{addr} (data: {})",
                    site.config.site.code,
                    data.display()
                );
            }
            if let Some(addr) = listeners.https_addr() {
                eprintln!(
                    "Site {} serving HTTPS on https://{addr} (CA: {}; client certificates {}{})",
                    site.config.site.code,
                    site.pki.ca_certificate_path().display(),
                    site.config.tls.client_certificates.name(),
                    if site.config.tls.internet_facing {
                        "; internet-facing: no plain HTTP"
                    } else {
                        ""
                    }
                );
            }
            koshin_server::serve(site, listeners, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// An address to reach a listener at from this machine: loopback for a wildcard address
/// (the site certificate names 127.0.0.1 and ::1).
fn loopback(addr: std::net::SocketAddr) -> std::net::SocketAddr {
    let mut a = addr;
    if a.ip().is_unspecified() {
        a.set_ip(if a.is_ipv6() {
            std::net::Ipv6Addr::LOCALHOST.into()
        } else {
            std::net::Ipv4Addr::LOCALHOST.into()
        });
    }
    a
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
    site: &Site,
    url: &str,
    token: &str,
) -> anyhow::Result<koshin_wire::ClientDetail> {
    use koshin_agent::{db::AgentDb, enroll, mp::Mp, scan, send};
    let state = site.data.join("agent");
    enroll::enroll(&enroll::EnrollOptions {
        site: url.to_string(),
        token: token.to_string(),
        name: None,
        state: state.clone(),
        root: PathBuf::from("/"),
        ca_certificate: Some(site.pki.ca_certificate_pem().to_string()),
    })
    .await?;
    let mut db = AgentDb::open(&state)?;
    let id = db.identity()?;
    let mp = Mp::for_identity(&id)?;
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
    let ca = site.pki.ca_certificate_path();
    let api = Api::with_ca(url, Some(token.to_string()), Some(&ca))?;
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
            secondary: false,
        })?;
        println!("Created top-level site CS1 in {}", data.display());
    } else {
        println!("Using the site in {}", data.display());
    }
    let site = Site::open(data)?;
    let listeners = Listeners::bind(&site.config, listen.as_deref(), None).await?;
    // The quick start talks to its own site over plain HTTP when it serves it, else HTTPS.
    let url = match (listeners.http_addr(), listeners.https_addr()) {
        (Some(a), _) => format!("http://{a}"),
        (None, Some(a)) => format!("https://{}", loopback(a)),
        (None, None) => anyhow::bail!("the site listens nowhere"),
    };
    let https_url = listeners
        .https_addr()
        .map(|a| format!("https://{}", loopback(a)));
    let token = std::fs::read_to_string(data.join(koshin_server::init::TOKEN_FILE))
        .with_context(|| format!("cannot read {}", data.join("admin.token").display()))?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(koshin_server::serve(site.clone(), listeners, async move {
        let _ = stop_rx.await;
    }));
    let ca = site.pki.ca_certificate_path();
    let api = Api::with_ca(&url, Some(token.trim().to_string()), Some(&ca))?;
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
    match scan_this_host(&site, &url, token.trim()).await {
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
    if let Some(https) = &https_url
        && *https != url
    {
        println!("HTTPS:   {https}/api/v1   (CA: {})", ca.display());
    }
    println!("Logs:    {}", data.join("logs").display());
    println!("Try:     koshin updates list --classification \"Security Updates\"");
    println!("Serving; press Ctrl-C to stop.");
    shutdown_signal().await;
    let _ = stop_tx.send(());
    server.await.context("the server task failed")??;
    Ok(ExitCode::SUCCESS)
}
