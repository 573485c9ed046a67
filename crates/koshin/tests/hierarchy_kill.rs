//! kill -9 of a primary site in the middle of replicating its parent's catalog: real
//! `koshin site serve` processes for CS1 and PS1, a catalog large enough (thousands of local
//! publisher updates, every one revised by CS1's second sync) that PS1 is still replicating
//! when it is killed with SIGKILL as soon as it logs the start of the replication. PS1 is
//! started again on the same data folder and port: it must resume the sync by itself, end
//! with exactly CS1's catalog (same ids, same revisions, same content version), hold the
//! global data once, and its client's data must reach CS1 once.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use koshin_agent::mp::Mp;
use koshin_domain::scan::ScanTrigger;
use koshin_testkit::{Archive, DebSpec, SuiteSpec};

/// Local publisher updates at CS1: enough that replicating them takes a while.
const BULK: usize = 6_000;

fn archive() -> (Archive, koshin_testkit::LoopbackServer) {
    let mut a = Archive::new().expect("archive");
    for (n, v) in [("hello", "2.10-3"), ("hello", "2.10-4")] {
        a.add(
            "bookworm",
            "main",
            &DebSpec::new(n, v, "amd64").source("hello", None),
        )
        .expect("deb");
    }
    a.publish(&SuiteSpec::new("bookworm", "bookworm"))
        .expect("publish");
    let server = a.serve().expect("serve");
    (a, server)
}

/// `BULK` local publisher definitions; `round` changes every description (so every update
/// is revised by the next sync).
fn write_bulk(data: &Path, round: u32) {
    let mut text = String::with_capacity(BULK * 260);
    for i in 0..BULK {
        text.push_str(&format!(
            "[[update]]\ntitle = \"Bulk fix {i}\"\nvendor = \"Contoso\"\narticle_id = \"KB-{i}\"\n\
             classification = \"Updates\"\ndescription = \"Round {round} of fix {i}.\"\n\
             [update.detection]\npackage = {{ name = \"bulk-{i}\", version_below = \"1.0\" }}\n\n"
        ));
    }
    let dir = data.join("local-publisher");
    std::fs::create_dir_all(&dir).expect("local publisher folder");
    std::fs::write(dir.join("bulk.toml"), text).expect("write definitions");
}

