//! OpenPGP verification of a suite's `InRelease` (cleartext-signed) or `Release` +
//! `Release.gpg` (detached), against keyring files — binary (`.gpg`) or armored (`.asc`).

use std::path::{Path, PathBuf};

use pgp::composed::{CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey};
use pgp::types::KeyDetails;

use crate::AptError;

/// Where APT keeps the keys it trusts for every source that names none.
pub const SYSTEM_KEYRING_DIRS: [&str; 2] = ["/etc/apt/trusted.gpg.d", "/usr/share/keyrings"];

/// A set of public keys.
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
    names: Vec<PathBuf>,
}

impl Keyring {
    /// Loads keyring files; each may hold several keys, binary or armored.
    pub fn load(paths: &[PathBuf]) -> Result<Keyring, AptError> {
        let mut keys = Vec::new();
        for p in paths {
            keys.extend(load_file(p)?);
        }
        Ok(Keyring {
            keys,
            names: paths.to_vec(),
        })
    }

    /// The system's trusted keys: `/etc/apt/trusted.gpg`, `/etc/apt/trusted.gpg.d/*`, and
    /// (as Debian's `signed-by`-less sources rely on the archive keyring) `/usr/share/keyrings/*`.
    pub fn system() -> Result<Keyring, AptError> {
        let mut paths = Vec::new();
        let legacy = Path::new("/etc/apt/trusted.gpg");
        if legacy.exists() {
            paths.push(legacy.to_path_buf());
        }
        for dir in SYSTEM_KEYRING_DIRS {
            if let Ok(rd) = std::fs::read_dir(dir) {
                let mut v: Vec<PathBuf> = rd
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| {
                        let n = p.to_string_lossy();
                        (n.ends_with(".gpg") || n.ends_with(".asc")) && !n.contains("removed-keys")
                    })
                    .collect();
                v.sort();
                paths.extend(v);
            }
        }
        Self::load(&paths)
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn describe(&self) -> String {
        if self.names.is_empty() {
            "the system keyrings".to_string()
        } else {
            self.names
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        }
    }

    /// Verifies a detached or cleartext signature through `check` against every key and
    /// subkey; an error says whether the key was unknown or the signature bad.
    fn verify_with(
        &self,
        url: &str,
        issuers: Vec<String>,
        check: &dyn VerifyDyn,
    ) -> Result<(), AptError> {
        let mut known = false;
        for key in &self.keys {
            let matches = |fp: String, id: String| {
                issuers.is_empty() || issuers.iter().any(|i| *i == fp || *i == id)
            };
            if matches(
                hex::encode(key.fingerprint().as_bytes()),
                hex::encode(key.legacy_key_id().as_ref()),
            ) {
                known = true;
                if check.verify_primary(key) {
                    return usable(url, key, None);
                }
            }
            for sub in &key.public_subkeys {
                if matches(
                    hex::encode(sub.fingerprint().as_bytes()),
                    hex::encode(sub.legacy_key_id().as_ref()),
                ) {
                    known = true;
                    if check.verify_sub(sub) {
                        return usable(url, key, Some(sub));
                    }
                }
            }
        }
        if known {
            Err(AptError::BadSignature {
                url: url.to_string(),
                reason: "the signature does not match the signed text".into(),
            })
        } else {
            Err(AptError::UnknownKey {
                url: url.to_string(),
                key: issuers
                    .first()
                    .cloned()
                    .unwrap_or_else(|| "(none given)".into())
                    .to_uppercase(),
                keyring: self.describe(),
            })
        }
    }

    /// Verifies a cleartext-signed `InRelease` and returns the signed text.
    pub fn verify_inrelease(&self, url: &str, text: &str) -> Result<String, AptError> {
        if !text
            .trim_start()
            .starts_with("-----BEGIN PGP SIGNED MESSAGE-----")
        {
            return Err(AptError::NotSigned {
                url: url.to_string(),
            });
        }
        let (msg, _) =
            CleartextSignedMessage::from_string(text).map_err(|e| AptError::BadSignature {
                url: url.to_string(),
                reason: format!("cannot read the signed message: {e}"),
            })?;
        let issuers: Vec<String> = msg.signatures().iter().flat_map(issuers_of).collect();
        self.verify_with(url, issuers, &CleartextCheck(&msg))?;
        // The text as signed, with the dash-escaping removed (the Release content).
        let mut body = msg.signed_text().replace("\r\n", "\n");
        if !body.ends_with('\n') {
            body.push('\n');
        }
        Ok(body)
    }

