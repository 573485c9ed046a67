//! Linked sites over TLS: the certificates of the hierarchy's links, `DATA/pki/links/<CODE>/`.
//!
//! A child that joins its parent over `https://` makes a key and a certificate request; the
//! parent's CA signs a link certificate for "site CODE" (organization
//! [`crate::pki::SITE_ORGANIZATION`], never an agent's "koshin clients"). The child keeps,
//! under `links/<PARENT>/`, its key ([`CLIENT_KEY`], 0600), that certificate
//! ([`CLIENT_CERT`]) and the parent's CA ([`PEER_CA`]); the parent keeps, under
//! `links/<CHILD>/`, the child's CA ([`PEER_CA`]) and the certificate it issued
//! ([`ISSUED_CERT`]), which marks the link certificate-bound.
//!
//! Every call to a linked site goes through [`client`]: for an `https://` link it trusts
//! that site's CA only (never the system roots) and presents this site's link certificate
//! when it has one. A request from a linked site that came over HTTPS is checked with
//! [`check_peer`].

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::pki::{self, SecretPem};

/// The folder of the links' certificates, under `DATA/pki/`.
pub const LINKS_DIR: &str = "links";
/// The linked site's CA certificate (PEM): the parent's at a child, a child's at the parent.
pub const PEER_CA: &str = "ca.crt";
/// At a child: its link certificate, signed by the parent's CA.
pub const CLIENT_CERT: &str = "client.crt";
/// At a child: the key of its link certificate (0600).
pub const CLIENT_KEY: &str = "client.key";
/// At the parent: the link certificate it issued to the child; the link is
/// certificate-bound while it is there.
pub const ISSUED_CERT: &str = "issued.crt";

/// `DATA/pki/links/<code>/`.
pub fn dir(pki_dir: &Path, code: &str) -> PathBuf {
    pki_dir.join(LINKS_DIR).join(code)
}

pub fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// A new key for a link certificate and a request for it naming "site CODE" (the parent's
/// CA decides the certificate's subject anyway).
pub fn key_and_csr(code: &str) -> anyhow::Result<(SecretPem, String)> {
    let key = rcgen::KeyPair::generate().context("cannot make a link key")?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .context("certificate request parameters")?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, pki::site_subject(code));
    let csr = params
        .serialize_request(&key)
        .context("cannot make the certificate signing request")?
        .pem()
        .context("cannot encode the certificate signing request")?;
    Ok((SecretPem::new(key.serialize_pem()), csr))
}

fn create(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))
}

fn check_certificate(pem: &str, what: &str) -> anyhow::Result<()> {
    pki::first_certificate(pem).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    Ok(())
}

/// At a child: stores what the join to `parent` gave — the parent's CA and, when the
/// parent issued one, the link certificate and its key. A certificate from an earlier
/// join is removed when this one gave none.
pub fn save_parent_link(
    pki_dir: &Path,
    parent: &str,
    parent_ca: &str,
    certificate: Option<(&SecretPem, &str)>,
) -> anyhow::Result<()> {
    check_certificate(parent_ca, "the parent's CA certificate")?;
    let d = dir(pki_dir, parent);
    create(&d)?;
    pki::write_atomic(&d.join(PEER_CA), parent_ca, 0o644)?;
    match certificate {
        Some((key, cert)) => {
            check_certificate(cert, "the link certificate the parent issued")?;
            // The key first: a certificate without its key is of no use.
            pki::write_atomic(&d.join(CLIENT_KEY), key.expose(), 0o600)?;
            pki::write_atomic(&d.join(CLIENT_CERT), cert, 0o644)?;
        }
        None => {
            let _ = std::fs::remove_file(d.join(CLIENT_CERT));
            let _ = std::fs::remove_file(d.join(CLIENT_KEY));
        }
    }
    Ok(())
}

/// At the parent: stores a child's CA and the link certificate issued to it (which makes
/// the link certificate-bound).
pub fn save_child_link(
    pki_dir: &Path,
    child: &str,
    child_ca: &str,
    issued: &str,
) -> anyhow::Result<()> {
    let d = dir(pki_dir, child);
    create(&d)?;
    pki::write_atomic(&d.join(PEER_CA), child_ca, 0o644)?;
    pki::write_atomic(&d.join(ISSUED_CERT), issued, 0o644)?;
    Ok(())
}

