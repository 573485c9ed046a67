//! Test support for koshin: builds real, signed Debian APT archives with the
//! Debian tools themselves (`dpkg-deb`, `apt-ftparchive`, `gpg`, `gzip`,
//! `xz`), serves them over HTTP on loopback with per-path fault injection
//! ([`LoopbackServer`], [`Fault`]), damages them on purpose ([`corrupt`],
//! [`truncate`], [`Archive::resign_with`], [`Archive::tamper_release`],
//! [`Archive::tamper_inrelease_unsigned`]), and runs the real `apt-get
//! update` against them in isolation ([`AptClient`]) to prove they are
//! genuine.
//!
//! System packages needed at test time: `dpkg` (dpkg-deb), `apt-utils`
//! (apt-ftparchive), `gnupg` (gpg, gpgconf), `gzip`, `xz-utils`, and `apt`
//! for [`AptClient`].
//!
//! ```no_run
//! use koshin_testkit::{Archive, DebSpec, Fault, SuiteSpec};
//! # fn main() -> std::io::Result<()> {
//! let mut archive = Archive::new()?;
//! archive.add("bookworm", "main", &DebSpec::new("hello", "2.10-3", "amd64"))?;
//! archive.publish(&SuiteSpec::new("bookworm", "bookworm"))?;
//! let server = archive.serve()?;
//! server.set_fault("InRelease", Fault::Status(503));
//! let uri = archive.uri(&server); // "http://127.0.0.1:PORT/"
//! # let _ = uri; Ok(()) }
//! ```

mod apt;
mod archive;
mod cmd;
mod deb;
mod files;
mod gpg;
mod server;

pub use apt::{AptClient, AptRun, DpkgRoot};
pub use archive::{Archive, Compression, SuiteSpec};
pub use deb::{DebCompression, DebSpec};
pub use files::{corrupt, truncate};
pub use gpg::Gpg;
pub use server::{Fault, LoopbackServer, RequestRecord};
