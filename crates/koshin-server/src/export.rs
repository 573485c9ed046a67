//! The catalog export file (S10, WSUSutil export / import): a site's catalog — whole or the
//! changes after a content version — signed with the site's archive key so that a site or
//! an internet-facing update point that cannot reach it can take it from a file. The layout
//! is the signed file of `koshin_apt::signed` (header, detached signature, gzip JSON payload,
//! here an [`ExportDocument`]), with these header fields:
//!
//! ```text
//! KOSHIN-CATALOG-EXPORT 1
//! Site: CS1
//! Content-Version: 7
//! Since: 0
//! Updates: 5
//! Created: 2026-11-21T13:00:00Z
//! Signed-By: 0123…ABCD
//! Signature-Size: 228
//! Payload-Size: 1874
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use koshin_apt::signed::{self, SignedError};
use koshin_apt::signing::ArchiveKey;
use koshin_apt::verify::Keyring;
use koshin_store::export::CatalogSnapshot;
use serde::{Deserialize, Serialize};

/// The first line of every export file.
pub const MAGIC: &str = "KOSHIN-CATALOG-EXPORT 1";
/// The `format` field of the payload.
pub const FORMAT: &str = "koshin-catalog-export";
/// Where a site keeps the public keys of other sites whose exports it takes
/// (`DATA/pki/catalog-keys/<FINGERPRINT>.asc`).
pub const TRUSTED_KEYS_DIR: &str = "catalog-keys";

/// The signed content of an export.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ExportDocument {
    pub format: String,
    /// The exporting site's code.
    pub site: String,
    pub created: jiff::Timestamp,
    /// The fingerprint of the key that signed it.
    pub signed_by: String,
    #[serde(flatten)]
    pub catalog: CatalogSnapshot,
}

/// What the header says (not trusted until the signature is verified and agrees).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ExportHeader {
    pub site: String,
    pub content_version: i64,
    pub since: i64,
    pub updates: u64,
    pub created: String,
    pub signed_by: String,
    pub signature_size: u64,
    pub payload_size: u64,
}

/// Why an export file is refused. Nothing is applied for any of them.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("not a koshin catalog export: {0}")]
    NotAnExport(String),
    #[error("truncated: {0}")]
    Truncated(String),
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("signed by a key this site does not trust: {0}")]
    UnknownKey(String),
    #[error("damaged: {0}")]
    Damaged(String),
}

/// Writes the export file of `catalog` from site `site`, signed with `key`.
pub fn write(site: &str, catalog: CatalogSnapshot, key: &ArchiveKey) -> anyhow::Result<Vec<u8>> {
    let doc = ExportDocument {
        format: FORMAT.into(),
        site: site.into(),
        created: jiff::Timestamp::now(),
        signed_by: key.fingerprint(),
        catalog,
    };
    let fields = [
        ("Site", doc.site.clone()),
        ("Content-Version", doc.catalog.content_version.to_string()),
        ("Since", doc.catalog.since.to_string()),
        ("Updates", doc.catalog.updates.len().to_string()),
        ("Created", doc.created.to_string()),
    ];
    Ok(signed::write(MAGIC, &fields, &doc, key)?)
}

const WHAT: &str = "koshin catalog export";

fn export_error(e: SignedError) -> ExportError {
    match e {
        SignedError::NotOurs { reason, .. } => ExportError::NotAnExport(reason),
        SignedError::Truncated(m) => ExportError::Truncated(m),
        SignedError::BadSignature(m) => ExportError::BadSignature(m),
        SignedError::UnknownKey(m) => ExportError::UnknownKey(m),
        SignedError::Damaged(m) => ExportError::Damaged(m),
    }
}

fn header_of(fields: &signed::Fields) -> Result<ExportHeader, ExportError> {
    let text = |k: &str| fields.get(k).cloned().unwrap_or_default();
    let num = |k: &str| -> Result<i64, ExportError> {
        match fields.get(k) {
            None => Ok(0),
            Some(v) => v
                .parse::<i64>()
                .map_err(|_| ExportError::NotAnExport(format!("{k}: '{v}' is not a number"))),
        }
    };
    let h = ExportHeader {
        site: text("Site"),
        content_version: num("Content-Version")?,
        since: num("Since")?,
        updates: num("Updates")?.max(0) as u64,
        created: text("Created"),
        signed_by: text("Signed-By"),
        signature_size: num("Signature-Size")?.max(0) as u64,
        payload_size: num("Payload-Size")?.max(0) as u64,
    };
    if h.site.is_empty() {
        return Err(ExportError::NotAnExport("its header lacks Site".into()));
    }
    Ok(h)
}

