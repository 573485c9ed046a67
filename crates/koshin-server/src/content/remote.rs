//! Remote distribution points: the process (`koshin dp serve`) and the site's client for it.
//!
//! A remote point registers at its site once, with an administrator's token, and gives the
//! site a push token it keeps only the SHA-256 of. The site's sender then pushes files
//! (resuming where a broken transfer stopped: it asks how much the point holds and sends
//! the rest), then the indices it built and signed. The point checks every file against
//! the SHA-256 it is named by before it serves it, serves `dists/` and `pool/` to anyone
//! over HTTP with Range (downloads resume), and on request re-hashes its pool and reports
//! damaged files, which it stops serving; the site sends them again.
//!
//! Routes of the point: `GET /dp-api/health` (public: a probe), and with the push token
//! `GET|PUT /dp-api/files/{sha256}`, `POST /dp-api/indices`, `POST /dp-api/validate`;
//! everything else is the repository, read-only and public like any APT mirror.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use base64::Engine;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::library::sha256_file;
use super::repo;

/// What a point keeps in its data directory: `dp.json` (site, name, the push token's
/// SHA-256), `repo/` (what it serves) and `incoming/` (files being received).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DpIdentity {
    pub site: String,
    pub name: String,
    pub url: String,
    pub push_token_sha256: String,
}

pub const IDENTITY_FILE: &str = "dp.json";

pub struct DpState {
    pub root: PathBuf,
    pub incoming: PathBuf,
    pub identity: DpIdentity,
    /// One change at a time: a file being appended, indices being replaced, a validation.
    pub lock: Mutex<()>,
}

impl DpState {
    pub fn open(data: &Path, identity: DpIdentity) -> anyhow::Result<Arc<DpState>> {
        let root = data.join("repo");
        let incoming = data.join("incoming");
        std::fs::create_dir_all(&root)?;
        std::fs::create_dir_all(&incoming)?;
        Ok(Arc::new(DpState {
            root,
            incoming,
            identity,
            lock: Mutex::new(()),
        }))
    }
}

#[derive(Debug)]
struct DpError(StatusCode, String);

impl axum::response::IntoResponse for DpError {
    fn into_response(self) -> axum::response::Response {
        (self.0, Json(serde_json::json!({ "error": self.1 }))).into_response()
    }
}

impl From<anyhow::Error> for DpError {
    fn from(e: anyhow::Error) -> DpError {
        DpError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl From<std::io::Error> for DpError {
    fn from(e: std::io::Error) -> DpError {
        DpError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

fn authorize(state: &DpState, headers: &HeaderMap) -> Result<(), DpError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            DpError(
                StatusCode::UNAUTHORIZED,
                "this route needs the site's push token (Authorization: Bearer ...)".into(),
            )
        })?;
    if crate::init::hash_token(token) != state.identity.push_token_sha256 {
        return Err(DpError(
            StatusCode::UNAUTHORIZED,
            "the push token is not this distribution point's".into(),
        ));
    }
    Ok(())
}

fn check_sha(sha256: &str) -> Result<(), DpError> {
    if sha256.len() != 64
        || !sha256
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        return Err(DpError(
            StatusCode::BAD_REQUEST,
            format!("'{sha256}' is not a lower-case SHA-256"),
        ));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), DpError> {
    if name.is_empty()
        || name.len() > 255
        || name.contains('/')
        || name.starts_with('.')
        || name.chars().any(char::is_control)
    {
        return Err(DpError(
            StatusCode::BAD_REQUEST,
            format!("'{name}' is not a file name"),
        ));
    }
    Ok(())
}

/// How much of a file the point holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Holding {
    pub have: u64,
    pub complete: bool,
}

#[derive(Debug, Deserialize)]
struct FileQuery {
    name: String,
    size: u64,
    offset: u64,
}

fn find_complete(state: &DpState, sha256: &str) -> Option<(PathBuf, u64)> {
    let dir = state
        .root
        .join("pool")
        .join(sha256.get(..2).unwrap_or("00"))
        .join(sha256);
    let entry = std::fs::read_dir(&dir)
        .ok()?
        .flatten()
        .find(|e| e.path().is_file())?;
    let len = entry.metadata().ok()?.len();
    Some((entry.path(), len))
}

async fn holding(
    State(state): State<Arc<DpState>>,
    headers: HeaderMap,
    UrlPath(sha256): UrlPath<String>,
) -> Result<Json<Holding>, DpError> {
    authorize(&state, &headers)?;
    check_sha(&sha256)?;
    if let Some((_, len)) = find_complete(&state, &sha256) {
        return Ok(Json(Holding {
            have: len,
            complete: true,
        }));
    }
    let part = state.incoming.join(&sha256);
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    Ok(Json(Holding {
        have,
        complete: false,
    }))
}

