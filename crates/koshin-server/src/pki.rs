//! The site's certificate authority (C7, S10): `DATA/pki/`.
//!
//! `koshin site init` creates a CA of its own for every site — `ca.crt` (PEM, 0644: what
//! clients, curl and apt trust) and `ca.key` (0600) — and the site's server certificate
//! signed by it, `site.crt` / `site.key` (0600), for `localhost`, `127.0.0.1`, `::1`, the
//! machine's host name, the host of `public_url` and the names of `[tls] names`. A site
//! without a `pki/` folder (made before TLS) gets one the first time it is opened; an
//! existing CA is never replaced. The site certificate is re-issued (same CA) when it is
//! missing, does not match its key, does not verify for one of those names, or expires
//! within [`RENEW_DAYS`].
//!
//! The same CA issues server certificates for other hosts ([`SiteCa::issue_server`]:
//! distribution points, replica update points) and client certificates for clients and
//! child sites ([`SiteCa::issue_client`], [`SiteCa::sign_client_csr`]).
//!
//! Keys are ECDSA P-256 (rcgen over aws-lc-rs, the crypto provider rustls and reqwest use
//! here). Private keys never appear in `Debug` output, logs or error messages: they are
//! held in [`SecretPem`].

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData,
    SerialNumber,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use time::{Duration, OffsetDateTime};

use crate::config::SiteConfig;

/// The folder of the site's PKI, under the data folder.
pub const PKI_DIR: &str = "pki";
/// The CA certificate (PEM, 0644): what clients trust.
pub const CA_CERT_FILE: &str = "ca.crt";
/// The CA private key (PEM, 0600).
pub const CA_KEY_FILE: &str = "ca.key";
/// The site's server certificate (PEM), signed by the CA.
pub const SITE_CERT_FILE: &str = "site.crt";
/// The site's server private key (PEM, 0600).
pub const SITE_KEY_FILE: &str = "site.key";

/// How long the site CA is valid (20 years).
pub const CA_DAYS: i64 = 20 * 365;
/// How long server and client certificates are valid (825 days).
pub const LEAF_DAYS: i64 = 825;
/// The site certificate is re-issued when it expires within this many days.
pub const RENEW_DAYS: i64 = 30;

/// Why a PKI operation failed. No variant carries key material.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot write {path}: {reason}")]
    Write { path: String, reason: String },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    /// A request the CA will not sign (a bad name, client id or CSR).
    #[error("{0}")]
    Refused(String),
    #[error("cannot create a certificate: {0}")]
    Generate(String),
}

fn generate_err(e: rcgen::Error) -> PkiError {
    PkiError::Generate(e.to_string())
}

/// A private key in PEM form. Its `Debug` and `Display` never show the key.
#[derive(Clone)]
pub struct SecretPem(String);

impl SecretPem {
    /// Wraps a private key's PEM text.
    pub(crate) fn new(pem: String) -> SecretPem {
        SecretPem(pem)
    }

    /// The PEM text, to write to a 0600 file or hand to a TLS library.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretPem([private key elided])")
    }
}

/// A certificate the CA issued, with the private key it was issued for when the CA made
/// the key too.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    /// The certificate, PEM.
    pub certificate_pem: String,
    /// The private key, PEM (PKCS#8).
    pub private_key: SecretPem,
}

/// A site certificate authority: its certificate and the key it signs with.
pub struct SiteCa {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for SiteCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteCa")
            .field("certificate_pem_len", &self.cert_pem.len())
            .field("key", &"[private key elided]")
            .finish()
    }
}

fn serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    // A positive INTEGER, never starting with a zero byte.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::from_slice(&bytes)
}

fn params(common_name: &str, organization: &str, days: i64) -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn.push(DnType::OrganizationName, organization);
    p.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    // An hour of slack for clients whose clock runs a little behind.
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(days);
    p.serial_number = Some(serial());
    p.use_authority_key_identifier_extension = true;
    p
}

/// Whether `name` can stand in a certificate's subject alternative names: a DNS name or an
/// IP address.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty() && ServerName::try_from(name).is_ok()
}

