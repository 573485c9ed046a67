//! The agent's HTTP client of its site's management point.

use std::time::Duration;

use anyhow::{Context, anyhow};
use koshin_wire::{
    BatchAck, ClientCatalog, EnrollRequest, EnrollResponse, ErrorBody, MachinePolicy, StateBatch,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct Mp {
    base: String,
    credential: String,
    http: reqwest::Client,
}

/// Why a request failed: the site could not be reached (normal for a laptop: retry later)
/// or it answered with an error.
#[derive(Debug)]
pub enum MpError {
    Offline(String),
    Refused(u16, String),
}

impl std::fmt::Display for MpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MpError::Offline(m) => write!(f, "the site cannot be reached: {m}"),
            MpError::Refused(code, m) => {
                write!(f, "the site refused the request (HTTP {code}): {m}")
            }
        }
    }
}

impl std::error::Error for MpError {}

/// Whether `site` is an `https://` URL.
pub fn is_https(site: &str) -> bool {
    site.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// The certificates of a PEM text (a site CA certificate), checked to hold at least one.
pub fn ca_certificates(pem: &str) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let certs = reqwest::Certificate::from_pem_bundle(pem.as_bytes())
        .map_err(|_| anyhow!("the site CA certificate is not a PEM certificate"))?;
    if certs.is_empty() {
        return Err(anyhow!(
            "the site CA certificate holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
        ));
    }
    Ok(certs)
}

/// The HTTP client of a site. With `ca` (the site CA, PEM), the CA is the only root the
/// client trusts for HTTPS — never the system's; an `https://` site without it is refused
/// before any request, since nothing could verify it.
fn client(site: &str, ca: Option<&str>) -> anyhow::Result<reqwest::Client> {
    client_with(site, ca, None)
}

/// [`client`], presenting `identity` (certificate and key, PEM) to an `https://` site
/// that asks for a client certificate.
fn client_with(
    site: &str,
    ca: Option<&str>,
    identity: Option<&str>,
) -> anyhow::Result<reqwest::Client> {
    let mut b = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .user_agent(concat!("koshin-agent/", env!("CARGO_PKG_VERSION")));
    match ca {
        Some(pem) => b = b.tls_certs_only(ca_certificates(pem)?),
        None if is_https(site) => {
            return Err(anyhow!(
                "{site} is an https:// site and this agent knows no CA certificate for it: give --ca-cert FILE (the site's DATA/pki/ca.crt)"
            ));
        }
        None => {}
    }
    if let Some(pem) = identity.filter(|_| is_https(site)) {
        b = b.identity(
            reqwest::Identity::from_pem(pem.as_bytes())
                .context("the agent's client certificate")?,
        );
    }
    b.build().context("cannot set up the HTTP client")
}

/// The body of a successful answer; a refusal with the site's reason.
async fn answer_bytes(
    r: Result<reqwest::Response, reqwest::Error>,
) -> Result<(u16, bytes::Bytes), MpError> {
    let resp = r.map_err(|e| MpError::Offline(root_cause(&e)))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| MpError::Offline(root_cause(&e)))?;
    if !status.is_success() {
        let reason = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).trim().to_string());
        return Err(MpError::Refused(status.as_u16(), reason));
    }
    Ok((status.as_u16(), body))
}

