//! Status messages: filtered, newest last.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use koshin_wire::{StatusMessageOut, StatusQuery};

use super::auth::Admin;
use super::error::{AppError, blocking};
use crate::site::Site;

pub async fn list(
    _admin: Admin,
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
    blocking(move || Ok(Json(store.query_status(&q)?))).await
}
