//! `koshin bench reports`: the summary reports of a site holding a large estate — by
//! default 150,000 clients against the full catalog of this machine's APT sources — timed
//! through the HTTP API a console polls. Beside them, in the same run, the same counts
//! computed when asked (one sequential pass over every state row) as the baseline the
//! counters replace, the ingest rate of state-message batches at that size, and how soon a
//! stored state message shows in a report.
//!
//! The estate is generated once and kept (default `$HOME/.cache/koshin-bench/`): a real
//! full sync gives the catalog; each client gets a base set of updates every machine has,
//! plus those of one of 64 roles, each Installed or Required by the client's patch lag; 2%
//! of the clients never scanned (Unknown).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use koshin_domain::Scope;
use rand::rngs::StdRng;
use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rusqlite::params;

/// Benchmarks run as an unscoped administrator.
const ALL: Scope = Scope::All;

#[derive(Args)]
pub struct ReportsBenchArgs {
    /// Clients in the generated estate.
    #[arg(long, default_value_t = 150_000)]
    clients: u32,
    /// Updates that apply to each client (Required or Installed); the rest of the catalog
    /// is Not required.
    #[arg(long, default_value_t = 400)]
    applicable: u32,
    /// Timed runs of each report.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// The site folder of the estate: generated on first use, then reused
    /// [default: $HOME/.cache/koshin-bench/reports-CLIENTS-APPLICABLE].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Generate the estate again even if one is there.
    #[arg(long)]
    regenerate: bool,
    #[arg(long)]
    json: bool,
}

const COMPLETE: &str = ".bench-complete";

fn default_dir(a: &ReportsBenchArgs) -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set; give --data"))?;
    Ok(PathBuf::from(home)
        .join(".cache/koshin-bench")
        .join(format!("reports-{}-{}", a.clients, a.applicable)))
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({eta} left)")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

/// Syncs the catalog and generates the estate into `data`.
async fn generate(a: &ReportsBenchArgs, data: &Path) -> anyhow::Result<()> {
    if data.exists() {
        std::fs::remove_dir_all(data)
            .with_context(|| format!("cannot clear {}", data.display()))?;
    }
    if let Some(parent) = data.parent() {
        std::fs::create_dir_all(parent)?;
    }
    eprintln!(
        "bench: full sync of this machine's APT sources into {} ...",
        data.display()
    );
    drop(crate::bench_scan::synced_site(data).await?);
    let (clients, applicable) = (a.clients, a.applicable);
    let path = data.join(koshin_server::init::DATABASE_FILE);
    tokio::task::spawn_blocking(move || fill(&path, clients, applicable)).await??;
    std::fs::write(data.join(COMPLETE), "")?;
    Ok(())
}

