//! The management point: what enrolled clients ask for (their machine policy and the
//! update catalog, incremental by content version) and what they send (state messages).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use koshin_wire::{BatchAck, CatalogQuery, ClientCatalog, DpPolicy, MachinePolicy, StateBatch};

use super::auth::Client;
use super::error::{AppError, blocking};
use crate::site::Site;

pub async fn policy(
    Client(client): Client,
    State(site): State<Arc<Site>>,
) -> Result<Json<MachinePolicy>, AppError> {
    let store = site.store.clone();
    let now = jiff::Timestamp::now().as_millisecond();
    let (policy, dps) = blocking(move || {
        store.touch_client(client.rowid, true, now)?;
        Ok((store.machine_policy()?, store.list_dps()?))
    })
    .await?;
    let mut policy = super::site::stored_policy(policy)?;
    // Distribution points and the archive key as they are now, not as at the last sync.
    policy.distribution_points = dps
        .into_iter()
        .map(|d| DpPolicy {
            name: d.name,
            url: d.url,
            boundaries: d.boundaries,
            protected: d.protected,
        })
        .collect();
    policy.archive_key = Some(site.content.public_key.clone());
    // Only the client that is the offline catalog's sync host is told so.
    policy.offline_catalog_refresh_days = crate::offline::sync_host(&site)
        .map_err(|e| AppError::Internal(format!("{e:#}")))?
        .filter(|h| h.client_id.as_deref() == Some(client.client_id.as_str()))
        .map(|h| h.refresh_days);
    Ok(Json(policy))
}

/// `GET /api/v1/mp/offline-catalog`: the offline scan catalog, made now (6710), for the
/// client that is its sync host and no other.
pub async fn offline_catalog(
    Client(client): Client,
    State(site): State<Arc<Site>>,
) -> Result<axum::response::Response, AppError> {
    use axum::response::IntoResponse;
    let host =
        crate::offline::sync_host(&site).map_err(|e| AppError::Internal(format!("{e:#}")))?;
    if host.and_then(|h| h.client_id).as_deref() != Some(client.client_id.as_str()) {
        return Err(AppError::Forbidden(format!(
            "{} is not the offline scan catalog's sync host",
            client.name
        )));
    }
    let s = site.clone();
    let (bytes, _) = blocking(move || {
        crate::offline::build(&s)
            .map_err(|e| AppError::Internal(format!("cannot make the offline catalog: {e:#}")))
    })
    .await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        bytes,
    )
        .into_response())
}

pub async fn catalog(
    Client(client): Client,
    State(site): State<Arc<Site>>,
    Query(q): Query<CatalogQuery>,
) -> Result<Json<ClientCatalog>, AppError> {
    if q.since < 0 {
        return Err(AppError::BadRequest(
            "since must be a content version (0 or more)".into(),
        ));
    }
    let store = site.store.clone();
    let now = jiff::Timestamp::now().as_millisecond();
    blocking(move || {
        store.touch_client(client.rowid, false, now)?;
        Ok(Json(store.client_catalog(q.since, &q.token)?))
    })
    .await
}

/// Acknowledges a batch only once it is durable; a batch stored before is acknowledged
/// again as a duplicate and stored once.
pub async fn state_messages(
    Client(client): Client,
    State(site): State<Arc<Site>>,
    Json(batch): Json<StateBatch>,
) -> Result<Json<BatchAck>, AppError> {
    if batch.client_id != client.client_id {
        return Err(AppError::Forbidden(format!(
            "client {} may send state messages only for itself, not for {}",
            client.client_id, batch.client_id
        )));
    }
    let store = site.store.clone();
    let now = jiff::Timestamp::now().as_millisecond();
    blocking(move || Ok(Json(store.ingest_states(&client, &batch, now)?))).await
}

/// `POST /api/v1/mp/inventory`: a client's inventory, whole or the changes against the one
/// held here (409 when the site holds another: the client sends it whole).
pub async fn inventory(
    Client(client): Client,
    State(site): State<Arc<Site>>,
    Json(report): Json<koshin_wire::InventoryReport>,
) -> Result<Json<koshin_wire::InventoryAck>, AppError> {
    let store = site.store.clone();
    let now = jiff::Timestamp::now().as_millisecond();
    blocking(move || Ok(Json(store.store_inventory(client.rowid, &report, now)?))).await
}
