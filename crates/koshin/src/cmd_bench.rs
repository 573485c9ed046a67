//! `koshin bench sync`: measures koshin's full sync and no-change delta sync against the
//! peers that do the same job, `apt-get update` into a fresh lists folder and aptly's
//! `mirror create` + `mirror update` into a fresh root (`aptly.rs`), in one run on this
//! machine, from the same loopback copy of the archive metadata.
//!
//! The copy holds, for each suite of this machine's APT sources, the `InRelease` byte for
//! byte (so the archive's own signature still verifies) and every `Packages.{gz,xz}` it
//! lists, at its canonical path and under `by-hash/SHA256/`. It is built once (checked
//! against the Release while downloading) and reused while its Release is valid. An
//! in-process HTTP server serves it from memory on `127.0.0.1:0`, so every client sees the
//! same files at loopback speed, and the order of the tools changes every round.
//!
//! A benchmark is not a test: it prints figures, and `docs/benchmarks.md` records them
//! with the command that reproduces them.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use clap::{Args, Subcommand};
use koshin_apt::release::Release;
use koshin_apt::verify::Keyring;
use koshin_apt::{AptSource, FetchOptions, Fetcher};
use koshin_domain::catalog::{self, Classification, SuiteIndex};
use koshin_domain::sync::{SyncKind, SyncTrigger};
use koshin_server::Site;
use koshin_server::init::{InitOptions, init_site};
use koshin_server::sync::{SyncManager, SyncReport};
use serde::{Deserialize, Serialize};

use crate::output;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// Full and no-change delta sync against `apt-get update`, from a loopback copy of this
    /// machine's APT sources.
    Sync(SyncBenchArgs),
    /// An offline agent scan of this machine against `apt list --upgradable`, same sources.
    Scan(crate::bench_scan::ScanBenchArgs),
    /// The summary reports of a generated estate (default 150,000 clients x the full
    /// catalog of this machine's APT sources), beside an aggregate over every state row.
    Reports(crate::bench_reports::ReportsBenchArgs),
    /// State-message ingestion through the store beside the raw insert ceiling of the same
    /// database on the same disk, with the ladder of steps between them.
    Ingest(crate::bench_ingest::IngestBenchArgs),
    /// A load generator speaking the agent's wire format to a site (its own, run as a
    /// separate process, or `--site URL`): enrollment, state messages at a rate or in a
    /// burst, inventory; report latency, server memory and disk over time; every
    /// acknowledged message checked in the database at the end.
    Load(crate::bench_load::LoadBenchArgs),
}

#[derive(Args)]
pub struct SyncBenchArgs {
    /// The loopback copy of the archive metadata: built on first use, then reused
    /// [default: $HOME/.cache/koshin-bench/mirror].
    #[arg(long)]
    mirror: Option<PathBuf>,
    /// Timed runs of each command.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Untimed rounds before the timed ones (page cache, first-use costs).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Download the copy again even when the one present is complete and valid.
    #[arg(long)]
    refresh: bool,
    /// Keep the lists folders and site data folders of every run (printed at the end).
    #[arg(long)]
    keep: bool,
    /// The APT configuration folder whose sources are copied.
    #[arg(long, default_value = "/etc/apt")]
    apt_etc: PathBuf,
    /// Leave out the second peer, aptly (`aptly mirror create` + `update` of the same
    /// suites). Without this flag it is measured when `aptly` is installed.
    #[arg(long)]
    no_aptly: bool,
    #[arg(long)]
    json: bool,
}

pub async fn run(cmd: BenchCommand, target: crate::bench_load::Target) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Sync(args) => bench_sync(args).await,
        BenchCommand::Scan(args) => crate::bench_scan::run(args).await,
        BenchCommand::Reports(args) => crate::bench_reports::run(args).await,
        BenchCommand::Ingest(args) => crate::bench_ingest::run(args).await,
        BenchCommand::Load(args) => crate::bench_load::run(args, target).await,
    }
}

/// Largest `InRelease` accepted from the upstream.
const MAX_RELEASE: u64 = 64 << 20;
/// The mirror's record of what each suite holds, at the mirror's root.
const MANIFEST: &str = "koshin-bench-mirror.json";
/// A Release that expires sooner than this is downloaded again.
const VALIDITY_MARGIN_S: i64 = 3600;
const PEER: &str = "apt-get update (fresh lists)";
const FULL: &str = "koshin full sync (fresh site)";
const DELTA: &str = "koshin delta sync (no change)";
const APT_FETCHED: &str = "apt-get update until \"Fetched\"";
const APT_CACHE: &str = "apt-get update after \"Fetched\"";
const FETCH_ONLY: &str = "koshin_apt fetch+verify+parse only";
const DERIVE_ONLY: &str = "catalog derive only";
const PLAN_ONLY: &str = "sync plan only (empty catalog)";
const READ_CATALOG: &str = "read the stored catalog only";
const PLAN_DELTA: &str = "delta plan only (nothing new)";
/// Targets from the product spec (`Targets`) and the first issue.
const TARGET_FULL_RATIO: f64 = 2.0;
const TARGET_DELTA_S: f64 = 0.2;
const FIRST_ISSUE_FULL_S: f64 = 5.0;
const FIRST_ISSUE_DELTA_S: f64 = 0.5;

// ---------------------------------------------------------------------------------------
// Progress on stderr: a bar on a terminal, one line per step otherwise.

pub(crate) struct Steps {
    bar: indicatif::ProgressBar,
}

impl Steps {
    pub(crate) fn new() -> Steps {
        let bar = if std::io::stderr().is_terminal() {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        };
        Steps { bar }
    }

    pub(crate) fn counting(&self, len: u64) {
        self.bar.reset();
        self.bar.set_length(len);
        self.bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {pos}/{len} ({elapsed})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        self.bar.enable_steady_tick(Duration::from_millis(120));
    }

    fn bytes(&self) {
        self.bar.reset();
        self.bar.set_length(0);
        self.bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {elapsed})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        self.bar.enable_steady_tick(Duration::from_millis(120));
    }

    pub(crate) fn inc(&self) {
        self.bar.inc(1);
    }

    /// The current step: the bar's message, or a line when there is no bar.
    pub(crate) fn step(&self, msg: impl Into<String>) {
        let msg = msg.into();
        if self.bar.is_hidden() {
            eprintln!("bench: {msg}");
        } else {
            self.bar.set_message(msg);
        }
    }

    /// A line that stays.
    pub(crate) fn note(&self, msg: impl AsRef<str>) {
        if self.bar.is_hidden() {
            eprintln!("bench: {}", msg.as_ref());
        } else {
            self.bar.println(format!("bench: {}", msg.as_ref()));
        }
    }

    pub(crate) fn done(&self) {
        self.bar.finish_and_clear();
    }
}

// ---------------------------------------------------------------------------------------
// The machine.

#[derive(Clone, Debug, Serialize)]
pub(crate) struct Machine {
    pub(crate) cpus: usize,
    pub(crate) cpu_model: String,
    pub(crate) memory_gib: f64,
    pub(crate) kernel: String,
    pub(crate) os: String,
    pub(crate) koshin_version: String,
    pub(crate) koshin_build: String,
    pub(crate) apt_version: String,
    /// `/proc/loadavg` (1, 5, 15 minutes) before and after the measurements: other work on
    /// the machine makes figures noisy.
    pub(crate) load_before: Vec<f64>,
    pub(crate) load_after: Vec<f64>,
}

pub(crate) fn load_average() -> Vec<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect()
}

pub(crate) fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: f64 = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let apt_version = std::process::Command::new("apt-get")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "not found".into());
    Machine {
        cpus: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        cpu_model,
        memory_gib: mem_kib / (1024.0 * 1024.0),
        kernel,
        os,
        koshin_version: env!("CARGO_PKG_VERSION").to_string(),
        koshin_build: if cfg!(debug_assertions) {
            "debug".into()
        } else {
            "release".into()
        },
        apt_version,
        load_before: load_average(),
        load_after: Vec::new(),
    }
}

// ---------------------------------------------------------------------------------------
// The loopback copy of the archive metadata.

