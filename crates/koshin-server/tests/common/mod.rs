//! Shared fixtures for the koshin-server integration tests: a real signed APT archive
//! ("bookworm" + "bookworm-security") served on loopback, a site initialised against it
//! with the archive's keyring, and helpers to read what a sync left behind (status
//! messages, content version, catalog, the sync manager log) and to damage the archive
//! the way a broken or hostile upstream would.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use koshin_domain::catalog::UpdateId;
use koshin_domain::{SyncKind, SyncTrigger};
use koshin_server::init::{InitOptions, init_site};
use koshin_server::sync::{SyncFailure, SyncManager, SyncReport};
use koshin_server::{Site, SiteConfig};
use koshin_testkit::{Archive, Compression, DebSpec, LoopbackServer, SuiteSpec};
use koshin_wire::{StatusMessageOut, StatusQuery, UpdateQuery, UpdateSummary};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

pub const COMPONENT: &str = "SMS_WSUS_SYNC_MANAGER";
pub const PRODUCT: &str = "Debian 12 (bookworm)";
pub const STABLE: &str = "bookworm";
pub const SECURITY: &str = "bookworm-security";
/// The `Packages` index koshin fetches by default (compression_order puts gz first).
pub const PACKAGES_GZ: &str = "main/binary-amd64/Packages.gz";
pub const PACKAGES_XZ: &str = "main/binary-amd64/Packages.xz";
pub const PACKAGES: &str = "main/binary-amd64/Packages";

/// The id koshin gives the update of `source` at `version` in the bookworm product.
pub fn apt_id(source: &str, version: &str) -> String {
    UpdateId::for_apt(PRODUCT, source, version).to_string()
}

// ----- the archive -------------------------------------------------------------------

/// hello's binNMU: binary version 2.10-3+b1 built from source hello 2.10-3.
pub fn hello_binnmu() -> DebSpec {
    DebSpec::new("hello", "2.10-3+b1", "amd64")
        .source("hello", Some("2.10-3"))
        .section("devel")
        .description("example package based on GNU hello\nThe GNU hello program.")
        .file("usr/bin/hello", b"#!/bin/sh\necho hello binnmu\n")
}

/// hello-doc 2.10-3, the other binary of source hello 2.10-3.
pub fn hello_doc() -> DebSpec {
    DebSpec::new("hello-doc", "2.10-3", "amd64")
        .source("hello", None)
        .section("doc")
}

pub fn libfoo() -> DebSpec {
    DebSpec::new("libfoo1", "1.0-1", "amd64")
        .source("libfoo", None)
        .section("libs")
}

pub fn libfoo_security() -> DebSpec {
    DebSpec::new("libfoo1", "1.0-1+deb12u1", "amd64")
        .source("libfoo", None)
        .section("libs")
}

pub fn curl() -> DebSpec {
    DebSpec::new("curl", "7.88.1-10", "amd64").section("web")
}

pub fn curl_security() -> DebSpec {
    DebSpec::new("curl", "7.88.1-10+deb12u5", "amd64").section("web")
}

/// How a fixture is built.
pub struct Options {
    /// The compressions both suites are published with.
    pub compressions: Vec<Compression>,
    /// Edits `koshin.toml` before the site is opened.
    pub configure: Box<dyn FnOnce(&mut SiteConfig)>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            compressions: vec![Compression::Gz, Compression::Xz],
            configure: Box::new(|_| {}),
        }
    }
}

impl Options {
    pub fn configure(mut self, f: impl FnOnce(&mut SiteConfig) + 'static) -> Self {
        self.configure = Box::new(f);
        self
    }
    pub fn compressions(mut self, c: &[Compression]) -> Self {
        self.compressions = c.to_vec();
        self
    }
}

