//! The domain of koshin: the types and rules of software update management with no I/O.
//!
//! This crate knows what an update, a product, a classification, a status message and a
//! sync are, how Debian versions order (exactly as `dpkg --compare-versions`), and how a
//! catalog is derived from upstream package lists and compared with the stored one. It
//! deliberately knows nothing of HTTP, SQL, files or clocks: callers pass in the time.

pub mod boundaries;
pub mod catalog;
pub mod collections;
pub mod compliance;
pub mod component_status;
pub mod content;
pub mod deployments;
pub mod inventory_classes;
pub mod localpub;
pub mod query;
pub mod roles;
pub mod scan;
pub mod status;
pub mod sync;
pub mod version;

pub use catalog::{Classification, UpdateId};
pub use collections::Scope;
pub use compliance::UpdateState;
pub use component_status::ComponentHealth;
pub use roles::{Permission, Role};
pub use status::{Severity, StatusMessage};
pub use sync::{SyncKind, SyncTrigger};
