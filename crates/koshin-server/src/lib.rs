//! The site server: one site of a koshin hierarchy. It owns the site's data folder
//! (`koshin.toml`, the database, `logs/`, `inboxes/`, content, `admin.token`), runs the site's
//! components as background jobs — first of all the sync manager (`SMS_WSUS_SYNC_MANAGER`) —
//! and serves the HTTP API under `/api/v1` that the CLI, agents and console use, and the web
//! console itself under `/console/` (`koshin_console`) — over plain
//! HTTP, HTTPS with the site's own certificate authority ([`pki`], [`tls`]), or both.
//!
//! Components reach storage only through `koshin_store` traits and the upstream only through
//! `koshin_apt`; status messages go through [`status::StatusReporter`], which writes them to
//! the database and to the component's log in the seeds' `STATMSG:` form.

pub mod colleval;
pub mod config;
pub mod content;
pub mod definitions;
pub mod export;
pub mod hierarchy;
pub mod http;
pub mod init;
pub mod isup;
pub mod links;
pub mod localpub;
pub mod log;
pub mod offline;
pub mod pki;
pub mod policy;
pub mod reports;
pub mod scantool;
pub mod site;
pub mod status;
pub mod sup;
pub mod sync;
pub mod tls;
pub mod trend;

pub use config::SiteConfig;
pub use site::Site;

/// The sockets a site serves on: plain HTTP, HTTPS, or both. A plain `TcpListener` converts
/// into plain HTTP only.
#[derive(Debug, Default)]
pub struct Listeners {
    /// Plain HTTP (`[site] listen`); never for an internet-facing site.
    pub http: Option<tokio::net::TcpListener>,
    /// HTTPS with the site certificate (`[tls] https_listen`).
    pub https: Option<tokio::net::TcpListener>,
}

impl From<tokio::net::TcpListener> for Listeners {
    fn from(l: tokio::net::TcpListener) -> Listeners {
        Listeners {
            http: Some(l),
            https: None,
        }
    }
}

impl Listeners {
    /// Binds what the configuration asks for: plain HTTP on `listen` (default `[site]
    /// listen`) unless the site is internet-facing, and HTTPS on `https_listen` (default
    /// `[tls] https_listen`) when one is set.
    pub async fn bind(
        cfg: &SiteConfig,
        listen: Option<&str>,
        https_listen: Option<&str>,
    ) -> anyhow::Result<Listeners> {
        async fn bind(addr: &str) -> anyhow::Result<tokio::net::TcpListener> {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
        }
        let https_addr = https_listen
            .map(str::to_string)
            .unwrap_or_else(|| cfg.tls.https_listen.clone());
        let https = if https_addr.is_empty() {
            None
        } else {
            Some(bind(&https_addr).await?)
        };
        if cfg.tls.internet_facing && https.is_none() {
            anyhow::bail!(
                "this site is internet-facing ([tls] internet_facing = true): it serves only HTTPS, and [tls] https_listen is not set"
            );
        }
        let http = if cfg.tls.internet_facing {
            None
        } else {
            Some(bind(listen.unwrap_or(&cfg.site.listen)).await?)
        };
        Ok(Listeners { http, https })
    }

