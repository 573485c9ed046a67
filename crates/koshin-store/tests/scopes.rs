//! An administrator scoped to a collection sees only its clients — in the client list, one
//! client, an update's "required by", status messages and every report — and a report
//! cannot step around the scope by naming the site's own tables or views.

use koshin_domain::Scope;
use koshin_store::{
    AuditEntry, CatalogStore, ClientStore, CollectionStore, Paging, PolicyStore, ReportStore,
    SqliteStore, StatusStore,
};
use koshin_wire::StatusQuery;
use rusqlite::Connection;

const U1: &str = "11111111-1111-5111-8111-111111111111";
const U2: &str = "22222222-2222-5222-8222-222222222222";

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

fn site() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("site.db");
    let store = SqliteStore::open(&path).expect("open");
    let conn = Connection::open(&path).expect("open raw");
    conn.execute_batch(&format!(
        "INSERT INTO update_sources(id, content_version) VALUES ('src', 1);
         INSERT INTO content_versions(version, token, created_ms) VALUES (1, 't1', 0);
         INSERT INTO updates(id, revision, metadata_hash, product, classification, title, description, vendor, article_id, source, version, released_ms, revised_ms, first_synced_ms, content_version, added_cv, ukey)
         VALUES ('{U1}', 1, 'h', 'Debian 12', 'Updates', 'one', '', 'Debian', 'a1', 's', '1', 0, 0, 0, 1, 1, 1),
                ('{U2}', 1, 'h', 'Debian 12', 'Security Updates', 'two', '', 'Debian', 'a2', 's', '1', 0, 0, 0, 1, 1, 2);
         INSERT INTO clients(id, client_id, name, os, os_release, architecture, site, agent_version, credential_sha256, enrolled_ms, scanned_cv)
         VALUES (1, 'c1', 'web-1', 'Debian', '12', 'amd64', 'CS1', 'x', 'k1', 0, 1),
                (2, 'c2', 'web-2', 'Debian', '12', 'amd64', 'CS1', 'x', 'k2', 0, 1),
                (3, 'c3', 'db-1', 'Debian', '12', 'amd64', 'CS1', 'x', 'k3', 0, 1);
         INSERT INTO update_states(client, ukey, state, restart_pending, revision, time_ms)
         SELECT c, ukey, st, 0, 1, 10 FROM updates,
           (SELECT 1 AS c, 1 AS st UNION ALL SELECT 2, 3 UNION ALL SELECT 3, 1) WHERE id = '{U1}';
         INSERT INTO admins(name, role, password_hash, created_ms, created_by)
         VALUES ('root', 'Full Administrator', '$argon2id$secret', 0, 'setup');
         INSERT INTO status_messages(message_id, severity, level, source, component, system, site, process_id, thread_id, time_ms, insertion_strings, attributes)
         VALUES (6702, 'I', 'M', 'koshin Server', 'SMS_WSUS_SYNC_MANAGER', 'site-server', 'CS1', 1, 1, 5, '[]', '{{}}'),
                (11250, 'I', 'M', 'koshin Client', 'Software Updates Agent', 'web-1', 'CS1', 1, 1, 6, '[]', '{{}}'),
                (11250, 'I', 'M', 'koshin Client', 'Software Updates Agent', 'db-1', 'CS1', 1, 1, 7, '[]', '{{}}');"
    ))
    .expect("seed the site");
    (dir, store)
}

fn column(store: &SqliteStore, sql: &str, scope: &Scope) -> Vec<serde_json::Value> {
    let (_, rows) = store.run_report(sql, &[], scope).expect(sql);
    rows.into_iter().map(|mut r| r.remove(0)).collect()
}

