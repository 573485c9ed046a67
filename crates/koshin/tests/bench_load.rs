//! `koshin bench load` end to end with a handful of simulated clients: the real binary makes
//! its own site from a real signed archive served on loopback, runs it as a separate
//! `koshin site serve` process, enrolls the clients, sends their scans for a few seconds,
//! and checks that every acknowledged message is in the site database. No timing is
//! asserted: a benchmark is not a test.

use std::process::Command;

use koshin_testkit::{Archive, DebSpec, SuiteSpec};

const KOSHIN: &str = env!("CARGO_BIN_EXE_koshin");

#[test]
fn the_load_generator_finds_every_acknowledged_message_stored() {
    let mut a = Archive::new().expect("archive");
    for (name, version) in [
        ("hello", "2.10-3"),
        ("libfoo1", "1.0-1+deb12u1"),
        ("libbar2", "2.4-1"),
        ("openssl", "3.0.15-1~deb12u1"),
        ("curl", "7.88.1-10+deb12u8"),
    ] {
        a.add(
            "bookworm",
            "main",
            &DebSpec::new(name, version, "amd64").source(name, None),
        )
        .expect("deb");
    }
    a.publish(&SuiteSpec::new("bookworm", "bookworm"))
        .expect("publish");
    let server = a.serve().expect("serve");
    let line = format!(
        "deb [signed-by={} arch=amd64] {} bookworm main",
        a.keyring().display(),
        a.uri(&server)
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = Command::new(KOSHIN)
        .args([
            "bench",
            "load",
            "--clients",
            "6",
            "--applicable",
            "4",
            "--rate",
            "300",
            "--duration",
            "3",
            "--connections",
            "4",
            "--changes",
            "0.5",
            "--resend",
            "0.3",
            "--interval",
            "1",
            "--probe-interval",
            "0.5",
            "--inventory-packages",
            "30",
            "--upstream",
            &line,
            "--json",
        ])
        .env("TMPDIR", tmp.path())
        .env_remove("KOSHIN_SITE")
        .env_remove("KOSHIN_TOKEN")
        .output()
        .expect("koshin bench load runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "bench load failed: {stderr}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON summary");
    assert_eq!(r["clients"], 6);
    assert_eq!(r["own_site"], true);
    let v = &r["verification"];
    assert_eq!(v["passed"], true, "{v}");
    assert!(v["problems"].as_array().is_some_and(Vec::is_empty), "{v}");
    // Every first scan reported all four updates, rescans the changed ones.
    let messages = r["messages"].as_u64().expect("messages");
    assert!(messages >= 6 * 4, "{r}");
    assert_eq!(v["acknowledged_messages"].as_u64(), Some(messages));
    assert_eq!(v["history_rows"].as_u64(), Some(messages));
    assert_eq!(v["batches_in_database"], v["batches_acknowledged"]);
    assert_eq!(v["clients_checked"], 6);
    assert!(
        v["state_rows_checked"].as_u64().expect("rows") >= 6 * 4,
        "{v}"
    );
    // Batches sent again after their answer were answered as duplicates, never stored twice.
    assert!(r["resent_batches"].as_u64().expect("resent") > 0, "{r}");
    assert_eq!(r["failed_batches"], 0);
    assert!(r["series"].as_array().is_some_and(|s| !s.is_empty()));
    assert!(r["server_rss_peak_bytes"].as_u64().expect("rss") > 0);
    // The disk figures are read (a load this small may fit in pages the site already has,
    // and the WAL's pages are reused after each checkpoint, so they need not grow).
    let db_end = r["database_bytes_end"].as_u64().expect("database size");
    assert!(r["database_bytes_start"].as_u64().expect("database size") > 0);
    assert!(db_end > 0 && r["data_bytes_end"].as_u64().expect("data size") >= db_end);
    // The bench's own site folder is gone unless --keep.
    let left: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("tmp")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
