//! Internet-facing update points (S10): `koshin sup serve --internet` holds a copy of its
//! site's catalog, like a replica ([`crate::sup`]), but
//!
//! - it syncs from its site's active update point (`/api/v1/sups/catalog`), never from the
//!   upstream, and is not part of the site's sync: the site's sync manager does not sync it
//!   (no 6706 for it); it polls the site's content version on its own schedule
//!   (`/api/v1/sups/version`, every 5 minutes by default) and syncs when it changed;
//! - it serves HTTPS only, with a server certificate issued by the site CA (at registration,
//!   or files of its own): clients verify it with the site CA they already trust;
//! - when it cannot reach its site, a catalog export file ([`crate::export`]) is imported
//!   into its database offline (`koshin sup import FILE --data DIR`), verified against the
//!   site's archive key it was given at registration.
//!
//! Routes: `GET /api/v1/health` and `GET /api/v1/mp/catalog` (public: update metadata).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use koshin_store::Store;
use koshin_wire::{CatalogQuery, ClientCatalog};
use serde::{Deserialize, Serialize};

use crate::log::ComponentLog;

/// What an internet-facing update point keeps in `isup.json` (0600).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InternetSupIdentity {
    /// The site's URL (its active update point).
    pub site: String,
    pub site_code: String,
    pub name: String,
    /// Its https:// address for internet clients.
    pub url: String,
    /// The token it reads the site's catalog with.
    pub pull_token: String,
    /// The site's archive public key: exports are verified with it.
    pub archive_key: String,
    /// The site CA certificate (PEM): it verifies the site with it when the site is https.
    pub ca_certificate: String,
}

pub const IDENTITY_FILE: &str = "isup.json";
/// The server certificate and key it serves HTTPS with.
pub const CERT_FILE: &str = "tls/server.crt";
pub const KEY_FILE: &str = "tls/server.key";
/// The default interval between two polls of the site's content version.
pub const DEFAULT_POLL: Duration = Duration::from_secs(300);

pub struct InternetSup {
    pub data: PathBuf,
    pub identity: InternetSupIdentity,
    pub store: Arc<dyn Store>,
    pub log: ComponentLog,
    lock: tokio::sync::Mutex<()>,
}

impl InternetSup {
    /// Opens the update point's database in `data` (made on first use).
    pub fn open(data: &Path, identity: InternetSupIdentity) -> anyhow::Result<Arc<InternetSup>> {
        let store = open_store(data, &identity.site_code)?;
        std::fs::create_dir_all(data.join("logs"))
            .with_context(|| format!("cannot create {}", data.join("logs").display()))?;
        Ok(Arc::new(InternetSup {
            data: data.to_path_buf(),
            identity,
            store,
            log: ComponentLog::open(
                &data.join("logs"),
                "wsyncmgr.log",
                koshin_domain::status::SYNC_MANAGER,
            ),
            lock: tokio::sync::Mutex::new(()),
        }))
    }