#[test]
fn a_scoped_administrator_sees_only_their_collections_clients() {
    let (_dir, store) = site();
    let web = store
        .create_collection(
            "CS1",
            "Web servers",
            "",
            &koshin_domain::collections::Rules::default(),
            &entry("create collection"),
        )
        .expect("create");
    assert_eq!(web.id, "CS100002");
    let (added, _) = store
        .change_members(
            "Web servers",
            &["web-1".into(), "c2".into()],
            &[],
            &Scope::All,
            &entry("add members"),
        )
        .expect("add members");
    assert_eq!(added, 2);
    let scope = Scope::of(std::slice::from_ref(&web.id));

    let names = |s: &Scope| -> Vec<String> {
        store
            .list_clients(s)
            .expect("list")
            .into_iter()
            .map(|c| c.name)
            .collect()
    };
    assert_eq!(names(&Scope::All), ["db-1", "web-1", "web-2"]);
    assert_eq!(names(&scope), ["web-1", "web-2"]);
    assert!(store.get_client("db-1", &scope).expect("get").is_none());
    assert!(store.get_client("web-1", &scope).expect("get").is_some());

    let required_by = |s: &Scope| -> Vec<String> {
        store
            .get_update(U1, s)
            .expect("update")
            .expect("exists")
            .required_by
            .into_iter()
            .map(|c| c.name)
            .collect()
    };
    assert_eq!(required_by(&Scope::All), ["db-1", "web-1"]);
    assert_eq!(required_by(&scope), ["web-1"]);
    // One page at a time, in the same order, with how many in all (inside the scope).
    let page = |s: &Scope, offset: u64, limit: u64| -> (Vec<String>, u64) {
        let (u, total) = store
            .get_update_page(
                U1,
                s,
                Paging {
                    offset,
                    limit: Some(limit),
                },
            )
            .expect("update")
            .expect("exists");
        (u.required_by.into_iter().map(|c| c.name).collect(), total)
    };
    assert_eq!(page(&Scope::All, 0, 1), (vec!["db-1".to_string()], 2));
    assert_eq!(page(&Scope::All, 1, 5), (vec!["web-1".to_string()], 2));
    assert_eq!(page(&scope, 0, 5), (vec!["web-1".to_string()], 1));
    assert_eq!(page(&scope, 1, 5), (vec![], 1));
    let members = |key: &str, s: &Scope, offset: u64| -> (Vec<String>, u64, i64) {
        let (c, m, total) = store
            .collection_page(
                key,
                s,
                Paging {
                    offset,
                    limit: Some(1),
                },
            )
            .expect("collection")
            .expect("visible");
        (m.into_iter().map(|m| m.name).collect(), total, c.members)
    };
    assert_eq!(
        members("Web servers", &Scope::All, 1),
        (vec!["web-2".to_string()], 2, 2)
    );
    assert_eq!(
        members("Web servers", &scope, 0),
        (vec!["web-1".to_string()], 2, 2)
    );
    assert_eq!(
        members("All Systems", &Scope::All, 0),
        (vec!["db-1".to_string()], 3, 3)
    );

    let systems = |s: &Scope| -> Vec<String> {
        store
            .query_status(&StatusQuery::default(), s)
            .expect("status")
            .into_iter()
            .map(|m| m.system)
            .collect()
    };
    assert_eq!(systems(&Scope::All), ["site-server", "web-1", "db-1"]);
    assert_eq!(systems(&scope), ["site-server", "web-1"]);

    // Reports: the same names, narrowed; counts recomputed over the scope.
    assert_eq!(
        column(
            &store,
            "SELECT computer FROM v_clients ORDER BY computer",
            &scope
        ),
        ["web-1", "web-2"]
    );
    assert_eq!(
        column(&store, "SELECT name FROM clients ORDER BY name", &scope),
        ["web-1", "web-2"]
    );
    let counts = |s: &Scope| {
        let (_, rows) = store
            .run_report(
                &format!(
                    "SELECT required, installed, unknown FROM v_update_compliance WHERE update_id = '{U1}'"
                ),
                &[],
                s,
            )
            .expect("counts");
        rows[0].clone()
    };
    assert_eq!(counts(&Scope::All), [2, 1, 0]);
    assert_eq!(counts(&scope), [1, 1, 0]);
    assert_eq!(
        column(
            &store,
            "SELECT DISTINCT computer FROM v_compliance ORDER BY computer",
            &scope
        ),
        ["web-1", "web-2"]
    );
    assert_eq!(
        column(
            &store,
            "SELECT system FROM v_status_messages ORDER BY time_ms",
            &scope
        ),
        ["site-server", "web-1"]
    );
    // COUNT(*) reads no column; SQLite then names no schema, and the name resolves to the
    // scoped copy.
    assert_eq!(
        column(&store, "SELECT COUNT(*) FROM v_clients", &scope),
        [2]
    );
    assert_eq!(column(&store, "SELECT COUNT(*) FROM clients", &scope), [2]);
    // The catalog is not a client's data: it reads the same.
    assert_eq!(
        column(&store, "SELECT COUNT(*) FROM v_updates", &scope),
        [2]
    );

    // No way around: the main schema's client tables and views, and secrets.
    for sql in [
        "SELECT name FROM main.clients",
        "SELECT COUNT(*) FROM main.clients",
        "SELECT COUNT(*) FROM admins",
        "SELECT computer FROM main.v_clients",
        "SELECT client FROM main.update_states",
        "SELECT system FROM main.status_messages",
        "SELECT name FROM admins",
        "SELECT password_hash FROM admins",
        "SELECT credential_sha256 FROM clients",
    ] {
        let e = store.run_report(sql, &[], &scope).expect_err(sql);
        assert!(e.to_string().contains("may only read"), "{sql}: {e}");
    }
    // Unscoped, the password hash is a secret too; the rest of admins is not.
    assert!(
        store
            .run_report("SELECT password_hash FROM admins", &[], &Scope::All)
            .is_err()
    );
    assert_eq!(
        column(&store, "SELECT name FROM admins", &Scope::All),
        ["root"]
    );

    // After a scoped run the connection is whole again for everyone else.
    assert_eq!(
        column(
            &store,
            "SELECT computer FROM v_clients ORDER BY computer",
            &Scope::All
        ),
        ["db-1", "web-1", "web-2"]
    );
    assert!(
        store
            .run_report(
                "SELECT 1 FROM sqlite_master; DELETE FROM clients",
                &[],
                &Scope::All
            )
            .is_err()
    );

    // Collections: a scoped administrator lists theirs; a scoped one cannot add a client
    // outside their scope; All Systems cannot be changed; a scope's collection cannot go.
    let listed: Vec<String> = store
        .list_collections(&scope)
        .expect("collections")
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(listed, ["Web servers"]);
    let all = store.list_collections(&Scope::All).expect("collections");
    assert_eq!(
        all.iter()
            .map(|c| (c.name.as_str(), c.members))
            .collect::<Vec<_>>(),
        [("All Systems", 3), ("Web servers", 2)]
    );
    let e = store
        .change_members("Web servers", &["db-1".into()], &[], &scope, &entry("add"))
        .expect_err("outside the scope");
    assert!(e.to_string().contains("in your scope"), "{e}");
    assert!(
        store
            .change_members(
                "All Systems",
                &["db-1".into()],
                &[],
                &Scope::All,
                &entry("add")
            )
            .is_err()
    );
    store
        .set_admin_scopes("root", std::slice::from_ref(&web.id), &entry("scope"))
        .expect("scope root");
    let e = store
        .delete_collection("Web servers", &entry("delete"))
        .expect_err("in use as a scope");
    assert!(e.to_string().contains("scope of administrator root"), "{e}");
}

