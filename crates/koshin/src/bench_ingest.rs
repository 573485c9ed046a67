//! `koshin bench ingest`: state-message ingestion through the store path the management
//! point uses (`ClientStore::ingest_states`: one transaction per batch, `synchronous=FULL`,
//! current state, history, counters) beside the raw insert ceiling of the same database on
//! the same disk — plain batched INSERTs of rows of the same size, one transaction per batch,
//! with the site database's own connection settings — measured in the same run.
//!
//! Between the two, a ladder of raw steps built from the site's own table definitions
//! (copied from the synced site's schema) says where the difference goes: the history index,
//! the current-state upsert, the counter triggers.
//!
//! This module also holds the estate model `koshin bench load` shares: which updates apply
//! to a simulated client and in which state it first finds them.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use koshin_store::{ClientIdentity, NewClient, Store};
use koshin_wire::{ScanRecord, StateBatch, StateMessage};
use rusqlite::params;
use serde::Serialize;

use crate::cmd_bench::Steps;

#[derive(Args)]
pub struct IngestBenchArgs {
    /// State messages per batch: an agent's first scan sends one per applicable update
    /// (about 400 on a typical server), a rescan the changed ones.
    #[arg(long, default_value_t = 400)]
    messages: usize,
    /// Batches per measurement.
    #[arg(long, default_value_t = 300)]
    batches: usize,
    /// Concurrent callers in the concurrent measurements, as concurrent HTTP requests call
    /// the store.
    #[arg(long, default_value_t = 8)]
    callers: usize,
    /// Rounds of every measurement; the figures are medians.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// The loopback copy of the archive metadata the site syncs from
    /// [default: $HOME/.cache/koshin-bench/mirror].
    #[arg(long)]
    mirror: Option<PathBuf>,
    /// Sync only these suites of this machine's APT sources (e.g. `bookworm-security`) for
    /// a smaller catalog; default all.
    #[arg(long = "suite")]
    suites: Vec<String>,
    /// Keep the site and the raw databases (printed at the end).
    #[arg(long)]
    keep: bool,
    #[arg(long)]
    json: bool,
}

// ---------------------------------------------------------------------------------------
// The estate model, shared with `koshin bench load`.

/// The catalog as clients report against it.
pub(crate) struct Catalog {
    /// Update ids of the unexpired updates, in key order.
    pub(crate) ids: Vec<String>,
    /// Their integer keys at the site (`updates.ukey`), when read from the database.
    pub(crate) ukeys: Vec<i64>,
    pub(crate) content_version: i64,
    pub(crate) token: String,
}

/// Reads the catalog of a site database.
pub(crate) fn read_catalog(db: &Path) -> anyhow::Result<Catalog> {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {}", db.display()))?;
    let mut ids = Vec::new();
    let mut ukeys = Vec::new();
    let mut stmt = conn.prepare("SELECT id, ukey FROM updates WHERE expired = 0 ORDER BY ukey")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        ids.push(r.get(0)?);
        ukeys.push(r.get(1)?);
    }
    let (content_version, token): (i64, String) = conn.query_row(
        "SELECT version, token FROM content_versions ORDER BY version DESC LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    Ok(Catalog {
        ids,
        ukeys,
        content_version,
        token,
    })
}

/// Which updates apply to each simulated client: a base set every machine has plus those of
/// one of 64 roles (as `bench reports` generates its estate), and the patch lag that decides
/// which of them a client first finds Required.
pub(crate) struct Estate {
    roles: Vec<Vec<u32>>,
}

/// A small fast mix of integers, so a client's role and states follow from its number.
pub(crate) fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

impl Estate {
    /// `applicable` updates per client out of a catalog of `updates`.
    pub(crate) fn new(updates: usize, applicable: usize) -> anyhow::Result<Estate> {
        if applicable == 0 || applicable > updates {
            bail!(
                "each client needs 1 to {updates} applicable updates (the catalog's size), not {applicable}"
            );
        }
        let base_n = applicable * 5 / 8;
        let role_n = applicable - base_n;
        // A fixed shuffle of the catalog: the base set first, then the roles' pool.
        let mut order: Vec<u32> = (0..updates as u32).collect();
        order.sort_by_key(|&i| mix(u64::from(i) ^ 0x6b6f_7368));
        let base = &order[..base_n];
        let pool = &order[base_n..(base_n + 10_000).min(updates)];
        let roles = (0..64u64)
            .map(|r| {
                let mut picked: Vec<u32> = pool.to_vec();
                picked.sort_by_key(|&i| mix(u64::from(i) ^ (r << 40)));
                picked.truncate(role_n);
                picked.extend_from_slice(base);
                picked.sort_unstable();
                picked
            })
            .collect();
        Ok(Estate { roles })
    }

