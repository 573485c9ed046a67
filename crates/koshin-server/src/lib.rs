//! The site server: one site of a koshin hierarchy. It owns the site's data folder
//! (`koshin.toml`, the database, `logs/`, `inboxes/`, content, `admin.token`), runs the site's
//! components as background jobs — first of all the sync manager (`SMS_WSUS_SYNC_MANAGER`) —
//! and serves the HTTP API under `/api/v1` that the CLI, agents and console use.
//!
//! Components reach storage only through `koshin_store` traits and the upstream only through
//! `koshin_apt`; status messages go through [`status::StatusReporter`], which writes them to
//! the database and to the component's log in the seeds' `STATMSG:` form.

pub mod config;
pub mod http;
pub mod init;
pub mod localpub;
pub mod log;
pub mod policy;
pub mod reports;
pub mod site;
pub mod status;
pub mod sync;

pub use config::SiteConfig;
pub use site::Site;

/// Runs a site: the HTTP API on `listener` and the site's background components, until
/// `shutdown` resolves.
pub async fn serve(
    site: std::sync::Arc<Site>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let manager = tokio::spawn(sync::SyncManager::new(site.clone()).run(stop_rx));
    let app = http::app(site.clone());
    // The peer address reaches handlers (the audit log's "from where").
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
        })
        .await;
    let _ = stop_tx.send(true);
    let _ = manager.await;
    result.map_err(|e| anyhow::anyhow!("the HTTP server stopped: {e}"))
}
