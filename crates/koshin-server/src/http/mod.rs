//! The HTTP API under `/api/v1`: one router listing every route ([`router::app`]), one file
//! per resource, the site injected as state, administrators authenticated by the
//! [`auth::Admin`] extractor. Every route states its authorization in [`router::ROUTES`].

mod admins;
pub mod auth;
mod clients;
mod collections;
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
