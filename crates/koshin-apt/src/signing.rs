//! The OpenPGP key a distribution point signs its APT repository with: `InRelease`
//! (cleartext-signed `Release`) and `Release.gpg` (detached), which a stock `apt-get`
//! checks against the site's public key given as `signed-by=`.
//!
//! Keys are made with rpgp, not `gpg`, so that a server needs no GnuPG home or agent. The
//! key is a v4 Ed25519 key (the "legacy" EdDSA encoding, algorithm 22): that is what GnuPG
//! 2.2 — the `gpgv` that apt runs on Debian 12 and Ubuntu 22.04 — verifies; the newer
//! RFC 9580 Ed25519 (algorithm 27) and v6 keys it does not know. One primary key both
//! certifies and signs, with no subkeys and no expiry, so the public keyring apt is given
//! is as small and plain as possible.

use pgp::composed::{
    ArmorOptions, CleartextSignedMessage, Deserializable, DetachedSignature, KeyType,
    SecretKeyParamsBuilder, SignedPublicKey, SignedSecretKey,
};
use pgp::crypto::hash::HashAlgorithm;
use pgp::ser::Serialize;
use pgp::types::{KeyDetails, Password, SigningKey};
use rand08::rngs::OsRng;

use crate::AptError;

/// A secret archive signing key. Its `Debug` shows the fingerprint and user ids only.
#[derive(Clone)]
pub struct ArchiveKey {
    key: SignedSecretKey,
    fingerprint: String,
}

impl std::fmt::Debug for ArchiveKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveKey")
            .field("fingerprint", &self.fingerprint)
            .field("user_ids", &self.user_ids())
            .finish_non_exhaustive()
    }
}

fn key_error(what: &str) -> impl Fn(pgp::errors::Error) -> AptError + '_ {
    move |e| AptError::SigningKey {
        reason: format!("{what}: {e}"),
    }
}

impl ArchiveKey {
    /// Makes a new Ed25519 signing key with the user id `user_id`
    /// (e.g. `"Example site archive key <apt@example.org>"`).
    pub fn generate(user_id: &str) -> Result<ArchiveKey, AptError> {
        if user_id.trim().is_empty() || user_id.contains(['\n', '\r']) {
            return Err(AptError::SigningKey {
                reason: format!("invalid user id {user_id:?}"),
            });
        }
        let params = SecretKeyParamsBuilder::default()
            .key_type(KeyType::Ed25519Legacy)
            .can_certify(true)
            .can_sign(true)
            .primary_user_id(user_id.to_string())
            .preferred_hash_algorithms(
                [HashAlgorithm::Sha512, HashAlgorithm::Sha256]
                    .into_iter()
                    .collect(),
            )
            .build()
            .map_err(|e| AptError::SigningKey {
                reason: format!("cannot describe the key: {e}"),
            })?;
        let key = params
            .generate(OsRng)
            .map_err(key_error("cannot generate the key"))?;
        Self::from_key(key)
    }

    /// Reads a key saved with [`ArchiveKey::armored_secret`] (or exported without a
    /// passphrase by `gpg --export-secret-keys --armor`). The primary key signs.
    pub fn from_armored_secret(text: &str) -> Result<ArchiveKey, AptError> {
        let (key, _) =
            SignedSecretKey::from_string(text).map_err(key_error("cannot read the secret key"))?;
        key.verify_bindings()
            .map_err(key_error("the key's self-signatures do not verify"))?;
        if key.primary_key.secret_params().is_encrypted() {
            return Err(AptError::SigningKey {
                reason: "the secret key is protected by a passphrase".into(),
            });
        }
        Self::from_key(key)
    }

    fn from_key(key: SignedSecretKey) -> Result<ArchiveKey, AptError> {
        let fingerprint = hex::encode_upper(key.fingerprint().as_bytes());
        let archive_key = ArchiveKey { key, fingerprint };
        // Prove the key can sign now, rather than at the first publish.
        archive_key.detached_sign(b"koshin archive key self-test")?;
        Ok(archive_key)
    }