    /// The catalog positions of the updates that apply to client `c`.
    pub(crate) fn updates(&self, c: u64) -> &[u32] {
        &self.roles[(mix(c) % self.roles.len() as u64) as usize]
    }

    /// Whether client `c` first finds the `i`-th of its updates Required: most machines are
    /// current, a tail is far behind.
    pub(crate) fn first_required(c: u64, i: usize) -> bool {
        const LAG_PERCENT: [u64; 6] = [0, 0, 2, 5, 10, 30];
        let lag = LAG_PERCENT[(mix(c ^ 0x5eed) % 6) as usize];
        mix((c << 20) ^ i as u64) % 100 < lag
    }
}

/// A state message as the agent writes it.
pub(crate) fn message(
    update_id: &str,
    required: bool,
    time: jiff::Timestamp,
    scan_id: &str,
) -> StateMessage {
    StateMessage {
        update_id: update_id.to_string(),
        revision: 1,
        state: if required { "required" } else { "installed" }.into(),
        restart_pending: false,
        time,
        scan_id: scan_id.to_string(),
    }
}

/// The scan record an agent sends with the last batch of a scan.
pub(crate) fn scan_record(
    scan_id: &str,
    catalog: &Catalog,
    started: jiff::Timestamp,
    required: u64,
    installed: u64,
) -> ScanRecord {
    ScanRecord {
        scan_id: scan_id.to_string(),
        trigger: "scan-cycle".into(),
        kind: "non-forced online".into(),
        online: true,
        started,
        duration_ms: 20,
        result: "succeeded".into(),
        content_version: catalog.content_version,
        content_token: Some(catalog.token.clone()),
        required,
        installed,
        not_required: 0,
    }
}

// ---------------------------------------------------------------------------------------
// The measurements.

/// CPU time this process has used so far (every thread): on a machine shared with other
/// work, CPU time per message varies far less than wall time.
pub(crate) fn process_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given and nothing else.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut t) };
    if r != 0 {
        return Duration::ZERO;
    }
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// The wall time `f` measured, and the CPU time the process used meanwhile.
fn with_cpu(f: impl FnOnce() -> anyhow::Result<Duration>) -> anyhow::Result<(Duration, Duration)> {
    let cpu = process_cpu();
    let wall = f()?;
    Ok((wall, process_cpu().saturating_sub(cpu)))
}

/// One batch to ingest: who sends it, the batch, and each message's update key (for the raw
/// steps, which have no catalog to look keys up in).
struct Job {
    who: ClientIdentity,
    batch: StateBatch,
    ukeys: Vec<i64>,
}

/// The batches of `clients`: each client's first scan (`flip` false) or a rescan in which
/// every state changed (`flip` true).
fn jobs(
    clients: &[ClientIdentity],
    numbers: &[u64],
    estate: &Estate,
    catalog: &Catalog,
    flip: bool,
    tag: &str,
) -> Vec<Job> {
    let now = jiff::Timestamp::now();
    clients
        .iter()
        .zip(numbers)
        .map(|(who, &n)| {
            let scan_id = format!("{tag}-{n}");
            let updates = estate.updates(n);
            let mut required = 0;
            let messages: Vec<StateMessage> = updates
                .iter()
                .enumerate()
                .map(|(i, &u)| {
                    let r = Estate::first_required(n, i) != flip;
                    required += u64::from(r);
                    message(&catalog.ids[u as usize], r, now, &scan_id)
                })
                .collect();
            let total = messages.len() as u64;
            Job {
                who: who.clone(),
                ukeys: updates.iter().map(|&u| catalog.ukeys[u as usize]).collect(),
                batch: StateBatch {
                    batch_id: format!("{tag}-batch-{n}"),
                    client_id: who.client_id.clone(),
                    messages,
                    scans: vec![scan_record(
                        &scan_id,
                        catalog,
                        now,
                        required,
                        total - required,
                    )],
                },
            }
        })
        .collect()
}

