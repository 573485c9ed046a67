//! The CLI's HTTP client of a site's API: bearer token, JSON in and out, and errors that
//! carry the site's one-line reason. For an `https://` site it verifies the site with the
//! site CA (`--ca-cert`, `KOSHIN_CA_CERT`, or the local data folder's `pki/ca.crt`).

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct Api {
    base: String,
    token: Option<String>,
    /// The CA certificate file HTTPS is verified with (the only root), if any.
    ca: Option<PathBuf>,
    http: reqwest::Client,
}

/// The local data folder: `KOSHIN_DATA`, else `./koshin-data`.
fn local_data() -> PathBuf {
    std::env::var_os("KOSHIN_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("./koshin-data"))
}

/// Where the CLI looks for a token when none is given and `koshin login` stored none for
/// the site: the local data folder's admin.token.
fn local_token() -> Option<String> {
    std::fs::read_to_string(local_data().join("admin.token"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Where the CLI looks for the site CA when none is given: the local data folder's
/// `pki/ca.crt` (the CLI runs on the site machine).
fn local_ca() -> Option<PathBuf> {
    let path = local_data()
        .join(koshin_server::pki::PKI_DIR)
        .join(koshin_server::pki::CA_CERT_FILE);
    path.is_file().then_some(path)
}

impl Api {
    /// A client of `site` that trusts only the CA certificate in `ca_cert` for HTTPS
    /// (default: the local data folder's `pki/ca.crt` for an `https://` site; without
    /// either, the system's roots, for a site behind a publicly trusted certificate).
    pub fn with_ca(
        site: &str,
        token: Option<String>,
        ca_cert: Option<&Path>,
    ) -> anyhow::Result<Api> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(10))
            .timeout(std::time::Duration::from_secs(300));
        let ca = match ca_cert {
            Some(p) => Some(p.to_path_buf()),
            None if koshin_agent::mp::is_https(site) => local_ca(),
            None => None,
        };
        if let Some(path) = &ca {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
            let certs = koshin_agent::mp::ca_certificates(&pem)
                .with_context(|| format!("{}", path.display()))?;
            builder = builder.tls_certs_only(certs);
        }
        let http = builder.build().context("cannot set up the HTTP client")?;
        Ok(Api {
            base: site.trim_end_matches('/').to_string(),
            token: token
                .or_else(|| crate::cmd_trust::stored_token(site))
                .or_else(local_token),
            ca,
            http,
        })
    }

    /// The administrator token requests carry, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The site's base URL.
    pub fn base(&self) -> &str {
        &self.base
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
        let resp = r.send().await.map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .with_context(|| format!("{what}: the answer broke off"))?;
        if !status.is_success() {
            return Err(self.refused(status, &body, what));
        }
        serde_json::from_slice(&body)
            .with_context(|| format!("{what}: the site answered something unexpected"))
    }

    fn unreachable(&self, e: &reqwest::Error) -> anyhow::Error {
        let cause = root_cause(e);
        let hint = if !koshin_agent::mp::is_https(&self.base)
            || !cause.to_lowercase().contains("certificate")
        {
            String::new()
        } else if let Some(ca) = &self.ca {
            format!(" (verified with the CA certificate {})", ca.display())
        } else {
            " (give the site CA with --ca-cert DATA/pki/ca.crt or KOSHIN_CA_CERT)".into()
        };
        anyhow!("cannot reach the site at {}: {cause}{hint}", self.base)
    }

    fn refused(&self, status: reqwest::StatusCode, body: &[u8], what: &str) -> anyhow::Error {
        let reason = serde_json::from_slice::<koshin_wire::ErrorBody>(body)
            .map(|b| b.error)
            .unwrap_or_else(|_| String::from_utf8_lossy(body).trim().to_string());
        if status == reqwest::StatusCode::UNAUTHORIZED && self.token.is_none() {
            return anyhow!(
                "{what}: {reason} (give --token, KOSHIN_TOKEN, or run where ./koshin-data/admin.token is)"
            );
        }
        anyhow!("{what}: {reason} (HTTP {})", status.as_u16())
    }

    /// A GET whose answer is a file; `progress` is told the bytes received so far.
    pub async fn get_bytes(
        &self,
        path: &str,
        what: &str,
        progress: impl Fn(u64),
    ) -> anyhow::Result<Vec<u8>> {
        let mut resp = self
            .req(reqwest::Method::GET, path)
            .timeout(std::time::Duration::from_secs(3600))
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.bytes().await.unwrap_or_default();
            return Err(self.refused(status, &body, what));
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .with_context(|| format!("{what}: the answer broke off"))?
        {
            out.extend_from_slice(&chunk);
            progress(out.len() as u64);
        }
        Ok(out)
    }

    /// A POST of a file (raw bytes) with a JSON answer.
    pub async fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
        what: &str,
    ) -> anyhow::Result<T> {
        let r = self
            .req(reqwest::Method::POST, path)
            .timeout(std::time::Duration::from_secs(3600))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(body);
        self.send(r, what).await
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
