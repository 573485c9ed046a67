//! `koshin bench load`: a load generator that speaks the agent's wire format to a site.
//!
//! By default it makes its own site in a temporary folder, synced from the loopback copy of
//! this machine's APT sources (the full Debian catalog `bench sync` uses), and runs it as a
//! separate `koshin site serve` process, so the server's memory and disk can be read from
//! `/proc` and the data folder. With `--site URL` it loads an existing site instead, with an
//! administrator's token.
//!
//! Every simulated client does what `koshin-agent` does, over the same routes and bodies
//! (`koshin-wire` types): it enrolls (`POST /api/v1/clients/enroll` with an administrator's
//! token and a signing request for its own key), fetches its machine policy, sends its
//! inventory (`POST /api/v1/mp/inventory`, this machine's own, whole), and reports its scans
//! as state-message batches (`POST /api/v1/mp/state-messages`, at most the agent's batch
//! size, the scan record with the last batch, the same batch id again after a failure).
//! Clients send at a controlled rate for a duration, or all of them within a burst window;
//! meanwhile the bench measures report latency over the HTTP API, accepted messages per
//! second, batch latency, and the server's memory, CPU and disk over time. At the end it
//! checks that every acknowledged message is in the database.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use koshin_wire::{
    BatchAck, ClientCatalog, ClientDetail, EnrollRequest, EnrollResponse, InventoryAck,
    InventoryReport, MachinePolicy, StateBatch, StateMessage,
};
use serde::Serialize;

use crate::bench_ingest::{Catalog, Estate, message, mix, scan_record};
use crate::cmd_bench::Steps;

#[derive(Args)]
pub struct LoadBenchArgs {
    /// Simulated clients.
    #[arg(long, default_value_t = 1000)]
    clients: u64,
    /// Updates that apply to each client: its first scan reports each of them.
    #[arg(long, default_value_t = 400)]
    applicable: usize,
    /// State messages per second, over all clients (0: as fast as the site acknowledges
    /// them, with --connections batches in flight).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Seconds to send at --rate. Clients report in turn: first scans, then rescans.
    #[arg(long, default_value_t = 60.0)]
    duration: f64,
    /// Instead of a rate: every client reports its whole scan within this many minutes, at a
    /// random moment of the window (a Patch Tuesday).
    #[arg(long, conflicts_with_all = ["rate", "duration"])]
    burst: Option<f64>,
    /// Share of a client's applicable updates whose state changes between two of its scans;
    /// a rescan reports only those.
    #[arg(long, default_value_t = 0.1)]
    changes: f64,
    /// Concurrent HTTP connections.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Packages in each client's inventory (default: all of this machine's); 0 sends
    /// properties only.
    #[arg(long)]
    inventory_packages: Option<usize>,
    /// Send no inventory.
    #[arg(long)]
    no_inventory: bool,
    /// Seconds between report-latency probes (`updates-with-counts`, then
    /// `updates-for-computer` of a random client), one at a time as a console asks.
    #[arg(long, default_value_t = 2.0)]
    probe_interval: f64,
    /// Seconds between lines of the time series.
    #[arg(long, default_value_t = 10.0)]
    interval: f64,
    /// Share of acknowledged batches sent a second time: the site must store them once.
    #[arg(long, default_value_t = 0.01)]
    resend: f64,
    /// With --site: the server's process id, for its memory and CPU.
    #[arg(long)]
    server_pid: Option<u32>,
    /// With --site: the site's data folder, for its disk use.
    #[arg(long)]
    server_data: Option<PathBuf>,
    /// With --site: clients whose stored states are compared through the API at the end.
    #[arg(long, default_value_t = 500)]
    verify_sample: usize,
    /// The loopback copy of the archive metadata the bench's own site syncs from
    /// [default: $HOME/.cache/koshin-bench/mirror].
    #[arg(long)]
    mirror: Option<PathBuf>,
    /// Sync only these suites of the copy (e.g. `bookworm-security`): a smaller catalog.
    #[arg(long = "suite")]
    suites: Vec<String>,
    /// Sync the bench's own site from these APT lines instead of the copy (`site init
    /// --upstream`).
    #[arg(long = "upstream")]
    upstreams: Vec<String>,
    /// Keep the bench's own site folder (printed at the end).
    #[arg(long)]
    keep: bool,
    #[arg(long)]
    json: bool,
}

/// The site the command line names, if it names one: `koshin --site URL bench load`.
pub struct Target {
    pub site: Option<String>,
    pub token: Option<String>,
    pub ca_cert: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------
// The server process and what /proc says of it.

struct Server {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Server {
    /// `koshin site serve --data DATA --listen 127.0.0.1:0`, its stderr into `log`; waits for
    /// the line that names its address.
    fn start(data: &Path, log: &Path) -> anyhow::Result<Server> {
        let exe = std::env::current_exe().context("cannot find the koshin binary")?;
        let mut child = Command::new(exe)
            .args(["site", "serve", "--data"])
            .arg(data)
            .args(["--listen", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start `koshin site serve`")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let mut file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split_once("serving on ").map(|(_, r)| r) {
                    let url = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(url.to_string());
                }
                let _ = writeln!(file, "{line}");
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the site did not start within 60 s; see {}", log.display());
            }
        };
        Ok(Server {
            child,
            url,
            log: log.to_path_buf(),
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server as an administrator would (SIGTERM: a graceful shutdown).
    fn stop(mut self) -> anyhow::Result<()> {
        #[cfg(unix)]
        // SAFETY: signalling the child process this bench started, by its own id.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                if !status.success() {
                    bail!("the site exited with {status}; see {}", self.log.display());
                }
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("the site did not stop within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Memory of a process, in bytes: resident, of it anonymous (heap) and file-backed (the
/// mapped binary and files), and the peak resident.
#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Memory {
    rss: u64,
    rss_anon: u64,
    rss_file: u64,
    peak: u64,
}

fn memory(pid: u32) -> Option<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024
    };
    Some(Memory {
        rss: kib("VmRSS:"),
        rss_anon: kib("RssAnon:"),
        rss_file: kib("RssFile:"),
        peak: kib("VmHWM:"),
    })
}

/// CPU time (user + system) a process has used so far.
fn cpu_time(pid: &str) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = text.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let ticks = if ticks > 0 { ticks as u64 } else { 100 };
    Some(Duration::from_millis((utime + stime) * 1000 / ticks))
}

/// Bytes of the files under `dir`, and of the site database with its WAL.
fn disk(dir: &Path) -> (u64, u64) {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(e.path()),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    let db = dir.join(koshin_server::init::DATABASE_FILE);
    let size = |p: PathBuf| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    let database = size(db.clone()) + size(PathBuf::from(format!("{}-wal", db.display())));
    (total, database)
}

// ---------------------------------------------------------------------------------------
// Figures.

/// Latencies in microseconds, for percentiles.
#[derive(Default)]
struct Latencies(Vec<u32>);

#[derive(Clone, Copy, Debug, Default, Serialize)]
struct Percentiles {
    count: usize,
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Latencies {
    fn push(&mut self, d: Duration) {
        self.0
            .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }

    fn percentiles(&self) -> Percentiles {
        let mut v = self.0.clone();
        v.sort_unstable();
        let at = |q: f64| -> f64 {
            if v.is_empty() {
                return 0.0;
            }
            let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
            f64::from(v[i]) / 1e3
        };
        Percentiles {
            count: v.len(),
            p50_ms: at(0.5),
            p99_ms: at(0.99),
            max_ms: v.last().map_or(0.0, |m| f64::from(*m) / 1e3),
        }
    }
}

/// What the clients and probes record; the sampler drains the interval's latencies.
#[derive(Default)]
struct Metrics {
    /// Messages stored by acknowledged batches (the site's `stored`).
    stored: AtomicU64,
    /// Batches acknowledged as new.
    batches: AtomicU64,
    /// Reports (scans) whose every batch was acknowledged.
    reports: AtomicU64,
    /// Batches sent again after their acknowledgement, and acknowledged as duplicates.
    resent: AtomicU64,
    /// Resent batches the site did not recognise as duplicates (must stay 0).
    resent_stored: AtomicU64,
    /// Failed attempts (retried with the same batch id).
    retries: AtomicU64,
    /// Batches given up on (refused, or failed every attempt).
    failed: AtomicU64,
    /// Messages about updates the site does not know.
    unknown: AtomicU64,
    /// Largest lateness behind the schedule in this interval, in microseconds.
    behind_us: AtomicU64,
    interval: Mutex<IntervalLatencies>,
    all: Mutex<IntervalLatencies>,
}

#[derive(Default)]
struct IntervalLatencies {
    batch: Latencies,
    counts: Latencies,
    computer: Latencies,
    page: Latencies,
}

impl Metrics {
    fn batch_latency(&self, d: Duration) {
        for m in [&self.interval, &self.all] {
            m.lock().unwrap_or_else(|p| p.into_inner()).batch.push(d);
        }
    }

