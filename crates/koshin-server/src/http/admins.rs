//! Administrators: `POST /api/v1/login` (name and password → a token that expires),
//! `POST /api/v1/logout` (revokes the token used), accounts with roles, and the audit log.
//! Passwords are hashed with argon2 (a random salt each); tokens are stored as SHA-256.

use std::sync::Arc;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use koshin_domain::{Permission, Role};
use koshin_store::{AdminRecord, AuditEntry};
use koshin_wire::{AdminOut, AuditOut, AuditQuery, LoginRequest, NewAdmin, TokenResponse};

use super::auth::{Admin, Can, CanManageAdministrators, Source};
use super::error::{AppError, blocking};
use crate::site::Site;

fn ts(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// Hashes a password with argon2id and a random salt: a PHC string.
pub fn hash_password(password: &str) -> Result<String, AppError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| AppError::Internal(format!("password salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AppError::Internal(format!("password hash: {e}")))
}

fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn check_name(name: &str) -> Result<(), AppError> {
    if name.trim().is_empty()
        || name.len() > 64
        || !name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '@'))
    {
        return Err(AppError::BadRequest(
            "an administrator's name is 1 to 64 letters, digits, '.', '-', '_' or '@'".into(),
        ));
    }
    Ok(())
}

pub(crate) fn admin_out(a: AdminRecord) -> AdminOut {
    AdminOut {
        name: a.name,
        role: a.role,
        scopes: a.scopes,
        created: ts(a.created_ms),
        created_by: a.created_by,
        disabled: a.disabled_ms.map(ts),
    }
}

/// Public by design: this is how an administrator gets a token. A wrong name and a wrong
/// password get the same answer, after the same argon2 work.
pub async fn login(
    State(site): State<Arc<Site>>,
    Source(source): Source,
    Json(req): Json<LoginRequest>,
) -> Result<Json<TokenResponse>, AppError> {
    let hours = req.hours.unwrap_or(12);
    if !(1..=720).contains(&hours) {
        return Err(AppError::BadRequest("hours must be from 1 to 720".into()));
    }
    let store = site.store.clone();
    let name = req.name.clone();
    let found = blocking(move || Ok(store.admin_by_name(&name)?)).await?;
    let password = req.password.clone();
    let (admin, ok) = tokio::task::spawn_blocking(move || {
        // The same work whether the account exists or not.
        static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let dummy =
            DUMMY.get_or_init(|| hash_password("no such administrator").unwrap_or_default());
        match found {
            Some(a) if a.disabled_ms.is_none() => {
                let ok = a
                    .password_hash
                    .as_deref()
                    .is_some_and(|h| verify_password(&password, h));
                (Some(a), ok)
            }
            _ => {
                let _ = verify_password(&password, dummy);
                (None, false)
            }
        }
    })
    .await?;
    let Some(admin) = admin.filter(|_| ok) else {
        tracing::warn!(name = %req.name, "login refused");
        return Err(AppError::Unauthorized(
            "wrong administrator name or password".into(),
        ));
    };
    let token = format!("ksn_{}", hex::encode(rand::random::<[u8; 32]>()));
    let now = jiff::Timestamp::now().as_millisecond();
    let expires = now + i64::from(hours) * 3_600_000;
    let store = site.store.clone();
    let hash = crate::init::hash_token(&token);
    let entry = AuditEntry {
        time_ms: now,
        actor: admin.name.clone(),
        role: admin.role.clone(),
        action: "log in".into(),
        target: admin.name.clone(),
        detail: format!("token valid {hours} h"),
        source,
    };
    let id = admin.id;
    blocking(move || {
        store.add_admin_token(id, &hash, Some(expires), now)?;
        store.audit(&entry)?;
        Ok(())
    })
    .await?;
    let permissions = Role::parse(&admin.role)
        .map(|r| {
            Permission::ALL
                .into_iter()
                .filter(|p| r.grants(*p))
                .map(|p| p.name().to_string())
                .collect()
        })
        .unwrap_or_default();
    Ok(Json(TokenResponse {
        token,
        name: admin.name,
        role: admin.role,
        expires: Some(ts(expires)),
        permissions,
    }))
}

