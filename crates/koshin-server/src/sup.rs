//! Replica update points (S8): `koshin sup serve` holds a copy of its site's catalog in a
//! database of its own and serves it to clients — the management point's catalog route, the
//! same answers — so clients scan when the site's active update point is down. The site's
//! sync manager syncs each replica after its own update point, one at a time (6706): it asks
//! the replica to sync, and the replica reads the site's catalog with its own token and
//! applies it as a child site does, taking the site's content version and token.
//!
//! Routes of a replica: `GET /api/v1/health` and `GET /api/v1/mp/catalog` (public: update
//! metadata, as an update point serves it to anyone), `POST /sup-api/sync` (the site's push
//! token only).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use koshin_store::Store;
use koshin_wire::{CatalogQuery, ClientCatalog};
use serde::{Deserialize, Serialize};

use crate::site::Site;

/// What a replica keeps in `sup.json` (0600): its site, and its tokens — the one it reads
/// the site's catalog with, and the SHA-256 of the one the site starts its sync with.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SupIdentity {
    pub site: String,
    pub site_code: String,
    pub name: String,
    pub url: String,
    pub pull_token: String,
    pub push_token_sha256: String,
}

pub const IDENTITY_FILE: &str = "sup.json";

pub struct SupState {
    pub identity: SupIdentity,
    pub store: Arc<dyn Store>,
    pub lock: tokio::sync::Mutex<()>,
}

impl SupState {
    pub fn open(data: &Path, identity: SupIdentity) -> anyhow::Result<Arc<SupState>> {
        let store = koshin_store::SqliteStore::open(&data.join(crate::init::DATABASE_FILE))?;
        // The update source id is the site's once the first sync has run; until then a
        // placeholder (initialize_site changes nothing that exists).
        store.initialize_site(&identity.site_code, "{REPLICA}")?;
        Ok(Arc::new(SupState {
            identity,
            store: Arc::new(store),
            lock: tokio::sync::Mutex::new(()),
        }))
    }
}

type Refusal = (StatusCode, Json<serde_json::Value>);

fn refuse(code: StatusCode, why: String) -> Refusal {
    (code, Json(serde_json::json!({ "error": why })))
}

async fn health() -> &'static str {
    "ok"
}

async fn catalog(
    State(state): State<Arc<SupState>>,
    Query(q): Query<CatalogQuery>,
) -> Result<Json<ClientCatalog>, Refusal> {
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

/// The site asks the replica to sync: it reads the site's catalog and applies it.
async fn sync(
    State(state): State<Arc<SupState>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, Refusal> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if crate::init::hash_token(token) != state.identity.push_token_sha256 {
        return Err(refuse(
            StatusCode::UNAUTHORIZED,
            "only this replica's site may start its sync".into(),
        ));
    }
    let _guard = state.lock.lock().await;
    let id = &state.identity;
    let catalog: crate::hierarchy::ParentCatalog = async {
        let resp = client()?
            .get(format!(
                "{}/api/v1/sups/catalog",
                id.site.trim_end_matches('/')
            ))
            .bearer_auth(&id.pull_token)
            .send()
            .await?;
        if !resp.status().is_success() {
            anyhow::bail!("the site answered HTTP {}", resp.status());
        }
        Ok(resp.json().await?)
    }
    .await
    .map_err(|e: anyhow::Error| {
        refuse(
            StatusCode::BAD_GATEWAY,
            format!("cannot read the site's catalog: {e:#}"),
        )
    })?;
    let (outcome, plan) = crate::hierarchy::replicate(state.store.clone(), catalog)
        .await
        .map_err(|e| refuse(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}")))?;
    Ok(Json(serde_json::json!({
        "content_version": outcome.content_version,
        "items": plan.changed_items(),
    })))
}

/// A replica's HTTP service.
pub fn router(state: Arc<SupState>) -> Router {
    Router::new()
        .route("/api/v1/health", get(health))
        .route("/api/v1/mp/catalog", get(catalog))
        .route("/sup-api/sync", post(sync))
        .with_state(state)
}

fn client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(600))
        .build()?)
}

/// The site's side: asks replica `name` at `url` to sync; its (content version, items).
pub async fn sync_replica(site: &Site, name: &str, url: &str) -> anyhow::Result<(i64, u64)> {
    let token = site
        .store
        .update_point_push_token(name)?
        .ok_or_else(|| anyhow::anyhow!("no token for update point {name}"))?;
    let resp = client()?
        .post(format!("{}/sup-api/sync", url.trim_end_matches('/')))
        .bearer_auth(&token)
        .send()
        .await?;
    let status = resp.status();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!(
            "HTTP {status}: {}",
            body["error"].as_str().unwrap_or("no reason given")
        );
    }
    Ok((
        body["content_version"].as_i64().unwrap_or(0),
        body["items"].as_u64().unwrap_or(0),
    ))
}