    fn probe(&self, which: Probe, d: Duration) {
        for m in [&self.interval, &self.all] {
            let mut g = m.lock().unwrap_or_else(|p| p.into_inner());
            match which {
                Probe::Counts => g.counts.push(d),
                Probe::Computer => g.computer.push(d),
                Probe::Page => g.page.push(d),
            }
        }
    }
}

/// The report requests timed under load.
#[derive(Clone, Copy)]
enum Probe {
    /// `updates-with-counts`, whole (34,400 rows).
    Counts,
    /// `updates-for-computer` of a client that has reported.
    Computer,
    /// The console's updates page: `updates-with-counts?limit=50`.
    Page,
}

/// One line of the time series.
#[derive(Clone, Debug, Serialize)]
struct Sample {
    seconds: f64,
    messages: u64,
    messages_per_second: f64,
    batch: Percentiles,
    updates_with_counts: Percentiles,
    updates_for_computer: Percentiles,
    console_updates_page: Percentiles,
    behind_schedule_ms: f64,
    server_rss_bytes: u64,
    server_rss_anon_bytes: u64,
    server_cpu_cores: f64,
    bench_cpu_cores: f64,
    data_bytes: u64,
    database_bytes: u64,
}

// ---------------------------------------------------------------------------------------
// Clients.

/// A simulated client: its identity at the site and the states the site acknowledged.
struct SimClient {
    n: u64,
    client_id: String,
    name: String,
    credential: String,
    /// Acknowledged reports so far: the next report is a first scan when 0.
    reports: u32,
    /// Bit i: the i-th applicable update was last reported (and acknowledged) Required.
    required: Vec<u64>,
    /// A batch of this client failed for good: its stored states are unknown.
    uncertain: bool,
}

impl SimClient {
    fn is_required(&self, i: usize) -> bool {
        self.required[i / 64] >> (i % 64) & 1 == 1
    }

    fn set_required(&mut self, i: usize, r: bool) {
        if r {
            self.required[i / 64] |= 1 << (i % 64);
        } else {
            self.required[i / 64] &= !(1 << (i % 64));
        }
    }
}

/// Whether client `n` finds the `i`-th of its updates changed at its scan number `scan`.
fn changes_at(n: u64, i: usize, scan: u32, share: f64) -> bool {
    let h = mix(mix(n ^ (u64::from(scan) << 40)) ^ i as u64);
    ((h % 1_000_000) as f64) < share * 1e6
}

/// The messages of client `c`'s next scan: every applicable update on a first scan, the
/// changed ones on a rescan; (position among its updates, new state Required) each.
fn next_scan(c: &SimClient, applicable: usize, share: f64) -> Vec<(usize, bool)> {
    if c.reports == 0 {
        return (0..applicable)
            .map(|i| (i, Estate::first_required(c.n, i)))
            .collect();
    }
    (0..applicable)
        .filter(|&i| changes_at(c.n, i, c.reports, share))
        .map(|i| (i, !c.is_required(i)))
        .collect()
}

struct Shared {
    http: reqwest::Client,
    url: String,
    admin: String,
    catalog: Catalog,
    estate: Estate,
    applicable: usize,
    changes: f64,
    resend: f64,
    metrics: Metrics,
    stop: AtomicBool,
    /// Clients whose first scan the site acknowledged: `updates-for-computer` is probed on
    /// those (a client that never scanned has every update Unknown, a catalog-sized answer).
    reported: Vec<AtomicBool>,
    names: Vec<String>,
}

impl Shared {
    /// A client that has reported, picked by `seed`; `None` while none has.
    fn reported_name(&self, seed: u64) -> Option<&str> {
        let n = self.names.len() as u64;
        (0..64)
            .map(|k| (mix(seed ^ (k << 48)) % n) as usize)
            .find(|&i| self.reported[i].load(Ordering::Relaxed))
            .map(|i| self.names[i].as_str())
    }
}

/// `updates-with-counts` whole, its first page of 50 as the console's updates page asks,
/// then `updates-for-computer` of a client that has reported, one after the other: each
/// timed until its whole answer has arrived.
async fn probe(s: &Shared, seed: u64) {
    for (which, path) in [
        (Probe::Counts, "/api/v1/reports/updates-with-counts"),
        (Probe::Page, "/api/v1/reports/updates-with-counts?limit=50"),
    ] {
        let t = Instant::now();
        let r = s
            .http
            .get(format!("{}{path}", s.url))
            .bearer_auth(&s.admin)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status);
        if let Ok(resp) = r
            && resp.bytes().await.is_ok()
        {
            s.metrics.probe(which, t.elapsed());
        }
    }
    let Some(name) = s.reported_name(seed) else {
        return;
    };
    let t = Instant::now();
    let r = s
        .http
        .get(format!("{}/api/v1/reports/updates-for-computer", s.url))
        .query(&[("computer", name)])
        .bearer_auth(&s.admin)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status);
    if let Ok(resp) = r
        && resp.bytes().await.is_ok()
    {
        s.metrics.probe(Probe::Computer, t.elapsed());
    }
}

/// A POST with a bearer token; the JSON answer, or why not (transient: worth retrying).
async fn post<T: serde::de::DeserializeOwned, B: Serialize + ?Sized>(
    http: &reqwest::Client,
    url: &str,
    bearer: &str,
    body: &B,
) -> Result<T, (bool, String)> {
    let resp = http
        .post(url)
        .bearer_auth(bearer)
        .json(body)
        .send()
        .await
        .map_err(|e| (true, format!("{e}")))?;
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| (true, format!("{e}")))?;
    if !status.is_success() {
        let transient = status.is_server_error() || status.as_u16() == 429;
        return Err((
            transient,
            format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes).trim()),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| (false, format!("unexpected answer: {e}")))
}

