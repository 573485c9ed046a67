//! The catalog export file (S10, WSUSutil export / import): a site's catalog — whole or the
//! changes after a content version — signed with the site's archive key so that a site or
//! an internet-facing update point that cannot reach it can take it from a file.
//!
//! Layout: a short text header, then an armored OpenPGP detached signature, then the
//! payload — gzip-compressed JSON ([`ExportDocument`]). The signature covers the payload
//! bytes exactly as stored, so nothing is decompressed before it is verified; the header
//! only says what the file is and how long its parts are (to tell a truncated file from a
//! tampered one), and must agree with the signed payload.
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
//!
//! -----BEGIN PGP SIGNATURE----- … (228 bytes) <gzip payload, 1874 bytes>
//! ```

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use koshin_apt::AptError;
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
/// The largest payload accepted, compressed and not (a Debian catalog is far below).
const MAX_PAYLOAD: u64 = 1 << 31;

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
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    serde_json::to_writer(&mut gz, &doc)?;
    let payload = gz.finish()?;
    let signature = key.detached_sign(&payload)?;
    let header = format!(
        "{MAGIC}\nSite: {}\nContent-Version: {}\nSince: {}\nUpdates: {}\nCreated: {}\nSigned-By: {}\nSignature-Size: {}\nPayload-Size: {}\n\n",
        doc.site,
        doc.catalog.content_version,
        doc.catalog.since,
        doc.catalog.updates.len(),
        doc.created,
        doc.signed_by,
        signature.len(),
        payload.len()
    );
    let mut out = Vec::with_capacity(header.len() + signature.len() + payload.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(signature.as_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Reads the header; returns it and where the signature starts.
pub fn read_header(bytes: &[u8]) -> Result<(ExportHeader, usize), ExportError> {
    let magic = format!("{MAGIC}\n");
    if bytes.len() < magic.len() {
        if magic.as_bytes().starts_with(bytes) && !bytes.is_empty() {
            return Err(ExportError::Truncated(format!(
                "the file ends after {} bytes, inside its header",
                bytes.len()
            )));
        }
        return Err(ExportError::NotAnExport(format!(
            "it does not start with '{MAGIC}'"
        )));
    }
    if !bytes.starts_with(magic.as_bytes()) {
        return Err(ExportError::NotAnExport(format!(
            "it does not start with '{MAGIC}'"
        )));
    }
    let window = &bytes[..bytes.len().min(8192)];
    let Some(end) = window.windows(2).position(|w| w == b"\n\n") else {
        return Err(if bytes.len() < 8192 {
            ExportError::Truncated(format!(
                "the file ends after {} bytes, inside its header",
                bytes.len()
            ))
        } else {
            ExportError::NotAnExport("its header never ends".into())
        });
    };
    let text = std::str::from_utf8(&bytes[magic.len()..end])
        .map_err(|_| ExportError::NotAnExport("its header is not text".into()))?;
    let mut h = ExportHeader::default();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(": ") else {
            return Err(ExportError::NotAnExport(format!(
                "header line '{line}' is not 'Field: value'"
            )));
        };
        let num = |v: &str| {
            v.parse::<i64>()
                .map_err(|_| ExportError::NotAnExport(format!("{k}: '{v}' is not a number")))
        };
        match k {
            "Site" => h.site = v.into(),
            "Content-Version" => h.content_version = num(v)?,
            "Since" => h.since = num(v)?,
            "Updates" => h.updates = num(v)?.max(0) as u64,
            "Created" => h.created = v.into(),
            "Signed-By" => h.signed_by = v.into(),
            "Signature-Size" => h.signature_size = num(v)?.max(0) as u64,
            "Payload-Size" => h.payload_size = num(v)?.max(0) as u64,
            _ => {} // a later version's field
        }
    }
    if h.site.is_empty() || h.signature_size == 0 || h.payload_size == 0 {
        return Err(ExportError::NotAnExport(
            "its header lacks Site, Signature-Size or Payload-Size".into(),
        ));
    }
    if h.payload_size > MAX_PAYLOAD || h.signature_size > 1 << 20 {
        return Err(ExportError::NotAnExport(
            "its header gives absurd sizes".into(),
        ));
    }
    Ok((h, end + 2))
}

/// Verifies an export file against `keyring` and reads it. Errors say why it is refused:
/// not an export, truncated, bad signature, unknown key, or damaged.
pub fn verify(bytes: &[u8], keyring: &Keyring) -> Result<ExportDocument, ExportError> {
    let (h, start) = read_header(bytes)?;
    let body = &bytes[start..];
    let want = h.signature_size + h.payload_size;
    let have = body.len() as u64;
    if have < want {
        return Err(ExportError::Truncated(format!(
            "the file holds {have} of the {want} bytes its header announces"
        )));
    }
    if have > want {
        return Err(ExportError::Damaged(format!(
            "{} bytes follow the end of the catalog",
            have - want
        )));
    }
    let (signature, payload) = body.split_at(h.signature_size as usize);
    keyring
        .verify_detached("the catalog export", payload, signature)
        .map_err(|e| match e {
            AptError::UnknownKey { key, keyring, .. } => ExportError::UnknownKey(format!(
                "key {key} (trusted here: {keyring}); give the exporting site's public key (DATA/pki/{}) with --key",
                crate::content::ARCHIVE_KEY_PUBLIC
            )),
            AptError::BadSignature { reason, .. } => ExportError::BadSignature(format!(
                "{reason}: the file was changed after it was signed"
            )),
            other => ExportError::BadSignature(other.to_string()),
        })?;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(payload)
        .take(MAX_PAYLOAD)
        .read_to_end(&mut json)
        .map_err(|e| ExportError::Damaged(format!("cannot decompress the catalog: {e}")))?;
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
    let folder = trusted_keys_dir(dir);
    if let Ok(rd) = std::fs::read_dir(&folder) {
        let mut paths: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "asc"))
            .collect();
        paths.sort();
        for p in paths {
            let text = std::fs::read_to_string(&p)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", p.display()))?;
            keys.push((p.display().to_string(), text));
        }
    }
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
