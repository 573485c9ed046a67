//! Content: the site's content library, its own distribution point, the distribution
//! manager that sends packages to distribution points by priority, and the remote
//! distribution point process (`koshin dp serve`).
//!
//! Every distribution point is a signed APT repository a stock `apt` can use: `pool/` holds
//! the `.deb` files by SHA-256, `dists/koshin/` the indices, signed with the site's archive
//! key (`DATA/pki/archive-key.asc`), whose public half reaches clients in policy. The site
//! builds and signs every index, its own and its remote points'; a remote point only stores
//! what it is sent, checks it and serves it.

pub mod distmgr;
pub mod library;
pub mod remote;
pub mod repo;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use koshin_apt::signing::ArchiveKey;
use tokio::sync::Notify;

use crate::log::ComponentLog;

/// The distribution manager's component name, as in status messages.
pub const DISTRIBUTION_MANAGER: &str = "SMS_DISTRIBUTION_MANAGER";
/// The sender's component name.
pub const SENDER: &str = "SMS_LAN_SENDER";

/// The archive signing key files under `DATA/pki/`.
pub const ARCHIVE_KEY: &str = "archive-key.asc";
pub const ARCHIVE_KEYRING: &str = "archive-key.gpg";
pub const ARCHIVE_KEY_PUBLIC: &str = "archive-key.pub.asc";

/// What the site keeps for content.
pub struct Content {
    /// `DATA/content`: the library, one file per SHA-256.
    pub library: PathBuf,
    /// `DATA/dp`: the site's own distribution point.
    pub local_dp: PathBuf,
    pub key: ArchiveKey,
    /// The armored public key, for policy.
    pub public_key: String,
    /// Wakes the distribution manager: a package was distributed, a setting changed.
    pub wake: Arc<Notify>,
    pub log: Arc<ComponentLog>,
    pub sender_log: Arc<ComponentLog>,
}

impl Content {
    /// Opens the content side of a site in `data`, making the archive key on first use.
    pub fn open(data: &Path, site_code: &str) -> anyhow::Result<Content> {
        let pki = data.join("pki");
        std::fs::create_dir_all(&pki)?;
        let key = archive_key(&pki, site_code)?;
        let public_key = key.armored_public()?;
        let library = data.join("content");
        let local_dp = data.join("dp");
        std::fs::create_dir_all(&library)?;
        std::fs::create_dir_all(&local_dp)?;
        let logs = data.join("logs");
        Ok(Content {
            library,
            local_dp,
            key,
            public_key,
            wake: Arc::new(Notify::new()),
            log: Arc::new(ComponentLog::open(
                &logs,
                "distmgr.log",
                DISTRIBUTION_MANAGER,
            )),
            sender_log: Arc::new(ComponentLog::open(&logs, "sender.log", SENDER)),
        })
    }

    /// Where the library keeps a file.
    pub fn library_path(&self, sha256: &str) -> PathBuf {
        library_path(&self.library, sha256)
    }
}

pub fn library_path(library: &Path, sha256: &str) -> PathBuf {
    library.join(sha256.get(..2).unwrap_or("00")).join(sha256)
}

/// The site's archive key: read, or made and written (secret 0600, public keyring and
/// armored public key beside it) on first use. An existing key is never replaced.
fn archive_key(pki: &Path, site_code: &str) -> anyhow::Result<ArchiveKey> {
    let secret = pki.join(ARCHIVE_KEY);
    if secret.exists() {
        let text = std::fs::read_to_string(&secret)?;
        let key = ArchiveKey::from_armored_secret(&text)
            .map_err(|e| anyhow::anyhow!("{}: {e}", secret.display()))?;
        write_public(pki, &key)?;
        return Ok(key);
    }
    let key = ArchiveKey::generate(&format!("koshin site {site_code} archive key"))?;
    crate::init::write_private(&secret, &key.armored_secret()?)?;
    write_public(pki, &key)?;
    Ok(key)
}

fn write_public(pki: &Path, key: &ArchiveKey) -> anyhow::Result<()> {
    let keyring = key.public_keyring()?;
    let path = pki.join(ARCHIVE_KEYRING);
    if std::fs::read(&path).ok().as_deref() != Some(keyring.as_slice()) {
        std::fs::write(&path, keyring)?;
    }
    let armored = key.armored_public()?;
    let path = pki.join(ARCHIVE_KEY_PUBLIC);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(armored.as_str()) {
        std::fs::write(&path, armored)?;
    }
    Ok(())
}
