//! Shared fixtures for the agent's integration tests: a real signed APT archive served on
//! loopback, a site initialised against it and synced, its HTTP API served on loopback (with
//! every request's method and URI recorded), and agents enrolled with it, each with its own
//! state folder and a fake dpkg root.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use koshin_agent::db::{AgentDb, Identity};
use koshin_agent::mp::Mp;
use koshin_agent::send::Sent;
use koshin_domain::scan::ScanTrigger;
use koshin_domain::{SyncKind, SyncTrigger};
use koshin_server::init::{InitOptions, init_site};
use koshin_server::sync::SyncManager;
use koshin_server::{Site, SiteConfig};
use koshin_testkit::{Archive, DebSpec, LoopbackServer, SuiteSpec};
use koshin_wire::{ClientDetail, ClientSummary, ScanOutput};
use tempfile::TempDir;

pub const STABLE: &str = "bookworm";
pub const SECURITY: &str = "bookworm-security";

pub const HOUR_MS: i64 = 3_600_000;

/// The titles of the catalog's updates after the first sync (one update per source
/// version): bookworm has hello 2.10-3, libfoo1 1.0-1 and curl; bookworm-security has
/// hello 2.10-4 and libfoo1 1.0-1+deb12u1.
pub const HELLO_OLD: &str = "hello 2.10-3";
pub const HELLO_NEW: &str = "hello 2.10-4";
pub const LIBFOO_OLD: &str = "libfoo 1.0-1";
pub const LIBFOO_SEC: &str = "libfoo 1.0-1+deb12u1";
pub const CURL: &str = "curl 7.88.1-10";
/// Added by [`TestSite::publish_libfoo_deb12u2`].
pub const LIBFOO_SEC2: &str = "libfoo 1.0-1+deb12u2";

/// What the typical client has installed: the old hello and libfoo1, no curl.
pub const TYPICAL: &[(&str, &str)] = &[("hello", "2.10-3"), ("libfoo1", "1.0-1")];

fn deb(name: &str, version: &str, source: &str) -> DebSpec {
    DebSpec::new(name, version, "amd64").source(source, None)
}

pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// A site synced from a served archive, its API served on loopback. Derefs to the served
/// site ([`Served`]) for the views and helpers.
pub struct TestSite {
    pub archive: Archive,
    pub upstream: LoopbackServer,
    pub stable: SuiteSpec,
    pub security: SuiteSpec,
    pub dir: TempDir,
    pub data: PathBuf,
    pub served: Served,
}

impl std::ops::Deref for TestSite {
    type Target = Served;
    fn deref(&self) -> &Served {
        &self.served
    }
}

