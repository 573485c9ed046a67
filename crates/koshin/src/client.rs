//! The CLI's HTTP client of a site's API: bearer token, JSON in and out, and errors that
//! carry the site's one-line reason.

use std::path::PathBuf;

use anyhow::{Context, anyhow};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// Where the CLI looks for a token when none is given and `koshin login` stored none for
/// the site: the local data folder's admin.token.
fn local_token() -> Option<String> {
    let data = std::env::var_os("KOSHIN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("./koshin-data"));
    std::fs::read_to_string(data.join("admin.token"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

impl Api {
    pub fn new(site: &str, token: Option<String>) -> anyhow::Result<Api> {
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .context("cannot set up the HTTP client")?;
        Ok(Api {
            base: site.trim_end_matches('/').to_string(),
            token: token
                .or_else(|| crate::cmd_trust::stored_token(site))
                .or_else(local_token),
            http,
        })
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(t) => r.bearer_auth(t),
            None => r,
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        r: reqwest::RequestBuilder,
        what: &str,
    ) -> anyhow::Result<T> {
        let resp = r
            .send()
            .await
            .map_err(|e| anyhow!("cannot reach the site at {}: {}", self.base, root_cause(&e)))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .with_context(|| format!("{what}: the answer broke off"))?;
        if !status.is_success() {
            let reason = serde_json::from_slice::<koshin_wire::ErrorBody>(&body)
                .map(|b| b.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&body).trim().to_string());
            if status == reqwest::StatusCode::UNAUTHORIZED && self.token.is_none() {
                return Err(anyhow!(
                    "{what}: {reason} (give --token, KOSHIN_TOKEN, or run where ./koshin-data/admin.token is)"
                ));
            }
            return Err(anyhow!("{what}: {reason} (HTTP {})", status.as_u16()));
        }
        serde_json::from_slice(&body)
            .with_context(|| format!("{what}: the site answered something unexpected"))
    }

    pub async fn get<T: DeserializeOwned, Q: Serialize + ?Sized>(
        &self,
        path: &str,
        query: &Q,
        what: &str,
    ) -> anyhow::Result<T> {
        self.send(self.req(reqwest::Method::GET, path).query(query), what)
            .await
    }

    /// A POST without any token (login).
    pub async fn post_anonymous<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        what: &str,
    ) -> anyhow::Result<T> {
        let r = self.http.post(format!("{}{path}", self.base)).json(body);
        self.send(r, what).await
    }

    pub async fn post<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        path: &str,
        body: &B,
        what: &str,
    ) -> anyhow::Result<T> {
        self.send(self.req(reqwest::Method::POST, path).json(body), what)
            .await
    }
}

fn root_cause(e: &dyn std::error::Error) -> String {
    let mut cur: &dyn std::error::Error = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}
