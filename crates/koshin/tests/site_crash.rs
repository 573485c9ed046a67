//! kill -9 of the site server while it ingests state messages: the real `koshin site serve`
//! process, twenty agents sending large backlogs through the agent library at once, the
//! site killed with SIGKILL mid-stream and restarted on the same data folder and port, the
//! agents retrying what was not acknowledged. Every acknowledged batch must be in the
//! database, nothing may be stored twice, and the final current states must be complete.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use koshin_agent::db::AgentDb;
use koshin_agent::mp::Mp;
use koshin_domain::scan::ScanTrigger;
use koshin_store::{ReportStore, SqliteStore};
use koshin_testkit::{Archive, DebSpec, SuiteSpec};

const KOSHIN: &str = env!("CARGO_BIN_EXE_koshin");
const AGENTS: usize = 20;
/// Queued messages per agent besides its scan's: more than one batch (20,000) each.
const BACKLOG: usize = 24_000;

/// A running `koshin site serve`, killed on drop.
struct Running {
    child: Child,
    url: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `koshin site serve --data DATA --listen LISTEN` and waits for "serving on".
fn serve(data: &Path, listen: &str) -> Running {
    let mut child = Command::new(KOSHIN)
        .args(["site", "serve", "--data"])
        .arg(data)
        .args(["--listen", listen])
        .env_remove("KOSHIN_TOKEN")
        .env_remove("KOSHIN_SITE")
        .env("KOSHIN_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("koshin starts");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[site] {line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("koshin site serve did not say where it serves: {e}");
            }
        };
        if let Some(url) = line
            .split("serving on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
        {
            let url = url.to_string();
            std::thread::spawn(move || while rx.recv().is_ok() {});
            return Running { child, url };
        }
    }
}

fn koshin(site: &str, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(KOSHIN)
        .args(args)
        .env("KOSHIN_SITE", site)
        .env("KOSHIN_TOKEN", token)
        .output()
        .expect("koshin runs")
}

fn deb(name: &str, version: &str, source: &str) -> DebSpec {
    DebSpec::new(name, version, "amd64").source(source, None)
}

/// bookworm: hello 2.10-3, libfoo1 1.0-1, curl; bookworm-security: hello 2.10-4, libfoo1
/// 1.0-1+deb12u1. Five updates.
fn archive() -> (Archive, koshin_testkit::LoopbackServer) {
    let mut a = Archive::new().expect("archive");
    for d in [
        deb("hello", "2.10-3", "hello"),
        deb("libfoo1", "1.0-1", "libfoo"),
        deb("curl", "7.88.1-10", "curl"),
    ] {
        a.add("bookworm", "main", &d).expect("deb");
    }
    for d in [
        deb("hello", "2.10-4", "hello"),
        deb("libfoo1", "1.0-1+deb12u1", "libfoo"),
    ] {
        a.add("bookworm-security", "main", &d).expect("deb");
    }
    a.publish(&SuiteSpec::new("bookworm", "bookworm"))
        .expect("publish");
    a.publish(&SuiteSpec::new("bookworm-security", "bookworm-security").label("Debian-Security"))
        .expect("publish");
    let server = a.serve().expect("serve");
    (a, server)
}

/// An agent's folders: state and a fake dpkg root.
struct Agent {
    state: PathBuf,
    root: PathBuf,
}

impl Agent {
    fn new(base: &Path, i: usize) -> Agent {
        let state = base.join(format!("agent{i}/state"));
        let root = base.join(format!("agent{i}/root"));
        std::fs::create_dir_all(root.join("var/lib/dpkg")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("var/lib/dpkg/arch"), "amd64\n").unwrap();
        std::fs::write(
            root.join("etc/os-release"),
            "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\n",
        )
        .unwrap();
        std::fs::write(
            root.join("var/lib/dpkg/status"),
            "Package: hello\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.10-3\n\n\
             Package: libfoo1\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\n",
        )
        .unwrap();
        Agent { state, root }
    }