/// One suite of the machine's sources, and where its copy lives.
#[derive(Clone, Debug)]
struct Upstream {
    source: AptSource,
    /// `<host>/<path-of-URI>`, e.g. `deb.debian.org/debian`: the folder under the mirror
    /// and the path under the loopback server.
    local: String,
    keyrings: Vec<PathBuf>,
    architectures: Vec<String>,
}

impl Upstream {
    fn key(&self) -> String {
        self.source.label()
    }

    fn dists(&self, mirror: &Path) -> PathBuf {
        mirror
            .join(&self.local)
            .join("dists")
            .join(&self.source.suite)
    }

    /// The APT line for this suite served from the loopback copy at `base`.
    fn loopback_line(&self, base: &str) -> String {
        let keys: Vec<String> = self
            .keyrings
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!(
            "deb [signed-by={} arch={}] {base}/{}/ {} {}",
            keys.join(","),
            self.architectures.join(","),
            self.local,
            self.source.suite,
            self.source.components.join(" ")
        )
    }
}

/// `http://host/path/` → `host/path`, refusing anything that could leave the mirror.
fn local_path(uri: &str) -> anyhow::Result<String> {
    let rest = uri
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("{uri}: only http:// sources can be copied"))?;
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() || parts.iter().any(|p| *p == "." || *p == "..") {
        bail!("{uri}: cannot turn this URI into a folder of the mirror");
    }
    Ok(parts.join("/"))
}

fn upstreams(apt_etc: &Path, steps: &Steps) -> anyhow::Result<Vec<Upstream>> {
    let sources = koshin_apt::sources::system_sources(apt_etc)
        .with_context(|| format!("cannot read the APT sources under {}", apt_etc.display()))?;
    let host_arch = koshin_apt::sources::host_architecture();
    let mut out = Vec::new();
    for s in sources {
        if !s.uri.starts_with("http://") {
            steps.note(format!(
                "skipping {} (only http:// sources are copied)",
                s.label()
            ));
            continue;
        }
        let keyrings = if s.signed_by.is_empty() {
            let debian = PathBuf::from("/usr/share/keyrings/debian-archive-keyring.gpg");
            if !debian.exists() {
                bail!(
                    "{} names no keyring (signed-by) and {} is missing: the isolated apt-get would trust nothing",
                    s.label(),
                    debian.display()
                );
            }
            steps.note(format!(
                "{} names no keyring; using {}",
                s.label(),
                debian.display()
            ));
            vec![debian]
        } else {
            s.signed_by.clone()
        };
        let architectures = if s.architectures.is_empty() {
            vec![host_arch.clone()]
        } else {
            s.architectures.clone()
        };
        out.push(Upstream {
            local: local_path(&s.uri)?,
            source: s,
            keyrings,
            architectures,
        });
    }
    if out.is_empty() {
        bail!(
            "no http:// APT sources under {}: nothing to benchmark",
            apt_etc.display()
        );
    }
    Ok(out)
}

/// The `Packages` indices of a suite that the copy holds: for each component and
/// architecture (and `all` when the Release offers it), `.gz` and `.xz` — the plain file
/// only when neither is listed.
fn index_files(up: &Upstream, release: &Release) -> Vec<(String, u64, String)> {
    let mut archs = up.architectures.clone();
    if !release.no_support_arch_all
        && release.architectures.iter().any(|a| a == "all")
        && !archs.iter().any(|a| a == "all")
    {
        archs.push("all".into());
    }
    let mut out = Vec::new();
    for component in &up.source.components {
        let component = component.rsplit('/').next().unwrap_or(component);
        for arch in &archs {
            let base = format!("{component}/binary-{arch}/Packages");
            let mut found = false;
            for ext in [".gz", ".xz"] {
                let p = format!("{base}{ext}");
                if let Some((size, sha)) = release.sha256.get(&p) {
                    out.push((p, *size, sha.clone()));
                    found = true;
                }
            }
            if !found && let Some((size, sha)) = release.sha256.get(&base) {
                out.push((base, *size, sha.clone()));
            }
        }
    }
    out
}

