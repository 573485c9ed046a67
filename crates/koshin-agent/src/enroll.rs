//! Enrollment and the agent's own status.

use std::path::{Path, PathBuf};

use koshin_wire::{AgentStatus, EnrollRequest, ScanRecord};

use anyhow::Context;

use crate::db::{AgentDb, CA_CERTIFICATE_KEY, CLIENT_CERTIFICATE_KEY, CLIENT_KEY_KEY};
use crate::{DEFAULT_SEND_INTERVAL_MINUTES, dpkg, mp, ts};

pub struct EnrollOptions {
    pub site: String,
    /// An enrollment token or an administrator's token; empty: none (pending approval).
    pub token: String,
    pub name: Option<String>,
    pub state: PathBuf,
    pub root: PathBuf,
    /// The site CA certificate (PEM, from `--ca-cert FILE`) to verify an `https://` site at
    /// this first contact. Without it, the CA stored by an earlier enrollment is used.
    pub ca_certificate: Option<String>,
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The agent's own TLS client key (made once, kept in its 0600 database) and a signing
/// request for it: the site answers with a certificate; the key never leaves the machine.
fn key_and_csr(db: &AgentDb, client_id: &str) -> anyhow::Result<String> {
    let key = match db.get(CLIENT_KEY_KEY)? {
        Some(pem) => rcgen::KeyPair::from_pem(&pem).context("the stored client key")?,
        None => {
            let key = rcgen::KeyPair::generate().context("cannot make a client key")?;
            db.set(CLIENT_KEY_KEY, &key.serialize_pem())?;
            key
        }
    };
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .context("certificate request parameters")?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, client_id);
    params
        .serialize_request(&key)
        .context("cannot make the certificate signing request")?
        .pem()
        .context("cannot encode the certificate signing request")
}

/// Registers this machine with a site. The client id is generated once and kept, so
/// enrolling again (a new credential) keeps the same client at the site.
///
/// The site CA certificate the site answers with is stored and from then on is the only
/// root the agent trusts for an `https://` site. Over `https://` it came through a channel
/// verified with the given (or already stored) CA; over plain `http://` it is trusted on
/// first use, like everything else on that channel.
pub async fn enroll(o: &EnrollOptions) -> anyhow::Result<(String, String)> {
    let db = AgentDb::open(&o.state)?;
    let client_id = match db.get("client_id")? {
        Some(id) => id,
        None => {
            // A machine scanned offline before it enrolled keeps the id its results were
            // imported under, so the site keeps one record for it (taking over that record
            // needs an enrollment the site trusts, like any re-enrollment).
            let id = match db.get("offline_client_id")? {
                Some(id) => id,
                None => uuid::Uuid::new_v4().to_string(),
            };
            db.set("client_id", &id)?;
            id
        }
    };
    let name = o.name.clone().unwrap_or_else(hostname);
    let (os, os_release) = dpkg::os_release(&o.root);
    let req = EnrollRequest {
        client_id: client_id.clone(),
        name: name.clone(),
        os,
        os_release,
        architecture: dpkg::architecture(&o.root),
        agent_version: env!("CARGO_PKG_VERSION").into(),
        csr: Some(key_and_csr(&db, &client_id)?),
    };
    let ca = match &o.ca_certificate {
        Some(pem) => Some(pem.clone()),
        None => db.get(CA_CERTIFICATE_KEY)?,
    };
    let resp = mp::enroll(&o.site, &o.token, &req, ca.as_deref()).await?;
    if let Some(pem) = resp.ca_certificate.as_ref().or(ca.as_ref()) {
        mp::ca_certificates(pem)?;
        db.set(CA_CERTIFICATE_KEY, pem)?;
    }
    if let Some(cert) = &resp.client_certificate {
        db.set(CLIENT_CERTIFICATE_KEY, cert)?;
    }
    db.set("credential", &resp.credential)?;
    db.set("approval", &resp.approval)?;
    db.set("site_url", o.site.trim_end_matches('/'))?;
    db.set("site_code", &resp.site)?;
    db.set("name", &name)?;
    db.set("root", &o.root.display().to_string())?;
    if db.get("send_interval_minutes")?.is_none() {
        db.set_i64(
            "send_interval_minutes",
            DEFAULT_SEND_INTERVAL_MINUTES as i64,
        )?;
    }
    Ok((client_id, resp.site))
}

pub fn status(state: &Path) -> anyhow::Result<AgentStatus> {
    let db = AgentDb::open(state)?;
    let id = db.identity()?;
    let last_scan: Option<ScanRecord> = db
        .conn
        .query_row(
            "SELECT json FROM scans ORDER BY started_ms DESC LIMIT 1",
            [],
            |r| r.get::<_, String>(0),
        )
        .ok()
        .and_then(|j| serde_json::from_str(&j).ok());
    let fetched = db.get_i64("metadata_fetched_ms")?;
    let ttl = db
        .get_i64("metadata_ttl_minutes")?
        .unwrap_or(crate::scan::DEFAULT_TTL_MINUTES as i64);
    let t = |k: &str| -> anyhow::Result<Option<jiff::Timestamp>> { Ok(db.get_i64(k)?.map(ts)) };
    let policy: Option<koshin_wire::MachinePolicy> = db
        .get("policy")?
        .and_then(|p| serde_json::from_str(&p).ok());
    let distribution_point = policy
        .as_ref()
        .and_then(|p| crate::dp::chosen(p, &crate::dp::local_addresses()));
    Ok(AgentStatus {
        distribution_point,
        client_id: id.client_id,
        name: id.name,
        site: id.site_url,
        site_code: id.site_code,
        root: id.root,
        policy_version: db.get_i64("policy_version")?,
        last_scan,
        metadata_fetched: fetched.map(ts),
        ttl_expires: fetched.map(|f| ts(f + ttl * 60_000)),
        content_version: db.get_i64("content_version")?.unwrap_or(0),
        queue_length: db.queue_length()?,
        next_policy_poll: t("next_policy_poll_ms")?,
        next_scan: t("next_scan_ms")?,
        next_send: t("next_send_ms")?,
        send_interval_minutes: db
            .get_i64("send_interval_minutes")?
            .unwrap_or(DEFAULT_SEND_INTERVAL_MINUTES as i64) as u64,
    })
}