    /// Verifies `Release` against its detached `Release.gpg`.
    pub fn verify_detached(
        &self,
        url: &str,
        release: &[u8],
        signature: &[u8],
    ) -> Result<(), AptError> {
        let sig = if signature.starts_with(b"-----BEGIN") {
            let text = std::str::from_utf8(signature).map_err(|_| AptError::BadSignature {
                url: url.to_string(),
                reason: "Release.gpg is not text".into(),
            })?;
            DetachedSignature::from_string(text).map(|(s, _)| s)
        } else {
            DetachedSignature::from_bytes(signature)
        }
        .map_err(|e| AptError::BadSignature {
            url: url.to_string(),
            reason: format!("cannot read Release.gpg: {e}"),
        })?;
        let issuers = issuers_of(&sig.signature);
        self.verify_with(url, issuers, &DetachedCheck(&sig, release))
    }
}

/// Whether `sig` was made by `key` itself (a self-signature).
fn by_key(sig: &pgp::packet::Signature, key: &SignedPublicKey) -> bool {
    let fp = hex::encode(key.fingerprint().as_bytes());
    let id = hex::encode(key.legacy_key_id().as_ref());
    let issuers = issuers_of(sig);
    issuers.is_empty() || issuers.iter().any(|i| *i == fp || *i == id)
}

/// When a key made at `created` expires, by its newest self-signature that says (None: never).
fn expiry<'a>(created: u32, sigs: impl Iterator<Item = &'a pgp::packet::Signature>) -> Option<u64> {
    let newest = sigs
        .filter_map(|s| s.created().map(|c| (c.as_secs(), s)))
        .max_by_key(|(c, _)| *c)?;
    let d = newest.1.key_expiration_time()?;
    let secs = u64::from(d.as_secs());
    (secs != 0).then(|| u64::from(created) + secs)
}

fn date(secs: u64) -> String {
    jiff::Timestamp::from_second(secs as i64)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_else(|_| secs.to_string())
}

/// A signature that verifies counts only if its key is not revoked and not expired now, as
/// apt's REVKEYSIG and EXPKEYSIG say.
fn usable(
    url: &str,
    key: &SignedPublicKey,
    sub: Option<&pgp::composed::SignedPublicSubKey>,
) -> Result<(), AptError> {
    use pgp::packet::SignatureType;
    let name = hex::encode(key.fingerprint().as_bytes()).to_uppercase();
    let refuse = |reason: String| {
        Err(AptError::BadSignature {
            url: url.to_string(),
            reason,
        })
    };
    if key
        .details
        .revocation_signatures
        .iter()
        .any(|s| by_key(s, key))
    {
        return refuse(format!("the signing key {name} is revoked"));
    }
    let now = jiff::Timestamp::now().as_second().max(0) as u64;
    let self_sigs = key
        .details
        .users
        .iter()
        .flat_map(|u| u.signatures.iter())
        .chain(key.details.direct_signatures.iter())
        .filter(|s| by_key(s, key));
    if let Some(at) = expiry(key.primary_key.created_at().as_secs(), self_sigs)
        && at <= now
    {
        return refuse(format!("the signing key {name} expired on {}", date(at)));
    }
    if let Some(sub) = sub {
        if sub
            .signatures
            .iter()
            .any(|s| s.typ() == Some(SignatureType::SubkeyRevocation))
        {
            return refuse(format!("the signing subkey of {name} is revoked"));
        }
        let binding = sub
            .signatures
            .iter()
            .filter(|s| s.typ() == Some(SignatureType::SubkeyBinding));
        if let Some(at) = expiry(sub.key.created_at().as_secs(), binding)
            && at <= now
        {
            return refuse(format!(
                "the signing subkey of {name} expired on {}",
                date(at)
            ));
        }
    }
    Ok(())
}