/// Appends a piece of a file at `offset` (which must be what the point holds); when the
/// file is whole it is checked against its SHA-256 and moved into the pool.
async fn receive(
    State(state): State<Arc<DpState>>,
    headers: HeaderMap,
    UrlPath(sha256): UrlPath<String>,
    Query(q): Query<FileQuery>,
    body: Body,
) -> Result<Json<Holding>, DpError> {
    authorize(&state, &headers)?;
    check_sha(&sha256)?;
    check_name(&q.name)?;
    let _guard = state.lock.lock().await;
    if let Some((_, len)) = find_complete(&state, &sha256) {
        return Ok(Json(Holding {
            have: len,
            complete: true,
        }));
    }
    let part = state.incoming.join(&sha256);
    let have = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
    if q.offset != have {
        return Err(DpError(
            StatusCode::CONFLICT,
            format!(
                "this point holds {have} bytes of {sha256}, not {}",
                q.offset
            ),
        ));
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&part)?;
    let mut have = have;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        // A broken connection keeps what arrived: the site resumes from there.
        let Ok(chunk) = chunk else {
            file.sync_all()?;
            return Err(DpError(
                StatusCode::BAD_REQUEST,
                format!("the transfer broke off after {have} bytes"),
            ));
        };
        have += chunk.len() as u64;
        if have > q.size {
            drop(file);
            std::fs::remove_file(&part)?;
            return Err(DpError(
                StatusCode::BAD_REQUEST,
                format!("more than the {} bytes announced", q.size),
            ));
        }
        file.write_all(&chunk)?;
    }
    file.sync_all()?;
    drop(file);
    if have < q.size {
        return Ok(Json(Holding {
            have,
            complete: false,
        }));
    }
    let p = part.clone();
    let actual = tokio::task::spawn_blocking(move || sha256_file(&p))
        .await
        .map_err(|e| DpError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    if actual != sha256 {
        std::fs::remove_file(&part)?;
        return Err(DpError(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("the file received has SHA-256 {actual}, not {sha256}; discarded"),
        ));
    }
    let target = state.root.join(repo::pool_path(&sha256, &q.name));
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::rename(&part, &target)?;
    Ok(Json(Holding {
        have,
        complete: true,
    }))
}

/// New indices, and the pool files they name (everything else is removed).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Indices {
    /// (path under the root, base64 of the content)
    pub files: Vec<(String, String)>,
    pub keep: Vec<String>,
}

async fn indices(
    State(state): State<Arc<DpState>>,
    headers: HeaderMap,
    Json(req): Json<Indices>,
) -> Result<Json<serde_json::Value>, DpError> {
    authorize(&state, &headers)?;
    let _guard = state.lock.lock().await;
    let mut files = Vec::with_capacity(req.files.len());
    for (path, data) in req.files {
        let data = base64::engine::general_purpose::STANDARD
            .decode(data.as_bytes())
            .map_err(|e| DpError(StatusCode::BAD_REQUEST, format!("{path}: {e}")))?;
        files.push((path, data));
    }
    for k in &req.keep {
        repo::safe_join(&state.root, k)
            .map_err(|e| DpError(StatusCode::BAD_REQUEST, e.to_string()))?;
        if !state.root.join(k).is_file() {
            return Err(DpError(
                StatusCode::CONFLICT,
                format!("the indices name {k}, which this point does not hold"),
            ));
        }
    }
    repo::write_indices(&state.root, &files)
        .map_err(|e| DpError(StatusCode::BAD_REQUEST, e.to_string()))?;
    let keep: HashSet<String> = req.keep.into_iter().collect();
    let removed = repo::prune(&state.root, &keep)?;
    Ok(Json(
        serde_json::json!({ "written": files.len(), "removed": removed }),
    ))
}

/// The result of a validation.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Validation {
    pub checked: usize,
    pub damaged: Vec<String>,
}

async fn validate(
    State(state): State<Arc<DpState>>,
    headers: HeaderMap,
) -> Result<Json<Validation>, DpError> {
    authorize(&state, &headers)?;
    let _guard = state.lock.lock().await;
    let root = state.root.clone();
    let (checked, damaged) = tokio::task::spawn_blocking(move || repo::validate(&root))
        .await
        .map_err(|e| DpError(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))??;
    if !damaged.is_empty() {
        tracing::warn!(damaged = ?damaged, "damaged files removed from the pool");
    }
    Ok(Json(Validation { checked, damaged }))
}

async fn health() -> &'static str {
    "ok"
}

/// The point's HTTP service.
pub fn router(state: Arc<DpState>) -> Router {
    let serve = tower_http::services::ServeDir::new(state.root.clone());
    Router::new()
        .route("/dp-api/health", get(health))
        .route("/dp-api/files/{sha256}", get(holding).put(receive))
        .route("/dp-api/indices", post(indices))
        .route("/dp-api/validate", post(validate))
        .layer(DefaultBodyLimit::max(4 << 30))
        .fallback_service(serve)
        .with_state(state)
}