/// v_collection_members holds All Systems (every client, though it has no member rows) and
/// is narrowed for a scoped administrator like every view; the machine policy holds no
/// client's data, so a scoped report may read it; an optional parameter left out is NULL,
/// a required one left out is refused.
#[test]
fn collection_members_view_policy_and_optional_parameters() {
    let (_dir, store) = site();
    let web = store
        .create_collection(
            "CS1",
            "Web servers",
            "",
            &koshin_domain::collections::Rules::default(),
            &entry("create collection"),
        )
        .expect("create");
    store
        .change_members(
            "Web servers",
            &["web-1".into()],
            &[],
            &Scope::All,
            &entry("add members"),
        )
        .expect("add members");
    let scope = Scope::of(std::slice::from_ref(&web.id));
    let members = |s: &Scope| -> Vec<serde_json::Value> {
        let (columns, rows) = store
            .run_report(
                "SELECT * FROM v_collection_members ORDER BY collection_id, computer",
                &[],
                s,
            )
            .expect("members");
        assert_eq!(
            columns,
            [
                "collection_id",
                "collection",
                "client_key",
                "computer",
                "client_id"
            ]
        );
        rows.into_iter()
            .map(|r| serde_json::json!([r[0], r[3]]))
            .collect()
    };
    assert_eq!(
        members(&Scope::All),
        [
            serde_json::json!(["CS100002", "web-1"]),
            serde_json::json!(["SMS00001", "db-1"]),
            serde_json::json!(["SMS00001", "web-1"]),
            serde_json::json!(["SMS00001", "web-2"]),
        ]
    );
    assert_eq!(
        members(&scope),
        [
            serde_json::json!(["CS100002", "web-1"]),
            serde_json::json!(["SMS00001", "web-1"]),
        ]
    );

    store
        .put_machine_policy(&serde_json::json!({"scan_interval_minutes": 60}), 0)
        .expect("policy");
    assert_eq!(
        column(
            &store,
            "SELECT json_extract(body, '$.scan_interval_minutes') FROM machine_policy",
            &scope
        ),
        [60]
    );

    let sql = "SELECT COUNT(*) FROM v_clients WHERE :c IS NULL OR computer = :c";
    let optional = ["c".to_string()];
    let count = |params: &[(String, String)]| {
        store
            .run_report_optional(sql, params, &optional, &Scope::All)
            .expect("runs")
            .1[0][0]
            .clone()
    };
    assert_eq!(count(&[]), 3);
    assert_eq!(count(&[("c".into(), "db-1".into())]), 1);
    let e = store
        .run_report(sql, &[], &Scope::All)
        .expect_err("a required parameter left out");
    assert!(e.to_string().contains("'c'"), "{e}");
}