fn issuers_of(sig: &pgp::packet::Signature) -> Vec<String> {
    let mut v: Vec<String> = sig
        .issuer_fingerprint()
        .into_iter()
        .map(|f| hex::encode(f.as_bytes()))
        .collect();
    v.extend(
        sig.issuer_key_id()
            .into_iter()
            .map(|k| hex::encode(k.as_ref())),
    );
    v
}

/// A signature check that can run against a primary key or a subkey.
trait VerifyDyn {
    fn verify_primary(&self, key: &SignedPublicKey) -> bool;
    fn verify_sub(&self, key: &pgp::composed::SignedPublicSubKey) -> bool;
}

struct CleartextCheck<'a>(&'a CleartextSignedMessage);
impl VerifyDyn for CleartextCheck<'_> {
    fn verify_primary(&self, key: &SignedPublicKey) -> bool {
        self.0.verify(key).is_ok()
    }
    fn verify_sub(&self, key: &pgp::composed::SignedPublicSubKey) -> bool {
        self.0.verify(key).is_ok()
    }
}

struct DetachedCheck<'a>(&'a DetachedSignature, &'a [u8]);
impl VerifyDyn for DetachedCheck<'_> {
    fn verify_primary(&self, key: &SignedPublicKey) -> bool {
        self.0.verify(key, self.1).is_ok()
    }
    fn verify_sub(&self, key: &pgp::composed::SignedPublicSubKey) -> bool {
        self.0.verify(key, self.1).is_ok()
    }
}

impl Keyring {
    /// Armored public keys held in memory, each named (a file, "the site's archive key")
    /// for errors.
    pub fn from_armored(keys: &[(String, String)]) -> Result<Keyring, AptError> {
        let mut out = Vec::new();
        let mut names = Vec::new();
        for (name, text) in keys {
            out.extend(parse_armored(name, text)?);
            names.push(PathBuf::from(name));
        }
        Ok(Keyring { keys: out, names })
    }

    /// Each key's fingerprint (upper-case hex) and user ids.
    pub fn key_summaries(&self) -> Vec<(String, Vec<String>)> {
        self.keys
            .iter()
            .map(|k| {
                (
                    hex::encode_upper(k.fingerprint().as_bytes()),
                    k.details
                        .users
                        .iter()
                        .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
                        .collect(),
                )
            })
            .collect()
    }
}

/// The public keys of one armored text; none is an error.
pub fn parse_armored(name: &str, text: &str) -> Result<Vec<SignedPublicKey>, AptError> {
    let err = |reason: String| AptError::Keyring {
        path: name.to_string(),
        reason,
    };
    if !text
        .trim_start()
        .starts_with("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    {
        return Err(err("not an armored OpenPGP public key".into()));
    }
    let (iter, _) = SignedPublicKey::from_string_many(text).map_err(|e| err(e.to_string()))?;
    let mut keys = Vec::new();
    for k in iter {
        keys.push(k.map_err(|e| err(e.to_string()))?);
    }
    if keys.is_empty() {
        return Err(err("no public keys found".into()));
    }
    Ok(keys)
}

fn load_file(path: &Path) -> Result<Vec<SignedPublicKey>, AptError> {
    let err = |reason: String| AptError::Keyring {
        path: path.display().to_string(),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let mut keys = Vec::new();
    if bytes.starts_with(b"-----BEGIN") {
        let text =
            String::from_utf8(bytes).map_err(|_| err("armored keyring is not text".into()))?;
        let (iter, _) = SignedPublicKey::from_string_many(&text).map_err(|e| err(e.to_string()))?;
        for k in iter {
            keys.push(k.map_err(|e| err(e.to_string()))?);
        }
    } else {
        let iter = SignedPublicKey::from_bytes_many(&bytes[..]).map_err(|e| err(e.to_string()))?;
        for k in iter {
            match k {
                Ok(k) => keys.push(k),
                // gpg keyrings may carry trust packets or keys rpgp cannot read; skip those.
                Err(e) => {
                    tracing::debug!(keyring = %path.display(), error = %e, "skipped an unreadable key")
                }
            }
        }
    }
    if keys.is_empty() {
        return Err(err("no public keys found".into()));
    }
    Ok(keys)
}