/// A site opened from a data folder and its API served on loopback, every request's method
/// and URI recorded.
pub struct Served {
    pub site: Arc<Site>,
    pub url: String,
    pub token: String,
    /// "GET /api/v1/mp/catalog?since=0", ... in the order the site saw them.
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestSite {
    /// Builds the archive, initialises and syncs the site (content version 1), serves it.
    pub async fn start() -> TestSite {
        TestSite::start_with(|_| {}).await
    }

    /// [`TestSite::start`], with `configure` editing `koshin.toml` first.
    pub async fn start_with(configure: impl FnOnce(&mut SiteConfig)) -> TestSite {
        let mut archive = Archive::new().expect("create archive");
        for d in [
            deb("hello", "2.10-3", "hello"),
            deb("libfoo1", "1.0-1", "libfoo"),
            deb("curl", "7.88.1-10", "curl"),
        ] {
            archive.add(STABLE, "main", &d).expect("add to bookworm");
        }
        for d in [
            deb("hello", "2.10-4", "hello"),
            deb("libfoo1", "1.0-1+deb12u1", "libfoo"),
        ] {
            archive.add(SECURITY, "main", &d).expect("add to security");
        }
        let stable = SuiteSpec::new(STABLE, STABLE);
        let security = SuiteSpec::new(SECURITY, SECURITY).label("Debian-Security");
        archive.publish(&stable).expect("publish bookworm");
        archive.publish(&security).expect("publish security");
        let upstream = archive.serve().expect("serve archive");
        let uri = archive.uri(&upstream);
        let upstreams = [STABLE, SECURITY]
            .iter()
            .map(|suite| {
                format!(
                    "deb [signed-by={} arch=amd64] {uri} {suite} main",
                    archive.keyring().display()
                )
            })
            .collect();
        let dir = tempfile::Builder::new()
            .prefix("kagent-site")
            .tempdir()
            .expect("site dir");
        let data = dir.path().join("data");
        init_site(&InitOptions {
            code: "CS1".into(),
            data: data.clone(),
            upstreams,
            listen: None,
            parent: None,
            secondary: false,
        })
        .expect("init site");
        let cfg_path = data.join("koshin.toml");
        let mut cfg = SiteConfig::load(&cfg_path).expect("load koshin.toml");
        cfg.site.system = "KOSHIN-TEST".into();
        cfg.upstream.connect_timeout_seconds = 2;
        cfg.upstream.read_timeout_seconds = 10;
        configure(&mut cfg);
        std::fs::write(&cfg_path, cfg.to_documented_toml()).expect("write koshin.toml");
        let served = Served::open(&data).await;
        let s = TestSite {
            archive,
            upstream,
            stable,
            security,
            dir,
            data,
            served,
        };
        s.sync().await;
        s
    }

    /// Publishes libfoo1 1.0-1+deb12u2 in bookworm-security and syncs it.
    pub async fn publish_libfoo_deb12u2(&mut self) -> i64 {
        self.archive
            .add(SECURITY, "main", &deb("libfoo1", "1.0-1+deb12u2", "libfoo"))
            .expect("add deb12u2");
        self.publish_security();
        self.sync().await
    }

    /// Re-publishes bookworm-security after `archive` edits (not synced).
    pub fn publish_security(&mut self) {
        let spec = self.security.clone();
        self.archive.publish(&spec).expect("publish security");
    }

    /// A copy of the site's data folder as it is now (a backup), in a new temporary
    /// folder; [`Served::open`] serves it.
    pub fn backup(&self) -> (TempDir, PathBuf) {
        let dir = tempfile::Builder::new()
            .prefix("kagent-backup")
            .tempdir()
            .expect("backup dir");
        let to = dir.path().join("data");
        std::fs::create_dir_all(&to).expect("backup data");
        for entry in std::fs::read_dir(&self.data).expect("read data") {
            let entry = entry.expect("entry");
            if entry.file_type().expect("type").is_file() {
                let name = entry.file_name();
                if name.to_string_lossy().ends_with("-shm") {
                    continue;
                }
                std::fs::copy(entry.path(), to.join(name)).expect("copy");
            }
        }
        (dir, to)
    }
}

impl Served {
    /// Opens the site at `data` and serves its API on a new loopback port.
    pub async fn open(data: &Path) -> Served {
        let site = Site::open(data).expect("open site");
        let token = std::fs::read_to_string(data.join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_string();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let app = koshin_server::http::app(site.clone()).layer(axum::middleware::map_request(
            move |req: axum::extract::Request| {
                let log = log.clone();
                async move {
                    log.lock()
                        .unwrap()
                        .push(format!("{} {}", req.method(), req.uri()));
                    req
                }
            },
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
                .expect("serve");
        });
        Served {
            site,
            url,
            token,
            requests,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// A full sync that must succeed; returns the new content version.
    pub async fn sync(&self) -> i64 {
        if let Err(f) = SyncManager::new(self.site.clone())
            .run_once(SyncTrigger::FullRequest, SyncKind::Full)
            .await
        {
            panic!("sync failed: {} (source: {})", f.reason, f.source);
        }
        self.content_version()
    }

    pub fn content_version(&self) -> i64 {
        self.site
            .store
            .content_version()
            .expect("content version")
            .1
    }

    /// The requests whose "METHOD URI" contains `needle`.
    pub fn requests_matching(&self, needle: &str) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.contains(needle))
            .cloned()
            .collect()
    }

    pub fn request_count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// Enrolls a new agent with `installed` packages (amd64) in its fake dpkg root.
    pub async fn enroll(&self, name: &str, installed: &[(&str, &str)]) -> TestAgent {
        let agent = TestAgent::new(name, installed);
        self.enroll_agent(&agent).await;
        agent
    }

    /// Enrolls `agent` (with the administrator's token: approved at once).
    pub async fn enroll_agent(&self, agent: &TestAgent) {
        koshin_agent::enroll::enroll(&koshin_agent::enroll::EnrollOptions {
            site: self.url.clone(),
            token: self.token.clone(),
            name: Some(agent.name.clone()),
            state: agent.state.clone(),
            root: agent.root.clone(),
            ca_certificate: None,
        })
        .await
        .expect("enroll");
    }

    /// Runs a read-only SQL query against the site database.
    pub fn query(&self, sql: &str, params: &[(&str, &str)]) -> Vec<Vec<serde_json::Value>> {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.site
            .store
            .run_report(sql, &params, &koshin_domain::Scope::All)
            .expect("query")
            .1
    }

    /// A query that answers one integer.
    pub fn count(&self, sql: &str, params: &[(&str, &str)]) -> i64 {
        let rows = self.query(sql, params);
        rows[0][0]
            .as_i64()
            .unwrap_or_else(|| panic!("{sql} gave {rows:?}"))
    }

    /// Rows of state_history of one client.
    pub fn history_len(&self, client_id: &str) -> i64 {
        self.count(
            "SELECT COUNT(*) FROM state_history WHERE client = (SELECT id FROM clients WHERE client_id = :c)",
            &[("c", client_id)],
        )
    }

    /// The site's current (state, restart_pending) of one client for the update titled
    /// `title`, as reports see it; `None` when it is Unknown at the site.
    pub fn current_state(&self, client_id: &str, title: &str) -> Option<(String, bool)> {
        let rows = self.query(
            "SELECT state, restart_pending FROM v_compliance
             WHERE client_id = :c AND title = :t AND state <> 'unknown'",
            &[("c", client_id), ("t", title)],
        );
        rows.first().map(|r| {
            (
                r[0].as_str().expect("state").to_string(),
                r[1].as_i64().expect("restart_pending") != 0,
            )
        })
    }

    /// The update id of the update titled `title`.
    pub fn update_id(&self, title: &str) -> String {
        let rows = self.query("SELECT id FROM updates WHERE title = :t", &[("t", title)]);
        assert_eq!(rows.len(), 1, "one update titled {title}: {rows:?}");
        rows[0][0].as_str().expect("id").to_string()
    }

    pub fn client(&self, name: &str) -> ClientDetail {
        self.site
            .store
            .get_client(name, &koshin_domain::Scope::All)
            .expect("get client")
            .unwrap_or_else(|| panic!("no client {name}"))
    }

    pub fn clients(&self) -> Vec<ClientSummary> {
        self.site
            .store
            .list_clients(&koshin_domain::Scope::All)
            .expect("list clients")
    }

    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    /// `GET path` with the administrator token; the JSON answer.
    pub async fn admin_get(&self, path: &str) -> serde_json::Value {
        let resp = self
            .http()
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.token)
            .send()
            .await
            .expect("GET");
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.expect("JSON")
    }