/// A client id the CA puts in a client certificate's common name: 1 to 64 printable
/// characters.
fn check_client_id(client_id: &str) -> Result<(), PkiError> {
    if client_id.trim().is_empty()
        || client_id.chars().count() > 64
        || client_id.chars().any(char::is_control)
    {
        return Err(PkiError::Refused(
            "a client id for a certificate must be 1 to 64 printable characters".into(),
        ));
    }
    Ok(())
}

impl SiteCa {
    /// A new CA for site `site_code` (in memory; [`SitePki::ensure`] writes it) and its key.
    pub fn generate(site_code: &str) -> Result<(SiteCa, SecretPem), PkiError> {
        let key = KeyPair::generate().map_err(generate_err)?;
        let mut p = params(
            &format!("koshin site {site_code} CA"),
            &format!("koshin site {site_code}"),
            CA_DAYS,
        );
        p.use_authority_key_identifier_extension = false;
        // A CA for end-entity certificates only: it signs no intermediate CA.
        p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).map_err(generate_err)?;
        let key_pem = SecretPem(key.serialize_pem());
        let ca = SiteCa {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(p, key),
        };
        Ok((ca, key_pem))
    }

    /// A CA from its certificate and key (PEM). The key must be the certificate's.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<SiteCa, String> {
        let key = KeyPair::from_pem(key_pem).map_err(|_| "not a private key in PEM form")?;
        let cert_der = first_certificate(cert_pem)?;
        if spki_of(&cert_der)? != key.subject_public_key_info() {
            return Err("the CA key does not belong to the CA certificate".into());
        }
        let issuer = Issuer::from_ca_cert_der(&cert_der, key)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
        Ok(SiteCa {
            cert_pem: cert_pem.to_string(),
            cert_der,
            issuer,
        })
    }

    /// The CA certificate, PEM: what clients trust.
    pub fn certificate_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER.
    pub fn certificate_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Issues a server certificate (and its new key) for `names` — DNS names or IP
    /// addresses; the first is the common name. For the site itself, a distribution point
    /// or a replica update point on another host.
    pub fn issue_server(&self, names: &[String]) -> Result<IssuedCertificate, PkiError> {
        let mut unique: Vec<String> = Vec::new();
        for n in names {
            if !valid_name(n) {
                return Err(PkiError::Refused(format!(
                    "'{n}' is not a DNS name or an IP address"
                )));
            }
            if !unique.iter().any(|u| u.eq_ignore_ascii_case(n)) {
                unique.push(n.clone());
            }
        }
        let Some(first) = unique.first() else {
            return Err(PkiError::Refused(
                "a server certificate needs at least one name".into(),
            ));
        };
        let mut p = params(first, "koshin", LEAF_DAYS);
        p.subject_alt_names = CertificateParams::new(unique.clone())
            .map_err(generate_err)?
            .subject_alt_names;
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue_with_new_key(&p)
    }

    /// Issues a client certificate and its new key for `client_id` (a client or a child
    /// site), its common name.
    pub fn issue_client(&self, client_id: &str) -> Result<IssuedCertificate, PkiError> {
        check_client_id(client_id)?;
        let p = client_params(client_id);
        self.issue_with_new_key(&p)
    }

    /// Signs a client certificate for `client_id` over the public key of a PKCS#10 request
    /// (PEM), whose signature must verify. Only the request's key is used: the subject,
    /// names, usages and validity are the CA's choice (common name `client_id`, client
    /// authentication only).
    pub fn sign_client_csr(&self, csr_pem: &str, client_id: &str) -> Result<String, PkiError> {
        check_client_id(client_id)?;
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            PkiError::Refused(format!("not a valid certificate signing request: {e}"))
        })?;
        let p = client_params(client_id);
        let cert = p
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(generate_err)?;
        Ok(cert.pem())
    }

    /// Signs a child site's link certificate over the public key of a PKCS#10 request
    /// (PEM): common name "site CODE", organization [`SITE_ORGANIZATION`] (an agent's
    /// certificate has "koshin clients"), client authentication only.
    pub fn sign_site_csr(&self, csr_pem: &str, site_code: &str) -> Result<String, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| {
            PkiError::Refused(format!("not a valid certificate signing request: {e}"))
        })?;
        let mut p = params(&site_subject(site_code), SITE_ORGANIZATION, LEAF_DAYS);
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(generate_err)?;
        Ok(cert.pem())
    }

    fn issue_with_new_key(&self, p: &CertificateParams) -> Result<IssuedCertificate, PkiError> {
        let key = KeyPair::generate().map_err(generate_err)?;
        let cert = p.signed_by(&key, &self.issuer).map_err(generate_err)?;
        Ok(IssuedCertificate {
            certificate_pem: cert.pem(),
            private_key: SecretPem(key.serialize_pem()),
        })
    }
}