/// Revokes the token the request carries.
pub async fn logout(
    admin: Admin,
    State(site): State<Arc<Site>>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, AppError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    let hash = crate::init::hash_token(&token);
    let store = site.store.clone();
    let now = jiff::Timestamp::now().as_millisecond();
    let revoked = blocking(move || Ok(store.revoke_token(&hash, now)?)).await?;
    admin
        .audit(&site, "log out", &admin.name, "token revoked")
        .await?;
    Ok(Json(serde_json::json!({ "revoked": revoked })))
}

pub async fn create(
    admin: Can<CanManageAdministrators>,
    State(site): State<Arc<Site>>,
    Json(req): Json<NewAdmin>,
) -> Result<Json<AdminOut>, AppError> {
    admin.require(Permission::ManageAdministrators)?;
    check_name(&req.name)?;
    let role = Role::parse(&req.role).ok_or_else(|| {
        AppError::BadRequest(format!(
            "role '{}' is not one of: {}",
            req.role,
            Role::ALL.map(|r| r.name()).join(", ")
        ))
    })?;
    if req.password.chars().count() < 12 {
        return Err(AppError::BadRequest(
            "a password has at least 12 characters".into(),
        ));
    }
    let store = site.store.clone();
    let asked = req.scopes.clone();
    let scopes = blocking(move || Ok(store.resolve_collections(&asked)?)).await?;
    let password = req.password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
    let rec = AdminRecord {
        id: 0,
        name: req.name.clone(),
        role: role.name().to_string(),
        password_hash: Some(hash),
        scopes,
        created_ms: jiff::Timestamp::now().as_millisecond(),
        created_by: admin.name.clone(),
        disabled_ms: None,
    };
    let store = site.store.clone();
    let r = rec.clone();
    blocking(move || Ok(store.add_admin(&r)?)).await?;
    admin
        .audit(
            &site,
            "create administrator",
            &rec.name,
            &format!(
                "role {}{}",
                role,
                if rec.scopes.is_empty() {
                    String::new()
                } else {
                    format!(", scopes {}", rec.scopes.join(", "))
                }
            ),
        )
        .await?;
    Ok(Json(admin_out(rec)))
}

pub async fn list(
    admin: Can<CanManageAdministrators>,
    State(site): State<Arc<Site>>,
) -> Result<Json<Vec<AdminOut>>, AppError> {
    admin.require(Permission::ManageAdministrators)?;
    let store = site.store.clone();
    let list = blocking(move || Ok(store.list_admins()?)).await?;
    Ok(Json(list.into_iter().map(admin_out).collect()))
}

pub async fn disable(
    admin: Can<CanManageAdministrators>,
    State(site): State<Arc<Site>>,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, AppError> {
    admin.require(Permission::ManageAdministrators)?;
    let store = site.store.clone();
    let n = name.clone();
    let now = jiff::Timestamp::now().as_millisecond();
    if !blocking(move || Ok(store.disable_admin(&n, now)?)).await? {
        return Err(AppError::NotFound(format!(
            "no enabled administrator named '{name}'"
        )));
    }
    admin
        .audit(&site, "disable administrator", &name, "every token revoked")
        .await?;
    Ok(Json(serde_json::json!({ "disabled": name })))
}

pub async fn audit(
    _admin: Admin,
    State(site): State<Arc<Site>>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditOut>>, AppError> {
    let since = q.since.map_or(0, |t| t.as_millisecond());
    let limit = q.limit.unwrap_or(1000).min(100_000);
    let store = site.store.clone();
    let list = blocking(move || Ok(store.audit_log(since, limit)?)).await?;
    Ok(Json(
        list.into_iter()
            .map(|e| AuditOut {
                time: ts(e.time_ms),
                actor: e.actor,
                role: e.role,
                action: e.action,
                target: e.target,
                detail: e.detail,
                source: e.source,
            })
            .collect(),
    ))
}