fn by_hash_path(path: &str, sha: &str) -> String {
    match path.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/by-hash/SHA256/{sha}"),
        None => format!("by-hash/SHA256/{sha}"),
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct Manifest {
    /// `URI SUITE` → what the copy of that suite holds.
    suites: BTreeMap<String, SuiteCopy>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct SuiteCopy {
    /// Index paths under `dists/<suite>/` that were copied.
    files: Vec<String>,
    /// Index paths the Release lists but the upstream answered 404 for.
    missing: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
struct MirrorSummary {
    path: String,
    suites: Vec<String>,
    index_files: usize,
    bytes: u64,
    reused: bool,
}

fn read_manifest(mirror: &Path) -> Manifest {
    std::fs::read(mirror.join(MANIFEST))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

fn write_atomic(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, data).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Reads and verifies the copy's InRelease; `None` when it is missing, unverifiable or
/// about to expire.
fn local_release(up: &Upstream, mirror: &Path, now: i64) -> Option<Release> {
    let path = up.dists(mirror).join("InRelease");
    let text = std::fs::read_to_string(&path).ok()?;
    let keyring = Keyring::load(&up.keyrings).ok()?;
    let signed = keyring
        .verify_inrelease(&path.display().to_string(), &text)
        .ok()?;
    let release = Release::parse(&signed, &up.source.suite).ok()?;
    release
        .check_valid(&up.source.suite, now + VALIDITY_MARGIN_S)
        .ok()?;
    Some(release)
}

/// Whether the copy of a suite is complete: a valid InRelease, and every index the
/// manifest records at both paths with the Release's size.
fn copy_is_complete(up: &Upstream, mirror: &Path, manifest: &Manifest, now: i64) -> bool {
    let Some(release) = local_release(up, mirror, now) else {
        return false;
    };
    let Some(copy) = manifest.suites.get(&up.key()) else {
        return false;
    };
    let expected: BTreeSet<String> = index_files(up, &release)
        .into_iter()
        .map(|(p, _, _)| p)
        .collect();
    let recorded: BTreeSet<String> = copy.files.iter().chain(&copy.missing).cloned().collect();
    if expected != recorded || copy.files.is_empty() {
        return false;
    }
    let dists = up.dists(mirror);
    copy.files.iter().all(|p| {
        let Some((size, sha)) = release.sha256.get(p) else {
            return false;
        };
        [p.clone(), by_hash_path(p, sha)].iter().all(|rel| {
            std::fs::metadata(dists.join(rel)).is_ok_and(|m| m.is_file() && m.len() == *size)
        })
    })
}

/// GETs a URL from the real upstream. `Ok(None)` for 404; at most `limit` bytes.
async fn download(
    client: &reqwest::Client,
    url: &str,
    limit: u64,
    steps: &Steps,
) -> anyhow::Result<Option<Vec<u8>>> {
    let mut resp = client
        .get(url)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?;
    if resp.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !resp.status().is_success() {
        bail!("{url} answered HTTP {}", resp.status().as_u16());
    }
    let mut buf = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .with_context(|| format!("{url}: the transfer broke off"))?
    {
        if buf.len() as u64 + chunk.len() as u64 > limit {
            bail!("{url}: more than the {limit} bytes expected");
        }
        steps.bar.inc(chunk.len() as u64);
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf))
}

/// Downloads one suite into the copy, checking every index against the signed Release.
async fn copy_suite(
    client: &reqwest::Client,
    up: &Upstream,
    mirror: &Path,
    now: i64,
    steps: &Steps,
) -> anyhow::Result<SuiteCopy> {
    let dists_url = format!("{}dists/{}/", up.source.base(), up.source.suite);
    let inrelease_url = format!("{dists_url}InRelease");
    steps.step(format!("copying {}", up.key()));
    let inrelease = download(client, &inrelease_url, MAX_RELEASE, steps)
        .await?
        .ok_or_else(|| {
            anyhow!("{inrelease_url} answered HTTP 404: the copy needs the suite's InRelease")
        })?;
    let text =
        String::from_utf8(inrelease).map_err(|_| anyhow!("{inrelease_url} is not UTF-8 text"))?;
    let keyring = Keyring::load(&up.keyrings)?;
    let signed = keyring.verify_inrelease(&inrelease_url, &text)?;
    let release = Release::parse(&signed, &up.source.suite)?;
    release.check_valid(&up.source.suite, now)?;
    let targets = index_files(up, &release);
    if targets.is_empty() {
        bail!(
            "the Release of {} lists no Packages index for {} / {}",
            up.key(),
            up.source.components.join(" "),
            up.architectures.join(" ")
        );
    }
    steps
        .bar
        .inc_length(targets.iter().map(|(_, size, _)| size).sum());
    let dists = up.dists(mirror);
    if dists.exists() {
        std::fs::remove_dir_all(&dists)
            .with_context(|| format!("cannot clear {}", dists.display()))?;
    }
    let mut copy = SuiteCopy::default();
    for (path, size, sha) in targets {
        let by_hash = by_hash_path(&path, &sha);
        let mut data = None;
        if release.acquire_by_hash {
            data = download(client, &format!("{dists_url}{by_hash}"), size, steps).await?;
        }
        if data.is_none() {
            data = download(client, &format!("{dists_url}{path}"), size, steps).await?;
        }
        let Some(data) = data else {
            steps.note(format!(
                "{} {path}: the upstream answers 404; not copied",
                up.key()
            ));
            copy.missing.push(path);
            continue;
        };
        let plain = path
            .strip_suffix(".gz")
            .or_else(|| path.strip_suffix(".xz"))
            .and_then(|p| release.sha256.get(p).cloned());
        let url = format!("{dists_url}{path}");
        let checked = {
            let (url, path, sha, data) = (url.clone(), path.clone(), sha.clone(), data.clone());
            tokio::task::spawn_blocking(move || {
                koshin_apt::fetch::verify_and_parse(&url, &path, data, size, &sha, plain)
                    .map(|packages| packages.len())
            })
            .await
            .context("the index check stopped")??
        };
        steps.note(format!(
            "{} {path}: {size} bytes, SHA-256 and {checked} packages checked",
            up.key()
        ));
        let canonical = dists.join(&path);
        write_atomic(&canonical, &data)?;
        let hashed = dists.join(&by_hash);
        if let Some(dir) = hashed.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        if std::fs::hard_link(&canonical, &hashed).is_err() {
            write_atomic(&hashed, &data)?;
        }
        copy.files.push(path);
    }
    if copy.files.is_empty() {
        bail!(
            "{}: the upstream has none of the Packages indices its Release lists",
            up.key()
        );
    }
    // The InRelease goes last: its presence (with the manifest) marks a complete copy.
    write_atomic(&dists.join("InRelease"), text.as_bytes())?;
    Ok(copy)
}

async fn ensure_mirror(
    mirror: &Path,
    ups: &[Upstream],
    refresh: bool,
    steps: &Steps,
) -> anyhow::Result<(Manifest, bool)> {
    std::fs::create_dir_all(mirror)
        .with_context(|| format!("cannot create {}", mirror.display()))?;
    let now = jiff::Timestamp::now().as_second();
    let mut manifest = if refresh {
        Manifest::default()
    } else {
        read_manifest(mirror)
    };
    let stale: Vec<&Upstream> = ups
        .iter()
        .filter(|u| refresh || !copy_is_complete(u, mirror, &manifest, now))
        .collect();
    if stale.is_empty() {
        steps.note(format!("reusing the copy in {}", mirror.display()));
        return Ok((manifest, true));
    }
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(30))
        .read_timeout(Duration::from_secs(60))
        .user_agent(concat!("koshin-bench/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot set up the HTTP client")?;
    steps.bytes();
    for up in stale {
        steps.note(format!(
            "copying {} into {}",
            up.key(),
            up.dists(mirror).display()
        ));
        let copy = copy_suite(&client, up, mirror, now, steps).await?;
        manifest.suites.insert(up.key(), copy);
        let json = serde_json::to_vec_pretty(&manifest)?;
        write_atomic(&mirror.join(MANIFEST), &json)?;
    }
    Ok((manifest, false))
}

// ---------------------------------------------------------------------------------------
// The loopback server.

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    bytes: AtomicU64,
    not_found: AtomicU64,
}

#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Traffic {
    requests: u64,
    bytes: u64,
    not_found: u64,
}

impl Counters {
    fn snapshot(&self) -> Traffic {
        Traffic {
            requests: self.requests.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            not_found: self.not_found.load(Ordering::Relaxed),
        }
    }
}

impl Traffic {
    fn since(self, before: Traffic) -> Traffic {
        Traffic {
            requests: self.requests - before.requests,
            bytes: self.bytes - before.bytes,
            not_found: self.not_found - before.not_found,
        }
    }

    fn describe(self) -> String {
        let mut s = format!("{} GETs, {:.1} MB", self.requests, self.bytes as f64 / 1e6);
        if self.not_found > 0 {
            s.push_str(&format!(", {} × 404", self.not_found));
        }
        s
    }
}

struct Served {
    files: HashMap<String, Bytes>,
    counters: Counters,
}

/// Every file under `root`, keyed by its URL path (`/host/path/dists/...`).
fn load_tree(root: &Path) -> anyhow::Result<HashMap<String, Bytes>> {
    let mut out = HashMap::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("cannot read {}", dir.display()))?;
            let Ok(name) = entry.file_name().into_string() else {
                continue;
            };
            let path = entry.path();
            let url = format!("{prefix}/{name}");
            let kind = entry
                .file_type()
                .with_context(|| format!("cannot read {}", path.display()))?;
            if kind.is_dir() {
                stack.push((path, url));
            } else if kind.is_file() && !name.ends_with(".part") && name != MANIFEST {
                let data = std::fs::read(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                out.insert(url, Bytes::from(data));
            }
        }
    }
    Ok(out)
}

async fn serve_file(State(s): State<Arc<Served>>, method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    s.counters.requests.fetch_add(1, Ordering::Relaxed);
    match s.files.get(uri.path()) {
        Some(body) => {
            if method == Method::GET {
                s.counters
                    .bytes
                    .fetch_add(body.len() as u64, Ordering::Relaxed);
            }
            (
                [(header::CONTENT_TYPE, "application/octet-stream")],
                body.clone(),
            )
                .into_response()
        }
        None => {
            s.counters.not_found.fetch_add(1, Ordering::Relaxed);
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

pub(crate) struct Loopback {
    base: String,
    served: Arc<Served>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Loopback {
    async fn start(root: &Path) -> anyhow::Result<Loopback> {
        let root = root.to_path_buf();
        let files = tokio::task::spawn_blocking(move || load_tree(&root))
            .await
            .context("loading the copy stopped")??;
        let served = Arc::new(Served {
            files,
            counters: Counters::default(),
        });
        let app = Router::new()
            .fallback(serve_file)
            .with_state(served.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("cannot listen on 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let r = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = r {
                tracing::error!(error = %e, "the loopback server stopped");
            }
        });
        Ok(Loopback {
            base: format!("http://{addr}"),
            served,
            stop: Some(tx),
            task,
        })
    }

    fn traffic(&self) -> Traffic {
        self.served.counters.snapshot()
    }

    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), &mut self.task).await;
    }
}

/// The loopback copy of this machine's APT sources (built on first use, as `bench sync`
/// builds it), served on `127.0.0.1:0`, and the APT lines of its suites — only those whose
/// suite name is in `suites`, when it is not empty. The copy is served while the returned
/// [`Loopback`] lives, so a site synced from it can sync again.
pub(crate) async fn loopback_sources(
    mirror: Option<PathBuf>,
    suites: &[String],
    steps: &Steps,
) -> anyhow::Result<(Loopback, Vec<String>)> {
    let mirror = match mirror {
        Some(m) => m,
        None => {
            let home = std::env::var_os("HOME")
                .ok_or_else(|| anyhow!("HOME is not set: give the mirror folder with --mirror"))?;
            PathBuf::from(home).join(".cache/koshin-bench/mirror")
        }
    };
    let mut ups = upstreams(Path::new("/etc/apt"), steps)?;
    if !suites.is_empty() {
        ups.retain(|u| suites.contains(&u.source.suite));
        if ups.is_empty() {
            bail!(
                "none of this machine's APT suites is named {}",
                suites.join(", ")
            );
        }
    }
    ensure_mirror(&mirror, &ups, false, steps).await?;
    let server = Loopback::start(&mirror).await?;
    let lines = ups.iter().map(|u| u.loopback_line(&server.base)).collect();
    Ok((server, lines))
}