/// Reads the header; returns it and where the signature starts.
pub fn read_header(bytes: &[u8]) -> Result<(ExportHeader, usize), ExportError> {
    let (fields, start) = signed::read_header(MAGIC, WHAT, bytes).map_err(export_error)?;
    Ok((header_of(&fields)?, start))
}

/// Verifies an export file against `keyring` and reads it. Errors say why it is refused:
/// not an export, truncated, bad signature, unknown key, or damaged.
pub fn verify(bytes: &[u8], keyring: &Keyring) -> Result<ExportDocument, ExportError> {
    let hint = format!(
        "give the exporting site's public key (DATA/pki/{}) with --key",
        crate::content::ARCHIVE_KEY_PUBLIC
    );
    let (fields, json) =
        signed::verify(MAGIC, WHAT, bytes, keyring, &hint).map_err(export_error)?;
    let h = header_of(&fields)?;
    let doc: ExportDocument = serde_json::from_slice(&json)
        .map_err(|e| ExportError::Damaged(format!("cannot read the catalog: {e}")))?;
    if doc.format != FORMAT {
        return Err(ExportError::NotAnExport(format!(
            "its format is '{}'",
            doc.format
        )));
    }
    if doc.site != h.site
        || doc.catalog.content_version != h.content_version
        || doc.catalog.since != h.since
        || doc.catalog.updates.len() as u64 != h.updates
    {
        return Err(ExportError::Damaged(
            "the header does not agree with the signed catalog".into(),
        ));
    }
    Ok(doc)
}

/// The folder of trusted exporters' keys under `dir` (a site's `DATA/pki`, or an
/// internet-facing update point's data folder).
pub fn trusted_keys_dir(dir: &Path) -> PathBuf {
    dir.join(TRUSTED_KEYS_DIR)
}

/// The keys an import is verified with: `own` (this site's archive key, or an update
/// point's site's) and every key in `dir`/catalog-keys.
pub fn keyring(dir: &Path, own: &[(String, String)]) -> anyhow::Result<Keyring> {
    let mut keys: Vec<(String, String)> = own.to_vec();
    keys.extend(signed::trusted_keys(&trusted_keys_dir(dir))?);
    Ok(Keyring::from_armored(&keys)?)
}

/// Trusts an exporter's public key (armored): kept as `<FINGERPRINT>.asc` in `dir`'s
/// catalog-keys folder. Returns its fingerprint and user ids.
pub fn trust_key(dir: &Path, armored: &str) -> anyhow::Result<(String, Vec<String>)> {
    let keyring = Keyring::from_armored(&[("the key given".into(), armored.to_string())])?;
    let summaries = keyring.key_summaries();
    let [(fingerprint, user_ids)] = summaries.as_slice() else {
        anyhow::bail!("give exactly one public key (the exporting site's archive key)");
    };
    let folder = trusted_keys_dir(dir);
    std::fs::create_dir_all(&folder)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", folder.display()))?;
    let path = folder.join(format!("{fingerprint}.asc"));
    let tmp = folder.join(format!(".{fingerprint}.asc.tmp"));
    let mut f = std::fs::File::create(&tmp)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", tmp.display()))?;
    f.write_all(armored.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok((fingerprint.clone(), user_ids.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_refuses_what_is_not_an_export() {
        let key = ArchiveKey::generate("test").expect("key");
        let snap = CatalogSnapshot {
            source_id: "{S}".into(),
            content_version: 3,
            content_token: "t".into(),
            since: 1,
            updates: Vec::new(),
        };
        let bytes = write("CS1", snap.clone(), &key).expect("write");
        let (h, _) = read_header(&bytes).expect("header");
        assert_eq!((h.site.as_str(), h.content_version, h.since), ("CS1", 3, 1));
        let ring = Keyring::from_armored(&[("k".into(), key.armored_public().expect("pub"))])
            .expect("ring");
        let doc = verify(&bytes, &ring).expect("verify");
        assert_eq!(doc.catalog, snap);
        assert!(matches!(
            verify(b"hello", &ring),
            Err(ExportError::NotAnExport(_))
        ));
        assert!(matches!(
            verify(&bytes[..10], &ring),
            Err(ExportError::Truncated(_))
        ));
        let other = ArchiveKey::generate("other").expect("key");
        let ring2 = Keyring::from_armored(&[("o".into(), other.armored_public().expect("pub"))])
            .expect("ring");
        assert!(matches!(
            verify(&bytes, &ring2),
            Err(ExportError::UnknownKey(_))
        ));
    }
}
