//! The site itself: health, identity and catalog counts, and the site-wide machine policy.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use koshin_wire::{MachinePolicy, SiteInfo};

use super::auth::Admin;
use super::error::{AppError, blocking};
use crate::site::Site;

/// Public: a liveness probe that reveals nothing but that the site answers.
pub async fn health() -> &'static str {
    "ok"
}

pub async fn info(
    _admin: Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<SiteInfo>, AppError> {
    let code = site.config.site.code.clone();
    let store = site.store.clone();
    blocking(move || {
        let (_, cv) = store.content_version()?;
        Ok(Json(SiteInfo {
            site: code,
            version: env!("CARGO_PKG_VERSION").to_string(),
            content_version: cv,
            catalog: store.catalog_counts()?,
        }))
    })
    .await
}

/// Public for now: clients fetch the site-wide policy before they have a credential; client
/// enrollment and mutual TLS (the security issue) will require a client identity here.
pub async fn machine_policy(
    State(site): State<Arc<Site>>,
) -> Result<Json<MachinePolicy>, AppError> {
    let store = site.store.clone();
    let policy = blocking(move || Ok(store.machine_policy()?)).await?;
    let mut policy = stored_policy(policy)?;
    // The site's inventory classes (its files and commands) are for enrolled clients only:
    // they get them from the management point.
    policy.inventory_classes.clear();
    Ok(Json(policy))
}

/// The machine policy as stored, or why there is none.
pub(super) fn stored_policy(
    policy: Option<(i64, serde_json::Value)>,
) -> Result<MachinePolicy, AppError> {
    let (_, body) = policy.ok_or_else(|| {
        AppError::NotFound("no machine policy yet: the site has not completed a sync".into())
    })?;
    serde_json::from_value(body)
        .map_err(|e| AppError::Internal(format!("stored machine policy is unreadable: {e}")))
}
