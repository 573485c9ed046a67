//! Synchronization: where it stands, and "Synchronize now" (the seeds' SyncNow).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use koshin_domain::SyncKind;
use koshin_wire::{SyncRequest, SyncRequestAccepted, SyncStatus};

use super::auth::Admin;
use super::error::{AppError, blocking};
use crate::site::Site;

pub async fn status(
    _admin: Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<SyncStatus>, AppError> {
    let s = site.clone();
    let mut out = blocking(move || {
        let store = &s.store;
        let (source, cv) = store.content_version()?;
        let ts = |ms: Option<i64>| ms.and_then(|m| jiff::Timestamp::from_millisecond(m).ok());
        Ok(SyncStatus {
            site: s.config.site.code.clone(),
            update_source_id: source,
            content_version: cv,
            pending_request: store.pending_sync_request()?.map(|k| k.name().to_string()),
            next_scheduled: ts(store.schedule_get("scheduled_sync")?),
            next_retry: ts(store.schedule_get("retry_sync")?),
            runs: store.runs(20)?,
        })
    })
    .await?;
    // The live progress of a running sync is in memory (the database is busy writing it).
    if let Some(p) = site.sync.progress()
        && let Some(run) = out.runs.iter_mut().find(|r| r.id == p.run_id)
    {
        run.phase = Some(p.phase);
        run.progress_done = p.done;
        run.progress_total = p.total;
    }
    Ok(Json(out))
}

/// Records the request (SyncNow = SELF, or FULL) and wakes the sync manager.
pub async fn request(
    admin: super::auth::Can<super::auth::CanSync>,
    State(site): State<Arc<Site>>,
    body: Option<Json<SyncRequest>>,
) -> Result<Json<SyncRequestAccepted>, AppError> {
    admin.require(koshin_domain::Permission::Sync)?;
    let full = body.map(|b| b.full).unwrap_or(false);
    let kind = if full {
        SyncKind::Full
    } else {
        SyncKind::Delta
    };
    let s = site.clone();
    let after_run = blocking(move || {
        let last = s.store.runs(1)?.first().map(|r| r.id);
        s.store
            .request_sync(kind, jiff::Timestamp::now().as_millisecond())?;
        Ok(last)
    })
    .await?;
    tracing::info!(admin = %admin.name, kind = kind.name(), "sync requested");
    admin.audit(&site, "request sync", kind.name(), "").await?;
    site.sync.wake();
    Ok(Json(SyncRequestAccepted {
        kind: kind.name().to_string(),
        after_run,
    }))
}