/// A new site (code `code`) in `data`, fully synced from `lines` (see [`loopback_sources`]);
/// the sync's items and content version.
pub(crate) async fn synced_from(
    data: &Path,
    code: &str,
    lines: &[String],
) -> anyhow::Result<(Arc<Site>, SyncReport)> {
    init_site(&InitOptions {
        code: code.into(),
        data: data.to_path_buf(),
        upstreams: lines.to_vec(),
        listen: Some("127.0.0.1:0".into()),
        parent: None,
        secondary: false,
    })?;
    let site = Site::open(data)?;
    let report = SyncManager::new(site.clone())
        .run_once(SyncTrigger::FullRequest, SyncKind::Full)
        .await
        .map_err(|f| anyhow!("the full sync failed: {} ({})", f.reason, f.source))?;
    Ok((site, report))
}

// ---------------------------------------------------------------------------------------
// The peer: apt-get update into a fresh lists folder, isolated from the host's APT.

/// Writes an isolated APT configuration under `dir` and returns the `APT_CONFIG` file.
fn prepare_apt(dir: &Path, sources: &str) -> anyhow::Result<PathBuf> {
    let options = koshin_apt::peer::PeerOptions {
        sources: Some(sources.to_string()),
        dpkg_status: None,
        architecture: Some("amd64".into()),
    };
    koshin_apt::peer::prepare(dir, &options)
        .with_context(|| format!("cannot prepare apt in {}", dir.display()))
}

struct AptRun {
    /// Wall time of the whole `apt-get update`.
    total: Duration,
    /// When apt printed `Fetched ...`: downloads, signature checks, decompression and the
    /// lists are done; what follows is building the package cache.
    fetched: Option<Duration>,
}

/// A peer's run: how long it took, its stdout lines with when each arrived (from the
/// spawn), its stderr.
struct Output {
    elapsed: Duration,
    stdout: Vec<(Duration, String)>,
    stderr: String,
}

impl Output {
    fn text(&self) -> String {
        self.stdout
            .iter()
            .map(|(_, l)| format!("{l}\n"))
            .collect::<String>()
    }
}

/// Runs a peer's command in the C locale, with no proxy and no input, timing each line of
/// its output as it arrives (the peers flush each line, so that is when they got there);
/// `hint` says what to check when it cannot start.
async fn run_timed(
    mut cmd: tokio::process::Command,
    name: &str,
    hint: &str,
) -> anyhow::Result<(Output, std::process::ExitStatus)> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    cmd.env("LC_ALL", "C.UTF-8")
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot run {name} ({hint})"))?;
    let (Some(out), Some(mut err)) = (child.stdout.take(), child.stderr.take()) else {
        bail!("{name} started without its output pipes");
    };
    let read_out = async move {
        let mut lines = tokio::io::BufReader::new(out).lines();
        let mut seen = Vec::new();
        while let Some(line) = lines.next_line().await? {
            seen.push((started.elapsed(), line));
        }
        Ok::<_, std::io::Error>(seen)
    };
    let read_err = async move {
        let mut buf = Vec::new();
        err.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let (out, err, status) = tokio::join!(read_out, read_err, child.wait());
    let elapsed = started.elapsed();
    let output = Output {
        elapsed,
        stdout: out.with_context(|| format!("cannot read {name}'s output"))?,
        stderr: String::from_utf8_lossy(
            &err.with_context(|| format!("cannot read {name}'s output"))?,
        )
        .into_owned(),
    };
    let status = status.with_context(|| format!("cannot wait for {name}"))?;
    Ok((output, status))
}