/// A served archive and a site synced against it.
pub struct Fixture {
    pub archive: Archive,
    /// `None` once the upstream was taken down on purpose.
    pub server: Option<LoopbackServer>,
    pub stable: SuiteSpec,
    pub security: SuiteSpec,
    pub dir: TempDir,
    pub data: PathBuf,
    pub site: Arc<Site>,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture::with(Options::default())
    }

    /// bookworm: hello-doc 2.10-3 and hello 2.10-3+b1 (source hello 2.10-3), libfoo1 1.0-1,
    /// curl 7.88.1-10; bookworm-security: libfoo1 1.0-1+deb12u1, curl 7.88.1-10+deb12u5.
    /// Five updates: three "Updates", two "Security Updates".
    pub fn with(opts: Options) -> Fixture {
        let mut archive = Archive::new().expect("create archive");
        for deb in [hello_binnmu(), hello_doc(), libfoo(), curl()] {
            archive.add(STABLE, "main", &deb).expect("add to bookworm");
        }
        for deb in [libfoo_security(), curl_security()] {
            archive
                .add(SECURITY, "main", &deb)
                .expect("add to bookworm-security");
        }
        let stable = SuiteSpec::new(STABLE, STABLE).compressions(&opts.compressions);
        let security = SuiteSpec::new(SECURITY, SECURITY)
            .label("Debian-Security")
            .compressions(&opts.compressions);
        archive.publish(&stable).expect("publish bookworm");
        archive
            .publish(&security)
            .expect("publish bookworm-security");
        let server = archive.serve().expect("serve archive");
        let uri = archive.uri(&server);
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
            .prefix("ksite")
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
        edit_config(&data, |cfg| {
            cfg.site.system = "KOSHIN-TEST".into();
            cfg.sync.inbox_poll_ms = 100;
            cfg.upstream.connect_timeout_seconds = 2;
            cfg.upstream.read_timeout_seconds = 10;
            (opts.configure)(cfg);
        });
        let site = Site::open(&data).expect("open site");
        Fixture {
            archive,
            server: Some(server),
            stable,
            security,
            dir,
            data,
            site,
        }
    }

    pub fn server(&self) -> &LoopbackServer {
        self.server.as_ref().expect("the upstream is served")
    }

    /// Re-reads `koshin.toml` after an edit (a new `Site` over the same data folder).
    pub fn reopen(&mut self) {
        self.site = Site::open(&self.data).expect("reopen site");
    }

    pub fn configure(&mut self, f: impl FnOnce(&mut SiteConfig)) {
        edit_config(&self.data, f);
        self.reopen();
    }

    pub fn publish_stable(&mut self) {
        let spec = self.stable.clone();
        self.archive.publish(&spec).expect("publish bookworm");
    }

    pub fn publish_security(&mut self) {
        let spec = self.security.clone();
        self.archive
            .publish(&spec)
            .expect("publish bookworm-security");
    }

    /// Runs one sync directly, as the sync manager would for a local request.
    pub async fn sync(&self, kind: SyncKind) -> Result<SyncReport, SyncFailure> {
        let trigger = match kind {
            SyncKind::Full => SyncTrigger::FullRequest,
            SyncKind::Delta => SyncTrigger::LocalRequest,
        };
        SyncManager::new(self.site.clone())
            .run_once(trigger, kind)
            .await
    }

    /// A sync that must succeed.
    pub async fn sync_ok(&self, kind: SyncKind) -> SyncReport {
        match self.sync(kind).await {
            Ok(r) => r,
            Err(f) => panic!(
                "{} sync failed: {} (source: {})",
                kind.name(),
                f.reason,
                f.source
            ),
        }
    }

    /// The full path of a file of the archive, from a path relative to its root.
    pub fn archive_path(&self, rel: &str) -> PathBuf {
        self.archive.root().join(rel)
    }

    /// The by-hash path (relative to the archive root) koshin fetches for `index`.
    pub fn by_hash(&self, suite: &str, index: &str) -> String {
        self.archive
            .by_hash_rel(suite, index)
            .expect("by-hash path")
    }

    pub fn last_record(&self) -> i64 {
        last_record(&self.site)
    }

    pub fn messages_since(&self, after: i64) -> Vec<StatusMessageOut> {
        messages_since(&self.site, after)
    }

    pub fn message_ids_since(&self, after: i64) -> Vec<u32> {
        self.messages_since(after)
            .iter()
            .map(|m| m.message_id)
            .collect()
    }

    pub fn content_version(&self) -> i64 {
        content_version(&self.site)
    }

    pub fn catalog(&self) -> Vec<UpdateSummary> {
        catalog(&self.site)
    }

    pub fn update(&self, id: &str) -> UpdateSummary {
        self.catalog()
            .into_iter()
            .find(|u| u.id == id)
            .unwrap_or_else(|| panic!("update {id} is not in the catalog"))
    }

    pub fn log(&self) -> Vec<String> {
        log_lines(&self.data)
    }

    pub fn inbox(&self) -> PathBuf {
        self.data.join("inboxes").join("wsyncmgr.box")
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data.join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_string()
    }
}