/// Every job through the store with `callers` concurrent callers; the time it took.
fn through_store(store: &Arc<dyn Store>, jobs: &[Job], callers: usize) -> anyhow::Result<Duration> {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..callers.max(1))
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else {
                            return Ok(());
                        };
                        let ack = store.ingest_states(
                            &job.who,
                            &job.batch,
                            jiff::Timestamp::now().as_millisecond(),
                        )?;
                        if ack.duplicate || ack.stored != job.batch.messages.len() as u64 {
                            bail!(
                                "batch {} was acknowledged with {} of {} messages stored (duplicate: {})",
                                job.batch.batch_id,
                                ack.stored,
                                job.batch.messages.len(),
                                ack.duplicate
                            );
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| anyhow!("a caller panicked"))??;
        }
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(started.elapsed())
}

/// A rung of the raw ladder: what the database holds, and what each message writes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rung {
    /// The ceiling: one row per message with the history row's columns, appended.
    Append,
    /// The history table as the site defines it, with its index.
    History,
    /// And the current state per (client, update), upserted.
    Current,
    /// And the triggers that keep the counters and mark clients for collection evaluation.
    Counters,
}

impl Rung {
    const ALL: [Rung; 4] = [Rung::Append, Rung::History, Rung::Current, Rung::Counters];

    fn label(self) -> &'static str {
        match self {
            Rung::Append => "raw ceiling: append one row per message (history-sized)",
            Rung::History => "raw + history index (client, time)",
            Rung::Current => "raw + current-state upsert by (client, update)",
            Rung::Counters => "raw + counter and collection triggers",
        }
    }
}

/// The SQL that creates the site's `name` (a table, index or trigger) in another database.
fn site_schema(
    site_db: &rusqlite::Connection,
    kind: &str,
    names: &[&str],
) -> anyhow::Result<String> {
    let mut out = String::new();
    for n in names {
        let sql: String = site_db
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = ?1 AND name = ?2",
                params![kind, n],
                |r| r.get(0),
            )
            .with_context(|| format!("the site database has no {kind} {n}"))?;
        out.push_str(&sql);
        out.push_str(";\n");
    }
    Ok(out)
}

/// A fresh raw database at `path` for `rung`, made from the site's own definitions.
fn raw_database(path: &Path, rung: Rung, site_db: &Path) -> anyhow::Result<rusqlite::Connection> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let site = rusqlite::Connection::open_with_flags(
        site_db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let conn = koshin_store::sqlite::open_conn(path)?;
    let mut sql = site_schema(&site, "table", &["state_history"])?;
    if rung >= Rung::History {
        sql.push_str(&site_schema(&site, "index", &["state_history_client"])?);
    }
    if rung >= Rung::Current {
        sql.push_str(&site_schema(&site, "table", &["update_states"])?);
        sql.push_str(&site_schema(&site, "index", &["update_states_update"])?);
    }
    if rung >= Rung::Counters {
        sql.push_str(&site_schema(
            &site,
            "table",
            &["update_summary", "collection_dirty"],
        )?);
        let triggers: Vec<String> = site
            .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'update_states' ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let names: Vec<&str> = triggers.iter().map(String::as_str).collect();
        sql.push_str(&site_schema(&site, "trigger", &names)?);
    }
    conn.execute_batch(&sql)?;
    Ok(conn)
}

