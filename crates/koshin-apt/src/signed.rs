//! Signed files a site hands over on media: a catalog export, an offline scan catalog. One
//! layout for all of them — a short text header, an armored OpenPGP detached signature made
//! with the site's archive key, then the payload, gzip-compressed JSON. The signature covers
//! the payload bytes exactly as stored, so nothing is decompressed before it is verified; the
//! header says what the file is and how long its parts are (so that a truncated file is told
//! from a tampered one), and its fields must agree with the signed payload (the caller
//! checks those it shows).
//!
//! ```text
//! KOSHIN-CATALOG-EXPORT 1
//! Site: CS1
//! Content-Version: 7
//! Signed-By: 0123…ABCD
//! Signature-Size: 228
//! Payload-Size: 1874
//!
//! -----BEGIN PGP SIGNATURE----- … (228 bytes) <gzip payload, 1874 bytes>
//! ```

use std::collections::BTreeMap;
use std::io::Read;

use crate::AptError;
use crate::signing::ArchiveKey;
use crate::verify::Keyring;

/// The largest payload accepted, compressed and not.
const MAX_PAYLOAD: u64 = 1 << 31;

/// Why a signed file is refused. Nothing it holds is used for any of them.
#[derive(Debug, thiserror::Error)]
pub enum SignedError {
    #[error("not a {what}: {reason}")]
    NotOurs { what: String, reason: String },
    #[error("truncated: {0}")]
    Truncated(String),
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("signed by a key this site does not trust: {0}")]
    UnknownKey(String),
    #[error("damaged: {0}")]
    Damaged(String),
}

/// A file's header fields (`Signed-By`, `Signature-Size` and `Payload-Size` among them).
pub type Fields = BTreeMap<String, String>;