    fn db(&self) -> AgentDb {
        AgentDb::open(&self.state).expect("agent db")
    }

    /// Every queued message as (update_id, time_ms, state).
    fn queued(&self) -> BTreeSet<(String, i64, String)> {
        let db = self.db();
        let mut stmt = db
            .conn
            .prepare("SELECT update_id, time_ms, state FROM queue")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }
}

/// Queues `n` older state messages for the agent's catalog updates, as a long backlog
/// would (each with its own time, all before the agent's real scan).
fn queue_backlog(agent: &Agent, n: usize) {
    let db = agent.db();
    let ids: Vec<(String, i64)> = {
        let mut stmt = db
            .conn
            .prepare("SELECT id, revision FROM catalog_updates ORDER BY id")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(ids.len(), 5);
    let base = jiff::Timestamp::now().as_millisecond() - 30 * 24 * 3_600_000;
    db.conn.execute_batch("BEGIN").unwrap();
    {
        let mut ins = db
            .conn
            .prepare(
                "INSERT INTO queue(update_id, revision, state, restart_pending, time_ms, scan_id) VALUES (?1, ?2, ?3, 0, ?4, ?5)",
            )
            .unwrap();
        let states = ["required", "installed", "not_required"];
        for k in 0..n {
            let (id, rev) = &ids[k % ids.len()];
            ins.execute((
                id.as_str(),
                *rev,
                states[(k / ids.len()) % states.len()],
                base + k as i64,
                format!("backlog-scan-{}", k / 1000),
            ))
            .unwrap();
        }
    }
    db.conn.execute_batch("COMMIT").unwrap();
}

/// The site's view, read straight from its database.
struct SiteDb(SqliteStore);

impl SiteDb {
    fn open(data: &Path) -> SiteDb {
        SiteDb(SqliteStore::open(&data.join("site.db")).expect("open site.db"))
    }
    fn rows(&self, sql: &str, client_id: &str) -> Vec<Vec<serde_json::Value>> {
        self.0
            .run_report(
                sql,
                &[("c".to_string(), client_id.to_string())],
                &koshin_domain::Scope::All,
            )
            .expect("query")
            .1
    }
    fn count(&self, sql: &str, client_id: &str) -> i64 {
        self.rows(sql, client_id)[0][0].as_i64().expect("a count")
    }
    /// (update_id, time_ms, state name) of every history row of a client.
    fn history(&self, client_id: &str) -> Vec<(String, i64, String)> {
        self.rows(
            "SELECT update_id, time_ms, CASE state WHEN 1 THEN 'required' WHEN 2 THEN 'not_required' WHEN 3 THEN 'installed' END FROM state_history WHERE client = (SELECT id FROM clients WHERE client_id = :c)",
            client_id,
        )
        .into_iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_string(),
                r[1].as_i64().unwrap(),
                r[2].as_str().unwrap().to_string(),
            )
        })
        .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_site_during_ingestion_loses_and_duplicates_nothing() {
    let started = Instant::now();
    let (a, upstream) = archive();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("site");
    let mut init = Command::new(KOSHIN);
    init.args(["site", "init", "--code", "CS1", "--data"])
        .arg(&data);
    for suite in ["bookworm", "bookworm-security"] {
        init.arg("--upstream").arg(format!(
            "deb [signed-by={} arch=amd64] {} {suite} main",
            a.keyring().display(),
            a.uri(&upstream)
        ));
    }
    let out = init.output().expect("init runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = std::fs::read_to_string(data.join("admin.token")).expect("token");
    let token = token.trim().to_string();
    let mut site = serve(&data, "127.0.0.1:0");
    let url = site.url.clone();
    let listen = url.trim_start_matches("http://").to_string();
    let out = koshin(&url, &token, &["sync", "--wait", "--full"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Twenty clients, each with its scan's five messages and a long backlog queued.
    let mut agents = Vec::new();
    let mut client_ids = Vec::new();
    let mut expected: Vec<BTreeSet<(String, i64, String)>> = Vec::new();
    let mut final_states: Vec<HashMap<String, String>> = Vec::new();
    for i in 0..AGENTS {
        let agent = Agent::new(dir.path(), i);
        let (cid, _) = koshin_agent::enroll::enroll(&koshin_agent::enroll::EnrollOptions {
            site: url.clone(),
            token: token.clone(),
            name: Some(format!("pc-{i:02}")),
            state: agent.state.clone(),
            root: agent.root.clone(),
            ca_certificate: None,
        })
        .await
        .expect("enroll");
        let mut db = agent.db();
        let id = db.identity().unwrap();
        let mp = Mp::new(&id.site_url, &id.credential).unwrap();
        let scan =
            koshin_agent::scan::scan(&mut db, Some(&mp), &agent.root, ScanTrigger::ScanCycle)
                .await
                .expect("scan");
        // A message per update that applies; the catalog's fifth is Not required by the
        // scan record alone.
        assert_eq!(scan.state_messages, 4);
        queue_backlog(&agent, BACKLOG);
        let queued = agent.queued();
        assert_eq!(
            queued.len(),
            BACKLOG + 4,
            "(update, time) is unique per agent"
        );
        // The site keeps, per update, the newest message (by time) it was sent.
        let mut newest: HashMap<String, (i64, String)> = HashMap::new();
        for (u, t, st) in &queued {
            if newest.get(u).is_none_or(|(nt, _)| t >= nt) {
                newest.insert(u.clone(), (*t, st.clone()));
            }
        }
        final_states.push(newest.into_iter().map(|(u, (_, st))| (u, st)).collect());
        expected.push(queued);
        client_ids.push(cid);
        agents.push(agent);
    }
    let total: usize = expected.iter().map(BTreeSet::len).sum();
    eprintln!(
        "set up {AGENTS} agents with {total} queued messages in {:?}",
        started.elapsed()
    );

    // All send at once; the site is killed as soon as the first agent's sends are all
    // acknowledged, while the others are in flight.
    let mut senders = tokio::task::JoinSet::new();
    for (i, agent) in agents.iter().enumerate() {
        let state = agent.state.clone();
        senders.spawn(async move {
            let mut db = AgentDb::open(&state).unwrap();
            let id = db.identity().unwrap();
            let mp = Mp::new(&id.site_url, &id.credential).unwrap();
            let r = koshin_agent::send::send_all(&mut db, &id, &mp).await;
            (i, r.map_err(|e| e.to_string()))
        });
    }
    let (first, r) = senders.join_next().await.expect("a sender").expect("join");
    let sending_for = started.elapsed();
    site.child.kill().expect("kill -9 the site");
    let status = site.child.wait().expect("wait");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }
    let _ = status;
    let mut results = vec![(first, r)];
    while let Some(j) = senders.join_next().await {
        results.push(j.expect("join"));
    }
    let failed = results.iter().filter(|(_, r)| r.is_err()).count();
    eprintln!(
        "killed the site at {sending_for:?}: agent {first} done first ({:?}); {failed} of {AGENTS} senders failed",
        results[0].1
    );
    assert!(
        failed > 0,
        "every agent finished before the kill: the test needs more data to catch the site mid-ingestion"
    );
    for (i, r) in &results {
        if let Err(e) = r {
            assert!(
                e.contains("cannot be reached"),
                "agent {i} failed otherwise than by the site going away: {e}"
            );
        }
    }

    // Right after the crash: every acknowledged message (no longer queued) is in the
    // database, and nothing is in it twice.
    let mut acked_total = 0;
    let mut stored_before_retry = 0;
    {
        let db = SiteDb::open(&data);
        for (i, agent) in agents.iter().enumerate() {
            let left = agent.queued();
            let acked: BTreeSet<_> = expected[i].difference(&left).cloned().collect();
            acked_total += acked.len();
            let hist = db.history(&client_ids[i]);
            let stored: BTreeSet<_> = hist.iter().cloned().collect();
            assert_eq!(
                stored.len(),
                hist.len(),
                "agent {i}: a message stored twice"
            );
            assert!(
                acked.is_subset(&stored),
                "agent {i}: {} acknowledged messages are not in the database",
                acked.difference(&stored).count()
            );
            assert!(
                stored.is_subset(&expected[i]),
                "agent {i}: unknown messages stored"
            );
            stored_before_retry += stored.len();
            // Batches are whole: what is stored is exactly the sum of its stored batches.
            assert_eq!(
                db.count(
                    "SELECT COALESCE(SUM(messages), 0) FROM state_batches WHERE client = (SELECT id FROM clients WHERE client_id = :c)",
                    &client_ids[i]
                ) as usize,
                stored.len(),
                "agent {i}: a batch stored in part"
            );
        }
    }
    eprintln!(
        "after the crash: {acked_total} messages acknowledged, {stored_before_retry} stored ({} stored but not acknowledged)",
        stored_before_retry - acked_total
    );
    assert!(acked_total > 0);
    assert!(stored_before_retry < total);

    // The site comes back on the same data and address; the agents retry.
    let site2 = serve(&data, &listen);
    assert_eq!(site2.url, url);
    let mut retries = tokio::task::JoinSet::new();
    for agent in &agents {
        let state = agent.state.clone();
        retries.spawn(async move {
            let mut db = AgentDb::open(&state).unwrap();
            let id = db.identity().unwrap();
            let mp = Mp::new(&id.site_url, &id.credential).unwrap();
            koshin_agent::send::send_all(&mut db, &id, &mp)
                .await
                .map_err(|e| e.to_string())
        });
    }
    while let Some(r) = retries.join_next().await {
        r.expect("join").expect("the retry succeeds");
    }

    // Everything arrived exactly once; the current states are complete and right.
    let db = SiteDb::open(&data);
    let mut history_rows = 0;
    for (i, agent) in agents.iter().enumerate() {
        let adb = agent.db();
        assert_eq!(adb.queue_length().unwrap(), 0, "agent {i}: queue not empty");
        assert_eq!(
            adb.unsent_scans().unwrap(),
            0,
            "agent {i}: scan record unsent"
        );
        let hist = db.history(&client_ids[i]);
        history_rows += hist.len();
        let stored: BTreeSet<_> = hist.iter().cloned().collect();
        assert_eq!(
            stored.len(),
            hist.len(),
            "agent {i}: a message stored twice"
        );
        assert_eq!(
            stored, expected[i],
            "agent {i}: history differs from what was sent"
        );
        let current: HashMap<String, String> = db
            .rows(
                "SELECT update_id, state FROM v_update_states WHERE client_id = :c",
                &client_ids[i],
            )
            .into_iter()
            .map(|r| {
                (
                    r[0].as_str().unwrap().to_string(),
                    r[1].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(current, final_states[i], "agent {i}: current states");
        assert_eq!(
            db.count(
                "SELECT COUNT(*) FROM scans WHERE client = (SELECT id FROM clients WHERE client_id = :c)",
                &client_ids[i]
            ),
            1,
            "agent {i}: its scan record"
        );
    }
    assert_eq!(history_rows, total, "state_history rows == messages sent");
    assert_eq!(
        db.count("SELECT COALESCE(SUM(messages), 0) FROM state_batches", "") as usize,
        total
    );

    // The site's own API agrees: twenty clients, nothing unknown.
    let clients: serde_json::Value = reqwest::Client::new()
        .get(format!("{url}/api/v1/clients"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("GET clients")
        .json()
        .await
        .expect("JSON");
    let clients = clients.as_array().expect("array");
    assert_eq!(clients.len(), AGENTS);
    for c in clients {
        assert_eq!(
            (
                c["required"].as_i64(),
                c["installed"].as_i64(),
                c["not_required"].as_i64(),
                c["unknown"].as_i64()
            ),
            (Some(2), Some(2), Some(1), Some(0)),
            "{c}"
        );
    }
    drop(site2);
    eprintln!("done in {:?}", started.elapsed());
}
