//! The APT upstream: reads APT source entries, fetches a suite's `InRelease` (or `Release`
//! and `Release.gpg`), verifies its OpenPGP signature against a keyring, checks `Valid-Until`,
//! fetches the `Packages` indices it lists (by-hash when offered), verifies their size and
//! SHA-256, decompresses and parses them into [`koshin_domain::catalog::BinaryPackage`]s.
//!
//! This crate is the platform backend for Debian/Ubuntu archives. It knows nothing of the
//! site database or of sync kinds: it answers "what does this upstream hold now, verified?".
//!
//! It also writes the other side: a signed APT repository that a stock `apt-get` accepts
//! ([`repo::build_indices`]), from `.deb` files ([`debfile::read_control`]) and an OpenPGP
//! archive key ([`signing::ArchiveKey`]), for distribution points to serve.

pub mod debfile;
pub mod error;
pub mod fetch;
pub mod packages;
pub mod peer;
pub mod release;
pub mod repo;
pub mod signed;
pub mod signing;
pub mod sources;
pub mod verify;

pub use debfile::read_control;
pub use error::AptError;
pub use fetch::{FetchOptions, FetchedIndex, FetchedSuite, Fetcher};
pub use repo::{RepoEntry, RepoMeta, build_indices, pool_filename};
pub use signing::ArchiveKey;
pub use sources::AptSource;
