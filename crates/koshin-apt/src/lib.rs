//! The APT upstream: reads APT source entries, fetches a suite's `InRelease` (or `Release`
//! and `Release.gpg`), verifies its OpenPGP signature against a keyring, checks `Valid-Until`,
//! fetches the `Packages` indices it lists (by-hash when offered), verifies their size and
//! SHA-256, decompresses and parses them into [`koshin_domain::catalog::BinaryPackage`]s.
//!
//! This crate is the platform backend for Debian/Ubuntu archives. It knows nothing of the
//! site database or of sync kinds: it answers "what does this upstream hold now, verified?".

pub mod error;
pub mod fetch;
pub mod packages;
pub mod peer;
pub mod release;
pub mod sources;
pub mod verify;

pub use error::AptError;
pub use fetch::{FetchOptions, FetchedIndex, FetchedSuite, Fetcher};
pub use sources::AptSource;
