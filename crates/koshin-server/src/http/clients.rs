//! Clients: enrollment (an administrator's token, or later an enrollment token), the list,
//! and one client's compliance.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use koshin_store::NewClient;
use koshin_wire::{ClientDetail, ClientSummary, EnrollRequest, EnrollResponse};

use super::auth::Admin;
use super::error::{AppError, blocking};
use crate::site::Site;

fn check_field(name: &str, v: &str, max: usize) -> Result<(), AppError> {
    if v.trim().is_empty() || v.len() > max || v.chars().any(char::is_control) {
        return Err(AppError::BadRequest(format!(
            "{name} must be 1 to {max} printable characters"
        )));
    }
    Ok(())
}

pub async fn enroll(
    admin: Admin,
    State(site): State<Arc<Site>>,
    Json(req): Json<EnrollRequest>,
) -> Result<Json<EnrollResponse>, AppError> {
    if uuid::Uuid::parse_str(&req.client_id).is_err() {
        return Err(AppError::BadRequest(format!(
            "client_id '{}' is not a UUID",
            req.client_id
        )));
    }
    check_field("name", &req.name, 255)?;
    for (n, v) in [
        ("os", &req.os),
        ("os_release", &req.os_release),
        ("architecture", &req.architecture),
    ] {
        if v.len() > 255 {
            return Err(AppError::BadRequest(format!(
                "{n} is longer than 255 characters"
            )));
        }
    }
    let credential = format!("ksc_{}", hex::encode(rand::random::<[u8; 32]>()));
    let hash = crate::init::hash_token(&credential);
    let code = site.config.site.code.clone();
    let store = site.store.clone();
    let new = NewClient {
        client_id: req.client_id.clone(),
        name: req.name.clone(),
        os: req.os.clone(),
        os_release: req.os_release.clone(),
        architecture: req.architecture.clone(),
        site: code.clone(),
        agent_version: req.agent_version.clone(),
    };
    let now = jiff::Timestamp::now().as_millisecond();
    let id = blocking(move || Ok(store.enroll_client(&new, &hash, now)?)).await?;
    tracing::info!(admin = %admin.name, client = %id.name, client_id = %id.client_id, "client enrolled");
    Ok(Json(EnrollResponse {
        client_id: id.client_id,
        credential,
        site: code,
        ca_certificate: Some(site.pki.ca_certificate_pem().to_string()),
    }))
}

pub async fn list(
    _admin: Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<Vec<ClientSummary>>, AppError> {
    let store = site.store.clone();
    blocking(move || Ok(Json(store.list_clients()?))).await
}

pub async fn show(
    _admin: Admin,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
) -> Result<Json<ClientDetail>, AppError> {
    let store = site.store.clone();
    let k = key.clone();
    blocking(move || Ok(store.get_client(&k)?))
        .await?
        .map(Json)
        .ok_or_else(|| AppError::NotFound(format!("no client '{key}' is enrolled at this site")))
}