fn client_params(client_id: &str) -> CertificateParams {
    let mut p = params(client_id, "koshin clients", LEAF_DAYS);
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p
}

/// The organization of a site link certificate ([`SiteCa::sign_site_csr`]).
pub const SITE_ORGANIZATION: &str = "koshin sites";

/// The common name of site `code`'s link certificate.
pub fn site_subject(code: &str) -> String {
    format!("site {code}")
}

/// The site a link certificate (DER) names: `Some(code)` for common name "site CODE" with
/// organization [`SITE_ORGANIZATION`], `None` for any other certificate (an agent's).
pub fn certificate_site(der: &[u8]) -> Result<Option<String>, String> {
    let (_, x509) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let subject = x509.subject();
    let org = single(subject.iter_organization());
    let cn = single(subject.iter_common_name());
    Ok(match (org.as_deref(), cn) {
        (Some(SITE_ORGANIZATION), Some(cn)) => cn.strip_prefix("site ").map(str::to_string),
        _ => None,
    })
}

/// The one value of a name attribute, as text: `None` when there is none or more than one.
fn single<'a, 'b: 'a>(
    mut it: impl Iterator<Item = &'a x509_parser::x509::AttributeTypeAndValue<'b>>,
) -> Option<String> {
    let first = it.next().and_then(|a| a.as_str().ok().map(str::to_string));
    if it.next().is_some() { None } else { first }
}

/// The first certificate of a PEM text, DER.
pub(crate) fn first_certificate(pem: &str) -> Result<CertificateDer<'static>, String> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .next()
        .ok_or_else(|| "no certificate in it".to_string())?
        .map_err(|e| format!("not a PEM certificate: {e}"))
}

/// The DER SubjectPublicKeyInfo of a certificate.
fn spki_of(cert: &CertificateDer<'_>) -> Result<Vec<u8>, String> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(x509.tbs_certificate.subject_pki.raw.to_vec())
}

/// Seconds since the epoch at which a certificate expires.
fn not_after(cert: &CertificateDer<'_>) -> Result<i64, String> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok(x509.validity().not_after.timestamp())
}

/// The names the site certificate covers: `localhost`, `127.0.0.1`, `::1`, this machine's
/// host name, the host of `public_url`, the address `https_listen` binds (when it names one
/// address), and `[tls] names`. Names that cannot stand in a certificate are left out.
pub fn site_names(cfg: &SiteConfig) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    names.push(crate::config::hostname());
    if let Some(host) = url_host(&cfg.site.public_url) {
        names.push(host);
    }
    if let Ok(addr) = cfg.tls.https_listen.parse::<std::net::SocketAddr>()
        && !addr.ip().is_unspecified()
    {
        names.push(addr.ip().to_string());
    }
    names.extend(cfg.tls.names.iter().cloned());
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if valid_name(&n) && !out.iter().any(|o| o.eq_ignore_ascii_case(&n)) {
            out.push(n);
        }
    }
    out
}

/// The host of `scheme://host[:port][/path]` (brackets of an IPv6 literal removed).
fn url_host(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_string())
}

/// The site's PKI as opened from `DATA/pki/`: the CA (to sign with) and where the site's
/// certificate and key are.
pub struct SitePki {
    dir: PathBuf,
    ca: SiteCa,
}

