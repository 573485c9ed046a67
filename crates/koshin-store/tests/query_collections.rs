//! Query collections in the store: rules with a limiting, included and excluded collection
//! evaluate as documented; a client whose state or inventory changes is re-judged by the
//! incremental pass; every version of the rules is kept and a rollback restores the earlier
//! membership; rules that would read themselves are refused.

use std::collections::BTreeMap;

use koshin_domain::collections::Rules;
use koshin_store::{AuditEntry, CollectionStore, InventoryStore, SqliteStore};
use koshin_wire::InventoryReport;
use rusqlite::Connection;

const HELLO: &str = "11111111-1111-5111-8111-111111111111";

fn entry(action: &str) -> AuditEntry {
    AuditEntry {
        time_ms: 1_000,
        actor: "root".into(),
        role: "Full Administrator".into(),
        action: action.into(),
        target: String::new(),
        detail: String::new(),
        source: "127.0.0.1".into(),
    }
}

fn site() -> (tempfile::TempDir, SqliteStore, Connection) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("site.db");
    let store = SqliteStore::open(&path).expect("open");
    let conn = Connection::open(&path).expect("open raw");
    conn.execute_batch(&format!(
        "INSERT INTO update_sources(id, content_version) VALUES ('src', 1);
         INSERT INTO content_versions(version, token, created_ms) VALUES (1, 't1', 0);
         INSERT INTO updates(id, revision, metadata_hash, product, classification, title, description, vendor, article_id, source, version, released_ms, revised_ms, first_synced_ms, content_version, added_cv, ukey)
         VALUES ('{HELLO}', 1, 'h', 'Debian 12', 'Updates', 'hello 2.10-4', '', 'Debian', 'a1', 's', '1', 0, 0, 0, 1, 1, 1);
         INSERT INTO clients(id, client_id, name, os, os_release, architecture, site, agent_version, credential_sha256, enrolled_ms, scanned_cv)
         VALUES (1, 'c1', 'web-1', 'Debian', '12', 'amd64', 'CS1', 'x', 'k1', 0, 1),
                (2, 'c2', 'web-2', 'Debian', '12', 'amd64', 'CS1', 'x', 'k2', 0, 1),
                (3, 'c3', 'db-1', 'Debian', '12', 'amd64', 'CS1', 'x', 'k3', 0, 1);
         INSERT INTO update_states(client, ukey, state, restart_pending, revision, time_ms)
         SELECT c, ukey, 1, 0, 1, 10 FROM updates, (SELECT 1 AS c UNION ALL SELECT 2 UNION ALL SELECT 3);"
    ))
    .expect("seed the site");
    for (client, chassis, hello) in [
        (1, "server", "2.10-3"),
        (2, "desktop", "2.10-3"),
        (3, "server", "2.10-4"),
    ] {
        let report = InventoryReport {
            hash: format!("h{client}"),
            base: None,
            properties: BTreeMap::from([("chassis".to_string(), vec![chassis.to_string()])]),
            removed_properties: vec![],
            packages: BTreeMap::from([("hello:amd64".to_string(), hello.to_string())]),
            removed_packages: vec![],
            collected_ms: 5,
        };
        store
            .store_inventory(client, &report, 5)
            .expect("inventory");
    }
    (dir, store, conn)
}

fn members(store: &SqliteStore, name: &str) -> Vec<(String, String)> {
    let (_, m) = store
        .collection(name, &koshin_domain::Scope::All)
        .expect("read")
        .expect("exists");
    m.into_iter().map(|m| (m.name, m.via)).collect()
}

fn rules(query: &str) -> Rules {
    Rules {
        query: Some(query.into()),
        ..Rules::default()
    }
}

