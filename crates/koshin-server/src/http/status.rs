//! Status messages: filtered, newest last; and the component status summary.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use koshin_domain::component_status::start_of_utc_day;
use koshin_wire::{ComponentStatus, StatusMessageOut, StatusQuery, StatusSummaryQuery};

use super::auth::Admin;
use super::error::{AppError, blocking};
use crate::site::Site;

pub async fn list(
    admin: Admin,
    State(site): State<Arc<Site>>,
    Query(q): Query<StatusQuery>,
) -> Result<Json<Vec<StatusMessageOut>>, AppError> {
    if let Some(s) = &q.severity
        && koshin_domain::Severity::parse(s).is_none()
    {
        return Err(AppError::BadRequest(format!(
            "severity '{s}' is not I, W or E"
        )));
    }
    let store = site.store.clone();
    blocking(move || Ok(Json(store.query_status(&q, &admin.scope)?))).await
}

/// The component status summary (the console's Component Status node): per component,
/// system and site, the messages of each severity since `since` (default: 00:00 UTC today),
/// the last one, and `OK`, `Warning` or `Critical`.
pub async fn summary(
    _admin: Admin,
    State(site): State<Arc<Site>>,
    q: Result<Query<StatusSummaryQuery>, QueryRejection>,
) -> Result<Json<Vec<ComponentStatus>>, AppError> {
    let Query(q) = q.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let since_ms = match q.since {
        Some(t) => t.as_millisecond(),
        None => start_of_utc_day(jiff::Timestamp::now().as_millisecond()),
    };
    let store = site.store.clone();
    blocking(move || {
        Ok(Json(store.component_summary(
            since_ms,
            q.component.as_deref(),
            q.system.as_deref(),
        )?))
    })
    .await
}
