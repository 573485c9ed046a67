//! Clients: enrollment (with an enrollment token, an administrator's token, or none — then
//! pending approval), approval and revocation, enrollment tokens, the list, and one
//! client's compliance.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use koshin_domain::Permission;
use koshin_store::{EnrollmentTokenRecord, NewClient};
use koshin_wire::{
    ClientDetail, ClientQuery, ClientSummary, EnrollRequest, EnrollResponse, EnrollmentTokenOut,
    NewEnrollmentToken,
};

use super::auth::{Admin, Can, CanManageClients};
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

/// Who vouches for an enrollment.
enum Voucher {
    /// No token: the client waits for an administrator's approval.
    None,
    /// An enrollment token (its SHA-256), spent when the client is stored.
    EnrollmentToken(String),
    Administrator(String),
}

/// Reads the optional Bearer token of an enrollment: an enrollment token (its use spent with
/// the client's row) or
/// an administrator's token whose role may manage clients. A token that is neither is
/// refused rather than taken as "no token".
async fn voucher(site: &Arc<Site>, headers: &HeaderMap) -> Result<Voucher, AppError> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(Voucher::None);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            AppError::Unauthorized("the Authorization header must be 'Bearer <token>'".into())
        })?
        .to_string();
    let hash = crate::init::hash_token(&token);
    let store = site.store.clone();
    let now = jiff::Timestamp::now().as_millisecond();
    let h = hash.clone();
    let (enrollment, admin) = blocking(move || {
        if store.enrollment_token_usable(&h, now)? {
            return Ok((true, None));
        }
        Ok((false, store.find_token(&h)?))
    })
    .await?;
    if enrollment {
        return Ok(Voucher::EnrollmentToken(hash));
    }
    match admin {
        Some(t)
            if koshin_domain::Role::parse(&t.role)
                .is_some_and(|r| r.grants(Permission::ManageClients)) =>
        {
            Ok(Voucher::Administrator(t.name))
        }
        Some(t) => Err(AppError::Forbidden(format!(
            "{} ({}) may not enroll clients",
            t.name, t.role
        ))),
        None => Err(AppError::Unauthorized(
            "the enrollment token is not valid (unknown, expired, revoked or used up)".into(),
        )),
    }
}

/// Public by design: a machine enrolls before it has any credential. Without a token it
/// lands in "pending approval" and gets nothing from the management point until approved.
pub async fn enroll(
    State(site): State<Arc<Site>>,
    headers: HeaderMap,
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
    // A certificate for the client's own key (mutual TLS), signed before anything is stored:
    // a bad request changes nothing.
    let client_certificate = match &req.csr {
        None => None,
        Some(csr) => {
            if csr.len() > 16 * 1024 {
                return Err(AppError::BadRequest(
                    "the certificate signing request is larger than 16 KiB".into(),
                ));
            }
            Some(
                site.pki
                    .ca()
                    .sign_client_csr(csr, &req.client_id)
                    .map_err(|e| AppError::BadRequest(e.to_string()))?,
            )
        }
    };
    let voucher = voucher(&site, &headers).await?;
    let approved = !matches!(voucher, Voucher::None);
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
    let spend = match &voucher {
        Voucher::EnrollmentToken(t) => Some(t.clone()),
        _ => None,
    };
    let id =
        blocking(move || Ok(store.enroll_client(&new, &hash, approved, spend.as_deref(), now)?))
            .await?;
    let by = match &voucher {
        Voucher::None => "no token".to_string(),
        Voucher::EnrollmentToken(_) => "an enrollment token".to_string(),
        Voucher::Administrator(n) => format!("administrator {n}"),
    };
    tracing::info!(client = %id.name, client_id = %id.client_id, approval = %id.approval, by = %by, "client enrolled");
    Ok(Json(EnrollResponse {
        client_id: id.client_id,
        credential,
        site: code,
        approval: id.approval,
        ca_certificate: Some(site.pki.ca_certificate_pem().to_string()),
        client_certificate,
    }))
}

/// The clients in the administrator's scope: all of them, or with `search`,
/// `not_reporting_days`, `limit` or `offset` one page by name, the number that match in
/// `X-Total-Count` (a console pages 150,000 clients this way).
pub async fn list(
    admin: Admin,
    State(site): State<Arc<Site>>,
    Query(q): Query<ClientQuery>,
) -> Result<(HeaderMap, Json<Vec<ClientSummary>>), AppError> {
    let store = site.store.clone();
    if !q.is_paged() {
        let all = blocking(move || Ok(store.list_clients(&admin.scope)?)).await?;
        return Ok((HeaderMap::new(), Json(all)));
    }
    if q.limit.is_some_and(|l| l > 10_000) {
        return Err(AppError::BadRequest(
            "limit must be at most 10000 clients a page".into(),
        ));
    }
    let now = jiff::Timestamp::now().as_millisecond();
    let (total, page) =
        blocking(move || Ok(store.list_clients_page(&q, now, &admin.scope)?)).await?;
    Ok((super::total_header(total), Json(page)))
}