fn run_ok(out: std::process::Output) -> std::process::Output {
    assert!(
        out.status.success(),
        "koshin failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The reads this test makes, as reports of the site's own (`DATA/reports/`): through the
/// running site's API, as an administrator reads them (opening the database beside the
/// server would be a second writer: opening brings the views up to date).
const REPORTS: &[(&str, &str)] = &[
    ("kt-version", "SELECT content_version FROM update_sources"),
    (
        "kt-catalog",
        "SELECT update_id, revision, superseded_by FROM v_updates ORDER BY update_id",
    ),
    (
        "kt-round-one",
        "SELECT COUNT(*) FROM updates WHERE product = 'Local publisher' AND revision = 1",
    ),
    (
        "kt-pilot",
        "SELECT COUNT(*) FROM collections WHERE name = 'Pilot'",
    ),
    (
        "kt-history",
        "SELECT update_id, time_ms, state FROM state_history
         WHERE client = (SELECT id FROM clients WHERE name = 'pc-ps1') ORDER BY 1, 2",
    ),
    (
        "kt-twice",
        "SELECT COUNT(*) - COUNT(DISTINCT update_id || ':' || time_ms) FROM state_history
         WHERE client = (SELECT id FROM clients WHERE name = 'pc-ps1')",
    ),
];

fn add_reports(data: &Path) {
    let dir = data.join("reports");
    std::fs::create_dir_all(&dir).expect("reports folder");
    for (name, sql) in REPORTS {
        std::fs::write(
            dir.join(format!("{name}.sql")),
            format!("-- title: {name}\n-- category: test\n{sql}\n"),
        )
        .expect("report");
    }
}

/// A report's rows, each as its values (in column-name order).
fn rows(site: &common::Running, token: &str, report: &str) -> Vec<Vec<serde_json::Value>> {
    let out = run_ok(koshin(
        &site.url,
        token,
        &["report", "run", report, "--format", "json"],
    ));
    let rows: Vec<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_slice(&out.stdout).expect("report rows");
    rows.into_iter()
        .map(|r| r.into_iter().map(|(_, v)| v).collect())
        .collect()
}

fn content_version(site: &common::Running, token: &str) -> i64 {
    rows(site, token, "kt-version")[0][0]
        .as_i64()
        .expect("content version")
}

fn sync_log(data: &Path) -> String {
    std::fs::read_to_string(data.join("logs").join("wsyncmgr.log")).unwrap_or_default()
}

fn until(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_primary_during_replication_resumes_without_loss_or_duplication() {
    let (a, upstream) = archive();
    let dir = tempfile::tempdir().expect("tempdir");
    let cs1_data = dir.path().join("cs1");
    run_ok(
        Command::new(KOSHIN)
            .args(["site", "init", "--code", "CS1", "--data"])
            .arg(&cs1_data)
            .arg("--upstream")
            .arg(format!(
                "deb [signed-by={} arch=amd64] {} bookworm main",
                a.keyring().display(),
                a.uri(&upstream)
            ))
            .output()
            .expect("init CS1"),
    );
    write_bulk(&cs1_data, 1);
    add_reports(&cs1_data);
    let mut cs1 = serve_at(&cs1_data, "127.0.0.1:0");
    let cs1_token = admin_token(&cs1_data);
    run_ok(koshin(&cs1.url, &cs1_token, &["sync", "--full", "--wait"]));
    let cv1 = content_version(&cs1, &cs1_token);

    // PS1 joins and takes CS1's catalog at its first start.
    let join = json(&run_ok(koshin(
        &cs1.url,
        &cs1_token,
        &["site", "join-token", "--json"],
    )))["token"]
        .as_str()
        .expect("join token")
        .to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let listen = format!("127.0.0.1:{port}");
    let ps1_data = dir.path().join("ps1");
    run_ok(
        Command::new(KOSHIN)
            .args(["site", "init", "--code", "PS1", "--data"])
            .arg(&ps1_data)
            .args([
                "--listen",
                &listen,
                "--parent",
                &cs1.url,
                "--join-token",
                &join,
            ])
            .output()
            .expect("init PS1"),
    );
    add_reports(&ps1_data);
    let mut ps1 = serve_at(&ps1_data, &listen);
    let ps1_token = admin_token(&ps1_data);
    until("PS1's first replication", 300, || {
        sync_log(&ps1_data).contains(&format!(
            "Successfully synchronized sites with parent CS1, version {cv1}"
        ))
    });

    // A client of PS1 scans and reports; a collection is made at CS1 (global data).
    let state = dir.path().join("agent/state");
    let root = dir.path().join("agent/root");
    std::fs::create_dir_all(root.join("var/lib/dpkg")).expect("root");
    std::fs::create_dir_all(root.join("etc")).expect("etc");
    std::fs::write(root.join("var/lib/dpkg/arch"), "amd64\n").expect("arch");
    std::fs::write(
        root.join("var/lib/dpkg/status"),
        "Package: hello\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.10-3\n",
    )
    .expect("status");
    koshin_agent::enroll::enroll(&koshin_agent::enroll::EnrollOptions {
        site: ps1.url.clone(),
        token: ps1_token.clone(),
        name: Some("pc-ps1".into()),
        state: state.clone(),
        root: root.clone(),
        ca_certificate: None,
    })
    .await
    .expect("enroll at PS1");
    let scan_and_send = || {
        let (state, root) = (state.clone(), root.clone());
        async move {
            let mut agent = koshin_agent::db::AgentDb::open(&state).expect("agent db");
            let id = agent.identity().expect("identity");
            let mp = Mp::new(&id.site_url, &id.credential).expect("mp");
            koshin_agent::scan::scan(&mut agent, Some(&mp), &root, ScanTrigger::ScanCycle)
                .await
                .expect("scan");
            koshin_agent::send::send_all(&mut agent, &id, &mp)
                .await
                .expect("send")
        }
    };
    scan_and_send().await;
    run_ok(koshin(
        &cs1.url,
        &cs1_token,
        &["collections", "create", "Pilot"],
    ));

    // CS1 revises every update; PS1 is killed as soon as it starts replicating them.
    let before = sync_log(&ps1_data).len();
    write_bulk(&cs1_data, 2);
    run_ok(koshin(&cs1.url, &cs1_token, &["sync", "--full", "--wait"]));
    let cv2 = content_version(&cs1, &cs1_token);
    assert!(cv2 > cv1);
    let started = "with parent site CS1 ...";
    let deadline = Instant::now() + Duration::from_secs(120);
    while !sync_log(&ps1_data)
        .get(before..)
        .is_some_and(|l| l.contains(started))
    {
        assert!(
            Instant::now() < deadline,
            "PS1 did not start replicating.\nPS1:\n{}\nCS1:\n{}",
            sync_log(&ps1_data),
            sync_log(&cs1_data)
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    ps1.child.kill().expect("SIGKILL");
    ps1.child.wait().expect("reaped");
    drop(ps1);

    // Started again: it holds the catalog from before the kill, whole (so it was killed
    // mid-way), and resumes by itself.
    let ps1 = serve_at(&ps1_data, &listen);
    assert_eq!(
        rows(&ps1, &ps1_token, "kt-round-one")[0][0],
        serde_json::json!(BULK),
        "PS1 was killed too late"
    );
    let deadline = Instant::now() + Duration::from_secs(180);
    while content_version(&ps1, &ps1_token) != cv2 {
        let log = sync_log(&ps1_data);
        assert!(
            Instant::now() < deadline,
            "PS1 did not resume (CS1: {:?}):\n{}",
            cs1.child.try_wait(),
            &log[log.len().saturating_sub(6000)..]
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = sync_log(&ps1_data);
    assert!(
        log.contains("Sync interrupted by a stop of the site server. Will retry now"),
        "{log}"
    );
    until("PS1's resumed sync to end", 120, || {
        sync_log(&ps1_data).contains(&format!(
            "Successfully synchronized sites with parent CS1, version {cv2}"
        ))
    });
    let want = rows(&cs1, &cs1_token, "kt-catalog");
    assert_eq!(want.len(), BULK + 2);
    assert_eq!(
        rows(&ps1, &ps1_token, "kt-catalog"),
        want,
        "PS1 holds exactly CS1's catalog"
    );

    // Global data once; the client's data at CS1 once, as PS1 holds it.
    until("the collection at PS1", 60, || {
        rows(&ps1, &ps1_token, "kt-pilot")[0][0] == serde_json::json!(1)
    });
    scan_and_send().await;
    until("the client's data at CS1", 120, || {
        let at_ps1 = rows(&ps1, &ps1_token, "kt-history");
        !at_ps1.is_empty() && rows(&cs1, &cs1_token, "kt-history") == at_ps1
    });
    assert_eq!(
        rows(&cs1, &cs1_token, "kt-twice")[0][0],
        serde_json::json!(0),
        "nothing stored twice at CS1"
    );
    let links = json(&run_ok(koshin(
        &ps1.url,
        &ps1_token,
        &["site", "links", "--json"],
    )));
    assert_eq!(links[0]["replicated_content_version"], cv2, "{links}");
}
