//! Every route of the API, in one place.

use std::sync::Arc;

use axum::Router;
use axum::routing::get;

use super::{site, status, sync, updates};
use crate::site::Site as SiteState;

pub fn app(state: Arc<SiteState>) -> Router {
    Router::new()
        .route("/api/v1/health", get(site::health))
        .route("/api/v1/site", get(site::info))
        .route("/api/v1/updates", get(updates::list))
        .route("/api/v1/updates/{id}", get(updates::show))
        .route("/api/v1/status-messages", get(status::list))
        .route("/api/v1/sync", get(sync::status).post(sync::request))
        .route("/api/v1/policy/machine", get(site::machine_policy))
        .with_state(state)
}
