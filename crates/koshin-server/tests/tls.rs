//! Transport security (C7, S10) seen from outside: a stock HTTPS client (real `curl`) verifies
//! the site with `DATA/pki/ca.crt` and fails without it; an internet-facing site does not
//! answer plain HTTP at all; with `client_certificates = "required"` a client without a
//! certificate from the site CA is refused at the handshake and one with a certificate
//! issued by `koshin_server::pki` is served.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use koshin_server::config::ClientCertificates;
use koshin_server::init::{InitOptions, init_site};
use koshin_server::pki::{CA_CERT_FILE, CA_KEY_FILE, PKI_DIR, SITE_KEY_FILE, SiteCa};
use koshin_server::{Listeners, Site, SiteConfig};
use tempfile::TempDir;

/// A site served by `koshin_server::serve` on loopback ports chosen by the system.
struct Running {
    dir: Option<TempDir>,
    data: PathBuf,
    site: Arc<Site>,
    http: Option<std::net::SocketAddr>,
    https: std::net::SocketAddr,
    token: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    /// A new site (its upstream unreachable: these tests never sync) with HTTPS on, `tls`
    /// editing `[tls]` (and `[site]`) before it is opened.
    async fn start(tls: impl FnOnce(&mut SiteConfig)) -> Running {
        let dir = tempfile::Builder::new()
            .prefix("ktls")
            .tempdir()
            .expect("dir");
        let data = dir.path().join("data");
        init_site(&InitOptions {
            code: "CS1".into(),
            data: data.clone(),
            upstreams: vec![
                "deb [signed-by=/nonexistent arch=amd64] http://127.0.0.1:9/debian bookworm main"
                    .into(),
            ],
            listen: Some("127.0.0.1:0".into()),
            parent: None,
            secondary: false,
        })
        .expect("init");
        let path = data.join("koshin.toml");
        let mut cfg = SiteConfig::load(&path).expect("load");
        cfg.tls.https_listen = "127.0.0.1:0".into();
        tls(&mut cfg);
        std::fs::write(&path, cfg.to_documented_toml()).expect("write koshin.toml");
        let site = Site::open(&data).expect("open");
        let listeners = Listeners::bind(&site.config, None, None)
            .await
            .expect("bind");
        let http = listeners.http_addr();
        let https = listeners.https_addr().expect("an HTTPS listener");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(koshin_server::serve(site.clone(), listeners, async {
            let _ = stopped.await;
        }));
        let token = std::fs::read_to_string(data.join("admin.token"))
            .expect("token")
            .trim()
            .to_string();
        Running {
            dir: Some(dir),
            data,
            site,
            http,
            https,
            token,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn ca(&self) -> PathBuf {
        self.data.join(PKI_DIR).join(CA_CERT_FILE)
    }

    fn https_url(&self, host: &str, path: &str) -> String {
        format!("https://{host}:{}{path}", self.https.port())
    }

    /// Stops the site; both listeners must finish within seconds. The data folder is the
    /// caller's to keep or drop.
    async fn stop(mut self) -> TempDir {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let task = self.task.take().expect("task");
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("the site stops in time")
            .expect("join")
            .expect("the site stopped cleanly");
        self.dir.take().expect("the data folder")
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

/// Runs `curl -sS` with `args` (off the runtime's threads); the CA bundle variables are
/// cleared so "without --cacert" means the system's roots.
async fn curl(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new("curl")
            .args(["-sS", "--max-time", "20"])
            .args(&args)
            .env_remove("CURL_CA_BUNDLE")
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .output()
            .expect("curl runs (apt-get install curl)")
    })
    .await
    .expect("join")
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

/// `curl` answered with HTTP status `code`; its body is returned.
fn answered(o: &Output, code: u16) -> String {
    let (out, err) = text(o);
    assert!(o.status.success(), "curl failed: {err}");
    let (body, status) = out.rsplit_once('\n').expect("the -w status line");
    assert_eq!(status, code.to_string(), "body: {body}");
    body.to_string()
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_verifies_the_site_with_the_site_ca_and_fails_without_it() {
    let r = Running::start(|_| {}).await;
    #[cfg(unix)]
    {
        let pki = r.data.join(PKI_DIR);
        assert_eq!(mode(&pki.join(CA_CERT_FILE)), 0o644);
        assert_eq!(mode(&pki.join(CA_KEY_FILE)), 0o600);
        assert_eq!(mode(&pki.join(SITE_KEY_FILE)), 0o600);
    }
    let ca = r.ca().display().to_string();
    let auth = format!("Authorization: Bearer {}", r.token);
    for host in ["127.0.0.1", "localhost"] {
        let out = curl(s(&[
            "--cacert",
            &ca,
            "-H",
            &auth,
            "-w",
            "\n%{http_code}",
            &r.https_url(host, "/api/v1/site"),
        ]))
        .await;
        let body = answered(&out, 200);
        let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(v["site"], "CS1", "{body}");
    }
    // The admin route still wants its token over HTTPS.
    let out = curl(s(&[
        "--cacert",
        &ca,
        "-w",
        "\n%{http_code}",
        &r.https_url("127.0.0.1", "/api/v1/site"),
    ]))
    .await;
    answered(&out, 401);

    // Without the site CA: the system's roots do not vouch for the site.
    let out = curl(s(&["-H", &auth, &r.https_url("127.0.0.1", "/api/v1/site")])).await;
    let (stdout, err) = text(&out);
    assert_eq!(
        out.status.code(),
        Some(60),
        "curl must fail verification: {err}"
    );
    assert!(!stdout.contains("CS1"), "{stdout}");

    // Another site's CA does not vouch for it either.
    let (other, _) = SiteCa::generate("CS2").expect("another CA");
    let other_path = r.data.join("other-ca.crt");
    std::fs::write(&other_path, other.certificate_pem()).expect("write");
    let out = curl(s(&[
        "--cacert",
        &other_path.display().to_string(),
        &r.https_url("127.0.0.1", "/api/v1/health"),
    ]))
    .await;
    assert_eq!(out.status.code(), Some(60), "{}", text(&out).1);

    // Plain HTTP is served beside HTTPS on a site that is not internet-facing.
    let http = r.http.expect("a plain listener");
    let out = curl(s(&[
        "-w",
        "\n%{http_code}",
        &format!("http://{http}/api/v1/health"),
    ]))
    .await;
    assert_eq!(answered(&out, 200), "ok");

    // The enrollment answer carries the CA certificate clients will trust.
    assert_eq!(
        r.site.pki.ca_certificate_pem(),
        std::fs::read_to_string(r.ca()).expect("ca.crt")
    );
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internet_facing_site_serves_only_https() {
    // The plain port the site would use were it not internet-facing.
    let plain_port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let r = Running::start(move |cfg| {
        cfg.site.listen = format!("127.0.0.1:{plain_port}");
        cfg.tls.internet_facing = true;
    })
    .await;
    assert!(r.http.is_none(), "no plain listener");
    assert!(r.site.config.public_url().starts_with("https://"));

    // Plain HTTP on the configured port: nothing listens.
    let out = curl(s(&[&format!(
        "http://127.0.0.1:{plain_port}/api/v1/health"
    )]))
    .await;
    assert_eq!(
        out.status.code(),
        Some(7),
        "connection refused: {:?}",
        text(&out)
    );
    // Plain HTTP on the HTTPS port: no HTTP answer.
    let out = curl(s(&[
        "-w",
        "\n%{http_code}",
        &format!("http://127.0.0.1:{}/api/v1/health", r.https.port()),
    ]))
    .await;
    let (stdout, _) = text(&out);
    assert!(
        !out.status.success() || !stdout.ends_with("200"),
        "plain HTTP must not be answered: {stdout}"
    );
    // HTTPS works.
    let out = curl(s(&[
        "--cacert",
        &r.ca().display().to_string(),
        "-w",
        "\n%{http_code}",
        &r.https_url("localhost", "/api/v1/health"),
    ]))
    .await;
    assert_eq!(answered(&out, 200), "ok");

    // serve() refuses a plain listener for an internet-facing site.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let err = koshin_server::serve(r.site.clone(), plain, async {})
        .await
        .expect_err("plain HTTP refused");
    assert!(err.to_string().contains("internet-facing"), "{err}");
    r.stop().await;
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

/// Writes a client certificate and key the CA issued, for curl.
fn client_files(dir: &Path, name: &str, ca: &SiteCa) -> (String, String) {
    let issued = ca.issue_client(name).expect("issue a client certificate");
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, &issued.certificate_pem).expect("write cert");
    std::fs::write(&key, issued.private_key.expose()).expect("write key");
    (cert.display().to_string(), key.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn required_client_certificates_are_checked_at_the_handshake() {
    let r = Running::start(|cfg| {
        cfg.tls.client_certificates = ClientCertificates::Required;
    })
    .await;
    let ca = r.ca().display().to_string();
    let url = r.https_url("127.0.0.1", "/api/v1/health");

    // No client certificate: refused at the handshake, no HTTP answer (curl sees the
    // connection closed under it: TLS 1.3 sends the "certificate required" alert after the
    // client's side of the handshake; the rustls client below names the alert).
    let out = curl(s(&["--cacert", &ca, "-w", "\n%{http_code}", &url])).await;
    let (stdout, err) = text(&out);
    assert!(!out.status.success(), "refused: {stdout} {err}");
    assert_eq!(stdout.trim(), "000", "no HTTP status: {err}");

    // A certificate issued by this site's CA (pki.rs): served.
    let (cert, key) = client_files(&r.data, "6f1c2a7e-client", r.site.pki.ca());
    let out = curl(s(&[
        "--cacert",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
        "-w",
        "\n%{http_code}",
        &url,
    ]))
    .await;
    assert_eq!(answered(&out, 200), "ok");

    // The same through rustls (reqwest), as the agent will present one.
    let issued = r
        .site
        .pki
        .ca()
        .issue_client("reqwest-client")
        .expect("issue");
    let identity = reqwest::Identity::from_pem(
        format!("{}{}", issued.certificate_pem, issued.private_key.expose()).as_bytes(),
    )
    .expect("identity");
    let root =
        reqwest::Certificate::from_pem(r.site.pki.ca_certificate_pem().as_bytes()).expect("root");
    let client = reqwest::Client::builder()
        .tls_certs_only([root.clone()])
        .identity(identity)
        .build()
        .expect("client");
    let resp = client.get(&url).send().await.expect("served");
    assert_eq!(resp.status(), 200);
    let anonymous = reqwest::Client::builder()
        .tls_certs_only([root])
        .build()
        .expect("client");
    let err = anonymous.get(&url).send().await.expect_err("refused");
    let chain = error_chain(&err);
    assert!(
        chain.contains("CertificateRequired"),
        "the handshake alert: {chain}"
    );

    // A certificate from another CA: refused.
    let (other, _) = SiteCa::generate("CS2").expect("another CA");
    let (cert, key) = client_files(&r.data, "stranger", &other);
    let out = curl(s(&[
        "--cacert",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
        "-w",
        "\n%{http_code}",
        &url,
    ]))
    .await;
    assert!(!out.status.success(), "refused: {:?}", text(&out));
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn optional_client_certificates_serve_anonymous_clients_but_check_presented_ones() {
    let r = Running::start(|_| {}).await;
    assert_eq!(
        r.site.config.tls.client_certificates,
        ClientCertificates::Optional
    );
    let ca = r.ca().display().to_string();
    let url = r.https_url("127.0.0.1", "/api/v1/health");
    let out = curl(s(&["--cacert", &ca, "-w", "\n%{http_code}", &url])).await;
    assert_eq!(answered(&out, 200), "ok");
    let (cert, key) = client_files(&r.data, "member", r.site.pki.ca());
    let out = curl(s(&[
        "--cacert",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
        "-w",
        "\n%{http_code}",
        &url,
    ]))
    .await;
    assert_eq!(answered(&out, 200), "ok");
    let (other, _) = SiteCa::generate("CS2").expect("another CA");
    let (cert, key) = client_files(&r.data, "stranger", &other);
    let out = curl(s(&[
        "--cacert",
        &ca,
        "--cert",
        &cert,
        "--key",
        &key,
        "-w",
        "\n%{http_code}",
        &url,
    ]))
    .await;
    assert!(!out.status.success(), "refused: {:?}", text(&out));
    r.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_made_before_tls_gets_its_pki_at_start_and_keeps_its_ca() {
    let r = Running::start(|_| {}).await;
    let data = r.data.clone();
    let site = r.site.clone();
    let _dir = r.stop().await;
    // Before TLS there was no pki/ folder: opening the site creates it.
    let ca_before = site.pki.ca_certificate_pem().to_string();
    drop(site);
    std::fs::remove_dir_all(data.join(PKI_DIR)).expect("remove pki");
    let reopened = Site::open(&data).expect("open");
    let ca_new = reopened.pki.ca_certificate_pem().to_string();
    assert_ne!(ca_new, ca_before, "a new CA for a site without one");
    assert!(data.join(PKI_DIR).join(SITE_KEY_FILE).is_file());
    // From then on the CA stays.
    drop(reopened);
    let again = Site::open(&data).expect("open");
    assert_eq!(again.pki.ca_certificate_pem(), ca_new);
}