async fn get<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &str,
    bearer: &str,
) -> anyhow::Result<T> {
    let resp = http.get(url).bearer_auth(bearer).send().await?;
    let status = resp.status();
    let bytes = resp.bytes().await?;
    if !status.is_success() {
        bail!(
            "GET {url}: HTTP {status}: {}",
            String::from_utf8_lossy(&bytes).trim()
        );
    }
    serde_json::from_slice(&bytes).with_context(|| format!("GET {url}: unexpected answer"))
}

/// Sends one batch as the agent does: the same batch id again after a failure, until the
/// site acknowledges it (8 attempts here).
async fn send_batch(s: &Shared, credential: &str, batch: &StateBatch) -> Option<BatchAck> {
    let url = format!("{}/api/v1/mp/state-messages", s.url);
    let mut wait = Duration::from_millis(200);
    for attempt in 0..8 {
        let started = Instant::now();
        match post::<BatchAck, _>(&s.http, &url, credential, batch).await {
            Ok(ack) => {
                s.metrics.batch_latency(started.elapsed());
                return Some(ack);
            }
            Err((transient, reason)) => {
                s.metrics.retries.fetch_add(1, Ordering::Relaxed);
                if !transient || attempt == 7 {
                    tracing::error!(batch = %batch.batch_id, %reason, "a batch of state messages failed");
                    return None;
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(10));
            }
        }
    }
    None
}