#[test]
fn query_rules_limits_includes_and_excludes_evaluate_and_follow_state_changes() {
    let (_dir, store, conn) = site();
    let missing = store
        .create_collection(
            "CS1",
            "Missing hello",
            "",
            &rules("required(\"hello 2.10-4\")"),
            &entry("create"),
        )
        .expect("create");
    assert_eq!(missing.version, 1);
    assert_eq!(missing.members, 3);
    let servers = store
        .create_collection(
            "CS1",
            "Servers",
            "",
            &rules("chassis = server"),
            &entry("create"),
        )
        .expect("create");
    assert_eq!(
        members(&store, "Servers"),
        vec![
            ("db-1".into(), "query".into()),
            ("web-1".into(), "query".into())
        ]
    );
    // Servers missing hello, limited to Servers, with web-2 included by hand… which the
    // limit keeps out, and db-1 excluded through a direct-member collection.
    store
        .create_collection("CS1", "Keep out", "", &Rules::default(), &entry("create"))
        .expect("create");
    store
        .change_members(
            "Keep out",
            &["db-1".into()],
            &[],
            &koshin_domain::Scope::All,
            &entry("add"),
        )
        .expect("add");
    let old = store
        .create_collection(
            "CS1",
            "Servers missing hello",
            "",
            &Rules {
                query: Some("installed(hello) < \"2.10-4\"".into()),
                limiting: Some(servers.name.clone()),
                includes: vec![],
                excludes: vec![],
            },
            &entry("create"),
        )
        .expect("create");
    assert_eq!(old.rules.limiting.as_deref(), Some(servers.id.as_str()));
    assert_eq!(
        members(&store, "Servers missing hello"),
        vec![("web-1".into(), "query".into())]
    );

    // Version 2 widens it: every server, less Keep out.
    let v2 = store
        .set_collection_rules(
            "Servers missing hello",
            &Rules {
                query: None,
                limiting: Some("Servers".into()),
                includes: vec!["Missing hello".into()],
                excludes: vec!["Keep out".into()],
            },
            "phase 2",
            &entry("set rules"),
        )
        .expect("set");
    assert_eq!(v2.version, 2);
    assert_eq!(
        members(&store, "Servers missing hello"),
        vec![("web-1".into(), "include".into())]
    );

    // Rules that read themselves, through another collection, are refused.
    let err = store
        .set_collection_rules(
            "Servers",
            &Rules {
                limiting: Some("Servers missing hello".into()),
                ..rules("chassis = server")
            },
            "",
            &entry("set rules"),
        )
        .expect_err("a cycle");
    assert!(err.to_string().contains("read itself"), "{err}");

    // The clients marked as they enrolled and sent inventory are judged once.
    let e = store
        .evaluate_collections(None, false, 1_500)
        .expect("first pass");
    assert_eq!((e.clients, e.joined, e.left), (3, 0, 0));

    // web-1 installs hello: its state changes, and the incremental pass takes it out of
    // Missing hello, and with it out of what includes it.
    conn.execute("UPDATE update_states SET state = 3 WHERE client = 1", [])
        .expect("installed");
    let e = store
        .evaluate_collections(None, false, 2_000)
        .expect("incremental");
    assert_eq!(e.clients, 1);
    assert!(e.left >= 2, "{e:?}");
    assert_eq!(
        members(&store, "Missing hello"),
        vec![
            ("db-1".into(), "query".into()),
            ("web-2".into(), "query".into())
        ]
    );
    assert!(members(&store, "Servers missing hello").is_empty());
    // Nothing marked: nothing judged.
    let e = store
        .evaluate_collections(None, false, 3_000)
        .expect("again");
    assert_eq!(e.clients, 0);

    // History keeps both versions; a rollback saves version 1 again as version 3.
    let history = store
        .collection_history("Servers missing hello", &koshin_domain::Scope::All)
        .expect("history");
    assert_eq!(history.len(), 2);
    assert!(history[1].current && history[1].note == "phase 2");
    let back = store
        .rollback_collection("Servers missing hello", 1, &entry("rollback"))
        .expect("rollback");
    assert_eq!(back.version, 3);
    assert_eq!(back.rules, old.rules);
    // web-1 has hello 2.10-3 in its inventory still: version 1's query holds it again.
    assert_eq!(
        members(&store, "Servers missing hello"),
        vec![("web-1".into(), "query".into())]
    );
    let history = store
        .collection_history("Servers missing hello", &koshin_domain::Scope::All)
        .expect("history");
    assert_eq!(history.len(), 3);
    assert_eq!(history[2].note, "rollback to version 1");

    // A collection read by another cannot be deleted.
    let err = store
        .delete_collection("Servers", &entry("delete"))
        .expect_err("Servers limits another");
    assert!(err.to_string().contains("read Servers"), "{err}");
    store
        .delete_collection("Keep out", &entry("delete"))
        .expect("version 3 reads it no more");
}
