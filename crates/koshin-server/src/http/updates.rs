//! The update catalog: list with filters, and one update in full.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use koshin_wire::{UpdateDetail, UpdateQuery, UpdateSummary};

use super::auth::Admin;
use super::error::{AppError, blocking};
use crate::site::Site;

pub async fn list(
    _admin: Admin,
    State(site): State<Arc<Site>>,
    Query(q): Query<UpdateQuery>,
) -> Result<Json<Vec<UpdateSummary>>, AppError> {
    let store = site.store.clone();
    blocking(move || Ok(Json(store.list_updates(&q)?))).await
}

/// One update; with `limit` (and `offset`) one page of the computers that require it, the
/// number of them in `X-Total-Count`.
pub async fn show(
    admin: Admin,
    State(site): State<Arc<Site>>,
    Path(id): Path<String>,
    Query(page): Query<super::Page>,
) -> Result<(axum::http::HeaderMap, Json<UpdateDetail>), AppError> {
    let s = site.clone();
    let key = id.clone();
    let (mut u, total) =
        blocking(move || Ok(s.store.get_update_page(&key, &admin.scope, page.paging())?))
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no update '{id}' in the catalog")))?;
    if let Some(cv) = crate::offline::kept_version(&site)
        && !u.summary.expired
        && u.content_version <= cv
    {
        u.in_offline_catalog = Some(cv);
    }
    Ok((super::total_header(total), Json(u)))
}