    /// The secret key, ASCII-armored, to store (unencrypted: protect the file).
    pub fn armored_secret(&self) -> Result<String, AptError> {
        self.key
            .to_armored_string(ArmorOptions::default())
            .map_err(key_error("cannot armor the secret key"))
    }

    fn public_key(&self) -> SignedPublicKey {
        self.key.to_public_key()
    }

    /// The public key, ASCII-armored (an `.asc` keyring).
    pub fn armored_public(&self) -> Result<String, AptError> {
        self.public_key()
            .to_armored_string(ArmorOptions::default())
            .map_err(key_error("cannot armor the public key"))
    }

    /// The public key as a binary transferable public key: what apt reads from
    /// `signed-by=/path/key.gpg` (and `/usr/share/keyrings/*.gpg`).
    pub fn public_keyring(&self) -> Result<Vec<u8>, AptError> {
        self.public_key()
            .to_bytes()
            .map_err(key_error("cannot serialize the public key"))
    }

    /// The primary key's fingerprint, upper-case hex (40 digits).
    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// The key's user ids.
    pub fn user_ids(&self) -> Vec<String> {
        self.key
            .details
            .users
            .iter()
            .map(|u| String::from_utf8_lossy(u.id.id()).into_owned())
            .collect()
    }

    /// Cleartext-signs `text` (an `InRelease` from a `Release`).
    ///
    /// As `gpg --clearsign` does, the final line break is not part of the signed text; and
    /// since OpenPGP verifiers ignore trailing blanks of lines, those are removed before
    /// signing so that what is shown is exactly what was signed.
    pub fn clearsign(&self, text: &str) -> Result<String, AptError> {
        let mut normalized = String::with_capacity(text.len());
        for line in text.lines() {
            normalized.push_str(line.trim_end_matches([' ', '\t']));
            normalized.push('\n');
        }
        let body = normalized.strip_suffix('\n').unwrap_or(&normalized);
        let message =
            CleartextSignedMessage::sign(OsRng, body, &self.key.primary_key, &Password::empty())
                .map_err(key_error("cannot sign"))?;
        message
            .to_armored_string(ArmorOptions::default())
            .map_err(key_error("cannot armor the signed message"))
    }

    /// An ASCII-armored detached signature of `data` (a `Release.gpg`).
    pub fn detached_sign(&self, data: &[u8]) -> Result<String, AptError> {
        let signature = DetachedSignature::sign_binary_data(
            OsRng,
            &self.key.primary_key,
            &Password::empty(),
            self.key.primary_key.hash_alg(),
            data,
        )
        .map_err(key_error("cannot sign"))?;
        signature
            .to_armored_string(ArmorOptions::default())
            .map_err(key_error("cannot armor the signature"))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::verify::Keyring;

    fn keyring_file(dir: &std::path::Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).expect("write keyring");
        path
    }

    const RELEASE: &str = "Origin: koshin\nSuite: stable\n-dash: escaped\nDescription: trailing blanks  \nSHA256:\n 00 1 main/binary-amd64/Packages\n";

