//! Authentication of administrators: `Authorization: Bearer <token>`, checked against the
//! SHA-256 of tokens stored in the site database (the token itself is never stored).

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::{AppError, blocking};
use crate::site::Site;

/// An authenticated administrator.
#[derive(Clone, Debug)]
pub struct Admin {
    pub name: String,
    pub role: String,
}

fn bearer(parts: &Parts, what: &str) -> Result<String, AppError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            AppError::Unauthorized(format!(
                "this route needs {what} (Authorization: Bearer ...)"
            ))
        })?;
    Ok(header
        .strip_prefix("Bearer ")
        .ok_or_else(|| {
            AppError::Unauthorized("the Authorization header must be 'Bearer <token>'".into())
        })?
        .trim()
        .to_string())
}

/// An enrolled client, authenticated by its own credential.
#[derive(Clone, Debug)]
pub struct Client(pub koshin_store::ClientIdentity);

impl FromRequestParts<Arc<Site>> for Client {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        site: &Arc<Site>,
    ) -> Result<Self, Self::Rejection> {
        let hash = crate::init::hash_token(&bearer(parts, "a client credential")?);
        let store = site.store.clone();
        match blocking(move || Ok(store.client_by_credential(&hash)?)).await? {
            Some(c) => Ok(Client(c)),
            None => Err(AppError::Unauthorized(
                "the client credential is not valid for this site: enroll again".into(),
            )),
        }
    }
}

impl FromRequestParts<Arc<Site>> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        site: &Arc<Site>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts, "an administrator token")?;
        let hash = crate::init::hash_token(&token);
        let store = site.store.clone();
        let info = blocking(move || Ok(store.find_token(&hash)?)).await?;
        match info {
            Some(t) => Ok(Admin {
                name: t.name,
                role: t.role,
            }),
            None => Err(AppError::Unauthorized(
                "the token is not valid for this site".into(),
            )),
        }
    }
}