impl fmt::Debug for SitePki {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SitePki")
            .field("dir", &self.dir)
            .field("ca", &self.ca)
            .finish()
    }
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|e| PkiError::Read {
        path: display(path),
        reason: e.to_string(),
    })
}

/// Writes `text` to `path` through a temporary file and a rename, with `mode`, synced.
pub(crate) fn write_atomic(path: &Path, text: &str, mode: u32) -> Result<(), PkiError> {
    let err = |e: std::io::Error| PkiError::Write {
        path: display(path),
        reason: e.to_string(),
    };
    let mut tmp_name = path.file_name().unwrap_or_default().to_os_string();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(text.as_bytes())
        .and_then(|_| f.sync_all())
        .map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Warns when a private key file can be read by others than its owner.
fn check_private_mode(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path)
            && m.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "a private key file is readable by others than its owner: chmod 600 it"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

impl SitePki {
    /// Opens the PKI of the site at `data`, creating what is missing: the CA when the
    /// folder holds none (never replacing one), the site certificate when it is missing or
    /// due ([`SitePki::site_certificate_due`]).
    pub fn ensure(data: &Path, cfg: &SiteConfig) -> Result<SitePki, PkiError> {
        let dir = data.join(PKI_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| PkiError::Write {
            path: display(&dir),
            reason: e.to_string(),
        })?;
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let ca = match (cert_path.exists(), key_path.exists()) {
            (true, true) => {
                check_private_mode(&key_path);
                SiteCa::from_pem(&read(&cert_path)?, &read(&key_path)?).map_err(|reason| {
                    PkiError::Invalid {
                        path: display(&dir),
                        reason,
                    }
                })?
            }
            (false, false) => {
                let (ca, key) = SiteCa::generate(&cfg.site.code)?;
                // The key first: a certificate without its key would be a CA that cannot
                // sign; ca.crt present marks a complete CA.
                write_atomic(&key_path, key.expose(), 0o600)?;
                write_atomic(&cert_path, ca.certificate_pem(), 0o644)?;
                tracing::info!(path = %cert_path.display(), "created the site certificate authority");
                ca
            }
            (has_cert, _) => {
                let (missing, path) = if has_cert {
                    (CA_KEY_FILE, &key_path)
                } else {
                    (CA_CERT_FILE, &cert_path)
                };
                return Err(PkiError::Invalid {
                    path: display(path),
                    reason: format!(
                        "{missing} is missing beside the other half of the site CA; restore it from a backup (koshin never replaces an existing CA)"
                    ),
                });
            }
        };
        let pki = SitePki { dir, ca };
        pki.renew_site_certificate(cfg)?;
        Ok(pki)
    }

    /// The CA.
    pub fn ca(&self) -> &SiteCa {
        &self.ca
    }

    /// The CA certificate, PEM (what the enrollment answer carries).
    pub fn ca_certificate_pem(&self) -> &str {
        self.ca.certificate_pem()
    }

    /// `DATA/pki/`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `DATA/pki/ca.crt`.
    pub fn ca_certificate_path(&self) -> PathBuf {
        self.dir.join(CA_CERT_FILE)
    }

    /// `DATA/pki/site.crt`.
    pub fn site_certificate_path(&self) -> PathBuf {
        self.dir.join(SITE_CERT_FILE)
    }

    /// `DATA/pki/site.key`.
    pub fn site_key_path(&self) -> PathBuf {
        self.dir.join(SITE_KEY_FILE)
    }

    /// The site certificate and key, as rustls takes them.
    pub fn site_certificate(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), PkiError> {
        use rustls::pki_types::pem::PemObject;
        let cert_path = self.site_certificate_path();
        let key_path = self.site_key_path();
        let cert_pem = read(&cert_path)?;
        let certs = vec![
            first_certificate(&cert_pem).map_err(|reason| PkiError::Invalid {
                path: display(&cert_path),
                reason,
            })?,
        ];
        let key = PrivateKeyDer::from_pem_slice(read(&key_path)?.as_bytes()).map_err(|_| {
            PkiError::Invalid {
                path: display(&key_path),
                reason: "not a private key in PEM form".into(),
            }
        })?;
        Ok((certs, key))
    }

    /// Why the site certificate must be (re-)issued, or `None` when it is current: it is
    /// missing, unreadable, not the key's, does not verify against the CA for one of the
    /// [`site_names`], or expires within [`RENEW_DAYS`].
    pub fn site_certificate_due(&self, cfg: &SiteConfig) -> Option<String> {
        let cert_path = self.site_certificate_path();
        let key_path = self.site_key_path();
        if !cert_path.exists() || !key_path.exists() {
            return Some("there is none".into());
        }
        check_private_mode(&key_path);
        let cert = match read(&cert_path)
            .map_err(|e| e.to_string())
            .and_then(|pem| first_certificate(&pem))
        {
            Ok(c) => c,
            Err(e) => return Some(format!("it cannot be read ({e})")),
        };
        match read(&key_path).map(|pem| KeyPair::from_pem(&pem)) {
            Ok(Ok(key)) => {
                if spki_of(&cert).ok() != Some(key.subject_public_key_info()) {
                    return Some("site.key does not belong to it".into());
                }
            }
            _ => return Some("site.key cannot be read".into()),
        }
        match not_after(&cert) {
            Ok(t) if t - OffsetDateTime::now_utc().unix_timestamp() < RENEW_DAYS * 86_400 => {
                return Some(format!("it expires within {RENEW_DAYS} days"));
            }
            Ok(_) => {}
            Err(e) => return Some(e),
        }
        let verifier = match self.server_verifier() {
            Ok(v) => v,
            Err(e) => return Some(e),
        };
        for name in site_names(cfg) {
            let Ok(server_name) = ServerName::try_from(name.as_str()) else {
                continue;
            };
            if let Err(e) =
                verifier.verify_server_cert(&cert, &[], &server_name, &[], UnixTime::now())
            {
                return Some(format!("it does not verify for {name}: {e}"));
            }
        }
        None
    }

    /// Issues a new site certificate when [`SitePki::site_certificate_due`] says so, and
    /// says whether it did.
    pub fn renew_site_certificate(&self, cfg: &SiteConfig) -> Result<bool, PkiError> {
        let Some(why) = self.site_certificate_due(cfg) else {
            return Ok(false);
        };
        let names = site_names(cfg);
        let issued = self.ca.issue_server(&names)?;
        // The key first, then the certificate: a start after a crash between the two finds
        // a key that does not match and issues again.
        write_atomic(&self.site_key_path(), issued.private_key.expose(), 0o600)?;
        write_atomic(
            &self.site_certificate_path(),
            &issued.certificate_pem,
            0o644,
        )?;
        tracing::info!(reason = %why, names = ?names, "issued the site certificate");
        Ok(true)
    }

    /// The CA as the only trust anchor, for checking certificates it issued.
    pub fn root_store(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        // Our own CA certificate, parsed when the CA was loaded: it is accepted.
        let _ = roots.add(self.ca.certificate_der().clone());
        roots
    }

    fn server_verifier(&self) -> Result<Arc<rustls::client::WebPkiServerVerifier>, String> {
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(self.root_store()),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .map_err(|e| format!("the CA certificate cannot be used: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{PolicySection, SiteSection, SyncSection, TlsSection, UpstreamSection};

    fn cfg(names: &[&str]) -> SiteConfig {
        SiteConfig {
            site: SiteSection {
                code: "CS1".into(),
                system: String::new(),
                listen: "127.0.0.1:8530".into(),
                public_url: "https://updates.example.org:8531/".into(),
                parent: String::new(),
                secondary: false,
            },
            upstream: UpstreamSection::default(),
            sync: SyncSection::default(),
            policy: PolicySection::default(),
            tls: TlsSection {
                names: names.iter().map(|s| s.to_string()).collect(),
                ..TlsSection::default()
            },
            content: Default::default(),
            collections: Default::default(),
        }
    }

    fn verifier(ca: &SiteCa) -> Arc<rustls::client::WebPkiServerVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.certificate_der().clone()).unwrap();
        rustls::client::WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .unwrap()
    }

    fn client_verifier(ca: &SiteCa) -> Arc<dyn rustls::server::danger::ClientCertVerifier> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.certificate_der().clone()).unwrap();
        rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .unwrap()
    }

    fn der(pem: &str) -> CertificateDer<'static> {
        first_certificate(pem).unwrap()
    }

    fn verifies_for(ca: &SiteCa, cert_pem: &str, name: &str) -> bool {
        verifier(ca)
            .verify_server_cert(
                &der(cert_pem),
                &[],
                &ServerName::try_from(name).unwrap(),
                &[],
                UnixTime::now(),
            )
            .is_ok()
    }

    fn client_accepted(ca: &SiteCa, cert_pem: &str) -> bool {
        client_verifier(ca)
            .verify_client_cert(&der(cert_pem), &[], UnixTime::now())
            .is_ok()
    }

    #[test]
    fn a_server_certificate_verifies_for_its_names_only() {
        let (ca, _) = SiteCa::generate("CS1").unwrap();
        let issued = ca
            .issue_server(&["dp1.example.org".into(), "10.1.2.3".into(), "::1".into()])
            .unwrap();
        for name in ["dp1.example.org", "10.1.2.3", "::1"] {
            assert!(verifies_for(&ca, &issued.certificate_pem, name), "{name}");
        }
        assert!(!verifies_for(
            &ca,
            &issued.certificate_pem,
            "dp2.example.org"
        ));
        // Another CA's clients do not trust it.
        let (other, _) = SiteCa::generate("CS2").unwrap();
        assert!(!verifies_for(
            &other,
            &issued.certificate_pem,
            "dp1.example.org"
        ));
        // A server certificate is no client certificate.
        assert!(!client_accepted(&ca, &issued.certificate_pem));
        assert!(ca.issue_server(&[]).is_err());
        assert!(ca.issue_server(&["not a name".into()]).is_err());
    }

    #[test]
    fn client_certificates_from_the_ca_or_from_a_request() {
        let (ca, _) = SiteCa::generate("CS1").unwrap();
        let id = "6f1c2a7e-0d7b-4c55-9a55-3f1c7d0e9b10";
        let issued = ca.issue_client(id).unwrap();
        assert!(client_accepted(&ca, &issued.certificate_pem));
        assert!(KeyPair::from_pem(issued.private_key.expose()).is_ok());
        let issued_der = der(&issued.certificate_pem);
        let (_, x509) = x509_parser::parse_x509_certificate(&issued_der).unwrap();
        let cn: Vec<_> = x509
            .subject()
            .iter_common_name()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(cn, [id]);

        // A request: the client keeps its key; the CA decides the subject.
        let key = KeyPair::generate().unwrap();
        let mut req = CertificateParams::new(vec!["evil.example.org".to_string()]).unwrap();
        req.distinguished_name = DistinguishedName::new();
        req.distinguished_name
            .push(DnType::CommonName, "someone-else");
        let csr = req.serialize_request(&key).unwrap().pem().unwrap();
        let cert = ca.sign_client_csr(&csr, id).unwrap();
        assert!(client_accepted(&ca, &cert));
        let cert_der = der(&cert);
        let (_, x509) = x509_parser::parse_x509_certificate(&cert_der).unwrap();
        assert_eq!(
            x509.tbs_certificate.subject_pki.raw,
            key.subject_public_key_info().as_slice()
        );
        let cn: Vec<_> = x509
            .subject()
            .iter_common_name()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(cn, [id]);
        assert!(x509.subject_alternative_name().unwrap().is_none());

        // Another CA's client certificate is refused.
        let (other, _) = SiteCa::generate("CS2").unwrap();
        assert!(!client_accepted(&other, &cert));
        // Bad input is refused, not signed.
        assert!(ca.sign_client_csr("garbage", id).is_err());
        let mut bad = csr.clone().into_bytes();
        let mid = bad.len() / 2;
        bad[mid] = if bad[mid] == b'A' { b'B' } else { b'A' };
        assert!(
            ca.sign_client_csr(&String::from_utf8(bad).unwrap(), id)
                .is_err()
        );
        assert!(ca.issue_client("").is_err());
        assert!(ca.issue_client("a\nb").is_err());
        assert!(ca.issue_client(&"x".repeat(65)).is_err());
    }

    #[test]
    fn keys_stay_out_of_debug_output() {
        let (ca, key) = SiteCa::generate("CS1").unwrap();
        let issued = ca.issue_client("c1").unwrap();
        let secret_line = key.expose().lines().nth(1).unwrap().to_string();
        for text in [format!("{ca:?}"), format!("{key:?}"), format!("{issued:?}")] {
            assert!(!text.contains(&secret_line), "{text}");
            assert!(!text.contains("PRIVATE KEY"), "{text}");
        }
    }

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn ensure_creates_once_and_never_replaces_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let c = cfg(&["koshin.example.org"]);
        let pki = SitePki::ensure(dir.path(), &c).unwrap();
        let ca_pem = pki.ca_certificate_pem().to_string();
        let p = dir.path().join(PKI_DIR);
        #[cfg(unix)]
        {
            assert_eq!(mode(&p.join(CA_KEY_FILE)), 0o600);
            assert_eq!(mode(&p.join(SITE_KEY_FILE)), 0o600);
            assert_eq!(mode(&p.join(CA_CERT_FILE)), 0o644);
        }
        let site_pem = std::fs::read_to_string(p.join(SITE_CERT_FILE)).unwrap();
        for name in [
            "localhost",
            "127.0.0.1",
            "::1",
            "koshin.example.org",
            "updates.example.org",
        ] {
            assert!(verifies_for(pki.ca(), &site_pem, name), "{name}");
        }
        assert!(pki.site_certificate_due(&c).is_none());
        pki.site_certificate().unwrap();

        // Opened again: the same CA and the same site certificate.
        let again = SitePki::ensure(dir.path(), &c).unwrap();
        assert_eq!(again.ca_certificate_pem(), ca_pem);
        assert_eq!(
            std::fs::read_to_string(p.join(SITE_CERT_FILE)).unwrap(),
            site_pem
        );

        // A new name: a new site certificate from the same CA.
        let c2 = cfg(&["koshin.example.org", "10.9.8.7"]);
        assert!(again.site_certificate_due(&c2).is_some());
        let third = SitePki::ensure(dir.path(), &c2).unwrap();
        assert_eq!(third.ca_certificate_pem(), ca_pem);
        let renewed = std::fs::read_to_string(p.join(SITE_CERT_FILE)).unwrap();
        assert_ne!(renewed, site_pem);
        assert!(verifies_for(third.ca(), &renewed, "10.9.8.7"));

        // A lost site key: issued again.
        std::fs::remove_file(p.join(SITE_KEY_FILE)).unwrap();
        SitePki::ensure(dir.path(), &c2).unwrap();
        assert!(third.site_certificate_due(&c2).is_none());

        // A lost CA key: an error naming the file, and the CA certificate is kept.
        std::fs::remove_file(p.join(CA_KEY_FILE)).unwrap();
        let err = SitePki::ensure(dir.path(), &c2).unwrap_err().to_string();
        assert!(err.contains(CA_KEY_FILE), "{err}");
        assert_eq!(
            std::fs::read_to_string(p.join(CA_CERT_FILE)).unwrap(),
            ca_pem
        );
    }

    #[test]
    fn site_names_and_url_hosts() {
        let names = site_names(&cfg(&["b.example.org", "B.example.org"]));
        assert_eq!(&names[..3], ["localhost", "127.0.0.1", "::1"]);
        assert!(names.contains(&"updates.example.org".to_string()));
        assert_eq!(
            names
                .iter()
                .filter(|n| n.as_str() == "b.example.org")
                .count(),
            1
        );
        assert_eq!(url_host("https://[::1]:8531/x"), Some("::1".into()));
        assert_eq!(url_host("http://h"), Some("h".into()));
        assert_eq!(url_host(""), None);
        assert!(valid_name("10.0.0.1") && valid_name("a-b.example") && !valid_name("a b"));
    }
}