    /// `POST path` with the administrator token and a JSON body; the JSON answer, which
    /// must be a 200.
    pub async fn admin_post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let (s, v) = call(self, "POST", path, Some(&self.token), Some(body)).await;
        assert_eq!(s, 200, "{path}: {v}");
        v
    }

    /// The rows of the `updates-with-counts` report, by title: (required, installed,
    /// not_required, unknown).
    pub async fn updates_with_counts(&self) -> std::collections::BTreeMap<String, [i64; 4]> {
        let v = self.admin_get("/api/v1/reports/updates-with-counts").await;
        v["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| {
                let n = |k: &str| r[k].as_i64().unwrap_or_else(|| panic!("{k} in {r}"));
                (
                    r["title"].as_str().expect("title").to_string(),
                    [
                        n("required"),
                        n("installed"),
                        n("not_required"),
                        n("unknown"),
                    ],
                )
            })
            .collect()
    }
}

impl Served {
    /// Stops serving: the port refuses connections from now on.
    pub async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// An agent: its state folder and a fake machine (`<root>/var/lib/dpkg/status`, ...).
pub struct TestAgent {
    pub dir: TempDir,
    pub name: String,
    pub state: PathBuf,
    pub root: PathBuf,
}

impl TestAgent {
    pub fn new(name: &str, installed: &[(&str, &str)]) -> TestAgent {
        let dir = tempfile::Builder::new()
            .prefix("kagent")
            .tempdir()
            .expect("agent dir");
        let state = dir.path().join("state");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("var/lib/dpkg")).expect("dpkg dir");
        std::fs::create_dir_all(root.join("etc")).expect("etc");
        std::fs::create_dir_all(root.join("run")).expect("run");
        std::fs::write(root.join("var/lib/dpkg/arch"), "amd64\n").expect("arch");
        std::fs::write(
            root.join("etc/os-release"),
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n",
        )
        .expect("os-release");
        let agent = TestAgent {
            dir,
            name: name.to_string(),
            state,
            root,
        };
        agent.set_installed(installed);
        agent
    }

