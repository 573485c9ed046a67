//! State-message ingestion under concurrency: batches that arrive together are stored in
//! one transaction (group commit), yet each is answered only once durable, stored once
//! however often and however concurrently it is sent, and a batch that fails fails alone.

use std::sync::Arc;

use koshin_store::{ClientIdentity, ClientStore, SqliteStore};
use koshin_wire::{StateBatch, StateMessage};
use rusqlite::Connection;

const UPDATES: usize = 40;
const CLIENTS: i64 = 12;

fn update_id(i: usize) -> String {
    format!("{i:08}-0000-5000-8000-000000000000")
}

fn site() -> (tempfile::TempDir, Arc<SqliteStore>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("site.db");
    let store = SqliteStore::open(&path).expect("open");
    let conn = Connection::open(&path).expect("open raw");
    conn.execute_batch(
        "INSERT INTO update_sources(id, content_version) VALUES ('src', 1);
         INSERT INTO content_versions(version, token, created_ms) VALUES (1, 't1', 0);",
    )
    .expect("seed");
    for i in 0..UPDATES {
        conn.execute(
            "INSERT INTO updates(id, revision, metadata_hash, product, classification, title, description, vendor, article_id, source, version, released_ms, revised_ms, first_synced_ms, content_version, added_cv, ukey)
             VALUES (?1, 1, 'h', 'Debian 12', 'Updates', ?2, '', 'Debian', ?2, 's', '1', 0, 0, 0, 1, 1, ?3)",
            rusqlite::params![update_id(i), format!("u{i}"), i as i64 + 1],
        )
        .expect("update");
    }
    for c in 1..=CLIENTS {
        conn.execute(
            "INSERT INTO clients(id, client_id, name, os, os_release, architecture, site, agent_version, credential_sha256, enrolled_ms)
             VALUES (?1, ?2, ?3, 'Debian', '12', 'amd64', 'CS1', 'x', ?2, 0)",
            rusqlite::params![c, format!("c{c}"), format!("host-{c}")],
        )
        .expect("client");
    }
    (dir, Arc::new(store))
}

fn who(c: i64) -> ClientIdentity {
    ClientIdentity {
        rowid: c,
        client_id: format!("c{c}"),
        name: format!("host-{c}"),
        approval: "approved".into(),
    }
}

/// Client `c`'s batch number `n`: every update, Required when `n` is even.
fn batch(c: i64, n: u32) -> StateBatch {
    let time = jiff::Timestamp::from_second(1_000 + i64::from(n)).expect("time");
    StateBatch {
        batch_id: format!("c{c}-b{n}"),
        client_id: format!("c{c}"),
        messages: (0..UPDATES)
            .map(|i| StateMessage {
                update_id: update_id(i),
                revision: 1,
                state: if n.is_multiple_of(2) {
                    "required"
                } else {
                    "installed"
                }
                .into(),
                restart_pending: false,
                time,
                scan_id: format!("s{n}"),
            })
            .collect(),
        scans: Vec::new(),
    }
}

fn count(path: &std::path::Path, sql: &str) -> i64 {
    Connection::open(path)
        .expect("open")
        .query_row(sql, [], |r| r.get(0))
        .expect(sql)
}

