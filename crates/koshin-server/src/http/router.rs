//! Every route of the API, in one place.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use super::{clients, mp, reports, site, status, sync, updates};
use crate::site::Site as SiteState;

pub fn app(state: Arc<SiteState>) -> Router {
    Router::new()
        .route("/api/v1/health", get(site::health))
        .route("/api/v1/site", get(site::info))
        .route("/api/v1/updates", get(updates::list))
        .route("/api/v1/updates/{id}", get(updates::show))
        .route("/api/v1/status-messages", get(status::list))
        .route("/api/v1/status-messages/summary", get(status::summary))
        .route("/api/v1/sync", get(sync::status).post(sync::request))
        .route("/api/v1/policy/machine", get(site::machine_policy))
        .route("/api/v1/clients", get(clients::list))
        .route("/api/v1/clients/enroll", post(clients::enroll))
        .route("/api/v1/clients/{key}", get(clients::show))
        .route("/api/v1/mp/policy", get(mp::policy))
        .route("/api/v1/mp/catalog", get(mp::catalog))
        .route(
            "/api/v1/mp/state-messages",
            post(mp::state_messages).layer(DefaultBodyLimit::max(64 << 20)),
        )
        .route("/api/v1/reports", get(reports::list))
        .route("/api/v1/reports/{name}", get(reports::run))
        .with_state(state)
}