/// Runs `apt-get update` with the isolated configuration; fails unless it exits 0 with no
/// `E:`/`W:` line and leaves one `Packages` list per index.
async fn run_apt(dir: &Path, config: &Path, expected_lists: usize) -> anyhow::Result<AptRun> {
    let mut cmd = tokio::process::Command::new("apt-get");
    cmd.args(["-q", "update"]).env("APT_CONFIG", config);
    let (output, status) = run_timed(cmd, "apt-get", "is the `apt` package installed?").await?;
    let fetched = output
        .stdout
        .iter()
        .find(|(_, l)| l.starts_with("Fetched "))
        .map(|(t, _)| *t);
    let stdout = output.text();
    let stderr = &output.stderr;
    let problems: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .collect();
    if !status.success() || !problems.is_empty() {
        bail!(
            "apt-get update ({}) failed ({status}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
            dir.display(),
        );
    }
    let lists = dir.join("state/lists");
    let n = std::fs::read_dir(&lists)
        .with_context(|| format!("cannot read {}", lists.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with("_Packages"))
        .count();
    if n != expected_lists {
        bail!(
            "apt-get update left {n} Packages lists in {}, expected {expected_lists}",
            lists.display()
        );
    }
    Ok(AptRun {
        total: output.elapsed,
        fetched,
    })
}

// ---------------------------------------------------------------------------------------
// The second peer, aptly: a fresh root per round, one mirror per suite.

mod aptly;

// ---------------------------------------------------------------------------------------
// koshin: a full sync into a fresh site, then a no-change delta sync.

struct KoshinRun {
    full: Duration,
    delta: Duration,
    full_report: SyncReport,
    delta_report: SyncReport,
    full_phases: Vec<(&'static str, Duration)>,
    delta_phases: Vec<(&'static str, Duration)>,
    /// Reading the stored catalog after the syncs, alone.
    read_catalog: Duration,
    /// Planning a delta sync with nothing new over that catalog, alone.
    plan_delta: Duration,
}

async fn run_koshin(
    data: &Path,
    lines: &[String],
    counters: &Counters,
) -> anyhow::Result<(KoshinRun, Traffic, Traffic)> {
    init_site(&InitOptions {
        code: "BEN".into(),
        data: data.to_path_buf(),
        upstreams: lines.to_vec(),
        listen: None,
        parent: None,
        secondary: false,
    })?;
    let site = Site::open(data)?;
    let log_path = site.sync_log.path().to_path_buf();
    let manager = SyncManager::new(site.clone());
    let before = counters.snapshot();
    let started = Instant::now();
    let full_report = manager
        .run_once(SyncTrigger::FullRequest, SyncKind::Full)
        .await
        .map_err(|f| {
            anyhow!(
                "the koshin full sync failed: {} (source: {}); see {}",
                f.reason,
                f.source,
                log_path.display()
            )
        })?;
    let full = started.elapsed();
    let between = counters.snapshot();
    let started = Instant::now();
    let delta_report = manager
        .run_once(SyncTrigger::LocalRequest, SyncKind::Delta)
        .await
        .map_err(|f| {
            anyhow!(
                "the koshin delta sync failed: {} (source: {}); see {}",
                f.reason,
                f.source,
                log_path.display()
            )
        })?;
    let delta = started.elapsed();
    let after = counters.snapshot();
    drop(manager);
    // The two steps of a no-change delta sync that scale with the catalog, alone.
    let store = site.store.clone();
    let (read_catalog, plan_delta) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let stored = store.stored_updates()?;
        let read = started.elapsed();
        let started = Instant::now();
        let plan = catalog::plan_sync(SyncKind::Delta, &stored, Vec::new(), &HashSet::new());
        let planned = started.elapsed();
        drop(plan);
        Ok::<_, koshin_store::StoreError>((read, planned))
    })
    .await
    .context("the catalog read stopped")??;
    drop(site);
    if full_report.items == 0 || full_report.updates_in_catalog == 0 {
        bail!(
            "the koshin full sync into a fresh site changed nothing; see {}",
            log_path.display()
        );
    }
    if delta_report.content_version != full_report.content_version || delta_report.items != 0 {
        bail!(
            "the no-change delta sync changed the site: content version {} → {}, {} items",
            full_report.content_version,
            delta_report.content_version,
            delta_report.items
        );
    }
    let log = read_sync_log(&log_path)?;
    Ok((
        KoshinRun {
            full,
            delta,
            full_report,
            delta_report,
            full_phases: sync_phases(&log, 0),
            delta_phases: sync_phases(&log, 1),
            read_catalog,
            plan_delta,
        },
        between.since(before),
        after.since(between),
    ))
}

/// The timestamp of a component log line (`... $$<COMP><MM-DD-YYYY HH:MM:SS.mmm+000>...`),
/// in milliseconds.
fn log_time(line: &str) -> Option<i64> {
    let (_, tail) = line.rsplit_once("$$<")?;
    let (_, tail) = tail.split_once("><")?;
    let stamp = tail.get(..23)?;
    let t = jiff::civil::DateTime::strptime("%m-%d-%Y %H:%M:%S%.f", stamp).ok()?;
    Some(
        t.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()?
            .timestamp()
            .as_millisecond(),
    )
}

fn log_text(line: &str) -> &str {
    line.rsplit_once("  $$<").map_or(line, |(t, _)| t)
}

/// Where the `nth` sync (from 0) in a sync manager log spent its time, from the lines it
/// writes at each step (millisecond timestamps). Phases whose lines are not found are left
/// out.
fn sync_phases(log: &str, nth: usize) -> Vec<(&'static str, Duration)> {
    let mut lines: Vec<(&str, i64)> = Vec::new();
    let mut seen = 0;
    for l in log.lines() {
        let text = log_text(l);
        if text == "Starting Sync" {
            seen += 1;
            if seen > nth + 1 {
                break;
            }
        }
        if seen != nth + 1 {
            continue;
        }
        if let Some(t) = log_time(l) {
            lines.push((text, t));
        }
        if text.starts_with("Sync time:") {
            break;
        }
    }
    let find = |from: usize, pred: &dyn Fn(&str) -> bool| {
        lines
            .iter()
            .enumerate()
            .skip(from)
            .find(|(_, (t, _))| pred(t))
            .map(|(i, (_, ms))| (i, *ms))
    };
    let start = find(0, &|t| t == "Starting Sync");
    let categories = find(0, &|t| t == "sync: upstream synchronizing categories");
    let spawned = find(0, &|t| t == "sync: upstream synchronizing updates");
    let upstream_done = find(0, &|t| t.starts_with("Done synchronizing update point"));
    let last_suite = upstream_done.and_then(|(end, _)| {
        lines[..end]
            .iter()
            .enumerate()
            .rev()
            .find(|(_, (t, _))| t.contains(" packages read, "))
            .map(|(i, (_, ms))| (i, *ms))
    });
    let from = upstream_done.map_or(0, |(i, _)| i);
    let db_start = find(from, &|t| t == "sync: site database synchronizing updates");
    let written = db_start.and_then(|(i, _)| {
        find(i + 1, &|t| {
            !t.starts_with("Synchronizing updates, ") && !t.starts_with("STATMSG")
        })
    });
    let hundred = find(from, &|t| {
        t.starts_with("sync: site database synchronizing updates, ")
    });
    let end = find(0, &|t| t.starts_with("Sync time:"));
    let marks: [(&'static str, Option<(usize, i64)>); 10] = [
        ("", start),
        ("record the run, status messages, read sources", categories),
        ("load keyrings", spawned),
        ("upstream: fetch, verify, decompress, parse", last_suite),
        ("catalog derive, local publisher", upstream_done),
        ("content version, categories", db_start),
        ("database: read catalog, plan, write, commit", written),
        ("one log line per changed update", hundred),
        ("machine policy, status messages", end),
        ("", None),
    ];
    let mut out = Vec::new();
    for w in marks.windows(2) {
        if let (Some((_, a)), Some((_, b))) = (w[0].1, w[1].1) {
            out.push((w[1].0, Duration::from_millis((b - a).max(0) as u64)));
        }
    }
    out
}

/// The sync manager log of a site, with the part rolled over to `.lo_` first.
fn read_sync_log(path: &Path) -> anyhow::Result<String> {
    let mut text = std::fs::read_to_string(path.with_extension("lo_")).unwrap_or_default();
    text.push_str(
        &std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?,
    );
    Ok(text)
}

// ---------------------------------------------------------------------------------------
// Diagnostics: koshin's upstream part and the catalog steps alone, outside the sync manager.

struct Diagnostics {
    fetch: Duration,
    derive: Duration,
    plan: Duration,
    packages: usize,
    updates: usize,
}

async fn run_diagnostics(lines: &[String]) -> anyhow::Result<Diagnostics> {
    let mut sources = Vec::new();
    for l in lines {
        sources.extend(koshin_apt::sources::parse_line(l)?);
    }
    let fetcher = Fetcher::new(FetchOptions {
        compression_order: koshin_server::config::UpstreamSection::default().compression_order,
        default_architecture: "amd64".into(),
        ..FetchOptions::default()
    })?;
    let now = jiff::Timestamp::now().as_second();
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for (i, src) in sources.into_iter().enumerate() {
        let keyring = Arc::new(Keyring::load(&src.signed_by)?);
        let fetcher = fetcher.clone();
        set.spawn(async move {
            let r = fetcher
                .fetch_suite(&src, &keyring, now, &Default::default())
                .await;
            (i, r)
        });
    }
    let mut suites = Vec::new();
    while let Some(joined) = set.join_next().await {
        let (i, r) = joined.context("a fetch task stopped")?;
        suites.push((i, r?));
    }
    let fetch = started.elapsed();
    suites.sort_by_key(|(i, _)| *i);
    let mut indexes = Vec::new();
    let mut packages = 0;
    for (_, s) in suites {
        let mut p = Vec::new();
        for idx in s.indices {
            p.extend(idx.packages.unwrap_or_default());
        }
        packages += p.len();
        indexes.push(SuiteIndex {
            product: catalog::product_name(
                &s.release.origin,
                &s.release.version,
                &s.release.codename,
            ),
            suite: s.source.suite.clone(),
            classification: Classification::for_suite(&s.source.suite),
            date: s.release.date.unwrap_or(now),
            packages: p,
        });
    }
    let (derive, plan, updates) = tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let candidates = catalog::derive_apt_updates(&indexes);
        let derive = started.elapsed();
        let updates = candidates.len();
        let present = candidates.iter().map(|c| c.id).collect();
        let started = Instant::now();
        let plan = catalog::plan_sync(SyncKind::Full, &[], candidates, &present);
        let planned = started.elapsed();
        drop(plan);
        (derive, planned, updates)
    })
    .await
    .context("the catalog task stopped")?;
    Ok(Diagnostics {
        fetch,
        derive,
        plan,
        packages,
        updates,
    })
}

// ---------------------------------------------------------------------------------------
// Figures.

#[derive(Clone, Debug, Serialize)]
struct Figure {
    command: String,
    runs: usize,
    min_s: f64,
    median_s: f64,
    samples_s: Vec<f64>,
    notes: String,
}

fn figure(command: &str, samples: &[Duration], notes: String) -> Figure {
    let mut s: Vec<f64> = samples.iter().map(Duration::as_secs_f64).collect();
    let samples_s = s.clone();
    s.sort_by(f64::total_cmp);
    let median = match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    };
    Figure {
        command: command.to_string(),
        runs: s.len(),
        min_s: s.first().copied().unwrap_or(f64::NAN),
        median_s: median,
        samples_s,
        notes,
    }
}

fn secs(s: f64) -> String {
    format!("{s:.3} s")
}

#[derive(Clone, Debug, Serialize)]
struct Target {
    target: String,
    measured: String,
    met: bool,
}

#[derive(Clone, Debug, Serialize)]
struct Phase {
    phase: String,
    full_min_s: f64,
    full_median_s: f64,
    delta_median_s: f64,
}

/// One peer tool beside koshin: its figures and what it fetched from the loopback server.
#[derive(Serialize)]
struct Peer {
    tool: String,
    version: String,
    /// What the full figure runs.
    full_command: String,
    full: Figure,
    full_traffic: Traffic,
    /// The same tool again on its own result with nothing changed, when measured.
    delta_command: Option<String>,
    delta: Option<Figure>,
    delta_traffic: Option<Traffic>,
    /// koshin's full sync over this peer's full figure (medians).
    koshin_full_ratio_median: f64,
    /// koshin's no-change delta sync over this peer's no-change figure (medians).
    koshin_delta_ratio_median: Option<f64>,
    notes: String,
}

