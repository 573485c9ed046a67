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

fn client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .user_agent(concat!("koshin-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot set up the HTTP client")
}

async fn answer<T: DeserializeOwned>(
    r: Result<reqwest::Response, reqwest::Error>,
) -> Result<T, MpError> {
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
    serde_json::from_slice(&body)
        .map_err(|e| MpError::Refused(status.as_u16(), format!("unexpected answer: {e}")))
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

/// Registers with a site using an administrator or enrollment token.
pub async fn enroll(
    site: &str,
    token: &str,
    req: &EnrollRequest,
) -> anyhow::Result<EnrollResponse> {
    let url = format!("{}/api/v1/clients/enroll", site.trim_end_matches('/'));
    let mut post = client()?.post(url);
    // No token: the site records the machine as pending approval.
    if !token.trim().is_empty() {
        post = post.bearer_auth(token.trim());
    }
    answer(post.json(req).send().await)
        .await
        .map_err(|e| anyhow!("enrollment failed: {e}"))
}

impl Mp {
    pub fn new(site: &str, credential: &str) -> anyhow::Result<Mp> {
        Ok(Mp {
            base: site.trim_end_matches('/').to_string(),
            credential: credential.to_string(),
            http: client()?,
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
