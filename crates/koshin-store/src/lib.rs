//! Storage of a site: the traits the components use, and the embedded SQLite backend.
//!
//! Components see only the traits in [`traits`] (`Arc<dyn Store>`), so a PostgreSQL backend
//! can be added beside [`sqlite`] without touching them. The SQLite backend runs in WAL
//! mode with versioned migrations ([`migrations`]); every multi-row change is one
//! transaction, so a failure (a full disk, a crash) leaves the previous state whole.

pub mod clients;
pub mod collections;
pub mod content;
pub mod deployments;
pub mod export;
pub mod global;
pub mod hierarchy;
mod ingest;
pub mod inventory;
pub mod inventory_classes;
pub mod membership;
pub mod migrations;
pub mod reports;
pub mod sqlite;
pub mod status_summary;
pub mod traits;
pub mod trend;
pub mod trust;
pub mod views;

pub use sqlite::SqliteStore;
pub use traits::*;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("site database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error(
        "site database is newer (schema {found}) than this koshin (schema {supported}); upgrade koshin"
    )]
    TooNew { found: i64, supported: i64 },
    #[error("site database holds bad data: {0}")]
    Corrupt(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    /// A credential presented to the store is not (or no longer) valid.
    #[error("{0}")]
    Unauthorized(String),
    /// The request conflicts with what is stored (a name taken, an identity in use).
    #[error("{0}")]
    Conflict(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