// ----- the site's side -------------------------------------------------------------------

/// The site's client for one remote point.
pub struct DpClient {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl DpClient {
    pub fn new(url: &str, token: &str) -> anyhow::Result<DpClient> {
        Ok(DpClient {
            base: url.trim_end_matches('/').to_string(),
            token: token.to_string(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(15))
                .read_timeout(Duration::from_secs(120))
                .build()?,
        })
    }

    async fn check(resp: reqwest::Response) -> anyhow::Result<reqwest::Response> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.unwrap_or_default();
        anyhow::bail!(
            "HTTP {status}: {}",
            body["error"].as_str().unwrap_or("no reason given")
        )
    }

    pub async fn holding(&self, sha256: &str) -> anyhow::Result<Holding> {
        let resp = self
            .http
            .get(format!("{}/dp-api/files/{sha256}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Ok(Self::check(resp).await?.json().await?)
    }

    /// Sends a file from where the point's copy stopped, at most `rate()` bytes a second
    /// (asked again every second, so an emergency lift takes effect at once). `sent` is
    /// called with the bytes sent of this file so far.
    pub async fn push(
        &self,
        path: &Path,
        sha256: &str,
        name: &str,
        size: u64,
        rate: Arc<dyn Fn() -> Option<u64> + Send + Sync>,
        sent: Arc<dyn Fn(u64) + Send + Sync>,
    ) -> anyhow::Result<()> {
        let held = self.holding(sha256).await?;
        if held.complete {
            sent(size);
            return Ok(());
        }
        let offset = held.have.min(size);
        let mut file = tokio::fs::File::open(path).await?;
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        file.seek(std::io::SeekFrom::Start(offset)).await?;
        struct Pace {
            file: tokio::fs::File,
            done: u64,
            start: Instant,
            window_bytes: u64,
            rate: Option<u64>,
            asked: Instant,
        }
        let pace = Pace {
            file,
            done: offset,
            start: Instant::now(),
            window_bytes: 0,
            rate: rate(),
            asked: Instant::now(),
        };
        let rate2 = rate.clone();
        let sent2 = sent.clone();
        let stream = futures_util::stream::unfold(pace, move |mut p| {
            let rate = rate2.clone();
            let sent = sent2.clone();
            async move {
                if p.asked.elapsed() >= Duration::from_secs(1) {
                    let now = rate();
                    if now != p.rate {
                        p.start = Instant::now();
                        p.window_bytes = 0;
                    }
                    p.rate = now;
                    p.asked = Instant::now();
                }
                let chunk = match p.rate {
                    Some(r) => (r / 8).clamp(1024, 64 * 1024) as usize,
                    None => 64 * 1024,
                };
                let mut buf = vec![0u8; chunk];
                let n = match p.file.read(&mut buf).await {
                    Ok(0) => return None,
                    Ok(n) => n,
                    Err(e) => return Some((Err(e), p)),
                };
                buf.truncate(n);
                if let Some(r) = p.rate {
                    p.window_bytes += n as u64;
                    let due = Duration::from_secs_f64(p.window_bytes as f64 / r.max(1) as f64);
                    let elapsed = p.start.elapsed();
                    if due > elapsed {
                        tokio::time::sleep(due - elapsed).await;
                    }
                }
                p.done += n as u64;
                sent(p.done);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), p))
            }
        });
        let resp = self
            .http
            .put(format!("{}/dp-api/files/{sha256}", self.base))
            .query(&[
                ("name", name.to_string()),
                ("size", size.to_string()),
                ("offset", offset.to_string()),
            ])
            .bearer_auth(&self.token)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await?;
        let held: Holding = Self::check(resp).await?.json().await?;
        if !held.complete {
            anyhow::bail!("{name}: the point holds {} of {size} bytes", held.have);
        }
        Ok(())
    }

    pub async fn put_indices(
        &self,
        files: &[(String, Vec<u8>)],
        keep: Vec<String>,
    ) -> anyhow::Result<()> {
        let req = Indices {
            files: files
                .iter()
                .map(|(p, d)| {
                    (
                        p.clone(),
                        base64::engine::general_purpose::STANDARD.encode(d),
                    )
                })
                .collect(),
            keep,
        };
        let resp = self
            .http
            .post(format!("{}/dp-api/indices", self.base))
            .bearer_auth(&self.token)
            .json(&req)
            .send()
            .await?;
        Self::check(resp).await?;
        Ok(())
    }

    pub async fn validate(&self) -> anyhow::Result<Validation> {
        let resp = self
            .http
            .post(format!("{}/dp-api/validate", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        Ok(Self::check(resp).await?.json().await?)
    }
}