    /// Reads `isup.json` in `data`.
    pub fn identity(data: &Path) -> anyhow::Result<InternetSupIdentity> {
        let path = data.join(IDENTITY_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{} is not an internet-facing update point's data folder (no {})",
                data.display(),
                IDENTITY_FILE
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{} is unreadable", path.display()))
    }

    fn client(&self) -> anyhow::Result<reqwest::Client> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600));
        if self.identity.site.starts_with("https://") {
            let certs =
                reqwest::Certificate::from_pem_bundle(self.identity.ca_certificate.as_bytes())
                    .context("the site CA certificate in isup.json is unreadable")?;
            b = b.tls_certs_only(certs);
        }
        Ok(b.build()?)
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = format!("{}{path}", self.identity.site.trim_end_matches('/'));
        let resp = self
            .client()?
            .get(&url)
            .bearer_auth(&self.identity.pull_token)
            .send()
            .await
            .with_context(|| format!("cannot reach the site at {}", self.identity.site))?;
        let status = resp.status();
        if !status.is_success() {
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            anyhow::bail!(
                "the site answered HTTP {status}: {}",
                body["error"].as_str().unwrap_or("no reason given")
            );
        }
        Ok(resp.json().await?)
    }

    /// One poll: when the site's content version (or token) differs from the one held,
    /// reads the site's catalog and applies it. Returns the content version synced to, or
    /// `None` when nothing had changed.
    pub async fn poll_once(&self) -> anyhow::Result<Option<(i64, usize)>> {
        let _guard = self.lock.lock().await;
        let v: serde_json::Value = self.get("/api/v1/sups/version").await?;
        let site_cv = v["content_version"].as_i64().unwrap_or(0);
        let site_token = v["content_token"].as_str().unwrap_or_default().to_string();
        let store = self.store.clone();
        let (cv, token) = tokio::task::spawn_blocking(move || store.content_state()).await??;
        if site_cv == cv && site_token == token {
            return Ok(None);
        }
        let name = &self.identity.name;
        let code = &self.identity.site_code;
        self.log.line(format!(
            "Site {code} is at content version {site_cv}, update point {name} at {cv}"
        ));
        self.log.line(format!(
            "Synchronizing update point {name} with site {code} ..."
        ));
        self.log
            .line("sync: Starting internet-facing update point synchronization");
        let r: anyhow::Result<(i64, usize)> = async {
            let catalog: crate::hierarchy::ParentCatalog = self.get("/api/v1/sups/catalog").await?;
            let (outcome, plan) = crate::hierarchy::replicate(self.store.clone(), catalog).await?;
            Ok((outcome.content_version, plan.changed_items()))
        }
        .await;
        match &r {
            Ok((cv, items)) => {
                self.log.line(format!(
                    "sync: internet-facing update point synchronizing other items, {items} of {items} items (100%)"
                ));
                self.log
                    .line(format!("Done synchronizing update point {name}"));
                self.log.line(format!(
                    "Set content version of update point {name} to {cv}"
                ));
            }
            Err(e) => self
                .log
                .line(format!("Failed to synchronize update point {name}: {e:#}")),
        }
        // The site shows how its update points are (koshin sup list); best effort.
        let report = match &r {
            Ok((cv, _)) => serde_json::json!({ "content_version": cv }),
            Err(e) => serde_json::json!({ "error": format!("{e:#}") }),
        };
        if let Ok(c) = self.client() {
            let _ = c
                .post(format!(
                    "{}/api/v1/sups/report",
                    self.identity.site.trim_end_matches('/')
                ))
                .bearer_auth(&self.identity.pull_token)
                .json(&report)
                .send()
                .await;
        }
        r.map(Some)
    }

    /// Polls every `interval` until `stop`. A site that does not answer is logged once
    /// per outage.
    pub async fn poll(
        self: Arc<Self>,
        interval: Duration,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut away = false;
        loop {
            if *stop.borrow() {
                return;
            }
            match self.poll_once().await {
                Ok(_) => {
                    if away {
                        self.log
                            .line(format!("Site {} answers again", self.identity.site_code));
                    }
                    away = false;
                }
                Err(e) => {
                    if !away {
                        self.log.line(format!(
                            "Cannot poll site {}: {e:#}. Will retry in {} seconds; a catalog export can be imported with koshin sup import",
                            self.identity.site_code,
                            interval.as_secs()
                        ));
                    }
                    away = true;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

fn open_store(data: &Path, site_code: &str) -> anyhow::Result<Arc<dyn Store>> {
    let store = koshin_store::SqliteStore::open(&data.join(crate::init::DATABASE_FILE))?;
    store.initialize_site(site_code, "{INTERNET}")?;
    Ok(Arc::new(store))
}

/// `koshin sup import`: verifies an export file with the site's archive key (and keys in
/// `DATA/catalog-keys/`) and applies it to the update point's database in `data`, offline.
pub fn import_file(data: &Path, bytes: &[u8]) -> anyhow::Result<crate::http::export::ImportAnswer> {
    let identity = InternetSup::identity(data)?;
    let keyring = crate::export::keyring(
        data,
        &[(
            format!("site {}'s archive key", identity.site_code),
            identity.archive_key.clone(),
        )],
    )?;
    let doc = crate::export::verify(bytes, &keyring)
        .map_err(|e| anyhow::anyhow!("catalog export refused, nothing applied: {e}"))?;
    let store = open_store(data, &identity.site_code)?;
    let answer = crate::http::export::apply(store.as_ref(), &doc).map_err(|e| match e {
        koshin_store::StoreError::Conflict(m) => {
            anyhow::anyhow!("catalog export refused, nothing applied: {m}")
        }
        other => other.into(),
    })?;
    std::fs::create_dir_all(data.join("logs")).ok();
    ComponentLog::open(
        &data.join("logs"),
        "wsyncmgr.log",
        koshin_domain::status::SYNC_MANAGER,
    )
    .line(&answer.message);
    Ok(answer)
}

type Refusal = (StatusCode, Json<serde_json::Value>);

async fn health() -> &'static str {
    "ok"
}

async fn catalog(
    State(state): State<Arc<InternetSup>>,
    Query(q): Query<CatalogQuery>,
) -> Result<Json<ClientCatalog>, Refusal> {
    let refuse = |code: StatusCode, why: String| (code, Json(serde_json::json!({ "error": why })));
    if q.since < 0 {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "since must be a content version (0 or more)".into(),
        ));
    }
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || store.client_catalog(q.since, &q.token))
        .await
        .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map(Json)
        .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

/// An internet-facing update point's HTTP service (served over HTTPS only, [`serve`]).
pub fn router(state: Arc<InternetSup>) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/mp/catalog", get(catalog))
        .with_state(state)
}

/// The rustls configuration from the certificate and key files in `data`.
pub fn tls_config(data: &Path) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert_path = data.join(CERT_FILE);
    let key_path = data.join(KEY_FILE);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .with_context(|| format!("cannot read the certificate {}", cert_path.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} holds no readable certificate", cert_path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{} holds no certificate", cert_path.display());
    }
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .with_context(|| format!("cannot read the private key {}", key_path.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and key do not make a usable TLS identity")?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Serves `state` over HTTPS only on `listener` until `shutdown`, polling the site every
/// `interval` meanwhile.
pub async fn serve(
    state: Arc<InternetSup>,
    listener: tokio::net::TcpListener,
    interval: Duration,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let config = axum_server::tls_rustls::RustlsConfig::from_config(tls_config(&state.data)?);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let poller = tokio::spawn(state.clone().poll(interval, stopped));
    let handle = axum_server::Handle::<std::net::SocketAddr>::new();
    let h = handle.clone();
    tokio::spawn(async move {
        shutdown.await;
        h.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let result = axum_server::Server::<std::net::SocketAddr>::from_listener(listener)
        .acceptor(axum_server::tls_rustls::RustlsAcceptor::new(config))
        .handle(handle)
        .serve(router(state).into_make_service())
        .await;
    let _ = stop.send(true);
    poller.abort();
    result.context("the HTTPS server stopped")
}