/// Every job into a raw database, one transaction per batch; the time it took.
fn through_raw(
    conn: &mut rusqlite::Connection,
    rung: Rung,
    jobs: &[Job],
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for job in jobs {
        let now = jiff::Timestamp::now().as_millisecond();
        let tx = conn.transaction()?;
        {
            let mut history = tx.prepare_cached(
                "INSERT INTO state_history(client, update_id, state, restart_pending, revision, time_ms, received_ms, batch_id, scan_id) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
            )?;
            let mut current = if rung >= Rung::Current {
                Some(tx.prepare_cached(
                    "INSERT INTO update_states(client, ukey, state, restart_pending, revision, time_ms) VALUES (?1,?2,?3,?4,?5,?6)
                     ON CONFLICT(client, ukey) DO UPDATE SET state=excluded.state, restart_pending=excluded.restart_pending,
                       revision=excluded.revision, time_ms=excluded.time_ms
                     WHERE excluded.time_ms >= update_states.time_ms",
                )?)
            } else {
                None
            };
            for (m, ukey) in job.batch.messages.iter().zip(&job.ukeys) {
                let state = if m.state == "required" { 1 } else { 3 };
                let t = m.time.as_millisecond();
                if let Some(current) = current.as_mut() {
                    current.execute(params![
                        job.who.rowid,
                        ukey,
                        state,
                        m.restart_pending,
                        m.revision,
                        t
                    ])?;
                }
                history.execute(params![
                    job.who.rowid,
                    m.update_id,
                    state,
                    m.restart_pending,
                    m.revision,
                    t,
                    now,
                    job.batch.batch_id,
                    m.scan_id
                ])?;
            }
        }
        tx.commit()?;
    }
    Ok(started.elapsed())
}

/// `batches` transactions that each write one small row: the fixed cost of a durable commit
/// on this disk.
fn commit_floor(path: &Path, batches: usize) -> anyhow::Result<Duration> {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let mut conn = koshin_store::sqlite::open_conn(path)?;
    conn.execute_batch("CREATE TABLE t(x INTEGER);")?;
    let started = Instant::now();
    for i in 0..batches {
        let tx = conn.transaction()?;
        tx.execute("INSERT INTO t(x) VALUES (?1)", params![i as i64])?;
        tx.commit()?;
    }
    Ok(started.elapsed())
}

