//! Errors of the APT upstream (each saying what failed and where, for status message 6703)
//! and of the repository writer (reading `.deb`s, signing, building indices).

#[derive(Debug, thiserror::Error)]
pub enum AptError {
    #[error("cannot reach {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{url} answered HTTP {status}")]
    HttpStatus { url: String, status: u16 },
    #[error("{url}: the transfer broke off: {reason}")]
    Transfer { url: String, reason: String },
    #[error("{url}: no answer within {seconds} s")]
    Timeout { url: String, seconds: u64 },
    #[error("bad signature on {url}: {reason}")]
    BadSignature { url: String, reason: String },
    #[error("{url} is signed by an unknown key {key} (not in {keyring})")]
    UnknownKey {
        url: String,
        key: String,
        keyring: String,
    },
    #[error("{url} is not signed")]
    NotSigned { url: String },
    #[error("cannot read keyring {path}: {reason}")]
    Keyring { path: String, reason: String },
    #[error("the Release file of {suite} expired at {valid_until} (Valid-Until)")]
    Expired { suite: String, valid_until: String },
    #[error("the Release file of {suite} is malformed: {reason}")]
    MalformedRelease { suite: String, reason: String },
    #[error("{path}: size mismatch: Release says {expected} bytes, got {actual}")]
    SizeMismatch {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("{path}: SHA-256 mismatch: Release says {expected}, got {actual}")]
    HashMismatch {
        path: String,
        expected: String,
        actual: String,
    },
    #[error("{path}: corrupt or truncated {format} data: {reason}")]
    Decompress {
        path: String,
        format: &'static str,
        reason: String,
    },
    #[error("{path}: malformed stanza at line {line}: {reason}")]
    MalformedStanza {
        path: String,
        line: usize,
        reason: String,
    },
    #[error("{suite}: the Release lists no Packages index for {component}/binary-{arch}")]
    NoIndex {
        suite: String,
        component: String,
        arch: String,
    },
    #[error("bad APT source entry '{entry}': {reason}")]
    BadSource { entry: String, reason: String },
    #[error("cannot read {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("{path} is not a Debian package: {reason}")]
    NotADeb { path: String, reason: String },
    #[error("{path}: the package has no control.tar member")]
    NoControlTar { path: String },
    #[error("{path}: {member} holds no control file")]
    NoControlFile { path: String, member: String },
    #[error("{file}: cannot go into the repository: {reason}")]
    BadEntry { file: String, reason: String },
    #[error("bad repository description: {reason}")]
    BadRepository { reason: String },
    #[error("archive signing key: {reason}")]
    SigningKey { reason: String },
}