/// Loads `<data>/koshin.toml`, lets `f` edit it, writes it back (documented form).
pub fn edit_config(data: &Path, f: impl FnOnce(&mut SiteConfig)) {
    let path = data.join("koshin.toml");
    let mut cfg = SiteConfig::load(&path).expect("load koshin.toml");
    f(&mut cfg);
    std::fs::write(&path, cfg.to_documented_toml()).expect("write koshin.toml");
    SiteConfig::load(&path).expect("edited koshin.toml is valid");
}

// ----- reading a site ----------------------------------------------------------------

/// The record id of the newest status message (0 when there is none).
pub fn last_record(site: &Site) -> i64 {
    site.store
        .query_status(&StatusQuery::default(), &koshin_domain::Scope::All)
        .expect("query status messages")
        .last()
        .map_or(0, |m| m.record_id)
}

/// The sync manager's status messages after record `after`, oldest first.
pub fn messages_since(site: &Site, after: i64) -> Vec<StatusMessageOut> {
    site.store
        .query_status(
            &StatusQuery {
                component: Some(COMPONENT.into()),
                after: Some(after),
                ..Default::default()
            },
            &koshin_domain::Scope::All,
        )
        .expect("query status messages")
}

pub fn content_version(site: &Site) -> i64 {
    site.store.content_version().expect("content version").1
}

