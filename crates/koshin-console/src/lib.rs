//! The web console: plain HTML, CSS and JavaScript modules written by hand in `assets/`,
//! compiled into the binary with `include_bytes!` and served by the site under `/console/`.
//! There is no build step and nothing is fetched at run time: every file the browser loads
//! is in [`ASSETS`], and every datum the console shows comes from the site's `/api/v1` with
//! the administrator's own token, so the API's roles and scopes apply unchanged.
//!
//! The crate knows nothing of the site: it exposes a [`router`] the server nests at
//! `/console`. The files are public (they hold no data); a strict Content-Security-Policy
//! allows only this site's own scripts, styles and API.

use axum::Router;
use axum::body::Body;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One embedded file: its path under `/console/`, its media type and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Asset {
    pub path: &'static str,
    pub media_type: &'static str,
    pub bytes: &'static [u8],
}

macro_rules! assets {
    ($($path:literal => $media:literal,)*) => {
        /// Every file of the console, embedded at compile time.
        pub const ASSETS: &[Asset] = &[$(Asset {
            path: $path,
            media_type: $media,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/", $path)),
        }),*];
    };
}

assets! {
    "index.html" => "text/html; charset=utf-8",
    "console.css" => "text/css; charset=utf-8",
    "favicon.svg" => "image/svg+xml",
    "js/app.js" => "text/javascript; charset=utf-8",
    "js/api.js" => "text/javascript; charset=utf-8",
    "js/ui.js" => "text/javascript; charset=utf-8",
    "js/charts.js" => "text/javascript; charset=utf-8",
    "js/pages/dashboard.js" => "text/javascript; charset=utf-8",
    "js/pages/updates.js" => "text/javascript; charset=utf-8",
    "js/pages/computers.js" => "text/javascript; charset=utf-8",
    "js/pages/sync.js" => "text/javascript; charset=utf-8",
    "js/pages/deployments.js" => "text/javascript; charset=utf-8",
    "js/pages/collections.js" => "text/javascript; charset=utf-8",
    "js/pages/content.js" => "text/javascript; charset=utf-8",
    "js/pages/reports.js" => "text/javascript; charset=utf-8",
    "js/pages/status.js" => "text/javascript; charset=utf-8",
    "js/pages/hierarchy.js" => "text/javascript; charset=utf-8",
}

/// What the browser may load and where it may connect: this site only. Charts are SVG
/// built through the DOM, so no inline script or style is needed.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The console's router, to be nested at `/console` (a request for `/console/` gets
/// `index.html`; the pages are addressed by the URL fragment, `#/updates`).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().fallback(serve)
}

/// The asset at `path` (relative to `/console/`), if there is one.
pub fn find(path: &str) -> Option<&'static Asset> {
    let path = path.trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    ASSETS.iter().find(|a| a.path == path)
}

/// A strong validator for a file: FNV-1a of its bytes, so a new binary with a changed file
/// is fetched again and an unchanged one answers 304.
fn etag(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("\"{h:016x}-{}\"", bytes.len())
}

async fn serve(uri: Uri, headers: HeaderMap) -> Response {
    let Some(asset) = find(uri.path()) else {
        return (
            StatusCode::NOT_FOUND,
            [(CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!(
                "The console has no file {}. Open /console/ to start.\n",
                uri.path()
            ),
        )
            .into_response();
    };
    let tag = etag(asset.bytes);
    let mut out = if headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = Response::new(Body::from(asset.bytes));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(asset.media_type));
        r
    };
    let h = out.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(ETAG, v);
    }
    // Revalidated at every load: an upgraded site never runs yesterday's scripts.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;
    use tower::ServiceExt;

    const JS: &str = "text/javascript; charset=utf-8";

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut req = Request::builder().uri(path);
        if let Some(t) = if_none_match {
            req = req.header(IF_NONE_MATCH, t);
        }
        router::<()>()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("answer")
    }

    /// Every file under `assets/` is embedded, and every embedded file exists: a new page
    /// cannot be forgotten in the table.
    #[test]
    fn every_asset_file_is_embedded() {
        fn walk(dir: &std::path::Path, base: &std::path::Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).expect("read assets") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    walk(&p, base, out);
                } else {
                    let rel = p.strip_prefix(base).expect("under assets");
                    out.push(rel.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
        let mut files = Vec::new();
        walk(&base, &base, &mut files);
        files.sort();
        let mut embedded: Vec<String> = ASSETS.iter().map(|a| a.path.to_string()).collect();
        embedded.sort();
        assert_eq!(files, embedded);
    }

    /// Every module the console imports is one of the embedded files, and nothing is loaded
    /// from another host.
    #[test]
    fn imports_and_links_stay_on_the_site() {
        for a in ASSETS {
            let text = std::str::from_utf8(a.bytes).expect("text asset");
            // Statements end with ';' (imports may span lines); comment lines are skipped.
            for stmt in text.split(';') {
                let code: String = stmt
                    .lines()
                    .filter(|l| !l.trim_start().starts_with("//"))
                    .collect::<Vec<_>>()
                    .join(" ");
                if let Some(rest) = code.trim().strip_prefix("import ") {
                    let from = rest
                        .rsplit_once("from ")
                        .map(|(_, f)| f)
                        .unwrap_or(rest)
                        .trim_matches(|c| c == '\'' || c == '"' || c == ' ');
                    let base = a.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                    let target = resolve(base, from);
                    assert!(
                        find(&target).is_some(),
                        "{} imports {from}, which is not embedded ({target})",
                        a.path
                    );
                }
            }
            for line in text.lines() {
                let l = line.trim();
                for bad in ["http://", "https://", "//cdn"] {
                    assert!(
                        !l.contains(&format!("src=\"{bad}"))
                            && !l.contains(&format!("href=\"{bad}")),
                        "{} loads from another host: {l}",
                        a.path
                    );
                }
            }
        }
    }

    fn resolve(base: &str, rel: &str) -> String {
        let mut parts: Vec<&str> = if base.is_empty() {
            Vec::new()
        } else {
            base.split('/').collect()
        };
        for seg in rel.split('/') {
            match seg {
                "." | "" => {}
                ".." => {
                    parts.pop();
                }
                s => parts.push(s),
            }
        }
        parts.join("/")
    }

    #[tokio::test]
    async fn the_index_is_served_with_a_strict_policy() {
        let r = get("/", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[CONTENT_TYPE], "text/html; charset=utf-8");
        let csp = r.headers()[CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("csp")
            .to_string();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        assert_eq!(r.headers()[X_CONTENT_TYPE_OPTIONS], "nosniff");
        let r = get("/js/app.js", None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[CONTENT_TYPE], JS);
    }

    #[tokio::test]
    async fn an_unchanged_file_is_not_sent_again() {
        let r = get("/console.css", None).await;
        let tag = r.headers()[ETAG].to_str().expect("etag").to_string();
        let again = get("/console.css", Some(&tag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let other = get("/console.css", Some("\"0-0\"")).await;
        assert_eq!(other.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn an_unknown_file_is_a_404_that_says_where_to_go() {
        let r = get("/nothing.js", None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let r = get("/../../etc/passwd", None).await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
}