/// Writes a signed file: `magic` (its first line), then `fields` in order, then what
/// `value` serializes to, signed with `key`.
pub fn write<T: serde::Serialize>(
    magic: &str,
    fields: &[(&str, String)],
    value: &T,
    key: &ArchiveKey,
) -> Result<Vec<u8>, AptError> {
    let io = |e: &dyn std::fmt::Display| AptError::Io {
        path: "the signed file".into(),
        reason: e.to_string(),
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    serde_json::to_writer(&mut gz, value).map_err(|e| io(&e))?;
    let payload = gz.finish().map_err(|e| io(&e))?;
    let signature = key.detached_sign(&payload)?;
    let mut header = format!("{magic}\n");
    for (k, v) in fields {
        header.push_str(&format!("{k}: {v}\n"));
    }
    header.push_str(&format!(
        "Signed-By: {}\nSignature-Size: {}\nPayload-Size: {}\n\n",
        key.fingerprint(),
        signature.len(),
        payload.len()
    ));
    let mut out = Vec::with_capacity(header.len() + signature.len() + payload.len());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(signature.as_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

fn size(fields: &Fields, name: &str, what: &str) -> Result<u64, SignedError> {
    let v = fields.get(name).ok_or_else(|| SignedError::NotOurs {
        what: what.into(),
        reason: format!("its header lacks {name}"),
    })?;
    v.parse::<u64>().map_err(|_| SignedError::NotOurs {
        what: what.into(),
        reason: format!("{name}: '{v}' is not a number"),
    })
}

/// Reads the header of a file that should start with `magic` (a `what`); returns its fields
/// and where the signature starts.
pub fn read_header(magic: &str, what: &str, bytes: &[u8]) -> Result<(Fields, usize), SignedError> {
    let not = |reason: String| SignedError::NotOurs {
        what: what.into(),
        reason,
    };
    let first = format!("{magic}\n");
    if !bytes.starts_with(first.as_bytes()) {
        if !bytes.is_empty() && first.as_bytes().starts_with(bytes) {
            return Err(SignedError::Truncated(format!(
                "the file ends after {} bytes, inside its header",
                bytes.len()
            )));
        }
        return Err(not(format!("it does not start with '{magic}'")));
    }
    let window = &bytes[..bytes.len().min(8192)];
    let Some(end) = window.windows(2).position(|w| w == b"\n\n") else {
        return Err(if bytes.len() < 8192 {
            SignedError::Truncated(format!(
                "the file ends after {} bytes, inside its header",
                bytes.len()
            ))
        } else {
            not("its header never ends".into())
        });
    };
    let text = std::str::from_utf8(&bytes[first.len()..end])
        .map_err(|_| not("its header is not text".into()))?;
    let mut fields = Fields::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(": ") else {
            return Err(not(format!("header line '{line}' is not 'Field: value'")));
        };
        fields.insert(k.to_string(), v.to_string());
    }
    let signature = size(&fields, "Signature-Size", what)?;
    let payload = size(&fields, "Payload-Size", what)?;
    if signature == 0 || payload == 0 || payload > MAX_PAYLOAD || signature > 1 << 20 {
        return Err(not("its header gives absurd sizes".into()));
    }
    Ok((fields, end + 2))
}

/// Verifies a signed file (a `what` starting with `magic`) against `keyring` and returns
/// its header fields and its payload, decompressed. `key_hint` says, when the signer's key
/// is unknown, where its public key is found.
pub fn verify(
    magic: &str,
    what: &str,
    bytes: &[u8],
    keyring: &Keyring,
    key_hint: &str,
) -> Result<(Fields, Vec<u8>), SignedError> {
    let (fields, start) = read_header(magic, what, bytes)?;
    let body = &bytes[start..];
    let signature_size = size(&fields, "Signature-Size", what)?;
    let want = signature_size + size(&fields, "Payload-Size", what)?;
    let have = body.len() as u64;
    if have < want {
        return Err(SignedError::Truncated(format!(
            "the file holds {have} of the {want} bytes its header announces"
        )));
    }
    if have > want {
        return Err(SignedError::Damaged(format!(
            "{} bytes follow the end of the {what}",
            have - want
        )));
    }
    let (signature, payload) = body.split_at(signature_size as usize);
    keyring
        .verify_detached(what, payload, signature)
        .map_err(|e| match e {
            AptError::UnknownKey { key, keyring, .. } => {
                SignedError::UnknownKey(format!("key {key} (trusted here: {keyring}); {key_hint}"))
            }
            AptError::BadSignature { reason, .. } => SignedError::BadSignature(format!(
                "{reason}: the file was changed after it was signed"
            )),
            other => SignedError::BadSignature(other.to_string()),
        })?;
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(payload)
        .take(MAX_PAYLOAD)
        .read_to_end(&mut json)
        .map_err(|e| SignedError::Damaged(format!("cannot decompress the {what}: {e}")))?;
    Ok((fields, json))
}

/// The armored public keys kept in `dir` (each `*.asc`, by name), as (path, text): the keys
/// a site or an agent was told to trust for signed files. A folder not there holds none.
pub fn trusted_keys(dir: &std::path::Path) -> Result<Vec<(String, String)>, AptError> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut paths: Vec<std::path::PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "asc"))
        .collect();
    paths.sort();
    let mut keys = Vec::with_capacity(paths.len());
    for p in paths {
        let text = std::fs::read_to_string(&p).map_err(|e| AptError::Io {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?;
        keys.push((p.display().to_string(), text));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_file_verifies_and_every_damage_is_named() {
        let key = ArchiveKey::generate("test").expect("key");
        let public = key.armored_public().expect("public");
        let keyring = Keyring::from_armored(&[("k".into(), public)]).expect("keyring");
        let file = write(
            "TEST-FILE 1",
            &[("Site", "CS1".into())],
            &serde_json::json!({"a": 1}),
            &key,
        )
        .expect("write");
        let (fields, json) =
            verify("TEST-FILE 1", "test file", &file, &keyring, "give --key").expect("verify");
        assert_eq!(fields.get("Site").map(String::as_str), Some("CS1"));
        assert_eq!(json, br#"{"a":1}"#);

        let err = |bytes: &[u8]| {
            verify("TEST-FILE 1", "test file", bytes, &keyring, "give --key")
                .expect_err("refused")
                .to_string()
        };
        assert!(err(b"hello").starts_with("not a test file"));
        assert!(err(&file[..file.len() - 3]).starts_with("truncated"));
        assert!(err(&file[..5]).starts_with("truncated"));
        let mut longer = file.clone();
        longer.push(0);
        assert!(err(&longer).starts_with("damaged"));
        let mut tampered = file.clone();
        let last = tampered.len() - 10;
        tampered[last] ^= 0x55;
        assert!(err(&tampered).starts_with("bad signature"));
        let other = ArchiveKey::generate("other").expect("key");
        let foreign = write("TEST-FILE 1", &[], &1, &other).expect("write");
        assert!(err(&foreign).starts_with("signed by a key"));
    }
}