/// Every update of the catalog (superseded and expired ones too), by id.
pub fn catalog(site: &Site) -> Vec<UpdateSummary> {
    let mut v = site
        .store
        .list_updates(&UpdateQuery::default())
        .expect("list updates");
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

/// The text of each line of `logs/wsyncmgr.log` (without the `$$<component><time>` tail).
pub fn log_lines(data: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(data.join("logs").join("wsyncmgr.log")).unwrap_or_default();
    text.lines()
        .map(|l| match l.find("  $$<") {
            Some(i) => l[..i].to_string(),
            None => l.to_string(),
        })
        .collect()
}

pub fn count_lines(lines: &[String], prefix: &str) -> usize {
    lines.iter().filter(|l| l.starts_with(prefix)).count()
}

// ----- damaging and hand-publishing an archive ----------------------------------------

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Runs `program args` with `input` on stdin and returns stdout (gzip, xz, md5sum).
pub fn filter(program: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    filter("gzip", &["-9", "-n", "-c"], data)
}

pub fn xz(data: &[u8]) -> Vec<u8> {
    filter("xz", &["-6", "-c"], data)
}

pub fn md5_hex(data: &[u8]) -> String {
    let out = filter("md5sum", &[], data);
    String::from_utf8_lossy(&out)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// The published `Packages` text of a suite (decompressed from `Packages.gz` or `.xz`).
pub fn packages_text(archive: &Archive, suite: &str) -> String {
    let dir = archive.suite_dir(suite);
    let gz = dir.join(PACKAGES_GZ);
    let xzp = dir.join(PACKAGES_XZ);
    let plain = dir.join(PACKAGES);
    let bytes = if plain.is_file() {
        std::fs::read(&plain).expect("read Packages")
    } else if gz.is_file() {
        filter("gzip", &["-dc"], &std::fs::read(&gz).expect("read gz"))
    } else {
        filter("xz", &["-dc"], &std::fs::read(&xzp).expect("read xz"))
    };
    String::from_utf8(bytes).expect("Packages is UTF-8")
}

/// Replaces the checksum lines of `path` in every checksum list of a Release text.
fn set_checksums(release: &str, path: &str, data: &[u8]) -> String {
    let sha = sha256_hex(data);
    let md5 = md5_hex(data);
    let mut section = String::new();
    let mut out = String::new();
    let mut found = false;
    for line in release.lines() {
        if !line.starts_with(' ') {
            section = line.trim_end_matches(':').to_string();
            out.push_str(line);
        } else if line.split_whitespace().nth(2) == Some(path) {
            let hash = match section.as_str() {
                "SHA256" => sha.clone(),
                "MD5Sum" => md5.clone(),
                other => panic!("unexpected checksum list {other} in a test Release"),
            };
            found = true;
            out.push_str(&format!(" {hash} {:>16} {path}", data.len()));
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    assert!(found, "{path} is not listed in the Release");
    out
}

/// Hand-publishes index files of a suite: writes each `(path under dists/<suite>/,
/// bytes)`, its by-hash copy, updates the Release's checksums for it, and re-signs the
/// Release correctly with the archive key — what an upstream that publishes bad data
/// (but vouches for it) looks like. A path that is listed but not served (the plain
/// `Packages`) only gets its checksums updated.
pub fn revouch(archive: &mut Archive, suite: &str, files: &[(&str, Vec<u8>)]) {
    let dir = archive.suite_dir(suite);
    for (rel, data) in files {
        let path = dir.join(rel);
        if path.is_file() || *rel != PACKAGES {
            std::fs::write(&path, data).expect("write index");
            let by_hash = path
                .parent()
                .expect("index dir")
                .join("by-hash")
                .join("SHA256");
            if by_hash.is_dir() {
                std::fs::write(by_hash.join(sha256_hex(data)), data).expect("write by-hash copy");
            }
        }
    }
    let files: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|(p, d)| (p.to_string(), d.clone()))
        .collect();
    archive
        .tamper_release(suite, move |mut text| {
            for (p, d) in &files {
                text = set_checksums(&text, p, d);
            }
            text
        })
        .expect("re-sign Release");
}

/// Hand-publishes a suite's `Packages` text in every form its Release lists (plain, gz, xz).
pub fn rewrite_packages(archive: &mut Archive, suite: &str, text: &str) {
    let release = archive.release_text(suite).expect("Release");
    let listed = |p: &str| release.lines().any(|l| l.ends_with(&format!(" {p}")));
    let mut files: Vec<(&str, Vec<u8>)> = Vec::new();
    if listed(PACKAGES) {
        files.push((PACKAGES, text.as_bytes().to_vec()));
    }
    if listed(PACKAGES_GZ) {
        files.push((PACKAGES_GZ, gzip(text.as_bytes())));
    }
    if listed(PACKAGES_XZ) {
        files.push((PACKAGES_XZ, xz(text.as_bytes())));
    }
    revouch(archive, suite, &files);
}

/// Edits the size of `path` in the Release's SHA256 list (keeping the hash), re-signed.
pub fn bump_release_size(archive: &mut Archive, suite: &str, path: &str, by: u64) {
    let path = path.to_string();
    archive
        .tamper_release(suite, move |text| {
            let mut in_sha = false;
            let mut out = String::new();
            for line in text.lines() {
                if !line.starts_with(' ') {
                    in_sha = line == "SHA256:";
                    out.push_str(line);
                } else if in_sha && line.split_whitespace().nth(2) == Some(path.as_str()) {
                    let mut w = line.split_whitespace();
                    let (hash, size) = (w.next().unwrap(), w.next().unwrap());
                    let size: u64 = size.parse().unwrap();
                    out.push_str(&format!(" {hash} {:>16} {path}", size + by));
                } else {
                    out.push_str(line);
                }
                out.push('\n');
            }
            assert_ne!(text, out, "{path} is not in the Release's SHA256 list");
            out
        })
        .expect("re-sign Release");
}

/// A loopback port nothing listens on.
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

/// Polls `f` every 50 ms until it gives `Some`, or panics after `timeout` with `what`.
pub async fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts that `at_ms` lies `minutes` from now, give or take two minutes.
pub fn assert_about_minutes_ahead(at_ms: i64, minutes: i64) {
    let now = jiff::Timestamp::now().as_millisecond();
    let ahead = at_ms - now;
    let want = minutes * 60_000;
    assert!(
        (ahead - want).abs() <= 120_000,
        "expected a time about {minutes} min ahead, got {} s ahead",
        ahead / 1000
    );
}
