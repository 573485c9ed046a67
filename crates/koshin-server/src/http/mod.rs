//! The HTTP API under `/api/v1`: one router listing every route ([`router::app`]), one file
//! per resource, the site injected as state, administrators authenticated by the
//! [`auth::Admin`] extractor. Every route states its authorization in [`router::ROUTES`].

mod admins;
pub mod auth;
mod clients;
mod collections;
mod compliance;
mod content;
mod deployments;
pub mod error;
pub mod export;
mod hierarchy;
mod inventory;
mod mp;
mod reports;
pub mod router;
mod site;
mod status;
mod sync;
mod updates;

pub use error::AppError;
pub use router::app;

/// The header a paged list carries: how many items match in all.
pub const TOTAL_COUNT: &str = "x-total-count";

/// `X-Total-Count: total`, for a list answered one page at a time.
pub(crate) fn total_header(total: u64) -> axum::http::HeaderMap {
    let mut h = axum::http::HeaderMap::new();
    h.insert(TOTAL_COUNT, axum::http::HeaderValue::from(total));
    h
}

/// `limit` and `offset` of a list answered one page at a time (`?limit=50&offset=100`);
/// no limit is every item.
#[derive(Clone, Copy, Debug, Default, serde::Deserialize)]
pub(crate) struct Page {
    #[serde(default)]
    pub limit: Option<usize>,
    #[serde(default)]
    pub offset: Option<usize>,
}

impl Page {
    /// The page as the store reads it.
    pub fn paging(self) -> koshin_store::Paging {
        koshin_store::Paging {
            offset: self.offset.unwrap_or(0) as u64,
            limit: self.limit.map(|l| l as u64),
        }
    }
}