    #[test]
    fn generated_key_signs_what_our_verifier_accepts() {
        let key = ArchiveKey::generate("koshin test <apt@koshin.invalid>").expect("generate");
        let fp = key.fingerprint();
        assert_eq!(fp.len(), 40, "{fp}");
        assert!(
            fp.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        );
        assert_eq!(key.user_ids(), vec!["koshin test <apt@koshin.invalid>"]);

        let dir = tempfile::tempdir().expect("tempdir");
        let binary = keyring_file(dir.path(), "k.gpg", &key.public_keyring().expect("keyring"));
        let armored = keyring_file(
            dir.path(),
            "k.asc",
            key.armored_public().expect("armored").as_bytes(),
        );
        for path in [binary, armored] {
            let keyring = Keyring::load(&[path]).expect("load keyring");
            let inrelease = key.clearsign(RELEASE).expect("clearsign");
            assert!(inrelease.starts_with("-----BEGIN PGP SIGNED MESSAGE-----\n"));
            assert!(inrelease.contains("\n- -dash: escaped\n"), "{inrelease}");
            let body = keyring
                .verify_inrelease("InRelease", &inrelease)
                .expect("verify InRelease");
            assert_eq!(body, RELEASE.replace("blanks  \n", "blanks\n"));

            let sig = key.detached_sign(RELEASE.as_bytes()).expect("sign");
            assert!(sig.starts_with("-----BEGIN PGP SIGNATURE-----"), "{sig}");
            keyring
                .verify_detached("Release.gpg", RELEASE.as_bytes(), sig.as_bytes())
                .expect("verify Release.gpg");
            let err = keyring
                .verify_detached("Release.gpg", b"Suite: other\n", sig.as_bytes())
                .expect_err("wrong text");
            assert!(matches!(err, AptError::BadSignature { .. }), "{err}");
        }
    }

    #[test]
    fn another_key_is_unknown() {
        let key = ArchiveKey::generate("one").expect("generate");
        let other = ArchiveKey::generate("two").expect("generate");
        assert_ne!(key.fingerprint(), other.fingerprint());
        let dir = tempfile::tempdir().expect("tempdir");
        let path = keyring_file(dir.path(), "k.gpg", &key.public_keyring().expect("keyring"));
        let keyring = Keyring::load(&[path]).expect("load");
        let err = keyring
            .verify_inrelease("InRelease", &other.clearsign(RELEASE).expect("sign"))
            .expect_err("other key");
        assert!(matches!(err, AptError::UnknownKey { .. }), "{err}");
    }

    #[test]
    fn secret_key_round_trips_and_debug_hides_it() {
        let key = ArchiveKey::generate("round trip").expect("generate");
        let armored = key.armored_secret().expect("armor");
        assert!(armored.starts_with("-----BEGIN PGP PRIVATE KEY BLOCK-----"));
        let back = ArchiveKey::from_armored_secret(&armored).expect("read back");
        assert_eq!(back.fingerprint(), key.fingerprint());
        assert_eq!(back.public_keyring().ok(), key.public_keyring().ok());

        // A signature by the reloaded key verifies with the original public key.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = keyring_file(dir.path(), "k.gpg", &key.public_keyring().expect("keyring"));
        Keyring::load(&[path])
            .expect("load")
            .verify_inrelease("InRelease", &back.clearsign(RELEASE).expect("sign"))
            .expect("verify");

        let debug = format!("{key:?}");
        assert!(debug.contains(&key.fingerprint()), "{debug}");
        assert!(!debug.contains("PRIVATE"), "{debug}");
        assert!(!debug.to_lowercase().contains("secret"), "{debug}");
        assert!(debug.len() < 200, "{debug}");
    }

    #[test]
    fn refuses_unusable_secret_keys() {
        for text in [
            "",
            "not a key",
            "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nAAAA\n-----END PGP PRIVATE KEY BLOCK-----\n",
        ] {
            let err = ArchiveKey::from_armored_secret(text).expect_err("garbage");
            assert!(matches!(err, AptError::SigningKey { .. }), "{err}");
        }
        // A public key is not a secret key.
        let key = ArchiveKey::generate("public only").expect("generate");
        let public = key.armored_public().expect("armor");
        assert!(ArchiveKey::from_armored_secret(&public).is_err());

        // A passphrase-protected key cannot sign unattended.
        let mut locked = key.key.clone();
        locked
            .primary_key
            .set_password(OsRng, &Password::from("hunter2"))
            .expect("set password");
        let text = locked
            .to_armored_string(ArmorOptions::default())
            .expect("armor");
        let err = ArchiveKey::from_armored_secret(&text).expect_err("locked");
        assert!(err.to_string().contains("passphrase"), "{err}");

        assert!(ArchiveKey::generate("").is_err());
        assert!(ArchiveKey::generate("two\nlines").is_err());
    }
}