/// Writes the clients and their state rows straight into the database, in key order, with
/// the triggers that keep the counters on (they are what is measured).
fn fill(db: &Path, clients: u32, applicable: u32) -> anyhow::Result<()> {
    let mut conn = rusqlite::Connection::open(db)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "cache_size", -1_048_576)?;
    let cv: i64 = conn.query_row("SELECT MAX(content_version) FROM update_sources", [], |r| {
        r.get(0)
    })?;
    let mut ukeys: Vec<i64> = conn
        .prepare("SELECT ukey FROM updates WHERE expired = 0 ORDER BY ukey")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let base_n = (applicable as usize * 5 / 8).min(ukeys.len());
    let role_n = (applicable as usize - base_n).min(ukeys.len() - base_n);
    if ukeys.len() < applicable as usize {
        bail!(
            "the catalog has {} updates, fewer than --applicable {applicable}",
            ukeys.len()
        );
    }
    let mut rng = StdRng::seed_from_u64(0x6b6f7368696e);
    ukeys.shuffle(&mut rng);
    let base: Vec<i64> = ukeys[..base_n].to_vec();
    // 64 roles, each drawing its extra updates from the next 10,000 of the catalog.
    let pool = &ukeys[base_n..(base_n + 10_000).min(ukeys.len())];
    let roles: Vec<Vec<i64>> = (0..64)
        .map(|_| {
            let mut r: Vec<i64> = pool.choose_multiple(&mut rng, role_n).copied().collect();
            r.extend(&base);
            r.sort_unstable();
            r
        })
        .collect();
    let now = jiff::Timestamp::now().as_millisecond();
    // The by-update index is built once after the rows, from its own definition.
    let index_sql: String = conn.query_row(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'update_states_update'",
        [],
        |r| r.get(0),
    )?;
    let tx = conn.transaction()?;
    tx.execute_batch("DROP INDEX IF EXISTS update_states_update;")?;
    {
        let mut ins = tx.prepare(
            "INSERT INTO clients(id, client_id, name, os, os_release, architecture, site, agent_version, credential_sha256, enrolled_ms, last_contact_ms, last_scan_ms, scanned_cv)
             VALUES (?1, ?2, ?3, 'Debian', 'Debian GNU/Linux 12 (bookworm)', 'amd64', 'BEN', 'bench', ?4, ?5, ?5, ?6, ?7)",
        )?;
        let pb = bar(u64::from(clients), "clients");
        for c in 1..=i64::from(clients) {
            let scanned = rng.random::<f64>() >= 0.02;
            ins.execute(params![
                c,
                format!("00000000-0000-4000-8000-{c:012}"),
                format!("host-{c:06}"),
                format!("bench-credential-{c}"),
                now - 3_600_000,
                scanned.then_some(now - 1_800_000),
                scanned.then_some(cv),
            ])?;
            if c % 1000 == 0 {
                pb.set_position(c as u64);
            }
        }
        pb.finish();
    }
    tx.commit()?;
    let scanned: Vec<i64> = conn
        .prepare("SELECT id FROM clients WHERE scanned_cv IS NOT NULL ORDER BY id")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let pb = bar(scanned.len() as u64, "state rows by client");
    for chunk in scanned.chunks(2_000) {
        let tx = conn.transaction()?;
        {
            let mut ins = tx.prepare_cached(
                "INSERT INTO update_states(client, ukey, state, restart_pending, revision, time_ms) VALUES (?1, ?2, ?3, 0, 1, ?4)",
            )?;
            for &c in chunk {
                let role = &roles[rng.random_range(0..roles.len())];
                // Patch lag: most machines are current, a tail is far behind.
                let lag = [0.0, 0.0, 0.02, 0.05, 0.1, 0.3][rng.random_range(0..6)];
                for &u in role {
                    let state = if rng.random::<f64>() < lag { 1 } else { 3 };
                    ins.execute(params![c, u, state, now - 1_800_000])?;
                }
            }
        }
        tx.commit()?;
        pb.inc(chunk.len() as u64);
    }
    pb.finish();
    eprintln!("bench: indexing the state rows by update ...");
    conn.execute_batch(&format!("{index_sql}; PRAGMA wal_checkpoint(TRUNCATE);"))?;
    Ok(())
}

fn stats(v: &mut [Duration]) -> (f64, f64) {
    v.sort();
    (v[0].as_secs_f64() * 1e3, v[v.len() / 2].as_secs_f64() * 1e3)
}

#[derive(serde::Serialize)]
struct Row {
    what: String,
    rows: usize,
    min_ms: f64,
    median_ms: f64,
}