#[derive(Serialize)]
struct Report {
    machine: Machine,
    mirror: MirrorSummary,
    loopback_sources: Vec<String>,
    runs: usize,
    warmup_rounds: usize,
    /// The order of the tools in each round, from round 0 (warm-up rounds included).
    round_orders: Vec<Vec<String>>,
    figures: Vec<Figure>,
    /// The peers measured in the same rounds: `apt-get`, and `aptly` unless left out.
    peers: Vec<Peer>,
    /// Why a peer was not measured (`--no-aptly`, or aptly not installed).
    peers_skipped: Vec<String>,
    diagnostics: Vec<Figure>,
    ratio_full_to_apt_median: f64,
    ratio_full_to_apt_min: f64,
    items_full: usize,
    updates_in_catalog: usize,
    content_version: i64,
    targets: Vec<Target>,
    sync_phases: Vec<Phase>,
    kept: Option<String>,
}

/// Removes the run folders when dropped, unless asked to keep them.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// One tool's turn in a round of `bench sync`.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Turn {
    Apt,
    Koshin,
    Aptly,
    /// koshin's steps alone, outside the sync manager: always last in a round.
    KoshinParts,
}

impl Turn {
    fn name(self) -> &'static str {
        match self {
            Turn::Apt => "apt-get",
            Turn::Koshin => "koshin",
            Turn::Aptly => "aptly",
            Turn::KoshinParts => "koshin parts",
        }
    }
}

/// The order of the measured tools, round after round: every permutation once in six
/// rounds, so each goes first, second and last equally often and each pair runs in both
/// orders equally often. Leaving aptly out, apt and koshin alternate, apt first.
const ORDERS: [[Turn; 3]; 6] = [
    [Turn::Apt, Turn::Koshin, Turn::Aptly],
    [Turn::Koshin, Turn::Apt, Turn::Aptly],
    [Turn::Aptly, Turn::Apt, Turn::Koshin],
    [Turn::Aptly, Turn::Koshin, Turn::Apt],
    [Turn::Apt, Turn::Aptly, Turn::Koshin],
    [Turn::Koshin, Turn::Aptly, Turn::Apt],
];