    /// The plain HTTP address, when the site serves plain HTTP.
    pub fn http_addr(&self) -> Option<std::net::SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The HTTPS address, when the site serves HTTPS.
    pub fn https_addr(&self) -> Option<std::net::SocketAddr> {
        self.https.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// Runs a site: the HTTP API on `listeners` — plain HTTP, HTTPS with the site certificate,
/// or both — and the site's background components, until `shutdown` resolves; then both
/// listeners stop accepting and finish the requests under way. An internet-facing site
/// refuses to serve plain HTTP.
pub async fn serve(
    site: std::sync::Arc<Site>,
    listeners: impl Into<Listeners>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Listeners { http, https } = listeners.into();
    if http.is_some() && site.config.tls.internet_facing {
        anyhow::bail!(
            "this site is internet-facing ([tls] internet_facing = true): it does not serve plain HTTP"
        );
    }
    if http.is_none() && https.is_none() {
        anyhow::bail!("nothing to serve on: no HTTP or HTTPS listener");
    }
    // The site's own distribution point is at this site's address: the public URL, else
    // the address actually listened on.
    let own = if !site.config.site.public_url.is_empty() {
        site.config.public_url()
    } else {
        let bound = http
            .as_ref()
            .map(|l| ("http", l.local_addr()))
            .or_else(|| https.as_ref().map(|l| ("https", l.local_addr())));
        match bound {
            Some((scheme, Ok(a))) if a.ip().is_unspecified() => {
                format!("{scheme}://{}:{}", config::hostname(), a.port())
            }
            Some((scheme, Ok(a))) => format!("{scheme}://{a}"),
            _ => site.config.public_url(),
        }
    };
    site.store.ensure_local_dp(
        &site.config.system_name(),
        &format!("{}/dp", own.trim_end_matches('/')),
        jiff::Timestamp::now().as_millisecond(),
    )?;
    // A child site tells its parent where it is (its address may have changed).
    if !site.config.site.parent.is_empty() {
        let (child, url) = (site.clone(), own.clone());
        tokio::spawn(async move {
            if let Err(e) = hierarchy::hello(&child, &url).await {
                tracing::warn!(error = %e, "cannot reach the parent site yet");
            }
        });
    }
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let distribution = tokio::spawn(content::distmgr::run(site.clone(), stop_rx.clone()));
    // A child site's client data goes up to its parent.
    let upward = (!site.config.site.parent.is_empty())
        .then(|| tokio::spawn(hierarchy::forward(site.clone(), stop_rx.clone())));
    let evaluator = tokio::spawn(colleval::run(site.clone(), stop_rx.clone()));
    let offline_host = tokio::spawn(offline::run(site.clone(), stop_rx.clone()));
    let trend = tokio::spawn(trend::run(site.clone(), stop_rx.clone()));
    let manager = tokio::spawn(sync::SyncManager::new(site.clone()).run(stop_rx));
    let app = http::app(site.clone());

    // One stop for both listeners: the caller's shutdown, or either listener failing.
    let (down_tx, down_rx) = tokio::sync::watch::channel(false);
    let tls_handle = axum_server::Handle::<std::net::SocketAddr>::new();
    let stop_both = {
        let tls_handle = tls_handle.clone();
        move || {
            let _ = down_tx.send(true);
            tls_handle.graceful_shutdown(None);
        }
    };
    let stop_both = std::sync::Arc::new(stop_both);
    let signal = {
        let stop_both = stop_both.clone();
        tokio::spawn(async move {
            shutdown.await;
            stop_both();
        })
    };
    let plain = {
        let app = app.clone();
        let stop_both = stop_both.clone();
        let mut down = down_rx.clone();
        async move {
            let Some(listener) = http else {
                return Ok(());
            };
            // The peer address reaches handlers (the audit log's "from where").
            let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
            let r = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = down.wait_for(|d| *d).await;
                })
                .await
                .map_err(|e| anyhow::anyhow!("the HTTP server stopped: {e}"));
            if r.is_err() {
                stop_both();
            }
            r
        }
    };
    let secure = {
        let site = site.clone();
        let stop_both = stop_both.clone();
        async move {
            let Some(listener) = https else {
                return Ok(());
            };
            let r = tls::serve_https(site, listener, app, tls_handle).await;
            if r.is_err() {
                stop_both();
            }
            r
        }
    };
    let (plain, secure) = tokio::join!(plain, secure);
    signal.abort();
    let _ = stop_tx.send(true);
    let _ = manager.await;
    let _ = distribution.await;
    let _ = evaluator.await;
    let _ = offline_host.await;
    let _ = trend.await;
    if let Some(u) = upward {
        let _ = u.await;
    }
    plain.and(secure)
}