/// Client `c`'s next scan, in batches of at most the agent's size with the scan record in
/// the last; its states move on as each batch is acknowledged.
async fn report(s: &Shared, c: &mut SimClient) {
    let changed = next_scan(c, s.applicable, s.changes);
    let updates = s.estate.updates(c.n);
    let now = jiff::Timestamp::now();
    let scan_id = uuid::Uuid::new_v4().to_string();
    // Required after this scan: the unchanged ones as they were, the changed ones as now.
    let mut required = (0..s.applicable).filter(|&i| c.is_required(i)).count() as u64;
    for &(i, r) in &changed {
        match (c.is_required(i), r) {
            (false, true) => required += 1,
            (true, false) => required -= 1,
            _ => {}
        }
    }
    let chunks: Vec<&[(usize, bool)]> = if changed.is_empty() {
        vec![&[]]
    } else {
        changed.chunks(koshin_agent::BATCH_SIZE).collect()
    };
    let last = chunks.len() - 1;
    for (k, chunk) in chunks.into_iter().enumerate() {
        let messages: Vec<StateMessage> = chunk
            .iter()
            .map(|&(i, r)| message(&s.catalog.ids[updates[i] as usize], r, now, &scan_id))
            .collect();
        let batch = StateBatch {
            batch_id: uuid::Uuid::new_v4().to_string(),
            client_id: c.client_id.clone(),
            messages,
            scans: if k == last {
                vec![scan_record(
                    &scan_id,
                    &s.catalog,
                    now,
                    required,
                    s.applicable as u64 - required,
                )]
            } else {
                Vec::new()
            },
        };
        let Some(ack) = send_batch(s, &c.credential, &batch).await else {
            s.metrics.failed.fetch_add(1, Ordering::Relaxed);
            c.uncertain = true;
            return;
        };
        if ack.duplicate {
            // A new batch id can only be a duplicate if the site mixed batches up.
            s.metrics.resent_stored.fetch_add(1, Ordering::Relaxed);
        }
        s.metrics.stored.fetch_add(ack.stored, Ordering::Relaxed);
        s.metrics.batches.fetch_add(1, Ordering::Relaxed);
        s.metrics
            .unknown
            .fetch_add(ack.unknown_updates.len() as u64, Ordering::Relaxed);
        for &(i, r) in chunk {
            c.set_required(i, r);
        }
        // Now and then the answer is "lost" and the agent sends the batch again.
        let lost = ((mix(c.n ^ (u64::from(c.reports) << 32) ^ k as u64) % 1_000_000) as f64)
            < s.resend * 1e6;
        if lost && let Some(again) = send_batch(s, &c.credential, &batch).await {
            if again.duplicate && again.stored == 0 {
                s.metrics.resent.fetch_add(1, Ordering::Relaxed);
            } else {
                s.metrics.resent_stored.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    c.reports += 1;
    s.metrics.reports.fetch_add(1, Ordering::Relaxed);
    if let Some(flag) = s.reported.get(c.n as usize) {
        flag.store(true, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------
// Enrollment.

/// A signing request for a new key of the client's own, as the agent makes at enrollment.
fn csr(client_id: &str) -> anyhow::Result<String> {
    let key = rcgen::KeyPair::generate().context("cannot make a client key")?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .context("certificate request parameters")?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, client_id);
    params
        .serialize_request(&key)
        .context("cannot make the certificate signing request")?
        .pem()
        .context("cannot encode the certificate signing request")
}

/// Enrolls client `n`, fetches its policy and sends its inventory, as a new agent does.
async fn enroll_one(
    http: &reqwest::Client,
    url: &str,
    admin: &str,
    run: &str,
    n: u64,
    inventory: Option<&koshin_agent::inventory::Inventory>,
) -> anyhow::Result<(SimClient, Duration, Duration)> {
    let client_id = uuid::Uuid::new_v4().to_string();
    let name = format!("load-{run}-{n:06}");
    let req = EnrollRequest {
        csr: Some(tokio::task::block_in_place(|| csr(&client_id))?),
        client_id: client_id.clone(),
        name: name.clone(),
        os: "Debian GNU/Linux".into(),
        os_release: "12".into(),
        architecture: "amd64".into(),
        agent_version: env!("CARGO_PKG_VERSION").into(),
    };
    let started = Instant::now();
    let resp: EnrollResponse = post(http, &format!("{url}/api/v1/clients/enroll"), admin, &req)
        .await
        .map_err(|(_, e)| anyhow!("enrolling {name}: {e}"))?;
    let enrolled = started.elapsed();
    if resp.approval != "approved" {
        bail!("{name} was enrolled as {}, not approved", resp.approval);
    }
    let started = Instant::now();
    let _: MachinePolicy = get(http, &format!("{url}/api/v1/mp/policy"), &resp.credential).await?;
    if let Some(inv) = inventory {
        let mut inv = inv.clone();
        inv.properties.insert("name".into(), vec![name.clone()]);
        let report: InventoryReport = inv.report(None, jiff::Timestamp::now().as_millisecond());
        let _: InventoryAck = post(
            http,
            &format!("{url}/api/v1/mp/inventory"),
            &resp.credential,
            &report,
        )
        .await
        .map_err(|(_, e)| anyhow!("the inventory of {name}: {e}"))?;
    }
    Ok((
        SimClient {
            n,
            client_id,
            name,
            credential: resp.credential,
            reports: 0,
            required: Vec::new(),
            uncertain: false,
        },
        enrolled,
        started.elapsed(),
    ))
}

// ---------------------------------------------------------------------------------------
// The schedule.

enum Schedule {
    /// Reports in turn (client `i % N`), paced by messages per second (0: unpaced), until
    /// the deadline.
    Rate {
        rate: f64,
        next: u64,
        clients: u64,
        due_messages: f64,
        until: Duration,
    },
    /// One report per client at its moment of the window, in order.
    Burst {
        order: Vec<(Duration, u64)>,
        next: usize,
    },
}

impl Schedule {
    /// The next report: which client, and when it is due (from the start of sending).
    fn next(&mut self, messages_of: impl Fn(u64) -> usize) -> Option<(u64, Duration)> {
        match self {
            Schedule::Rate {
                rate,
                next,
                clients,
                due_messages,
                until,
            } => {
                let c = *next % *clients;
                let due = if *rate > 0.0 {
                    Duration::from_secs_f64(*due_messages / *rate)
                } else {
                    Duration::ZERO
                };
                if *rate > 0.0 && due >= *until {
                    return None;
                }
                *next += 1;
                *due_messages += messages_of(c).max(1) as f64;
                Some((c, due))
            }
            Schedule::Burst { order, next } => {
                let item = order.get(*next).map(|(d, c)| (*c, *d));
                *next += 1;
                item
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Verification.

#[derive(Clone, Debug, Default, Serialize)]
struct Verification {
    /// How it was checked: the site database, or a sample of clients through the API.
    method: String,
    passed: bool,
    problems: Vec<String>,
    clients_checked: u64,
    state_rows_checked: u64,
    /// Messages the site acknowledged as stored.
    acknowledged_messages: u64,
    /// Rows of the history in the database (one per stored message).
    history_rows: Option<u64>,
    batches_acknowledged: u64,
    batches_in_database: Option<u64>,
}

/// Every acknowledged message against the bench site's database: the history holds one row
/// per stored message, every acknowledged batch is recorded once, every current state is
/// the client's last acknowledged one, and the counters equal the states they count.
fn verify_database(
    db: &Path,
    clients: &[SimClient],
    catalog_ids: &[String],
    estate: &Estate,
    applicable: usize,
    metrics: &Metrics,
) -> anyhow::Result<Verification> {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let mut v = Verification {
        method: "the site database: every state row, the history and batch counts, the counters"
            .into(),
        acknowledged_messages: metrics.stored.load(Ordering::Relaxed),
        batches_acknowledged: metrics.batches.load(Ordering::Relaxed),
        ..Verification::default()
    };
    let count = |sql: &str| -> rusqlite::Result<u64> {
        conn.query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
    };
    let history = count("SELECT COUNT(*) FROM state_history")?;
    let batches = count("SELECT COUNT(*) FROM state_batches")?;
    v.history_rows = Some(history);
    v.batches_in_database = Some(batches);
    let uncertain = clients.iter().filter(|c| c.uncertain).count();
    if uncertain == 0 {
        if history != v.acknowledged_messages {
            v.problems.push(format!(
                "{} messages were acknowledged, the history holds {history}",
                v.acknowledged_messages
            ));
        }
        if batches != v.batches_acknowledged {
            v.problems.push(format!(
                "{} batches were acknowledged, the database records {batches}",
                v.batches_acknowledged
            ));
        }
    } else {
        v.problems.push(format!(
            "{uncertain} clients had a batch fail for good; their states are not compared"
        ));
    }
    let by_id: HashMap<&str, usize> = clients
        .iter()
        .enumerate()
        .map(|(i, c)| (c.client_id.as_str(), i))
        .collect();
    let mut rowid_to: HashMap<i64, usize> = HashMap::new();
    {
        let mut stmt = conn.prepare("SELECT id, client_id FROM clients")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(1)?;
            if let Some(&i) = by_id.get(id.as_str()) {
                rowid_to.insert(r.get(0)?, i);
            }
        }
    }
    if rowid_to.len() != clients.len() {
        v.problems.push(format!(
            "{} clients enrolled, {} found in the database",
            clients.len(),
            rowid_to.len()
        ));
    }
    let position: HashMap<&str, u32> = catalog_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i as u32))
        .collect();
    let mut ukey_to: HashMap<i64, u32> = HashMap::new();
    {
        let mut stmt = conn.prepare("SELECT ukey, id FROM updates")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(1)?;
            if let Some(&p) = position.get(id.as_str()) {
                ukey_to.insert(r.get(0)?, p);
            }
        }
    }
    // Per client: the catalog position → index among its updates.
    let mut seen = vec![0usize; clients.len()];
    let mut wrong = 0u64;
    {
        let mut index_of: HashMap<(usize, u32), usize> = HashMap::new();
        let mut stmt =
            conn.prepare("SELECT client, ukey, state FROM update_states ORDER BY client, ukey")?;
        let mut rows = stmt.query([])?;
        let mut current: Option<usize> = None;
        while let Some(r) = rows.next()? {
            let Some(&ci) = rowid_to.get(&r.get::<_, i64>(0)?) else {
                continue;
            };
            let c = &clients[ci];
            if current != Some(ci) {
                index_of.clear();
                for (i, &u) in estate.updates(c.n).iter().enumerate() {
                    index_of.insert((ci, u), i);
                }
                current = Some(ci);
            }
            v.state_rows_checked += 1;
            if c.uncertain {
                continue;
            }
            let state: i64 = r.get(2)?;
            let i = ukey_to
                .get(&r.get::<_, i64>(1)?)
                .and_then(|p| index_of.get(&(ci, *p)));
            match i {
                Some(&i) if i < applicable => {
                    seen[ci] += 1;
                    let expected = if c.is_required(i) { 1 } else { 3 };
                    if state != expected {
                        wrong += 1;
                    }
                }
                _ => wrong += 1,
            }
        }
    }
    let missing: u64 = clients
        .iter()
        .zip(&seen)
        .filter(|(c, _)| !c.uncertain && c.reports > 0)
        .map(|(_, s)| (applicable - s) as u64)
        .sum();
    v.clients_checked = clients.iter().filter(|c| !c.uncertain).count() as u64;
    if wrong > 0 {
        v.problems.push(format!(
            "{wrong} state rows differ from the last acknowledged state"
        ));
    }
    if missing > 0 {
        v.problems
            .push(format!("{missing} acknowledged states have no state row"));
    }
    let counters = count(
        "SELECT COUNT(*) FROM (SELECT ukey, SUM(state = 1) AS r, SUM(state = 3) AS i FROM update_states GROUP BY ukey) a
         LEFT JOIN update_summary s ON s.ukey = a.ukey
         WHERE s.required IS NOT a.r OR s.installed IS NOT a.i",
    )?;
    if counters > 0 {
        v.problems.push(format!(
            "{counters} updates' counters differ from the states they count"
        ));
    }
    v.passed = v.problems.is_empty();
    Ok(v)
}

/// A sample of the clients through the API (`GET /api/v1/clients/{id}`): their Required
/// and Installed updates must be exactly their last acknowledged states.
async fn verify_api(
    s: &Shared,
    clients: &[SimClient],
    sample: usize,
) -> anyhow::Result<Verification> {
    let mut v = Verification {
        method: format!("a sample of {sample} clients through GET /api/v1/clients/ID"),
        acknowledged_messages: s.metrics.stored.load(Ordering::Relaxed),
        batches_acknowledged: s.metrics.batches.load(Ordering::Relaxed),
        ..Verification::default()
    };
    let step = (clients.len() / sample.max(1)).max(1);
    for c in clients.iter().step_by(step).take(sample) {
        if c.uncertain {
            continue;
        }
        let detail: ClientDetail = get(
            &s.http,
            &format!("{}/api/v1/clients/{}", s.url, c.client_id),
            &s.admin,
        )
        .await?;
        let stored: HashMap<&str, &str> = detail
            .updates
            .iter()
            .map(|u| (u.update_id.as_str(), u.state.as_str()))
            .collect();
        v.clients_checked += 1;
        if c.reports == 0 {
            continue;
        }
        for (i, &u) in s.estate.updates(c.n).iter().enumerate().take(s.applicable) {
            v.state_rows_checked += 1;
            let want = if c.is_required(i) {
                "required"
            } else {
                "installed"
            };
            let got = stored.get(s.catalog.ids[u as usize].as_str()).copied();
            if got != Some(want) {
                v.problems.push(format!(
                    "{}: update {} is {} at the site, {want} as last acknowledged",
                    c.name,
                    s.catalog.ids[u as usize],
                    got.unwrap_or("absent")
                ));
                if v.problems.len() > 20 {
                    break;
                }
            }
        }
    }
    v.passed = v.problems.is_empty();
    Ok(v)
}

// ---------------------------------------------------------------------------------------
// The run.

#[derive(Debug, Serialize)]
struct Summary {
    machine: crate::cmd_bench::Machine,
    site: String,
    own_site: bool,
    clients: u64,
    applicable: usize,
    updates_in_catalog: usize,
    mode: String,
    connections: usize,
    enroll_seconds: f64,
    enrollments_per_second: f64,
    enroll: Percentiles,
    policy_and_inventory: Percentiles,
    inventory_packages: usize,
    /// The same reports after the load, with nothing else going on, at the size it left.
    idle_updates_with_counts: Percentiles,
    idle_updates_for_computer: Percentiles,
    idle_console_updates_page: Percentiles,
    send_seconds: f64,
    reports: u64,
    batches: u64,
    messages: u64,
    messages_per_second: f64,
    peak_interval_messages_per_second: f64,
    resent_batches: u64,
    retries: u64,
    failed_batches: u64,
    unknown_updates: u64,
    batch: Percentiles,
    updates_with_counts: Percentiles,
    updates_for_computer: Percentiles,
    console_updates_page: Percentiles,
    server_rss_start_bytes: u64,
    server_rss_peak_bytes: u64,
    server_rss_end_bytes: u64,
    server_rss_anon_peak_bytes: u64,
    server_cpu_cores: f64,
    bench_cpu_cores: f64,
    data_bytes_start: u64,
    data_bytes_end: u64,
    database_bytes_start: u64,
    database_bytes_end: u64,
    bytes_per_message: f64,
    series: Vec<Sample>,
    verification: Verification,
}

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

fn mb(b: u64) -> String {
    format!("{:.0} MB", b as f64 / 1e6)
}

pub async fn run(a: LoadBenchArgs, target: Target) -> anyhow::Result<std::process::ExitCode> {
    if a.clients == 0 || a.connections == 0 {
        bail!("--clients and --connections must be at least 1");
    }
    if !(0.0..=1.0).contains(&a.changes) || !(0.0..=1.0).contains(&a.resend) {
        bail!("--changes and --resend are shares between 0 and 1");
    }
    if a.burst.is_some_and(|m| m.is_nan() || m <= 0.0) {
        bail!("--burst takes a window in minutes, more than 0");
    }
    if a.duration.is_nan() || a.duration <= 0.0 || a.interval <= 0.0 || a.probe_interval <= 0.0 {
        bail!("--duration, --interval and --probe-interval must be more than 0");
    }
    let steps = Steps::new();
    let mut machine = crate::cmd_bench::machine();
    if machine.koshin_build == "debug" {
        steps.note("this is a debug build: its figures mean little; use `cargo run --release -- bench load`");
    }
    let run_tag = format!("{:x}", jiff::Timestamp::now().as_second() % 0x100_0000);

    // The site: our own in a separate process, or the one named.
    let work = WorkDir {
        path: std::env::temp_dir().join(format!("koshin-bench-load-{}", std::process::id())),
        keep: a.keep,
    };
    let mut server: Option<Server> = None;
    let mut mirror = None;
    let (url, admin, data, pid) = match &target.site {
        Some(site) => {
            let api =
                crate::client::Api::with_ca(site, target.token.clone(), target.ca_cert.as_deref())?;
            let admin = api
                .token()
                .ok_or_else(|| {
                    anyhow!("--site needs an administrator's token: --token T or `koshin login`")
                })?
                .to_string();
            (
                site.trim_end_matches('/').to_string(),
                admin,
                a.server_data.clone(),
                a.server_pid,
            )
        }
        None => {
            std::fs::create_dir_all(&work.path)
                .with_context(|| format!("cannot create {}", work.path.display()))?;
            let data = work.path.join("site");
            let lines = if a.upstreams.is_empty() {
                steps.step("the loopback copy of the archive metadata");
                let (m, lines) =
                    crate::cmd_bench::loopback_sources(a.mirror.clone(), &a.suites, &steps).await?;
                mirror = Some(m);
                lines
            } else {
                a.upstreams.clone()
            };
            steps.step("a site of its own, fully synced");
            let (site, report) = crate::cmd_bench::synced_from(&data, "LOD", &lines).await?;
            drop(site);
            steps.note(format!(
                "site synced: {} updates at content version {} in {:.1} s",
                report.updates_in_catalog,
                report.content_version,
                report.elapsed.as_secs_f64()
            ));
            steps.step("starting `koshin site serve`");
            let s = Server::start(&data, &work.path.join("server.log"))?;
            let url = s.url.clone();
            let pid = s.pid();
            server = Some(s);
            let admin = std::fs::read_to_string(data.join(koshin_server::init::TOKEN_FILE))
                .context("the site's admin.token")?
                .trim()
                .to_string();
            steps.note(format!("site serving on {url} (process {pid})"));
            (url, admin, Some(data), Some(pid))
        }
    };
    let own_site = server.is_some();

    let mut builder = reqwest::Client::builder()
        .pool_max_idle_per_host(a.connections)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(300))
        .user_agent(concat!(
            "koshin-agent/",
            env!("CARGO_PKG_VERSION"),
            " (bench load)"
        ));
    if let Some(path) = &target.ca_cert {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the CA certificate {}", path.display()))?;
        builder = builder.tls_certs_only(koshin_agent::mp::ca_certificates(&pem)?);
    }
    let http = builder.build().context("cannot set up the HTTP client")?;

    let inventory = if a.no_inventory {
        None
    } else {
        let mut inv =
            tokio::task::block_in_place(|| koshin_agent::inventory::collect(Path::new("/")));
        if let Some(n) = a.inventory_packages {
            let mut packages: Vec<(String, String)> = inv.packages.into_iter().collect();
            let have = packages.len();
            for i in have..n {
                packages.push((format!("bench-package-{i}:amd64"), "1.0-1".into()));
            }
            packages.truncate(n);
            inv.packages = packages.into_iter().collect();
        }
        Some(inv)
    };
    let inventory_packages = inventory.as_ref().map_or(0, |i| i.packages.len());

    // Enrollment: the first client alone (it fetches the catalog), then the rest.
    let enroll_started = Instant::now();
    steps.counting(a.clients);
    steps.step(format!("enrolling {} clients", a.clients));
    let first = enroll_one(&http, &url, &admin, &run_tag, 0, inventory.as_ref()).await?;
    steps.inc();
    let client_catalog: ClientCatalog = get(
        &http,
        &format!("{url}/api/v1/mp/catalog?since=0"),
        &first.0.credential,
    )
    .await?;
    let catalog = Catalog {
        ids: client_catalog
            .updates
            .iter()
            .filter(|u| !u.expired)
            .map(|u| u.id.clone())
            .collect(),
        ukeys: Vec::new(),
        content_version: client_catalog.content_version,
        token: client_catalog.token.clone(),
    };
    drop(client_catalog);
    let applicable = a.applicable.min(catalog.ids.len());
    if applicable < a.applicable {
        steps.note(format!(
            "the catalog has {} updates: each client gets {applicable} applicable",
            catalog.ids.len()
        ));
    }
    let estate = Estate::new(catalog.ids.len(), applicable)?;
    let mut enroll_lat = Latencies::default();
    let mut setup_lat = Latencies::default();
    enroll_lat.push(first.1);
    setup_lat.push(first.2);
    let mut clients = vec![first.0];
    {
        let next = Arc::new(AtomicU64::new(1));
        let inventory = Arc::new(inventory.clone());
        let (tx, mut rx) = tokio::sync::mpsc::channel(a.connections * 2);
        for _ in 0..a.connections.min(a.clients as usize) {
            let (next, tx, http, url, admin, run_tag, inventory, total) = (
                next.clone(),
                tx.clone(),
                http.clone(),
                url.clone(),
                admin.clone(),
                run_tag.clone(),
                inventory.clone(),
                a.clients,
            );
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return;
                    }
                    let r =
                        enroll_one(&http, &url, &admin, &run_tag, n, (*inventory).as_ref()).await;
                    let failed = r.is_err();
                    if tx.send(r).await.is_err() || failed {
                        return;
                    }
                }
            });
        }
        drop(tx);
        // Without a terminal there is no bar: a line every 10 seconds instead.
        let terminal = std::io::stderr().is_terminal();
        let mut said = Instant::now();
        while let Some(r) = rx.recv().await {
            let (c, e, p) = r?;
            enroll_lat.push(e);
            setup_lat.push(p);
            clients.push(c);
            steps.inc();
            if !terminal && said.elapsed() >= Duration::from_secs(10) {
                said = Instant::now();
                eprintln!(
                    "bench: {} of {} clients enrolled ({:.0}/s)",
                    clients.len(),
                    a.clients,
                    clients.len() as f64 / enroll_started.elapsed().as_secs_f64()
                );
            }
        }
        if clients.len() as u64 != a.clients {
            bail!("only {} of {} clients enrolled", clients.len(), a.clients);
        }
    }
    let enroll_seconds = enroll_started.elapsed().as_secs_f64();
    clients.sort_by_key(|c| c.n);
    for c in &mut clients {
        c.required = vec![0; applicable.div_ceil(64)];
    }
    steps.note(format!(
        "{} clients enrolled in {enroll_seconds:.1} s ({:.0}/s), each with its policy{}",
        a.clients,
        a.clients as f64 / enroll_seconds,
        if inventory.is_some() {
            format!(" and an inventory of {inventory_packages} packages")
        } else {
            String::new()
        }
    ));

    let shared = Arc::new(Shared {
        http: http.clone(),
        url: url.clone(),
        admin: admin.clone(),
        catalog,
        estate,
        applicable,
        changes: a.changes,
        resend: a.resend,
        metrics: Metrics::default(),
        stop: AtomicBool::new(false),
        reported: clients.iter().map(|_| AtomicBool::new(false)).collect(),
        names: clients.iter().map(|c| c.name.clone()).collect(),
    });
    // The schedule.
    let n_clients = clients.len() as u64;
    let first_scan = applicable;
    let schedule = match a.burst {
        Some(minutes) => {
            let window = minutes * 60.0;
            let mut order: Vec<(Duration, u64)> = (0..n_clients)
                .map(|c| {
                    let at = (mix(c ^ 0xb0b5) % 1_000_000) as f64 / 1e6 * window;
                    (Duration::from_secs_f64(at), c)
                })
                .collect();
            order.sort();
            Schedule::Burst { order, next: 0 }
        }
        None => Schedule::Rate {
            rate: a.rate as f64,
            next: 0,
            clients: n_clients,
            due_messages: 0.0,
            until: Duration::from_secs_f64(a.duration),
        },
    };
    let mode = match a.burst {
        Some(m) => format!("burst: every client's first scan within {m} minutes"),
        None if a.rate > 0 => format!(
            "rate: {} messages/s for {} s (first scans, then rescans with {:.0}% changed)",
            a.rate,
            a.duration,
            a.changes * 100.0
        ),
        None => format!(
            "unpaced: as fast as the site acknowledges, for {} s (first scans, then rescans with {:.0}% changed)",
            a.duration,
            a.changes * 100.0
        ),
    };
    // Expected messages of a rescan, for pacing (the exact count varies by client).
    let rescan = ((applicable as f64 * a.changes).round() as usize).max(1);
    let schedule = Arc::new(Mutex::new(schedule));
    let clients: Arc<Vec<tokio::sync::Mutex<SimClient>>> =
        Arc::new(clients.into_iter().map(tokio::sync::Mutex::new).collect());
    let rounds = Arc::new(Mutex::new(vec![0u32; n_clients as usize]));

    let (total_before, db_before) = data.as_deref().map(disk).unwrap_or((0, 0));
    let mem_before = pid.and_then(memory).unwrap_or_default();
    steps.done();
    let steps = Steps::new();
    steps.step(mode.clone());
    let terminal = std::io::stderr().is_terminal();
    let sending_started = Instant::now();
    let deadline = match a.burst {
        Some(_) => None,
        None => Some(sending_started + Duration::from_secs_f64(a.duration)),
    };

    // The senders.
    let mut workers = Vec::new();
    for _ in 0..a.connections {
        let (s, schedule, clients, rounds) = (
            shared.clone(),
            schedule.clone(),
            clients.clone(),
            rounds.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return;
                }
                let next = {
                    let mut sched = schedule.lock().unwrap_or_else(|p| p.into_inner());
                    let mut rounds = rounds.lock().unwrap_or_else(|p| p.into_inner());
                    sched
                        .next(|c| {
                            if rounds[c as usize] == 0 {
                                first_scan
                            } else {
                                rescan
                            }
                        })
                        .inspect(|(c, _)| rounds[*c as usize] += 1)
                };
                let Some((c, due)) = next else {
                    return;
                };
                let at = sending_started + due;
                let now = Instant::now();
                if at > now {
                    tokio::time::sleep_until(at.into()).await;
                } else {
                    s.metrics
                        .behind_us
                        .fetch_max((now - at).as_micros() as u64, Ordering::Relaxed);
                }
                let mut client = clients[c as usize].lock().await;
                report(&s, &mut client).await;
            }
        }));
    }

    // The probes.
    let probes = {
        let s = shared.clone();
        let every = Duration::from_secs_f64(a.probe_interval);
        tokio::spawn(async move {
            let mut i = 0u64;
            while !s.stop.load(Ordering::Relaxed) {
                tokio::time::sleep(every).await;
                i += 1;
                probe(&s, i ^ 0x9e37).await;
            }
        })
    };

    // The sampler: one line of the time series per interval until the senders are done.
    let mut series: Vec<Sample> = Vec::new();
    let every = Duration::from_secs_f64(a.interval);
    let mut last_t = sending_started;
    let mut last_msgs = 0u64;
    let mut last_server_cpu = pid.and_then(|p| cpu_time(&p.to_string()));
    let mut last_self_cpu = cpu_time("self");
    let mut rss_peak = mem_before.rss;
    let mut anon_peak = mem_before.rss_anon;
    if !terminal {
        eprintln!(
            "bench: {:>6} {:>10} {:>9} {:>8} {:>8} {:>9} {:>8} {:>9} {:>8} {:>7} {:>7} {:>9}",
            "T S",
            "MESSAGES",
            "MSG/S",
            "BATCH99",
            "BEHIND",
            "COUNTS99",
            "PAGE99",
            "COMP99",
            "RSS",
            "SRV CPU",
            "GEN CPU",
            "DB"
        );
    }
    loop {
        let done = workers.iter().all(tokio::task::JoinHandle::is_finished);
        let wait = (last_t + every).saturating_duration_since(Instant::now());
        if !done {
            tokio::time::sleep(wait.min(Duration::from_millis(250))).await;
            if Instant::now() < last_t + every {
                continue;
            }
        }
        let now = Instant::now();
        let dt = (now - last_t).as_secs_f64().max(1e-3);
        let msgs = shared.metrics.stored.load(Ordering::Relaxed);
        let lat = std::mem::take(
            &mut *shared
                .metrics
                .interval
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        let mem = pid.and_then(memory).unwrap_or_default();
        rss_peak = rss_peak.max(mem.rss);
        anon_peak = anon_peak.max(mem.rss_anon);
        let server_cpu = pid.and_then(|p| cpu_time(&p.to_string()));
        let self_cpu = cpu_time("self");
        let cores = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
            (Some(a), Some(b)) => (a.saturating_sub(b)).as_secs_f64() / dt,
            _ => 0.0,
        };
        let (total, database) = data.as_deref().map(disk).unwrap_or((0, 0));
        let sample = Sample {
            seconds: (now - sending_started).as_secs_f64(),
            messages: msgs,
            messages_per_second: (msgs - last_msgs) as f64 / dt,
            batch: lat.batch.percentiles(),
            updates_with_counts: lat.counts.percentiles(),
            updates_for_computer: lat.computer.percentiles(),
            console_updates_page: lat.page.percentiles(),
            behind_schedule_ms: shared.metrics.behind_us.swap(0, Ordering::Relaxed) as f64 / 1e3,
            server_rss_bytes: mem.rss,
            server_rss_anon_bytes: mem.rss_anon,
            server_cpu_cores: cores(server_cpu, last_server_cpu),
            bench_cpu_cores: cores(self_cpu, last_self_cpu),
            data_bytes: total,
            database_bytes: database,
        };
        let line = format!(
            "{:>6.0} {:>10} {:>9.0} {:>8.1} {:>8.0} {:>9.1} {:>8.1} {:>9.1} {:>8} {:>7.2} {:>7.2} {:>9}",
            sample.seconds,
            sample.messages,
            sample.messages_per_second,
            sample.batch.p99_ms,
            sample.behind_schedule_ms,
            sample.updates_with_counts.p99_ms,
            sample.console_updates_page.p99_ms,
            sample.updates_for_computer.p99_ms,
            mb(sample.server_rss_bytes),
            sample.server_cpu_cores,
            sample.bench_cpu_cores,
            mb(sample.database_bytes)
        );
        if terminal {
            steps.note(line);
            steps.step(format!("{mode}: {} messages acknowledged", sample.messages));
        } else {
            eprintln!("bench: {line}");
        }
        series.push(sample);
        last_t = now;
        last_msgs = msgs;
        last_server_cpu = server_cpu;
        last_self_cpu = self_cpu;
        if done {
            break;
        }
    }
    let send_seconds = sending_started.elapsed().as_secs_f64();
    shared.stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.context("a sender stopped")?;
    }
    let _ = tokio::time::timeout(Duration::from_secs(30), probes).await;
    let server_cpu_cores = if series.is_empty() {
        0.0
    } else {
        series.iter().map(|s| s.server_cpu_cores).sum::<f64>() / series.len() as f64
    };
    let bench_cpu_cores = if series.is_empty() {
        0.0
    } else {
        series.iter().map(|s| s.bench_cpu_cores).sum::<f64>() / series.len() as f64
    };
    let mem_end = pid.and_then(memory).unwrap_or_default();
    let all = std::mem::take(&mut *shared.metrics.all.lock().unwrap_or_else(|p| p.into_inner()));
    // The same reports with nothing else going on, at the size the load left.
    steps.step("report latency, idle");
    for i in 0..5 {
        probe(&shared, i ^ 0x1d1e).await;
    }
    let idle = std::mem::take(&mut *shared.metrics.all.lock().unwrap_or_else(|p| p.into_inner()));
    let (idle_counts, idle_computer, idle_page) = (
        idle.counts.percentiles(),
        idle.computer.percentiles(),
        idle.page.percentiles(),
    );
    steps.done();

    // Correctness: every acknowledged message is in the database.
    let clients: Vec<SimClient> = match Arc::try_unwrap(clients) {
        Ok(v) => v.into_iter().map(tokio::sync::Mutex::into_inner).collect(),
        Err(_) => bail!("a sender still holds the clients"),
    };
    let (verification, data_end, db_end) = match server.take() {
        Some(s) => {
            eprintln!(
                "bench: stopping the site and checking every acknowledged message in its database ..."
            );
            tokio::task::block_in_place(|| s.stop())?;
            let data = data.clone().ok_or_else(|| anyhow!("no data folder"))?;
            let (total, database) = disk(&data);
            let db = data.join(koshin_server::init::DATABASE_FILE);
            let v = tokio::task::block_in_place(|| {
                verify_database(
                    &db,
                    &clients,
                    &shared.catalog.ids,
                    &shared.estate,
                    applicable,
                    &shared.metrics,
                )
            })?;
            (v, total, database)
        }
        None => {
            eprintln!("bench: checking a sample of clients through the API ...");
            let (total, database) = data.as_deref().map(disk).unwrap_or((0, 0));
            (
                verify_api(&shared, &clients, a.verify_sample).await?,
                total,
                database,
            )
        }
    };
    if let Some(m) = mirror.take() {
        m.stop().await;
    }
    machine.load_after = crate::cmd_bench::load_average();

    let m = &shared.metrics;
    let messages = m.stored.load(Ordering::Relaxed);
    let summary = Summary {
        machine,
        site: url.clone(),
        own_site,
        clients: a.clients,
        applicable,
        updates_in_catalog: shared.catalog.ids.len(),
        mode,
        connections: a.connections,
        enroll_seconds,
        enrollments_per_second: a.clients as f64 / enroll_seconds,
        enroll: enroll_lat.percentiles(),
        policy_and_inventory: setup_lat.percentiles(),
        inventory_packages,
        idle_updates_with_counts: idle_counts,
        idle_updates_for_computer: idle_computer,
        idle_console_updates_page: idle_page,
        send_seconds,
        reports: m.reports.load(Ordering::Relaxed),
        batches: m.batches.load(Ordering::Relaxed),
        messages,
        messages_per_second: messages as f64 / send_seconds.max(1e-3),
        peak_interval_messages_per_second: series
            .iter()
            .map(|s| s.messages_per_second)
            .fold(0.0, f64::max),
        resent_batches: m.resent.load(Ordering::Relaxed),
        retries: m.retries.load(Ordering::Relaxed),
        failed_batches: m.failed.load(Ordering::Relaxed),
        unknown_updates: m.unknown.load(Ordering::Relaxed),
        batch: all.batch.percentiles(),
        updates_with_counts: all.counts.percentiles(),
        updates_for_computer: all.computer.percentiles(),
        console_updates_page: all.page.percentiles(),
        server_rss_start_bytes: mem_before.rss,
        server_rss_peak_bytes: rss_peak.max(mem_end.peak),
        server_rss_end_bytes: mem_end.rss,
        server_rss_anon_peak_bytes: anon_peak,
        server_cpu_cores,
        bench_cpu_cores,
        data_bytes_start: total_before,
        data_bytes_end: data_end,
        database_bytes_start: db_before,
        database_bytes_end: db_end,
        bytes_per_message: if messages > 0 {
            db_end.saturating_sub(db_before) as f64 / messages as f64
        } else {
            0.0
        },
        series,
        verification,
    };
    if m.resent_stored.load(Ordering::Relaxed) > 0 {
        bail!(
            "{} batches sent again were stored again (or a new batch was taken for a duplicate): the site is not idempotent",
            m.resent_stored.load(Ordering::Relaxed)
        );
    }
    if a.json {
        crate::output::json(&summary)?;
    } else {
        print_summary(&summary);
        if a.keep && own_site {
            println!("kept: {}", work.path.display());
        }
    }
    Ok(if summary.verification.passed {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    })
}