async fn bench_sync(args: SyncBenchArgs) -> anyhow::Result<ExitCode> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let steps = Steps::new();
    let mut machine = machine();
    if machine.load_before.first().is_some_and(|l| *l > 0.5) {
        steps.note(format!(
            "the machine is busy (load average {:?}): the figures will be noisy",
            machine.load_before
        ));
    }
    if machine.koshin_build == "debug" {
        steps.note("this is a debug build: its figures mean little; use `cargo run --release -- bench sync`");
    }
    let mirror = match args.mirror.clone() {
        Some(m) => m,
        None => {
            let home = std::env::var_os("HOME")
                .ok_or_else(|| anyhow!("HOME is not set: give the mirror folder with --mirror"))?;
            PathBuf::from(home).join(".cache/koshin-bench/mirror")
        }
    };
    let ups = upstreams(&args.apt_etc, &steps)?;
    let (manifest, reused) = ensure_mirror(&mirror, &ups, args.refresh, &steps).await?;
    let index_count: usize = ups
        .iter()
        .filter_map(|u| manifest.suites.get(&u.key()))
        .map(|c| c.files.len())
        .sum();
    // apt keeps one Packages list per component and architecture of each suite.
    let expected_lists: usize = ups
        .iter()
        .filter_map(|u| manifest.suites.get(&u.key()))
        .map(|c| {
            c.files
                .iter()
                .map(|p| p.rsplit_once('/').map_or("", |(d, _)| d))
                .collect::<BTreeSet<_>>()
                .len()
        })
        .sum();

    steps.step("loading the copy into the loopback server");
    let server = Loopback::start(&mirror).await?;
    let mirror_summary = MirrorSummary {
        path: mirror.display().to_string(),
        suites: ups.iter().map(Upstream::key).collect(),
        index_files: index_count,
        bytes: server
            .served
            .files
            .iter()
            .filter(|(k, _)| !k.contains("/by-hash/"))
            .map(|(_, v)| v.len() as u64)
            .sum(),
        reused,
    };
    let lines: Vec<String> = ups.iter().map(|u| u.loopback_line(&server.base)).collect();
    let sources_list = lines.iter().map(|l| format!("{l}\n")).collect::<String>();
    steps.note(format!(
        "serving {} ({} files) at {}",
        mirror.display(),
        server.served.files.len(),
        server.base
    ));

    let work = WorkDir {
        path: std::env::temp_dir().join(format!("koshin-bench-{}", std::process::id())),
        keep: args.keep,
    };
    std::fs::create_dir_all(&work.path)
        .with_context(|| format!("cannot create {}", work.path.display()))?;

    // The second peer, when it can run.
    let mut peers_skipped = Vec::new();
    let aptly_version = if args.no_aptly {
        peers_skipped.push("aptly: left out (--no-aptly)".to_string());
        None
    } else {
        match aptly::version() {
            Ok(v) => Some(v),
            Err(why) => {
                steps.note(format!("{why}: measuring koshin and apt-get only"));
                peers_skipped.push(format!("aptly: {why}"));
                None
            }
        }
    };
    let aptly_home = match aptly_version {
        Some(_) => Some(aptly::prepare_home(&work.path)?),
        None => None,
    };
    let aptly_mirrors = aptly::mirrors(&ups, &server.base);

    let rounds = args.warmup + args.runs;
    let mut apt_t = Vec::new();
    let mut read_catalog_t = Vec::new();
    let mut plan_delta_t = Vec::new();
    let mut apt_fetched_t = Vec::new();
    let mut apt_cache_t = Vec::new();
    let mut full_t = Vec::new();
    let mut delta_t = Vec::new();
    let mut fetch_t = Vec::new();
    let mut derive_t = Vec::new();
    let mut plan_t = Vec::new();
    // Per phase: samples of the full sync, then of the delta sync.
    let mut phase_samples: Vec<(&'static str, [Vec<Duration>; 2])> = Vec::new();
    let mut apt_traffic = Traffic::default();
    let mut full_traffic = Traffic::default();
    let mut delta_traffic = Traffic::default();
    let mut diag_traffic = Traffic::default();
    let mut last: Option<KoshinRun> = None;
    let mut diag_counts = (0, 0);
    let mut aptly_full_t = Vec::new();
    let mut aptly_delta_t = Vec::new();
    let mut aptly_create_t = Vec::new();
    let mut aptly_parse_t = Vec::new();
    let mut aptly_filter_t = Vec::new();
    let mut aptly_last: Option<aptly::AptlyRun> = None;
    let mut round_orders = Vec::new();
    let per_round = if aptly_home.is_some() { 6 } else { 4 };
    steps.counting(rounds as u64 * per_round);
    for round in 0..rounds {
        let timed = round >= args.warmup;
        let label = if timed {
            format!("run {}/{}", round - args.warmup + 1, args.runs)
        } else {
            format!("warm-up {}/{}", round + 1, args.warmup)
        };
        // Change the order every round, so no tool always runs on a warmer machine.
        let order: Vec<Turn> = ORDERS[round % ORDERS.len()]
            .into_iter()
            .filter(|t| *t != Turn::Aptly || aptly_home.is_some())
            .chain([Turn::KoshinParts])
            .collect();
        round_orders.push(
            order
                .iter()
                .map(|t| t.name().to_string())
                .collect::<Vec<_>>(),
        );
        for turn in order {
            match turn {
                Turn::Apt => {
                    steps.step(format!("{label}: apt-get update"));
                    let dir = work.path.join(format!("apt-{round}"));
                    let config = prepare_apt(&dir, &sources_list)?;
                    let before = server.traffic();
                    let t = run_apt(&dir, &config, expected_lists).await?;
                    apt_traffic = server.traffic().since(before);
                    if timed {
                        apt_t.push(t.total);
                        if let Some(f) = t.fetched {
                            apt_fetched_t.push(f);
                            apt_cache_t.push(t.total.saturating_sub(f));
                        }
                    }
                    if !args.keep {
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                    steps.bar.inc(1);
                }
                Turn::Koshin => {
                    steps.step(format!("{label}: koshin full sync, then delta sync"));
                    let data = work.path.join(format!("site-{round}"));
                    let (r, full_tr, delta_tr) =
                        run_koshin(&data, &lines, &server.served.counters).await?;
                    if timed {
                        full_t.push(r.full);
                        delta_t.push(r.delta);
                        read_catalog_t.push(r.read_catalog);
                        plan_delta_t.push(r.plan_delta);
                        for (which, phases) in [(0, &r.full_phases), (1, &r.delta_phases)] {
                            for (name, d) in phases {
                                let i = match phase_samples.iter().position(|(n, _)| n == name) {
                                    Some(i) => i,
                                    None => {
                                        phase_samples.push((name, [Vec::new(), Vec::new()]));
                                        phase_samples.len() - 1
                                    }
                                };
                                phase_samples[i].1[which].push(*d);
                            }
                        }
                    }
                    full_traffic = full_tr;
                    delta_traffic = delta_tr;
                    last = Some(r);
                    if !args.keep {
                        let _ = std::fs::remove_dir_all(&data);
                    }
                    steps.bar.inc(2);
                }
                Turn::Aptly => {
                    let Some(home) = &aptly_home else {
                        continue;
                    };
                    steps.step(format!(
                        "{label}: aptly mirror create + update, then update again"
                    ));
                    let dir = work.path.join(format!("aptly-{round}"));
                    let r = aptly::run_aptly(&dir, home, &aptly_mirrors, &server.served.counters)
                        .await?;
                    if timed {
                        aptly_full_t.push(r.full);
                        aptly_delta_t.push(r.delta);
                        aptly_create_t.push(r.create);
                        aptly_parse_t.push(r.until_filter);
                        aptly_filter_t.push(r.filter);
                    }
                    aptly_last = Some(r);
                    if !args.keep {
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                    steps.bar.inc(2);
                }
                Turn::KoshinParts => {
                    steps.step(format!("{label}: koshin_apt fetch and catalog steps alone"));
                    let before = server.traffic();
                    let d = run_diagnostics(&lines).await?;
                    diag_traffic = server.traffic().since(before);
                    if timed {
                        fetch_t.push(d.fetch);
                        derive_t.push(d.derive);
                        plan_t.push(d.plan);
                    }
                    diag_counts = (d.packages, d.updates);
                    steps.bar.inc(1);
                }
            }
        }
    }
    steps.done();
    machine.load_after = load_average();
    server.stop().await;
    let last = last.ok_or_else(|| anyhow!("no koshin run"))?;

    let mut figures = vec![
        figure(
            PEER,
            &apt_t,
            format!(
                "exit 0, no E:/W:; {expected_lists} Packages lists; {}",
                apt_traffic.describe()
            ),
        ),
        figure(
            FULL,
            &full_t,
            format!(
                "{} items, {} updates in catalog; {}",
                last.full_report.items,
                last.full_report.updates_in_catalog,
                full_traffic.describe()
            ),
        ),
        figure(
            DELTA,
            &delta_t,
            format!(
                "{} items, content version {} unchanged; {}",
                last.delta_report.items,
                last.delta_report.content_version,
                delta_traffic.describe()
            ),
        ),
    ];
    let mut diagnostics = vec![
        figure(
            APT_FETCHED,
            &apt_fetched_t,
            "apt's own \"Fetched\" line: xz indices, signature checks, lists written".into(),
        ),
        figure(
            APT_CACHE,
            &apt_cache_t,
            "pkgcache.bin and srcpkgcache.bin".into(),
        ),
        figure(
            FETCH_ONLY,
            &fetch_t,
            format!(
                "{} packages from {} suites; {}",
                diag_counts.0,
                ups.len(),
                diag_traffic.describe()
            ),
        ),
        figure(DERIVE_ONLY, &derive_t, format!("{} updates", diag_counts.1)),
        figure(PLAN_ONLY, &plan_t, "every update is an insert".into()),
        figure(
            READ_CATALOG,
            &read_catalog_t,
            format!(
                "{} stored updates; a delta that reads no index skips this",
                last.full_report.updates_in_catalog
            ),
        ),
        figure(
            PLAN_DELTA,
            &plan_delta_t,
            "supersedence over the whole catalog; a delta that reads no index skips this".into(),
        ),
    ];
    let ratio_med = figures[1].median_s / figures[0].median_s;
    let ratio_min = figures[1].min_s / figures[0].min_s;
    let mut peers = vec![Peer {
        tool: "apt-get".into(),
        version: machine.apt_version.clone(),
        full_command: "apt-get update into a fresh lists folder".into(),
        full: figures[0].clone(),
        full_traffic: apt_traffic,
        delta_command: None,
        delta: None,
        delta_traffic: None,
        koshin_full_ratio_median: ratio_med,
        koshin_delta_ratio_median: None,
        notes: "isolated from the host's APT configuration".into(),
    }];
    if let (Some(version), Some(a)) = (&aptly_version, &aptly_last) {
        let suites = aptly_mirrors.len();
        let full = figure(
            aptly::FULL,
            &aptly_full_t,
            format!(
                "exit 0; {} packages parsed from {suites} suites, 0 stored or queued; {}",
                a.packages,
                a.full_traffic.describe()
            ),
        );
        let delta = figure(
            aptly::DELTA,
            &aptly_delta_t,
            format!(
                "exit 0; every index fetched and parsed again; {}",
                a.delta_traffic.describe()
            ),
        );
        diagnostics.extend([
            figure(
                aptly::CREATE,
                &aptly_create_t,
                format!("{suites} commands: InRelease, gpgv"),
            ),
            figure(
                aptly::UNTIL_FILTER,
                &aptly_parse_t,
                format!(
                    "{suites} commands, to aptly's own line: InRelease, gpgv, indices fetched, decompressed, parsed"
                ),
            ),
            figure(
                aptly::FILTER,
                &aptly_filter_t,
                "the one step the bench adds to aptly's work".into(),
            ),
        ]);
        peers.push(Peer {
            tool: "aptly".into(),
            version: version.clone(),
            full_command: format!(
                "aptly mirror create + aptly mirror update of {suites} mirrors into a fresh root"
            ),
            full_traffic: a.full_traffic,
            delta_command: Some(format!("aptly mirror update of the {suites} mirrors again")),
            delta_traffic: Some(a.delta_traffic),
            koshin_full_ratio_median: figures[1].median_s / full.median_s,
            koshin_delta_ratio_median: Some(figures[2].median_s / delta.median_s),
            notes: format!(
                "a lower bound: its filter ({}) matches no package, so aptly stores none in its database and downloads no .deb",
                aptly::MATCH_NOTHING
            ),
            full: full.clone(),
            delta: Some(delta.clone()),
        });
        figures.extend([full, delta]);
    }
    let targets = vec![
        Target {
            target: format!(
                "full sync within {TARGET_FULL_RATIO}× of apt-get update (product spec)"
            ),
            measured: format!("{ratio_med:.2}× (median), {ratio_min:.2}× (min)"),
            met: ratio_med <= TARGET_FULL_RATIO,
        },
        Target {
            target: format!("no-change delta sync ≤ {TARGET_DELTA_S} s (product spec)"),
            measured: secs(figures[2].median_s),
            met: figures[2].median_s <= TARGET_DELTA_S,
        },
        Target {
            target: format!("full sync ≤ {FIRST_ISSUE_FULL_S} s (first issue)"),
            measured: secs(figures[1].median_s),
            met: figures[1].median_s <= FIRST_ISSUE_FULL_S,
        },
        Target {
            target: format!("no-change delta sync ≤ {FIRST_ISSUE_DELTA_S} s (first issue)"),
            measured: secs(figures[2].median_s),
            met: figures[2].median_s <= FIRST_ISSUE_DELTA_S,
        },
    ];
    let phases: Vec<Phase> = phase_samples
        .iter()
        .map(|(name, [full, delta])| {
            let f = figure(name, full, String::new());
            let d = figure(name, delta, String::new());
            Phase {
                phase: name.to_string(),
                full_min_s: f.min_s,
                full_median_s: f.median_s,
                delta_median_s: d.median_s,
            }
        })
        .collect();
    let report = Report {
        machine,
        mirror: mirror_summary,
        loopback_sources: lines.clone(),
        runs: args.runs,
        warmup_rounds: args.warmup,
        round_orders,
        peers,
        peers_skipped,
        ratio_full_to_apt_median: ratio_med,
        ratio_full_to_apt_min: ratio_min,
        items_full: last.full_report.items,
        updates_in_catalog: last.full_report.updates_in_catalog,
        content_version: last.full_report.content_version,
        figures,
        diagnostics,
        targets,
        sync_phases: phases,
        kept: args.keep.then(|| work.path.display().to_string()),
    };
    if args.json {
        output::json(&report)?;
    } else {
        print_report(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_report(r: &Report) {
    let m = &r.machine;
    println!(
        "Machine: {} × {}, {:.1} GiB memory, {}, Linux {}",
        m.cpus, m.cpu_model, m.memory_gib, m.os, m.kernel
    );
    let others: String = r
        .peers
        .iter()
        .filter(|p| p.tool != "apt-get")
        .map(|p| format!(", {} {}", p.tool, p.version))
        .collect();
    println!(
        "koshin {} ({} build), {}{others}",
        m.koshin_version, m.koshin_build, m.apt_version
    );
    let load = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "Load average: {} before, {} after",
        load(&m.load_before),
        load(&m.load_after)
    );
    println!(
        "Copy: {} ({}; {} index files, {:.1} MB{})",
        r.mirror.path,
        r.mirror.suites.join(", "),
        r.mirror.index_files,
        r.mirror.bytes as f64 / 1e6,
        if r.mirror.reused { ", reused" } else { "" }
    );
    let mut tools: Vec<&str> = vec!["koshin"];
    tools.extend(r.peers.iter().map(|p| p.tool.as_str()));
    let tools = match tools.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => tools.join(""),
    };
    println!(
        "Runs: {} timed after {} warm-up round(s); the order of {tools} changes every round",
        r.runs, r.warmup_rounds,
    );
    for s in &r.peers_skipped {
        println!("Not measured: {s}");
    }
    println!();
    let row = |f: &Figure| {
        vec![
            f.command.clone(),
            f.runs.to_string(),
            secs(f.min_s),
            secs(f.median_s),
            f.notes.clone(),
        ]
    };
    let mut rows: Vec<Vec<String>> = r.figures.iter().map(row).collect();
    rows.push(vec![
        "koshin full / apt-get update".into(),
        String::new(),
        format!("{:.2}×", r.ratio_full_to_apt_min),
        format!("{:.2}×", r.ratio_full_to_apt_median),
        "ratio of the mins, ratio of the medians".into(),
    ]);
    let koshin_full = r.figures.iter().find(|f| f.command == FULL);
    let koshin_delta = r.figures.iter().find(|f| f.command == DELTA);
    for p in r.peers.iter().filter(|p| p.tool != "apt-get") {
        let pairs = [
            ("full", koshin_full, Some(&p.full)),
            ("delta", koshin_delta, p.delta.as_ref()),
        ];
        for (what, k, peer) in pairs {
            if let (Some(k), Some(peer)) = (k, peer) {
                rows.push(vec![
                    format!("koshin {what} / {} {what}", p.tool),
                    String::new(),
                    format!("{:.2}×", k.min_s / peer.min_s),
                    format!("{:.2}×", k.median_s / peer.median_s),
                    "ratio of the mins, ratio of the medians".into(),
                ]);
            }
        }
    }
    output::table(&["command", "runs", "min", "median", "notes"], &rows);
    println!();
    println!("Targets:");
    for t in &r.targets {
        println!(
            "  {} {}: {}",
            if t.met { "met   " } else { "MISSED" },
            t.target,
            t.measured
        );
    }
    if !r.sync_phases.is_empty() {
        println!();
        println!("Where koshin's time goes (phases timed from the sync manager's wsyncmgr.log):");
        let rows: Vec<Vec<String>> = r
            .sync_phases
            .iter()
            .map(|p| {
                vec![
                    p.phase.clone(),
                    secs(p.full_min_s),
                    secs(p.full_median_s),
                    secs(p.delta_median_s),
                ]
            })
            .collect();
        output::table(&["phase", "full min", "full median", "delta median"], &rows);
    }
    println!();
    println!(
        "Parts: apt-get's split at its \"Fetched\" line and aptly's at its own lines (same runs); koshin's steps run alone, outside the sync manager:"
    );
    let rows: Vec<Vec<String>> = r.diagnostics.iter().map(row).collect();
    output::table(&["step", "runs", "min", "median", "notes"], &rows);
    if let Some(k) = &r.kept {
        println!();
        println!("Run folders kept in {k}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_uris_to_mirror_folders() {
        assert_eq!(
            local_path("http://deb.debian.org/debian").unwrap(),
            "deb.debian.org/debian"
        );
        assert_eq!(
            local_path("http://deb.debian.org/debian-security/").unwrap(),
            "deb.debian.org/debian-security"
        );
        assert!(local_path("https://x/y").is_err());
        assert!(local_path("http://x/../y").is_err());
        assert_eq!(
            by_hash_path("main/binary-amd64/Packages.xz", "ab"),
            "main/binary-amd64/by-hash/SHA256/ab"
        );
    }

    #[test]
    fn rounds_change_the_order_evenly() {
        let tools = [Turn::Apt, Turn::Koshin, Turn::Aptly];
        for t in tools {
            for place in 0..3 {
                let n = ORDERS.iter().filter(|o| o[place] == t).count();
                assert_eq!(n, 2, "{t:?} at place {place}");
            }
            for u in tools.iter().filter(|u| **u != t) {
                let first =
                    |o: &[Turn; 3]| o.iter().position(|x| x == &t) < o.iter().position(|x| x == u);
                assert_eq!(
                    ORDERS.iter().filter(|o| first(o)).count(),
                    3,
                    "{t:?} before {u:?}"
                );
            }
        }
        // Without aptly, apt and koshin alternate, apt first.
        for (round, o) in ORDERS.iter().enumerate() {
            let without: Vec<Turn> = o.iter().copied().filter(|t| *t != Turn::Aptly).collect();
            let expected = if round % 2 == 0 {
                [Turn::Apt, Turn::Koshin]
            } else {
                [Turn::Koshin, Turn::Apt]
            };
            assert_eq!(without, expected, "round {round}");
        }
    }

    #[test]
    fn reads_phases_from_a_sync_log() {
        let l = |t: &str, ms: u32| {
            format!(
                "{t}  $$<SMS_WSUS_SYNC_MANAGER><11-21-2026 05:00:{:02}.{:03}+000><thread=1 (0x1)>\n",
                ms / 1000,
                ms % 1000
            )
        };
        let log = [
            l("Starting Sync", 0),
            l("sync: upstream synchronizing categories", 10),
            l("sync: upstream synchronizing updates", 30),
            l("Synchronized x (5 packages read, 9 bytes fetched)", 1030),
            l("Done synchronizing update point S with its upstream", 1530),
            l("sync: site database synchronizing updates", 1540),
            l(
                "Synchronizing updates, 1 of 2 items (50%), ETA in 00:00:01",
                2540,
            ),
            l("Synchronized update a - b", 3540),
            l(
                "sync: site database synchronizing updates, 2 of 2 items (100%)",
                3600,
            ),
            l("Sync time: 0d00h00m03s", 3700),
            l("Starting Sync", 9000),
        ]
        .concat();
        let p = sync_phases(&log, 0);
        let get = |name: &str| {
            p.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, d)| d.as_millis())
        };
        assert_eq!(get("load keyrings"), Some(20));
        assert_eq!(
            get("upstream: fetch, verify, decompress, parse"),
            Some(1000)
        );
        assert_eq!(get("catalog derive, local publisher"), Some(500));
        assert_eq!(get("content version, categories"), Some(10));
        assert_eq!(
            get("database: read catalog, plan, write, commit"),
            Some(2000)
        );
        assert_eq!(get("one log line per changed update"), Some(60));
        assert_eq!(get("machine policy, status messages"), Some(100));
        assert_eq!(sync_phases(&log, 1), vec![]);
    }
}
