//! Migration 4 keeps every state a site had: a database at schema 3 with clients, states
//! and scans opens at the current schema with the same states, keyed by integers, the
//! counters filled, and each client's coverage taken from its last successful scan.

use koshin_domain::Scope;
use koshin_store::migrations::MIGRATIONS;
use koshin_store::{ReportStore, SqliteStore};
use rusqlite::Connection;

const U1: &str = "11111111-1111-5111-8111-111111111111";
const U2: &str = "22222222-2222-5222-8222-222222222222";
const U3: &str = "33333333-3333-5333-8333-333333333333";

#[test]
fn schema_3_states_survive_the_move_to_counters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("site.db");
    {
        let mut conn = Connection::open(&path).expect("open");
        for (i, m) in MIGRATIONS.iter().take(3).enumerate() {
            let tx = conn.transaction().expect("tx");
            tx.execute_batch(m).expect("migration");
            tx.pragma_update(None, "user_version", (i + 1) as i64)
                .expect("version");
            tx.commit().expect("commit");
        }
        conn.execute_batch(&format!(
            "INSERT INTO update_sources(id, content_version) VALUES ('src', 2);
             INSERT INTO content_versions(version, token, created_ms) VALUES (1, 't1', 0), (2, 't2', 0);
             INSERT INTO updates(id, revision, metadata_hash, product, classification, title, description, vendor, article_id, source, version, released_ms, revised_ms, first_synced_ms, content_version)
             VALUES ('{U1}', 1, 'h', 'Debian 12', 'Updates', 'one', '', 'Debian', 'a1', 's', '1', 0, 0, 0, 1),
                    ('{U2}', 1, 'h', 'Debian 12', 'Updates', 'two', '', 'Debian', 'a2', 's', '1', 0, 0, 0, 1),
                    ('{U3}', 1, 'h', 'Debian 12', 'Security Updates', 'three', '', 'Debian', 'a3', 's', '1', 0, 0, 0, 2);
             INSERT INTO clients(id, client_id, name, os, os_release, architecture, site, agent_version, credential_sha256, enrolled_ms)
             VALUES (1, 'c1', 'pc-1', 'Debian', '12', 'amd64', 'CS1', 'x', 'k1', 0),
                    (2, 'c2', 'pc-2', 'Debian', '12', 'amd64', 'CS1', 'x', 'k2', 0),
                    (3, 'c3', 'pc-3', 'Debian', '12', 'amd64', 'CS1', 'x', 'k3', 0);
             INSERT INTO update_states(client, update_id, state, restart_pending, revision, time_ms)
             VALUES (1, '{U1}', 1, 0, 1, 10), (1, '{U2}', 3, 0, 1, 10), (1, '{U3}', 2, 0, 1, 10),
                    (2, '{U1}', 3, 1, 1, 20), (2, '{U2}', 2, 0, 1, 20);
             INSERT INTO scans(client, scan_id, trigger, kind, online, started_ms, duration_ms, result, content_version, required, installed, not_required)
             VALUES (1, 's1', 'schedule', 'k', 1, 5, 1, 'succeeded', 2, 1, 1, 1),
                    (2, 's2', 'schedule', 'k', 1, 5, 1, 'succeeded', 1, 0, 1, 1),
                    (2, 's3', 'schedule', 'k', 1, 9, 1, 'failed: x', 2, 0, 0, 0);"
        ))
        .expect("schema 3 data");
    }
    let store = SqliteStore::open(&path).expect("migrates");
    assert_eq!(
        store.schema_version().expect("version"),
        MIGRATIONS.len() as i64
    );

    let (_, rows) = store
        .run_report(
            "SELECT computer, update_id, state, restart_pending FROM v_update_states ORDER BY computer, update_id",
            &[],
            &Scope::All,
        )
        .expect("states");
    let got: Vec<(String, String, String, i64)> = rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().into(),
                r[1].as_str().unwrap().into(),
                r[2].as_str().unwrap().into(),
                r[3].as_i64().unwrap(),
            )
        })
        .collect();
    let want = vec![
        ("pc-1".into(), U1.into(), "required".into(), 0),
        ("pc-1".into(), U2.into(), "installed".into(), 0),
        ("pc-1".into(), U3.into(), "not_required".into(), 0),
        ("pc-2".into(), U1.into(), "installed".into(), 1),
        ("pc-2".into(), U2.into(), "not_required".into(), 0),
    ];
    assert_eq!(got, want);

    // pc-1 scanned catalog 2 (covers all three), pc-2 catalog 1 (its later scan failed:
    // covers one and two), pc-3 never: Unknown everywhere.
    let (_, rows) = store
        .run_report(
            "SELECT title, required, installed, not_required, unknown FROM v_update_compliance ORDER BY title",
            &[],
            &Scope::All,
        )
        .expect("counts");
    let got: Vec<(String, [i64; 4])> = rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().into(),
                [1, 2, 3, 4].map(|i| r[i].as_i64().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("one".into(), [1, 1, 0, 1]),
            ("three".into(), [0, 0, 1, 2]),
            ("two".into(), [0, 1, 1, 1]),
        ]
    );
}