fn print_summary(s: &Summary) {
    let m = &s.machine;
    println!(
        "{} CPUs ({}), {:.1} GiB, {} build; load average {:?} before, {:?} after",
        m.cpus, m.cpu_model, m.memory_gib, m.koshin_build, m.load_before, m.load_after
    );
    println!(
        "site {} ({}); {} clients x {} applicable of {} updates; {}; {} connections",
        s.site,
        if s.own_site {
            "its own process"
        } else {
            "given with --site"
        },
        s.clients,
        s.applicable,
        s.updates_in_catalog,
        s.mode,
        s.connections
    );
    println!();
    let series: Vec<Vec<String>> = s
        .series
        .iter()
        .map(|x| {
            vec![
                format!("{:.0}", x.seconds),
                x.messages.to_string(),
                format!("{:.0}", x.messages_per_second),
                format!("{:.1}", x.batch.p50_ms),
                format!("{:.1}", x.batch.p99_ms),
                format!("{:.1}", x.updates_with_counts.p99_ms),
                format!("{:.1}", x.console_updates_page.p99_ms),
                format!("{:.1}", x.updates_for_computer.p99_ms),
                mb(x.server_rss_bytes),
                format!("{:.2}", x.server_cpu_cores),
                format!("{:.2}", x.bench_cpu_cores),
                mb(x.database_bytes),
            ]
        })
        .collect();
    crate::output::table(
        &[
            "T S",
            "MESSAGES",
            "MSG/S",
            "BATCH P50",
            "BATCH P99",
            "COUNTS P99",
            "PAGE P99",
            "COMPUTER P99",
            "SERVER RSS",
            "SERVER CPU",
            "BENCH CPU",
            "DATABASE",
        ],
        &series,
    );
    println!();
    let p = |x: &Percentiles| {
        format!(
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} samples)",
            x.p50_ms, x.p99_ms, x.max_ms, x.count
        )
    };
    let rows: Vec<Vec<String>> = vec![
        vec![
            "enrollment".into(),
            format!(
                "{} clients in {:.1} s ({:.0}/s); enroll {}; policy + inventory ({} packages) {}",
                s.clients,
                s.enroll_seconds,
                s.enrollments_per_second,
                p(&s.enroll),
                s.inventory_packages,
                p(&s.policy_and_inventory)
            ),
        ],
        vec![
            "accepted".into(),
            format!(
                "{} messages in {} batches ({} scans) in {:.1} s: {:.0} messages/s; peak interval {:.0}/s",
                s.messages,
                s.batches,
                s.reports,
                s.send_seconds,
                s.messages_per_second,
                s.peak_interval_messages_per_second
            ),
        ],
        vec!["batch POST".into(), p(&s.batch)],
        vec![
            "updates-with-counts".into(),
            format!(
                "under load {}; idle afterwards {}",
                p(&s.updates_with_counts),
                p(&s.idle_updates_with_counts)
            ),
        ],
        vec![
            "updates-with-counts?limit=50 (console)".into(),
            format!(
                "under load {}; idle afterwards {}",
                p(&s.console_updates_page),
                p(&s.idle_console_updates_page)
            ),
        ],
        vec![
            "updates-for-computer".into(),
            format!(
                "under load {}; idle afterwards {}",
                p(&s.updates_for_computer),
                p(&s.idle_updates_for_computer)
            ),
        ],
        vec![
            "server memory".into(),
            format!(
                "resident {} at start, {} peak ({} heap), {} at end",
                mb(s.server_rss_start_bytes),
                mb(s.server_rss_peak_bytes),
                mb(s.server_rss_anon_peak_bytes),
                mb(s.server_rss_end_bytes)
            ),
        ],
        vec![
            "CPU".into(),
            format!(
                "server {:.2} cores, this bench {:.2} cores (averages over the sending)",
                s.server_cpu_cores, s.bench_cpu_cores
            ),
        ],
        vec![
            "disk".into(),
            format!(
                "database {} -> {} ({:.0} bytes per message); data folder {} -> {}",
                mb(s.database_bytes_start),
                mb(s.database_bytes_end),
                s.bytes_per_message,
                mb(s.data_bytes_start),
                mb(s.data_bytes_end)
            ),
        ],
        vec![
            "idempotence".into(),
            format!(
                "{} acknowledged batches sent again, each acknowledged as a duplicate; {} retries, {} batches failed, {} unknown updates",
                s.resent_batches, s.retries, s.failed_batches, s.unknown_updates
            ),
        ],
        vec![
            "check".into(),
            format!(
                "{}: {} ({} clients, {} state rows{}{})",
                if s.verification.passed {
                    "PASSED"
                } else {
                    "FAILED"
                },
                s.verification.method,
                s.verification.clients_checked,
                s.verification.state_rows_checked,
                s.verification
                    .history_rows
                    .map(|h| format!(
                        ", {h} history rows for {} acknowledged messages",
                        s.verification.acknowledged_messages
                    ))
                    .unwrap_or_default(),
                s.verification
                    .batches_in_database
                    .map(|b| format!(
                        ", {b} batches recorded for {} acknowledged",
                        s.verification.batches_acknowledged
                    ))
                    .unwrap_or_default(),
            ),
        ],
    ];
    crate::output::table(&["WHAT", "MEASURED"], &rows);
    for problem in &s.verification.problems {
        println!("problem: {problem}");
    }
}