async fn answer<T: DeserializeOwned>(
    r: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, MpError> {
    let (status, body) = answer_bytes(r).await?;
    serde_json::from_slice(&body)
        .map_err(|e| MpError::Refused(status, format!("unexpected answer: {e}")))
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Registers with a site using an administrator or enrollment token; `ca` (PEM) is the
/// site CA to verify an `https://` site with.
pub async fn enroll(
    site: &str,
    token: &str,
    req: &EnrollRequest,
    ca: Option<&str>,
) -> anyhow::Result<EnrollResponse> {
    let url = format!("{}/api/v1/clients/enroll", site.trim_end_matches('/'));
    let mut post = client(site, ca)?.post(url);
    // No token: the site records the machine as pending approval.
    if !token.trim().is_empty() {
        post = post.bearer_auth(token.trim());
    }
    answer(post.json(req).send().await)
        .await
        .map_err(|e| anyhow!("enrollment failed: {e}"))
}

impl Mp {
    /// The management point of a plain `http://` site (an `https://` one needs its CA:
    /// [`Mp::with_ca`], [`Mp::for_identity`]).
    pub fn new(site: &str, credential: &str) -> anyhow::Result<Mp> {
        Mp::with_ca(site, credential, None)
    }

    /// The management point of `site`; `ca` (PEM) is the only root trusted for HTTPS.
    pub fn with_ca(site: &str, credential: &str, ca: Option<&str>) -> anyhow::Result<Mp> {
        Ok(Mp {
            base: site.trim_end_matches('/').to_string(),
            credential: credential.to_string(),
            http: client(site, ca)?,
        })
    }

    /// The management point of the site this agent enrolled with, verified with the CA
    /// certificate it stored at enrollment.
    pub fn for_identity(id: &crate::db::Identity) -> anyhow::Result<Mp> {
        Ok(Mp {
            base: id.site_url.trim_end_matches('/').to_string(),
            credential: id.credential.clone(),
            http: client_with(
                &id.site_url,
                id.ca_certificate.as_deref(),
                id.client_identity.as_deref(),
            )?,
        })
    }

    async fn get<T: DeserializeOwned, Q: Serialize>(
        &self,
        path: &str,
        q: &Q,
    ) -> Result<T, MpError> {
        answer(
            self.http
                .get(format!("{}{path}", self.base))
                .bearer_auth(&self.credential)
                .query(q)
                .send()
                .await,
        )
        .await
    }

    pub async fn policy(&self) -> Result<MachinePolicy, MpError> {
        self.get("/api/v1/mp/policy", &()).await
    }

    /// The catalog changed after `since`; the site answers with the whole catalog when
    /// `token` does not name its catalog at that version.
    pub async fn catalog(&self, since: i64, token: &str) -> Result<ClientCatalog, MpError> {
        self.get(
            "/api/v1/mp/catalog",
            &[("since", since.to_string()), ("token", token.to_string())],
        )
        .await
    }

    /// The offline scan catalog file, for the client that is its sync host.
    pub async fn offline_catalog(&self) -> Result<Vec<u8>, MpError> {
        let (_, body) = answer_bytes(
            self.http
                .get(format!("{}/api/v1/mp/offline-catalog", self.base))
                .bearer_auth(&self.credential)
                .send()
                .await,
        )
        .await?;
        Ok(body.to_vec())
    }

    /// The HTTP client (with the site CA), for downloads from distribution points.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The catalog from a replica update point (public metadata: no credential).
    pub async fn replica_catalog(
        &self,
        url: &str,
        since: i64,
        token: &str,
    ) -> Result<ClientCatalog, MpError> {
        answer(
            self.http
                .get(format!("{}/api/v1/mp/catalog", url.trim_end_matches('/')))
                .query(&[("since", since.to_string()), ("token", token.to_string())])
                .send()
                .await,
        )
        .await
    }

    /// The deployments targeted at this client.
    pub async fn deployments(&self) -> Result<Vec<koshin_wire::DeploymentPolicy>, MpError> {
        self.get("/api/v1/mp/deployments", &()).await
    }

    /// Reports this client's state of a deployment, with install agent status messages.
    pub async fn deployment_status(
        &self,
        report: &koshin_wire::DeploymentStatusReport,
    ) -> Result<serde_json::Value, MpError> {
        answer(
            self.http
                .post(format!("{}/api/v1/mp/deployment-status", self.base))
                .bearer_auth(&self.credential)
                .json(report)
                .send()
                .await,
        )
        .await
    }

    /// Sends this client's inventory (whole, or changes against the site's).
    pub async fn inventory(
        &self,
        report: &koshin_wire::InventoryReport,
    ) -> Result<koshin_wire::InventoryAck, MpError> {
        answer(
            self.http
                .post(format!("{}/api/v1/mp/inventory", self.base))
                .bearer_auth(&self.credential)
                .json(report)
                .send()
                .await,
        )
        .await
    }

    pub async fn send(&self, batch: &StateBatch) -> Result<BatchAck, MpError> {
        answer(
            self.http
                .post(format!("{}/api/v1/mp/state-messages", self.base))
                .bearer_auth(&self.credential)
                .json(batch)
                .send()
                .await,
        )
        .await
    }
}