#[test]
fn concurrent_batches_are_stored_once_each_and_the_counters_agree() {
    let (dir, store) = site();
    let path = dir.path().join("site.db");
    const BATCHES: u32 = 6;
    // Every client sends its batches in order, each twice at once from two threads (an
    // answer lost and the batch sent again while the first is still being stored).
    let threads: Vec<_> = (1..=CLIENTS)
        .flat_map(|c| [c, c])
        .map(|c| {
            let store = store.clone();
            std::thread::spawn(move || {
                (0..BATCHES)
                    .map(|n| {
                        store
                            .ingest_states(&who(c), &batch(c, n), 5_000)
                            .expect("stored")
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let acks: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    let new: Vec<_> = acks.iter().filter(|a| !a.duplicate).collect();
    assert_eq!(
        new.len() as i64,
        CLIENTS * i64::from(BATCHES),
        "each batch stored once"
    );
    assert!(new.iter().all(|a| a.stored == UPDATES as u64));
    assert!(acks.iter().filter(|a| a.duplicate).all(|a| a.stored == 0));
    let messages = CLIENTS * i64::from(BATCHES) * UPDATES as i64;
    assert_eq!(count(&path, "SELECT COUNT(*) FROM state_history"), messages);
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM state_batches"),
        CLIENTS * i64::from(BATCHES)
    );
    // The last batch of each client (odd: Installed) is its current state everywhere.
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM update_states WHERE state = 3"),
        CLIENTS * UPDATES as i64
    );
    assert_eq!(
        count(
            &path,
            &format!(
                "SELECT COUNT(*) FROM update_summary WHERE installed = {CLIENTS} AND required = 0"
            )
        ),
        UPDATES as i64
    );
}

#[test]
fn a_batch_that_fails_inside_a_group_fails_alone() {
    let (dir, store) = site();
    let path = dir.path().join("site.db");
    let raw = Connection::open(&path).expect("open raw");
    raw.execute_batch(
        "CREATE TRIGGER poison BEFORE INSERT ON state_batches WHEN NEW.batch_id = 'c3-b1'
         BEGIN SELECT RAISE(ABORT, 'poisoned batch'); END;",
    )
    .expect("trigger");
    // Hold the database's write lock so that the batches queue up behind the first one
    // and are stored together when it is released.
    raw.execute_batch("BEGIN IMMEDIATE; INSERT INTO schedules(name, at_ms) VALUES ('hold', 0);")
        .expect("hold the write lock");
    let send = |c: i64, n: u32| {
        let store = store.clone();
        std::thread::spawn(move || store.ingest_states(&who(c), &batch(c, n), 5_000))
    };
    let first = send(1, 1);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let rest: Vec<_> = [(2, 1), (3, 1), (4, 1), (5, 1)]
        .into_iter()
        .map(|(c, n)| (c, send(c, n)))
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    raw.execute_batch("COMMIT;").expect("release");
    assert!(first.join().expect("thread").is_ok());
    for (c, t) in rest {
        let answer = t.join().expect("thread");
        if c == 3 {
            let e = answer.expect_err("the poisoned batch fails");
            assert!(e.to_string().contains("poisoned batch"), "{e}");
        } else {
            assert_eq!(answer.expect("stored").stored, UPDATES as u64);
        }
    }
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM state_batches"),
        4,
        "every batch but the poisoned one"
    );
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM state_history WHERE client = 3"),
        0
    );
    assert_eq!(
        count(&path, "SELECT COUNT(*) FROM state_history"),
        4 * UPDATES as i64
    );
}

#[test]
fn an_update_unknown_at_first_is_stored_once_the_catalog_has_it() {
    let (dir, store) = site();
    let path = dir.path().join("site.db");
    let late = "99999999-0000-5000-8000-000000000000";
    let mut b = batch(1, 0);
    b.messages[0].update_id = late.into();
    let ack = store.ingest_states(&who(1), &b, 5_000).expect("stored");
    assert_eq!(ack.unknown_updates, vec![late.to_string()]);
    assert_eq!(ack.stored, UPDATES as u64 - 1);
    Connection::open(&path)
        .expect("open raw")
        .execute(
            "INSERT INTO updates(id, revision, metadata_hash, product, classification, title, description, vendor, article_id, source, version, released_ms, revised_ms, first_synced_ms, content_version, added_cv, ukey)
             VALUES (?1, 1, 'h', 'Debian 12', 'Updates', 'late', '', 'Debian', 'late', 's', '1', 0, 0, 0, 1, 1, (SELECT MAX(ukey) + 1 FROM updates))",
            [late],
        )
        .expect("the update arrives");
    let mut b = batch(1, 2);
    b.messages[0].update_id = late.into();
    let ack = store.ingest_states(&who(1), &b, 5_000).expect("stored");
    assert!(ack.unknown_updates.is_empty());
    assert_eq!(
        count(
            &path,
            &format!(
                "SELECT COUNT(*) FROM update_states s JOIN updates u ON u.ukey = s.ukey WHERE u.id = '{late}'"
            )
        ),
        1
    );
}