    /// An agent of a machine whose root (a real dpkg root) the caller made.
    pub fn with_root(name: &str, root: PathBuf) -> TestAgent {
        let dir = tempfile::Builder::new()
            .prefix("kagent")
            .tempdir()
            .expect("agent dir");
        TestAgent {
            state: dir.path().join("state"),
            dir,
            name: name.to_string(),
            root,
        }
    }

    /// Rewrites dpkg's status: `installed` (amd64), plus a removed package that must not
    /// count.
    pub fn set_installed(&self, installed: &[(&str, &str)]) {
        let mut text = String::new();
        for (name, version) in installed {
            text.push_str(&format!(
                "Package: {name}\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nVersion: {version}\nDescription: {name}\n a package\n\n"
            ));
        }
        text.push_str(
            "Package: curl\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 7.88.1-1\n\n",
        );
        std::fs::write(self.root.join("var/lib/dpkg/status"), text).expect("dpkg status");
    }

    /// Writes (`Some`) or removes (`None`) `run/reboot-required` and its `.pkgs`.
    pub fn set_reboot_required(&self, pkgs: Option<&[&str]>) {
        let flag = self.root.join("run/reboot-required");
        let list = self.root.join("run/reboot-required.pkgs");
        match pkgs {
            Some(p) => {
                std::fs::write(&flag, "*** System restart required ***\n").expect("flag");
                std::fs::write(
                    &list,
                    p.iter().map(|n| format!("{n}\n")).collect::<String>(),
                )
                .expect("pkgs");
            }
            None => {
                let _ = std::fs::remove_file(flag);
                let _ = std::fs::remove_file(list);
            }
        }
    }

    pub fn db(&self) -> AgentDb {
        AgentDb::open(&self.state).expect("agent db")
    }

    pub fn identity(&self) -> Identity {
        self.db().identity().expect("identity")
    }

    pub fn client_id(&self) -> String {
        self.identity().client_id
    }

    pub fn mp(&self) -> Mp {
        let id = self.identity();
        Mp::for_identity(&id).expect("mp")
    }

    pub fn kv_i64(&self, key: &str) -> Option<i64> {
        self.db().get_i64(key).expect("kv")
    }

    pub fn set_kv_i64(&self, key: &str, value: i64) {
        self.db().set_i64(key, value).expect("set kv");
    }

    pub fn queue_length(&self) -> u64 {
        self.db().queue_length().expect("queue length")
    }

    /// One scan through the library, as the agent runs it.
    pub async fn scan(&self, trigger: ScanTrigger) -> anyhow::Result<ScanOutput> {
        let mut db = self.db();
        let mp = self.mp();
        koshin_agent::scan::scan(&mut db, Some(&mp), &self.root, trigger).await
    }

    pub async fn scan_ok(&self, trigger: ScanTrigger) -> ScanOutput {
        self.scan(trigger)
            .await
            .unwrap_or_else(|e| panic!("{} scan failed: {e:#}", trigger.name()))
    }

    /// Sends everything queued; must succeed.
    pub async fn send(&self) -> Sent {
        let mut db = self.db();
        let id = db.identity().expect("identity");
        let mp = self.mp();
        koshin_agent::send::send_all(&mut db, &id, &mp)
            .await
            .unwrap_or_else(|e| panic!("send failed: {e}"))
    }
}

