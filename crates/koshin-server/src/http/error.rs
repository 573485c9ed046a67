//! The one error type at the HTTP edge: each variant maps to a status code and a JSON body
//! `{"error": "..."}` with a one-line reason.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use koshin_wire::ErrorBody;

#[derive(Debug)]
pub enum AppError {
    Unauthorized(String),
    Forbidden(String),
    NotFound(String),
    Conflict(String),
    BadRequest(String),
    /// Another server the site depends on (a distribution point) failed.
    BadGateway(String),
    Internal(String),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (code, msg) = match self {
            AppError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m),
            AppError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
            AppError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            AppError::Conflict(m) => (StatusCode::CONFLICT, m),
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
            AppError::BadGateway(m) => (StatusCode::BAD_GATEWAY, m),
            AppError::Internal(m) => {
                tracing::error!(error = %m, "request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, m)
            }
        };
        (code, Json(ErrorBody { error: msg })).into_response()
    }
}

impl From<koshin_store::StoreError> for AppError {
    fn from(e: koshin_store::StoreError) -> Self {
        match e {
            koshin_store::StoreError::NotFound(m) => AppError::NotFound(format!("{m} not found")),
            koshin_store::StoreError::Invalid(m) => AppError::BadRequest(m),
            koshin_store::StoreError::Conflict(m) => AppError::Conflict(m),
            koshin_store::StoreError::Unauthorized(m) => AppError::Unauthorized(m),
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(e: tokio::task::JoinError) -> Self {
        AppError::Internal(format!("request worker failed: {e}"))
    }
}

/// Runs blocking storage work off the async threads.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f).await?
}

/// Checks the name an administrator gives a thing (a collection, a package, a deployment):
/// 1 to 128 printable characters, without spaces at either end.
pub fn check_name(what: &str, name: &str) -> Result<(), AppError> {
    if name.trim() != name
        || name.is_empty()
        || name.chars().count() > 128
        || name.chars().any(char::is_control)
    {
        return Err(AppError::BadRequest(format!(
            "a {what}'s name is 1 to 128 printable characters, without spaces at either end"
        )));
    }
    Ok(())
}

/// Checks the address and the token another koshin process gives when it registers or joins.
pub fn check_peer(url: &str, token: &str, what: &str) -> Result<(), AppError> {
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 512 {
        return Err(AppError::BadRequest(format!(
            "url must be the {what}'s http:// or https:// address"
        )));
    }
    if token.len() < 32 || token.len() > 256 {
        return Err(AppError::BadRequest(
            "the token must be 32 to 256 characters".into(),
        ));
    }
    Ok(())
}