pub async fn show(
    admin: Admin,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
) -> Result<Json<ClientDetail>, AppError> {
    let store = site.store.clone();
    let k = key.clone();
    blocking(move || Ok(store.get_client(&k, &admin.scope)?))
        .await?
        .map(Json)
        .ok_or_else(|| AppError::NotFound(format!("no client '{key}' is enrolled at this site")))
}

async fn set_approval(
    admin: Admin,
    site: Arc<Site>,
    key: String,
    approval: &'static str,
) -> Result<Json<ClientSummary>, AppError> {
    admin.require(Permission::ManageClients)?;
    let store = site.store.clone();
    let action = if approval == "approved" {
        "approve client"
    } else {
        "revoke client"
    };
    let entry = admin.entry(action, &key, "");
    let scope = admin.scope.clone();
    let k = key.clone();
    let c = blocking(move || Ok(store.set_client_approval(&k, approval, &scope, &entry)?)).await?;
    let store = site.store.clone();
    let id = c.client_id.clone();
    blocking(move || Ok(store.get_client(&id, &admin.scope)?))
        .await?
        .map(|d| Json(d.summary))
        .ok_or_else(|| AppError::NotFound(format!("client '{key}'")))
}

pub async fn approve(
    Can(admin, _): Can<CanManageClients>,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
) -> Result<Json<ClientSummary>, AppError> {
    set_approval(admin, site, key, "approved").await
}

pub async fn revoke(
    Can(admin, _): Can<CanManageClients>,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
) -> Result<Json<ClientSummary>, AppError> {
    set_approval(admin, site, key, "revoked").await
}

fn token_out(r: EnrollmentTokenRecord, token: Option<String>) -> EnrollmentTokenOut {
    let ts = |ms: i64| jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    EnrollmentTokenOut {
        id: r.id,
        description: r.description,
        created_by: r.created_by,
        created: ts(r.created_ms),
        expires: r.expires_ms.map(ts),
        uses_left: r.uses_left,
        used: r.used,
        revoked: r.revoked_ms.map(ts),
        token,
    }
}

pub async fn create_enrollment_token(
    admin: Can<CanManageClients>,
    State(site): State<Arc<Site>>,
    Json(req): Json<NewEnrollmentToken>,
) -> Result<Json<EnrollmentTokenOut>, AppError> {
    admin.require(Permission::ManageClients)?;
    if req.description.len() > 255 || req.description.chars().any(char::is_control) {
        return Err(AppError::BadRequest(
            "description must be at most 255 printable characters".into(),
        ));
    }
    let hours = req.hours.unwrap_or(24);
    if !(1..=24 * 365).contains(&hours) {
        return Err(AppError::BadRequest("hours must be from 1 to 8760".into()));
    }
    if req.uses == Some(0) {
        return Err(AppError::BadRequest("uses must be at least 1".into()));
    }
    let token = format!("kse_{}", hex::encode(rand::random::<[u8; 32]>()));
    let now = jiff::Timestamp::now().as_millisecond();
    let rec = EnrollmentTokenRecord {
        id: 0,
        description: req.description.clone(),
        created_by: admin.name.clone(),
        created_ms: now,
        expires_ms: Some(now + i64::from(hours) * 3_600_000),
        uses_left: req.uses.map(i64::from),
        used: 0,
        revoked_ms: None,
    };
    let store = site.store.clone();
    let hash = crate::init::hash_token(&token);
    let r = rec.clone();
    let id = blocking(move || Ok(store.add_enrollment_token(&hash, &r)?)).await?;
    admin
        .audit(
            &site,
            "create enrollment token",
            &format!("enrollment token {id}"),
            &format!(
                "uses {}, expires in {hours} h{}",
                req.uses.map_or("unlimited".to_string(), |u| u.to_string()),
                if req.description.is_empty() {
                    String::new()
                } else {
                    format!(", '{}'", req.description)
                }
            ),
        )
        .await?;
    Ok(Json(token_out(
        EnrollmentTokenRecord { id, ..rec },
        Some(token),
    )))
}

pub async fn list_enrollment_tokens(
    admin: Can<CanManageClients>,
    State(site): State<Arc<Site>>,
) -> Result<Json<Vec<EnrollmentTokenOut>>, AppError> {
    admin.require(Permission::ManageClients)?;
    let store = site.store.clone();
    let list = blocking(move || Ok(store.list_enrollment_tokens()?)).await?;
    Ok(Json(list.into_iter().map(|r| token_out(r, None)).collect()))
}