/// Whether the link to child `code` is certificate-bound: over HTTPS it must present its
/// link certificate.
pub fn is_bound(pki_dir: &Path, code: &str) -> bool {
    dir(pki_dir, code).join(ISSUED_CERT).exists()
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// `builder`, set up for TLS to `url`: with only `ca` (PEM) as root, presenting `identity`
/// (certificate and key, PEM) when given. A plain `http://` URL takes `builder` as it is.
pub fn with_tls(
    builder: reqwest::ClientBuilder,
    url: &str,
    ca: Option<&str>,
    identity: Option<&str>,
) -> anyhow::Result<reqwest::ClientBuilder> {
    if !is_https(url) {
        return Ok(builder);
    }
    let Some(ca) = ca else {
        anyhow::bail!("{url} is an https:// site and no CA certificate is known for it");
    };
    let roots = reqwest::Certificate::from_pem_bundle(ca.as_bytes())
        .map_err(|_| anyhow::anyhow!("the CA certificate for {url} is not a PEM certificate"))?;
    let mut b = builder.tls_certs_only(roots);
    if let Some(pem) = identity {
        b = b.identity(
            reqwest::Identity::from_pem(pem.as_bytes()).context("this site's link certificate")?,
        );
    }
    Ok(b)
}

/// The HTTP client for linked site `code` at `url`, from `builder` (its timeouts): for an
/// `https://` URL it trusts only that site's CA and presents this site's link certificate
/// when it has one (a child calling its parent).
pub fn client(
    pki_dir: &Path,
    code: &str,
    url: &str,
    builder: reqwest::ClientBuilder,
) -> anyhow::Result<reqwest::Client> {
    if !is_https(url) {
        return builder.build().context("cannot set up the HTTP client");
    }
    let d = dir(pki_dir, code);
    let ca_path = d.join(PEER_CA);
    if !ca_path.exists() {
        anyhow::bail!(
            "the link to site {code} is https:// ({url}) but this site holds no CA certificate for it ({}): join again over https",
            ca_path.display()
        );
    }
    let ca = read(&ca_path)?;
    let (cert, key) = (d.join(CLIENT_CERT), d.join(CLIENT_KEY));
    let identity = if cert.exists() && key.exists() {
        Some(format!("{}\n{}", read(&cert)?, read(&key)?))
    } else {
        None
    };
    with_tls(builder, url, Some(&ca), identity.as_deref())?
        .build()
        .context("cannot set up the HTTP client")
}

/// Checks the client certificate of a request from linked site `code` that came over
/// HTTPS: a certificate must be that site's link certificate (not another site's, not an
/// agent's); on a certificate-bound link one must be there. The reason when not.
pub fn check_peer(peer: &crate::tls::TlsPeer, code: &str, bound: bool) -> Result<(), String> {
    match &peer.certificate {
        Some(der) => match pki::certificate_site(der) {
            Ok(Some(named)) if named == code => Ok(()),
            Ok(Some(named)) => Err(format!(
                "the client certificate is site {named}'s, but the token is site {code}'s link"
            )),
            Ok(None) => Err(format!(
                "the client certificate is not a site's link certificate (an agent's?): site {code} presents its own"
            )),
            Err(e) => Err(format!("the client certificate cannot be read: {e}")),
        },
        None if bound => Err(format!(
            "the link to site {code} is certificate-bound: over HTTPS it presents its link certificate (DATA/pki/links/)"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::SiteCa;
    use crate::tls::TlsPeer;

    fn der(pem: &str) -> rustls::pki_types::CertificateDer<'static> {
        pki::first_certificate(pem).expect("pem")
    }

    fn peer(pem: Option<&str>) -> TlsPeer {
        TlsPeer {
            certificate: pem.map(der),
        }
    }

    #[test]
    fn only_the_tokens_site_certificate_passes() {
        let (ca, _) = SiteCa::generate("CS1").expect("ca");
        let (_, csr) = key_and_csr("PS1").expect("csr");
        let ps1 = ca.sign_site_csr(&csr, "PS1").expect("sign");
        assert_eq!(
            pki::certificate_site(&der(&ps1)).expect("parse"),
            Some("PS1".into())
        );
        // An agent may choose its client id, even "site PS1": its certificate is still a
        // client's, not a site's.
        let agent = ca.issue_client("site PS1").expect("agent");
        assert_eq!(
            pki::certificate_site(&der(&agent.certificate_pem)).expect("parse"),
            None
        );
        assert!(check_peer(&peer(Some(&ps1)), "PS1", true).is_ok());
        let other = check_peer(&peer(Some(&ps1)), "PS2", false).expect_err("another site");
        assert!(other.contains("site PS1's"), "{other}");
        let agent =
            check_peer(&peer(Some(&agent.certificate_pem)), "PS1", false).expect_err("an agent");
        assert!(agent.contains("not a site's link certificate"), "{agent}");
        assert!(check_peer(&peer(None), "PS1", false).is_ok());
        let none = check_peer(&peer(None), "PS1", true).expect_err("bound");
        assert!(none.contains("certificate-bound"), "{none}");
    }

    #[test]
    fn an_https_link_without_its_ca_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        let err = client(
            dir.path(),
            "CS1",
            "https://cs1:8531",
            reqwest::Client::builder(),
        )
        .expect_err("no CA");
        assert!(err.to_string().contains("join again over https"), "{err}");
        assert!(
            client(
                dir.path(),
                "CS1",
                "http://cs1:8530",
                reqwest::Client::builder()
            )
            .is_ok()
        );
    }
}