pub async fn run(a: ReportsBenchArgs) -> anyhow::Result<std::process::ExitCode> {
    if a.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if a.clients == 0 || a.applicable == 0 {
        bail!("--clients and --applicable must be at least 1");
    }
    let data = match &a.data {
        Some(d) => d.clone(),
        None => default_dir(&a)?,
    };
    if a.regenerate || !data.join(COMPLETE).exists() {
        let t = Instant::now();
        generate(&a, &data).await?;
        eprintln!(
            "bench: estate generated in {:.0} s",
            t.elapsed().as_secs_f64()
        );
    } else {
        eprintln!("bench: reusing the estate in {}", data.display());
    }
    let site = koshin_server::Site::open(&data)?;
    let store = site.store.clone();
    let db_bytes = std::fs::metadata(data.join(koshin_server::init::DATABASE_FILE))?.len();
    let (n_clients, n_updates, n_rows): (i64, i64, i64) = {
        let (cols, rows) = store.run_report(
            "SELECT (SELECT COUNT(*) FROM clients), (SELECT COUNT(*) FROM updates WHERE expired = 0), (SELECT COUNT(*) FROM update_states)",
            &[], &ALL)?;
        let r = rows.first().ok_or_else(|| anyhow!("no counts"))?;
        let g = |i: usize| r.get(i).and_then(|v| v.as_i64()).unwrap_or(0);
        let _ = cols;
        (g(0), g(1), g(2))
    };
    eprintln!(
        "bench: {n_clients} clients, {n_updates} updates, {n_rows} state rows, database {:.1} GB",
        db_bytes as f64 / 1e9
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(koshin_server::serve(site.clone(), listener, async move {
        let _ = stopped.await;
    }));
    let token = std::fs::read_to_string(data.join("admin.token"))?;
    let http = reqwest::Client::new();
    let get = |path: String| {
        let http = http.clone();
        let url = url.clone();
        let token = token.trim().to_string();
        async move {
            let t = Instant::now();
            let resp = http
                .get(format!("{url}{path}"))
                .bearer_auth(token)
                .send()
                .await?;
            if !resp.status().is_success() {
                bail!("GET {path}: {}", resp.status());
            }
            let v: serde_json::Value = resp.json().await?;
            Ok::<_, anyhow::Error>((t.elapsed(), v))
        }
    };
    // Rows of an answer: a report's rows, a list's items, a deployment's clients.
    let rows_of = |v: &serde_json::Value| -> usize {
        v.get("rows")
            .or_else(|| v.get("points"))
            .or_else(|| v.get("required_by"))
            .or_else(|| v.get("member_list"))
            .or_else(|| v.get("clients"))
            .and_then(|r| r.as_array())
            .or_else(|| v.as_array())
            .map_or(1, Vec::len)
    };

    // The most widely applicable update and a client with Required updates, for the
    // parameterized reports.
    let (_, top) = get("/api/v1/reports/updates-with-counts".into()).await?;
    let top: koshin_wire::ReportResult = serde_json::from_value(top)?;
    let popular = top
        .rows
        .iter()
        .max_by_key(|r| {
            r.get("required").and_then(|v| v.as_i64()).unwrap_or(0)
                + r.get("installed").and_then(|v| v.as_i64()).unwrap_or(0)
        })
        .and_then(|r| r.get("id").and_then(|v| v.as_str()).map(str::to_string))
        .ok_or_else(|| anyhow!("no updates"))?;
    let computer = "host-000001";

    // A deployment of that update to every client, as the console's deployment pages show
    // one (made once; the estate is reused).
    let deployment = {
        let post = |path: &str, body: serde_json::Value| {
            http.post(format!("{url}{path}"))
                .bearer_auth(token.trim())
                .json(&body)
                .send()
        };
        let _ = post(
            "/api/v1/update-groups",
            serde_json::json!({"name": "bench-popular", "updates": [popular]}),
        )
        .await?;
        let r = post(
            "/api/v1/deployments",
            serde_json::json!({"name": "bench-popular", "update_group": "bench-popular",
                               "collection": "All Systems"}),
        )
        .await?;
        let status = r.status();
        if status.is_success() || status == reqwest::StatusCode::CONFLICT {
            Some("bench-popular")
        } else {
            eprintln!(
                "bench: no deployment to time: {status} {}",
                r.text().await.unwrap_or_default()
            );
            None
        }
    };

    let mut cases: Vec<(String, String)> = vec![
        (
            "updates-with-counts".into(),
            "/api/v1/reports/updates-with-counts".into(),
        ),
        (
            "compliance-by-product".into(),
            "/api/v1/reports/compliance-by-product".into(),
        ),
        (
            "new-updates-7-days".into(),
            "/api/v1/reports/new-updates-7-days".into(),
        ),
        (
            "updates-not-approved".into(),
            "/api/v1/reports/updates-not-approved".into(),
        ),
        (
            "computers-for-update (most applicable update)".into(),
            format!("/api/v1/reports/computers-for-update?update={popular}"),
        ),
        (
            "compliance-by-update (most applicable update)".into(),
            format!("/api/v1/reports/compliance-by-update?update={popular}"),
        ),
        (
            "updates-for-computer".into(),
            format!("/api/v1/reports/updates-for-computer?computer={computer}"),
        ),
        (
            "infrastructure-status".into(),
            "/api/v1/reports/infrastructure-status".into(),
        ),
        // What the web console asks for: its dashboard, a page of updates, the computers
        // that require an update, pages of the computers list.
        (
            "console: compliance-by-classification".into(),
            "/api/v1/reports/compliance-by-classification".into(),
        ),
        (
            "console: compliance trend, 30 days".into(),
            "/api/v1/compliance/trend?days=30".into(),
        ),
        (
            "console: computers, first page of 50".into(),
            "/api/v1/clients?limit=50".into(),
        ),
        (
            "console: computers, page of 50 at 100,000".into(),
            "/api/v1/clients?limit=50&offset=100000".into(),
        ),
        (
            "console: computers not reporting for 7 days".into(),
            "/api/v1/clients?limit=10&not_reporting_days=7".into(),
        ),
        (
            "console: computers, search".into(),
            "/api/v1/clients?limit=50&search=host-14999".into(),
        ),
        (
            "console: updates, first page of 50".into(),
            "/api/v1/reports/updates-with-counts?limit=50".into(),
        ),
        (
            "console: updates some computer requires, page of 50".into(),
            "/api/v1/reports/updates-with-counts?limit=50&required_only=1".into(),
        ),
        (
            "console: computers requiring the most applicable update, page of 50".into(),
            format!(
                "/api/v1/reports/compliance-by-update?update={popular}&state=required&limit=50"
            ),
        ),
        (
            "console: an update (its page's first request)".into(),
            format!("/api/v1/updates/{popular}?limit=0"),
        ),
        (
            "console: computers requiring an update, by name, page of 50 (count=0)".into(),
            format!(
                "/api/v1/reports/computers-in-state-for-update?update={popular}&state=required&limit=50&count=0"
            ),
        ),
        (
            "console: the same, page of 50 at 100,000 (count=0)".into(),
            format!(
                "/api/v1/reports/computers-in-state-for-update?update={popular}&state=required&limit=50&offset=100000&count=0"
            ),
        ),
        (
            "console: an update's computers, page of 50".into(),
            format!("/api/v1/updates/{popular}?limit=50"),
        ),
        (
            "console: an update's computers, page of 50 at 100,000".into(),
            format!("/api/v1/updates/{popular}?limit=50&offset=100000"),
        ),
        (
            "console: All Systems' members, page of 50".into(),
            "/api/v1/collections/All%20Systems?limit=50".into(),
        ),
        (
            "console: All Systems' members, page of 50 at 100,000".into(),
            "/api/v1/collections/All%20Systems?limit=50&offset=100000".into(),
        ),
    ];
    if let Some(d) = deployment {
        cases.push((
            "console: deployments list".into(),
            "/api/v1/deployments".into(),
        ));
        cases.push((
            "console: a deployment to every client, page of 50".into(),
            format!("/api/v1/deployments/{d}?limit=50"),
        ));
        cases.push((
            "console: a deployment to every client, page of 50 at 100,000".into(),
            format!("/api/v1/deployments/{d}?limit=50&offset=100000"),
        ));
    }
    let mut out = Vec::new();
    for (what, path) in &cases {
        eprintln!("bench: {what} ...");
        let (_, warm) = get(path.clone()).await?;
        let mut times = Vec::with_capacity(a.runs);
        for _ in 0..a.runs {
            times.push(get(path.clone()).await?.0);
        }
        let (min_ms, median_ms) = stats(&mut times);
        out.push(Row {
            what: what.clone(),
            rows: rows_of(&warm),
            min_ms,
            median_ms,
        });
    }

    // The baseline: the same counts computed when asked, by one sequential pass over every
    // state row into per-update counters in memory — the least any summary that is not
    // kept up to date must do. Fewer runs: it is slow.
    eprintln!("bench: baseline, one pass over every state row ...");
    let baseline_runs = a.runs.clamp(1, 3);
    let mut times = Vec::with_capacity(baseline_runs);
    let db = data.join(koshin_server::init::DATABASE_FILE);
    for _ in 0..baseline_runs {
        let db = db.clone();
        times.push(tokio::task::spawn_blocking(move || one_pass(&db)).await??);
    }
    let (min_ms, median_ms) = stats(&mut times);
    out.push(Row {
        what: format!("baseline: one pass over every state row ({baseline_runs} runs)"),
        rows: n_updates as usize,
        min_ms,
        median_ms,
    });

    // Ingest at this size: first-scan-sized batches through the store, each flipping the
    // states of one generated client, as the management point stores them.
    eprintln!("bench: ingesting state-message batches ...");
    let (ingest_msgs, ingest_time, visible_ms) = {
        let store = store.clone();
        let popular = popular.clone();
        tokio::task::spawn_blocking(move || ingest(&*store, &popular)).await??
    };
    let _ = stop.send(());
    let _ = server.await;

    if a.json {
        crate::output::json(&serde_json::json!({
            "clients": n_clients,
            "updates": n_updates,
            "state_rows": n_rows,
            "database_bytes": db_bytes,
            "reports": out,
            "ingest_messages": ingest_msgs,
            "ingest_seconds": ingest_time.as_secs_f64(),
            "state_to_report_ms": visible_ms,
        }))?;
    } else {
        println!(
            "{n_clients} clients x {n_updates} updates, {n_rows} state rows, database {:.1} GB; HTTP API, {} runs",
            db_bytes as f64 / 1e9,
            a.runs
        );
        let rows: Vec<Vec<String>> = out
            .iter()
            .map(|r| {
                vec![
                    r.what.clone(),
                    r.rows.to_string(),
                    format!("{:.1}", r.min_ms),
                    format!("{:.1}", r.median_ms),
                ]
            })
            .collect();
        crate::output::table(&["REPORT", "ROWS", "MIN MS", "MEDIAN MS"], &rows);
        println!(
            "ingest: {ingest_msgs} state messages in {:.2} s ({:.0} messages/s, one transaction per batch, synchronous=FULL)",
            ingest_time.as_secs_f64(),
            ingest_msgs as f64 / ingest_time.as_secs_f64()
        );
        println!(
            "a stored state message shows in updates-for-computer after {visible_ms:.1} ms (store + report)"
        );
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Sends 200 batches of a client's states (flipped Required/Installed) through the store,
/// then measures one state change until `updates-for-computer` shows it.
fn ingest(store: &dyn koshin_store::Store, popular: &str) -> anyhow::Result<(u64, Duration, f64)> {
    let (_, rows) = store.run_report(
        "SELECT c.id, c.client_id, c.name FROM clients c WHERE c.scanned_cv IS NOT NULL ORDER BY c.id LIMIT 200",
        &[], &ALL)?;
    let mut batches = Vec::new();
    for r in &rows {
        let rowid = r.first().and_then(|v| v.as_i64()).unwrap_or(0);
        let client_id = r
            .get(1)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let name = r
            .get(2)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        let (_, states) = store.run_report(
            "SELECT u.id, s.state FROM update_states s JOIN updates u ON u.ukey = s.ukey WHERE s.client = :c",
            &[("c".into(), rowid.to_string())], &ALL)?;
        let now = jiff::Timestamp::now();
        let messages = states
            .iter()
            .map(|s| koshin_wire::StateMessage {
                update_id: s
                    .first()
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string(),
                revision: 1,
                state: if s.get(1).and_then(|v| v.as_i64()) == Some(1) {
                    "installed".into()
                } else {
                    "required".into()
                },
                restart_pending: false,
                time: now,
                scan_id: "bench".into(),
            })
            .collect();
        batches.push((
            koshin_store::ClientIdentity {
                rowid,
                client_id: client_id.clone(),
                name,
                approval: "approved".into(),
            },
            koshin_wire::StateBatch {
                batch_id: uuid_like(rowid, now.as_millisecond()),
                client_id,
                messages,
                scans: Vec::new(),
            },
        ));
    }
    let total: u64 = batches.iter().map(|(_, b)| b.messages.len() as u64).sum();
    let pb = bar(batches.len() as u64, "batches");
    let t = Instant::now();
    for (who, batch) in &batches {
        store.ingest_states(who, batch, jiff::Timestamp::now().as_millisecond())?;
        pb.inc(1);
    }
    let elapsed = t.elapsed();
    pb.finish_and_clear();

    // One change, then the report that shows it.
    let (who, _) = batches.first().ok_or_else(|| anyhow!("no clients"))?;
    let (_, cur) = store.run_report(
        "SELECT s.state FROM update_states s JOIN updates u ON u.ukey = s.ukey WHERE s.client = :c AND u.id = :u",
        &[("c".into(), who.rowid.to_string()), ("u".into(), popular.to_string())], &ALL)?;
    let next = if cur.first().and_then(|r| r.first()).and_then(|v| v.as_i64()) == Some(1) {
        "installed"
    } else {
        "required"
    };
    let now = jiff::Timestamp::now();
    let batch = koshin_wire::StateBatch {
        batch_id: uuid_like(who.rowid, now.as_millisecond() + 1),
        client_id: who.client_id.clone(),
        messages: vec![koshin_wire::StateMessage {
            update_id: popular.to_string(),
            revision: 1,
            state: next.into(),
            restart_pending: false,
            time: now,
            scan_id: "bench".into(),
        }],
        scans: Vec::new(),
    };
    let report = koshin_server::reports::find(Path::new("/nonexistent"), "updates-for-computer")
        .ok_or_else(|| anyhow!("updates-for-computer is missing"))?;
    let t = Instant::now();
    store.ingest_states(who, &batch, now.as_millisecond())?;
    let (_, rows) = store.run_report(
        &report.sql,
        &[("computer".into(), who.client_id.clone())],
        &ALL,
    )?;
    let visible = t.elapsed().as_secs_f64() * 1e3;
    let shown = rows.iter().any(|r| {
        r.first().and_then(|v| v.as_str()) == Some(popular)
            && r.get(4).and_then(|v| v.as_str()) == Some(next)
    });
    if !shown {
        bail!("the report did not show the state just stored");
    }
    Ok((total, elapsed, visible))
}

fn uuid_like(a: i64, b: i64) -> String {
    format!("bench-{a}-{b}")
}

/// Counts Required and Installed per update by reading every state row once.
fn one_pass(db: &Path) -> anyhow::Result<Duration> {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let t = Instant::now();
    let mut counts: std::collections::HashMap<i64, [u64; 2]> = std::collections::HashMap::new();
    let mut stmt = conn.prepare("SELECT ukey, state FROM update_states")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let e = counts.entry(r.get(0)?).or_default();
        match r.get::<_, i64>(1)? {
            1 => e[0] += 1,
            3 => e[1] += 1,
            _ => {}
        }
    }
    if counts.is_empty() {
        bail!("no state rows");
    }
    Ok(t.elapsed())
}