#[derive(Clone, Debug, Serialize)]
struct Figure {
    what: String,
    batches: usize,
    messages: u64,
    /// Median wall time of the runs.
    seconds: f64,
    messages_per_second: f64,
    /// Median CPU time of the process (every thread) per message, in microseconds.
    cpu_us_per_message: f64,
    /// Against the raw ceiling of the same kind of batch.
    of_ceiling: Option<f64>,
    samples: Vec<f64>,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

fn figure(what: String, batches: usize, messages: u64, samples: &[(Duration, Duration)]) -> Figure {
    let mut s: Vec<f64> = samples.iter().map(|(w, _)| w.as_secs_f64()).collect();
    s.sort_by(f64::total_cmp);
    let seconds = median(s.clone());
    let cpu = median(samples.iter().map(|(_, c)| c.as_secs_f64()).collect());
    Figure {
        what,
        batches,
        messages,
        seconds,
        messages_per_second: if seconds > 0.0 {
            messages as f64 / seconds
        } else {
            0.0
        },
        cpu_us_per_message: if messages > 0 {
            cpu * 1e6 / messages as f64
        } else {
            0.0
        },
        of_ceiling: None,
        samples: s,
    }
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

/// Enrolls `n` clients through the store, as the enrollment route does.
fn enroll(
    store: &dyn Store,
    first: u64,
    n: u64,
    steps: &Steps,
) -> anyhow::Result<Vec<ClientIdentity>> {
    steps.counting(n);
    let now = jiff::Timestamp::now().as_millisecond();
    let mut out = Vec::with_capacity(n as usize);
    for i in first..first + n {
        let id = store.enroll_client(
            &NewClient {
                client_id: uuid::Uuid::from_u64_pair(0x6b6f_7368_696e_0000, i).to_string(),
                name: format!("ingest-{i:06}"),
                os: "Debian".into(),
                os_release: "Debian GNU/Linux 12 (bookworm)".into(),
                architecture: "amd64".into(),
                site: "ING".into(),
                agent_version: "bench".into(),
            },
            &koshin_server::init::hash_token(&format!("bench-ingest-{i}")),
            true,
            None,
            now,
        )?;
        out.push(id);
        steps.inc();
    }
    Ok(out)
}

pub async fn run(a: IngestBenchArgs) -> anyhow::Result<std::process::ExitCode> {
    if a.runs == 0 || a.batches == 0 || a.messages == 0 || a.callers == 0 {
        bail!("--runs, --batches, --messages and --callers must be at least 1");
    }
    if a.messages > koshin_agent::BATCH_SIZE {
        bail!(
            "an agent sends at most {} messages in a batch",
            koshin_agent::BATCH_SIZE
        );
    }
    let steps = Steps::new();
    let mut machine = crate::cmd_bench::machine();
    if machine.koshin_build == "debug" {
        steps.note("this is a debug build: its figures mean little; use `cargo run --release -- bench ingest`");
    }
    let work = WorkDir {
        path: std::env::temp_dir().join(format!("koshin-bench-ingest-{}", std::process::id())),
        keep: a.keep,
    };
    std::fs::create_dir_all(&work.path)
        .with_context(|| format!("cannot create {}", work.path.display()))?;
    steps.step("the loopback copy of the archive metadata");
    let (mirror, lines) =
        crate::cmd_bench::loopback_sources(a.mirror.clone(), &a.suites, &steps).await?;
    steps.step("a site synced from it");
    let data = work.path.join("site");
    let (site, report) = crate::cmd_bench::synced_from(&data, "ING", &lines).await?;
    mirror.stop().await;
    let db = data.join(koshin_server::init::DATABASE_FILE);
    let catalog = read_catalog(&db)?;
    steps.note(format!(
        "site synced: {} updates, content version {}",
        report.updates_in_catalog, catalog.content_version
    ));
    let estate = Estate::new(catalog.ids.len(), a.messages)?;
    let store = site.store.clone();

    // Two groups of fresh clients per run: one for the single caller, one for the
    // concurrent callers; each sends its first scan, then a rescan with every state changed.
    let per_group = a.batches as u64;
    steps.step(format!(
        "enrolling {} clients",
        per_group * 2 * a.runs as u64
    ));
    let clients =
        tokio::task::block_in_place(|| enroll(&*store, 1, per_group * 2 * a.runs as u64, &steps))?;

    let rounds = a.runs;
    let labels = [
        "koshin store, first scans, 1 caller".to_string(),
        format!("koshin store, first scans, {} callers", a.callers),
        "koshin store, rescans (every state changed), 1 caller".to_string(),
        format!(
            "koshin store, rescans (every state changed), {} callers",
            a.callers
        ),
    ];
    let mut koshin_t: Vec<Vec<(Duration, Duration)>> = vec![Vec::new(); labels.len()];
    let mut rung_t: Vec<[Vec<(Duration, Duration)>; 2]> =
        vec![[Vec::new(), Vec::new()]; Rung::ALL.len()];
    let mut floor_t = Vec::new();
    let mut messages_per_measurement = 0u64;
    steps.counting((rounds * (labels.len() + Rung::ALL.len() * 2 + 1)) as u64);
    for round in 0..rounds {
        let base = round * 2 * a.batches;
        let group = |g: usize| -> (Vec<ClientIdentity>, Vec<u64>) {
            let from = base + g * a.batches;
            let c = clients[from..from + a.batches].to_vec();
            let n = (from as u64 + 1..from as u64 + 1 + a.batches as u64).collect();
            (c, n)
        };
        let (ca, na) = group(0);
        let (cb, nb) = group(1);
        let tag = format!("r{round}");
        let first_a = jobs(
            &ca,
            &na,
            &estate,
            &catalog,
            false,
            &format!("{tag}-a-first"),
        );
        let first_b = jobs(
            &cb,
            &nb,
            &estate,
            &catalog,
            false,
            &format!("{tag}-b-first"),
        );
        let again_a = jobs(&ca, &na, &estate, &catalog, true, &format!("{tag}-a-again"));
        let again_b = jobs(&cb, &nb, &estate, &catalog, true, &format!("{tag}-b-again"));
        messages_per_measurement = first_a.iter().map(|j| j.batch.messages.len() as u64).sum();

        // The raw ladder first, on fresh files beside the site database.
        for (k, rung) in Rung::ALL.into_iter().enumerate() {
            steps.step(format!("round {}/{rounds}: {}", round + 1, rung.label()));
            let path = work.path.join(format!("raw-{k}.db"));
            let mut conn = tokio::task::block_in_place(|| raw_database(&path, rung, &db))?;
            let t1 = tokio::task::block_in_place(|| {
                with_cpu(|| through_raw(&mut conn, rung, &first_a))
            })?;
            steps.inc();
            let t2 = tokio::task::block_in_place(|| {
                with_cpu(|| through_raw(&mut conn, rung, &again_a))
            })?;
            steps.inc();
            drop(conn);
            if !a.keep {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            rung_t[k][0].push(t1);
            rung_t[k][1].push(t2);
        }
        steps.step(format!("round {}/{rounds}: commit floor", round + 1));
        let floor_path = work.path.join("floor.db");
        floor_t.push(tokio::task::block_in_place(|| {
            with_cpu(|| commit_floor(&floor_path, a.batches))
        })?);
        steps.inc();

        for (i, (jobs, callers)) in [
            (&first_a, 1),
            (&first_b, a.callers),
            (&again_a, 1),
            (&again_b, a.callers),
        ]
        .into_iter()
        .enumerate()
        {
            steps.step(format!("round {}/{rounds}: {}", round + 1, labels[i]));
            let t =
                tokio::task::block_in_place(|| with_cpu(|| through_store(&store, jobs, callers)))?;
            koshin_t[i].push(t);
            steps.inc();
        }
    }
    steps.done();
    machine.load_after = crate::cmd_bench::load_average();

    let n = messages_per_measurement;
    let mut figures = Vec::new();
    let ceiling_first = figure(
        format!("{} — first scans", Rung::Append.label()),
        a.batches,
        n,
        &rung_t[0][0],
    );
    let ceiling_again = figure(
        format!("{} — rescans", Rung::Append.label()),
        a.batches,
        n,
        &rung_t[0][1],
    );
    let ceilings = [
        ceiling_first.messages_per_second,
        ceiling_again.messages_per_second,
    ];
    for (k, rung) in Rung::ALL.into_iter().enumerate() {
        for (pass, name) in ["first scans", "rescans"].iter().enumerate() {
            let mut f = figure(
                format!("{} — {name}", rung.label()),
                a.batches,
                n,
                &rung_t[k][pass],
            );
            f.of_ceiling = Some(f.messages_per_second / ceilings[pass]);
            figures.push(f);
        }
    }
    for (i, label) in labels.iter().enumerate() {
        let mut f = figure(label.clone(), a.batches, n, &koshin_t[i]);
        f.of_ceiling = Some(f.messages_per_second / ceilings[i / 2]);
        figures.push(f);
    }
    let floor = figure(
        "commit floor: one small row per transaction".into(),
        a.batches,
        a.batches as u64,
        &floor_t,
    );
    let db_bytes = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0)
        + std::fs::metadata(format!("{}-wal", db.display()))
            .map(|m| m.len())
            .unwrap_or(0);
    drop(site);

    if a.json {
        crate::output::json(&serde_json::json!({
            "machine": machine,
            "updates": catalog.ids.len(),
            "messages_per_batch": a.messages,
            "batches": a.batches,
            "callers": a.callers,
            "runs": a.runs,
            "figures": figures,
            "commit_floor_ms": floor.seconds * 1e3 / a.batches as f64,
            "site_database_bytes": db_bytes,
        }))?;
    } else {
        println!(
            "{} CPUs ({}), {:.1} GiB, {} build; load average {:?} before, {:?} after",
            machine.cpus,
            machine.cpu_model,
            machine.memory_gib,
            machine.koshin_build,
            machine.load_before,
            machine.load_after
        );
        println!(
            "catalog: {} updates; {} batches of {} state messages per measurement; medians of {} runs",
            catalog.ids.len(),
            a.batches,
            a.messages,
            a.runs
        );
        let rows: Vec<Vec<String>> = figures
            .iter()
            .map(|f| {
                vec![
                    f.what.clone(),
                    format!("{:.3}", f.seconds),
                    format!("{:.0}", f.messages_per_second),
                    f.of_ceiling
                        .map(|c| format!("{:.0}%", c * 100.0))
                        .unwrap_or_default(),
                    format!("{:.2}", f.cpu_us_per_message),
                ]
            })
            .collect();
        crate::output::table(
            &[
                "MEASUREMENT",
                "SECONDS",
                "MESSAGES/S",
                "OF CEILING",
                "CPU US/MESSAGE",
            ],
            &rows,
        );
        println!(
            "commit floor: {:.2} ms per durable commit ({} commits in {:.3} s); site database {:.1} MB",
            floor.seconds * 1e3 / a.batches as f64,
            a.batches,
            floor.seconds,
            db_bytes as f64 / 1e6
        );
        if a.keep {
            println!("kept: {}", work.path.display());
        }
    }
    Ok(std::process::ExitCode::SUCCESS)
}