/// (state, restart_pending) of the update titled `title` in a scan's output.
pub fn scanned(out: &ScanOutput, title: &str) -> (String, bool) {
    let u = out
        .updates
        .iter()
        .find(|u| u.title == title)
        .unwrap_or_else(|| {
            panic!(
                "{title} is not in the scan's output: {:?}",
                out.updates.iter().map(|u| &u.title).collect::<Vec<_>>()
            )
        });
    (u.state.clone(), u.restart_pending)
}

/// The states of a scan's output by title.
pub fn states(out: &ScanOutput) -> std::collections::BTreeMap<String, (String, bool)> {
    out.updates
        .iter()
        .map(|u| (u.title.clone(), (u.state.clone(), u.restart_pending)))
        .collect()
}

pub fn st(s: &str, restart: bool) -> (String, bool) {
    (s.to_string(), restart)
}

/// A path's display form, for command lines.
pub fn disp(p: &Path) -> String {
    p.display().to_string()
}

/// One API request: (status, JSON body or Null).
pub async fn call(
    site: &Served,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let url = format!("{}{path}", site.url);
    let mut r = match method {
        "GET" => site.http().get(url),
        "POST" => site.http().post(url),
        other => panic!("method {other}"),
    };
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    } else if method == "POST" {
        r = r.json(&serde_json::json!({}));
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    let v = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, v)
}

/// Runs dpkg on a test root (as a normal user, scripts outside a chroot).
pub fn dpkg(root: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("dpkg")
        .arg(format!("--root={}", root.display()))
        .args(["--force-not-root", "--force-script-chrootless"])
        .args(args)
        .env("LC_ALL", "C.UTF-8")
        .output()
        .expect("dpkg runs")
}

/// A real dpkg root with the archive's hello 2.10-3 and libfoo1 1.0-1 installed by dpkg,
/// and an agent enrolled with it at `at`.
pub async fn dpkg_machine(
    archive: &Archive,
    at: &Served,
    name: &str,
) -> (koshin_testkit::DpkgRoot, TestAgent) {
    let root = koshin_testkit::DpkgRoot::new().expect("dpkg root");
    std::fs::create_dir_all(root.path().join("etc")).expect("etc");
    std::fs::create_dir_all(root.path().join("run")).expect("run");
    let debs: Vec<PathBuf> = [("hello", "2.10-3", "hello"), ("libfoo1", "1.0-1", "libfoo")]
        .iter()
        .map(|(n, v, s)| {
            archive.root().join(
                DebSpec::new(n, v, "amd64")
                    .source(s, None)
                    .pool_path("main"),
            )
        })
        .collect();
    let mut args = vec!["-i"];
    let paths: Vec<String> = debs.iter().map(|p| p.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    let out = dpkg(root.path(), &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let agent = TestAgent::with_root(name, root.path().to_path_buf());
    at.enroll_agent(&agent).await;
    (root, agent)
}

/// The agent fetches its policy and evaluates its deployments (installing what is due).
pub async fn evaluate_deployments(agent: &TestAgent) -> Vec<koshin_agent::deploy::Evaluated> {
    koshin_agent::runner::poll_policy(&agent.db(), &agent.mp())
        .await
        .expect("policy");
    koshin_agent::deploy::evaluate(
        &mut agent.db(),
        &agent.mp(),
        &agent.root,
        &agent.state,
        true,
    )
    .await
    .expect("evaluate")
}

/// A site served over HTTPS only, by `koshin_server::serve` with its background
/// components: `https://localhost:PORT`; stopped on drop.
pub struct Https {
    pub url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Https {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub async fn serve_https(site: &Arc<Site>) -> Https {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(koshin_server::serve(
        site.clone(),
        koshin_server::Listeners {
            http: None,
            https: Some(listener),
        },
        async {
            let _ = stopped.await;
        },
    ));
    Https {
        url: format!("https://localhost:{port}"),
        stop: Some(stop),
    }
}

/// A join token of the site at `parent_url`, made with an administrator's token.
pub async fn join_token(parent_url: &str, parent_token: &str) -> String {
    let r = reqwest::Client::new()
        .post(format!("{parent_url}/api/v1/sites/join-tokens"))
        .bearer_auth(parent_token)
        .json(&serde_json::json!({"hours": 1}))
        .send()
        .await
        .expect("join token");
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.expect("json");
    v["token"].as_str().expect("token").to_string()
}
