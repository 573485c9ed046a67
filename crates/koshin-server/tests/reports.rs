//! The inventory reports and the collection filter, run through the site's
//! reports API over a site whose clients sent inventory through the real store API:
//! `inventory-health` (P3) names each client's inventory and scan problems, with a day's
//! interval for servers and a week's for the rest; `owners-missing-approved-updates` (P23)
//! gives each server's last user and its missing approved updates;
//! `computers-by-chassis-and-os` counts computers, those without inventory as unknown; and
//! the distribution and compliance reports take an optional `collection`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use koshin_domain::Scope;
use koshin_domain::content::Priority;
use koshin_server::Site;
use koshin_server::init::{InitOptions, init_site};
use koshin_store::{AuditEntry, NewClient};
use koshin_wire::{InventoryReport, NewDeployment};
use serde_json::Value;
use tower::ServiceExt;

const U1: &str = "11111111-1111-5111-8111-111111111111";
const U2: &str = "22222222-2222-5222-8222-222222222222";
const U3: &str = "33333333-3333-5333-8333-333333333333";
const DAY_MS: i64 = 86_400_000;

fn audit(action: &str) -> AuditEntry {
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

struct Estate {
    _dir: tempfile::TempDir,
    site: Arc<Site>,
    /// The Laptops collection's id.
    laptops: String,
}

/// The properties an agent would send, as a whole inventory.
fn inventory(props: &[(&str, &str)]) -> InventoryReport {
    let mut properties = std::collections::BTreeMap::new();
    for (k, v) in props {
        properties
            .entry(k.to_string())
            .or_insert_with(Vec::new)
            .push(v.to_string());
    }
    InventoryReport {
        hash: format!("h-{}", props.len()),
        base: None,
        properties,
        removed_properties: Vec::new(),
        packages: [("hello:amd64".to_string(), "2.10-3".to_string())].into(),
        removed_packages: Vec::new(),
        collected_ms: 0,
    }
}

/// Five approved clients:
///
/// | computer | chassis | inventory | scan | states |
/// |---|---|---|---|---|
/// | srv-1 | server | now | now, succeeded | U1, U3 required; U2 installed |
/// | srv-2 | server | 3 days ago (overdue: a day plus a day) | failed | U1 (restart pending), U2 required |
/// | desk-1 | desktop | 3 days ago (within a week) | 10 days ago (overdue) | U1 required |
/// | lap-1 | portable | 9 days ago (overdue: a week plus a day) | now | U2 required |
/// | new-1 | — | never | never | — |
///
/// Collections: Web servers (srv-1, desk-1), Laptops (lap-1). Deployments: Old (U3,
/// disabled) and Patch (U1, U2) to All Systems, Web (U1) to Web servers. Patch failed on
/// srv-1 (E1), desk-1 (E2) and lap-1 (E3), in that order, and succeeded on srv-2.
fn estate() -> Estate {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    init_site(&InitOptions {
        code: "CS1".into(),
        data: data.clone(),
        upstreams: Vec::new(),
        listen: None,
        parent: None,
        secondary: false,
    })
    .expect("init");
    let site = Site::open(&data).expect("open");
    let store = &site.store;
    let now = jiff::Timestamp::now().as_millisecond();

    let db = rusqlite::Connection::open(data.join(koshin_server::init::DATABASE_FILE))
        .expect("open the site database");
    db.execute_batch(&format!(
        "INSERT OR IGNORE INTO update_sources(id, content_version) VALUES ('src', 1);
         INSERT OR IGNORE INTO content_versions(version, token, created_ms) VALUES (1, 't1', 0);
         INSERT INTO updates(id, revision, metadata_hash, product, classification, title, description, vendor, article_id, source, version, released_ms, revised_ms, first_synced_ms, content_version, added_cv, ukey)
         VALUES ('{U1}', 1, 'h', 'Debian 12', 'Security Updates', 'one', '', 'Debian', 'a1', 's', '1', 0, 0, 0, 1, 1, 1),
                ('{U2}', 1, 'h', 'Debian 12', 'Updates', 'two', '', 'Debian', 'a2', 's', '1', 0, 0, 0, 1, 1, 2),
                ('{U3}', 1, 'h', 'Debian 12', 'Updates', 'three', '', 'Debian', 'a3', 's', '1', 0, 0, 0, 1, 1, 3);
         INSERT INTO update_binaries(update_id, name, architecture, version, filename, size, sha256)
         SELECT id, 'pkg-' || title, 'amd64', '1', 'pool/main/pkg-' || title || '_1_amd64.deb', 1, printf('%064d', revision)
         FROM updates;"
    ))
    .expect("the catalog");

    let mut keys = std::collections::BTreeMap::new();
    for name in ["srv-1", "srv-2", "desk-1", "lap-1", "new-1"] {
        let c = store
            .enroll_client(
                &NewClient {
                    client_id: format!("id-{name}"),
                    name: name.into(),
                    os: "Debian".into(),
                    os_release: "12".into(),
                    architecture: "amd64".into(),
                    site: "CS1".into(),
                    agent_version: "test".into(),
                },
                &format!("credential-{name}"),
                true,
                None,
                now,
            )
            .expect("enroll");
        keys.insert(name, c.rowid);
    }
    let key = |name: &str| keys[name];

    // Inventory, through the store as the site's inventory endpoint stores it, received
    // at the times the table above says.
    let bookworm = "Debian GNU/Linux 12 (bookworm)";
    for (name, age_days, props) in [
        (
            "srv-1",
            0,
            vec![
                ("chassis", "server"),
                ("os.pretty_name", bookworm),
                ("os.id", "debian"),
                ("os.release", "12"),
                ("last_user", "alice"),
            ],
        ),
        (
            "srv-2",
            3,
            vec![
                ("chassis", "server"),
                ("os.pretty_name", bookworm),
                ("last_user", "bob"),
            ],
        ),
        (
            "desk-1",
            3,
            vec![
                ("chassis", "desktop"),
                ("os.pretty_name", bookworm),
                ("last_user", "carol"),
            ],
        ),
        (
            "lap-1",
            9,
            vec![
                ("chassis", "portable"),
                ("os.id", "ubuntu"),
                ("os.release", "24.04"),
            ],
        ),
    ] {
        store
            .store_inventory(key(name), &inventory(&props), now - age_days * DAY_MS)
            .expect("store inventory");
    }

    // Scans and states, as a client's scan record and state messages leave them.
    let scanned = |name: &str, age_days: i64, result: &str| {
        db.execute(
            "UPDATE clients SET last_scan_ms = ?2, last_scan_json = json_object('result', ?3), scanned_cv = 1 WHERE id = ?1",
            rusqlite::params![key(name), now - age_days * DAY_MS, result],
        )
        .expect("scan");
    };
    scanned("srv-1", 0, "succeeded");
    scanned("srv-2", 0, "failed: apt-get update exited 100");
    scanned("desk-1", 10, "succeeded");
    scanned("lap-1", 0, "succeeded");
    for (name, update, state, restart) in [
        ("srv-1", U1, 1, 0),
        ("srv-1", U2, 3, 0),
        ("srv-1", U3, 1, 0),
        ("srv-2", U1, 1, 1),
        ("srv-2", U2, 1, 0),
        ("desk-1", U1, 1, 0),
        ("lap-1", U2, 1, 0),
    ] {
        db.execute(
            "INSERT INTO update_states(client, ukey, state, restart_pending, revision, time_ms)
             SELECT ?1, ukey, ?3, ?4, 1, 10 FROM updates WHERE id = ?2",
            rusqlite::params![key(name), update, state, restart],
        )
        .expect("state");
    }

    let web = store
        .create_collection(
            "CS1",
            "Web servers",
            "",
            &koshin_domain::collections::Rules::default(),
            &audit("create collection"),
        )
        .expect("collection");
    assert_eq!(web.id, "CS100002");
    let laptops = store
        .create_collection(
            "CS1",
            "Laptops",
            "",
            &koshin_domain::collections::Rules::default(),
            &audit("create collection"),
        )
        .expect("collection");
    store
        .change_members(
            "Web servers",
            &["srv-1".into(), "desk-1".into()],
            &[],
            &Scope::All,
            &audit("members"),
        )
        .expect("members");
    store
        .change_members(
            "Laptops",
            &["lap-1".into()],
            &[],
            &Scope::All,
            &audit("members"),
        )
        .expect("members");

    for (group, updates) in [
        ("G-old", &[U3][..]),
        ("G-patch", &[U1, U2]),
        ("G-web", &[U1]),
    ] {
        let updates: Vec<String> = updates.iter().map(|u| u.to_string()).collect();
        store
            .create_update_group(group, "", &updates, &audit("group"))
            .expect("group");
    }
    let mut ids = std::collections::BTreeMap::new();
    for (name, group, collection) in [
        ("Old", "G-old", "All Systems"),
        ("Patch", "G-patch", "All Systems"),
        ("Web", "G-web", "Web servers"),
    ] {
        let d = store
            .create_deployment(
                "CS1",
                &NewDeployment {
                    program: None,
                    name: name.into(),
                    update_group: group.into(),
                    collection: collection.into(),
                    available: None,
                    deadline: None,
                    utc: false,
                    allow_postpone: None,
                    notification: String::new(),
                    suppress_restart_servers: false,
                    suppress_restart_workstations: false,
                    install_from_dp: false,
                    recurrence_days: None,
                    expedited_inventory: false,
                    priority: None,
                    distribution_points: Vec::new(),
                },
                "2026-01-01T00:00",
                Priority::Medium,
                &audit("deploy"),
            )
            .expect("deployment");
        ids.insert(name, d.id);
    }
    store
        .set_deployment_enabled("Old", false, None, &audit("disable"))
        .expect("disable");
    for (name, state, detail, time) in [
        ("srv-1", "failed", "E1", 100),
        ("desk-1", "failed", "E2", 200),
        ("lap-1", "failed", "E3", 300),
        ("srv-2", "succeeded", "", 400),
    ] {
        store
            .report_deployment_status(key(name), &ids["Patch"], 1, state, detail, time)
            .expect("deployment status");
    }
    Estate {
        _dir: dir,
        site,
        laptops: laptops.id,
    }
}

fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn get(site: &Arc<Site>, path: &str) -> (u16, Value) {
    let token = std::fs::read_to_string(site.data.join("admin.token")).expect("token");
    let resp = koshin_server::http::app(site.clone())
        .oneshot(
            Request::builder()
                .uri(path)
                .header("authorization", format!("Bearer {}", token.trim()))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("call");
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 30)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// Runs a report over the API: its columns and rows.
async fn run(site: &Arc<Site>, name: &str, params: &[(&str, &str)]) -> (Vec<String>, Vec<Value>) {
    let query: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let path = format!("/api/v1/reports/{name}?{}", query.join("&"));
    let (status, v) = get(site, &path).await;
    assert_eq!(status, 200, "{path}: {v}");
    let columns = v["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c.as_str().expect("a column name").to_string())
        .collect();
    (columns, v["rows"].as_array().expect("rows").clone())
}

/// The given fields of each row, as text.
fn pick(rows: &[Value], keys: &[&str]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            keys.iter()
                .map(|k| match &r[*k] {
                    Value::String(s) => s.clone(),
                    Value::Null => "NULL".into(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

fn rows_of(v: &[&[&str]]) -> Vec<Vec<String>> {
    v.iter()
        .map(|r| r.iter().map(|s| s.to_string()).collect())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_health_names_each_inventory_and_scan_problem() {
    let e = estate();
    let (columns, rows) = run(&e.site, "inventory-health", &[]).await;
    // The scan-only report's columns first, unchanged; then what inventory adds.
    assert_eq!(
        columns,
        [
            "computer",
            "client_id",
            "last_scan",
            "last_scan_result",
            "problem",
            "last_inventory",
            "chassis"
        ]
    );
    assert_eq!(
        pick(&rows, &["problem", "computer", "chassis"]),
        rows_of(&[
            // new-1 never sent any; lap-1's is 9 days old, over a week and a day; srv-2's
            // is 3 days old, over a day and a day for a server. desk-1's is as old as
            // srv-2's, but a desktop has a week.
            &["inventory never sent", "new-1", "unknown"],
            &["inventory overdue", "lap-1", "portable"],
            &["inventory overdue", "srv-2", "server"],
            &["scan failed", "srv-2", "server"],
            &["scan never ran", "new-1", "unknown"],
            &["scan overdue", "desk-1", "desktop"],
        ])
    );
    let new1 = &rows[0];
    assert_eq!(new1["last_inventory"], "never");
    assert_eq!(new1["last_scan"], "never");
    let lap1 = &rows[1];
    assert!(
        lap1["last_inventory"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{lap1}"
    );
    assert_eq!(
        rows[3]["last_scan_result"],
        "failed: apt-get update exited 100"
    );

    // v_clients carries when each client last sent inventory, and its chassis.
    let (_, clients) = e
        .site
        .store
        .run_report(
            "SELECT computer, chassis, inventory_ms IS NOT NULL AS inventoried, last_inventory IS NOT NULL AS shown FROM v_clients ORDER BY computer",
            &[],
            &Scope::All,
        )
        .expect("v_clients");
    assert_eq!(
        Value::from(clients),
        serde_json::json!([
            ["desk-1", "desktop", 1, 1],
            ["lap-1", "portable", 1, 1],
            ["new-1", null, 0, 0],
            ["srv-1", "server", 1, 1],
            ["srv-2", "server", 1, 1],
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owners_report_lists_each_servers_user_and_missing_approved_updates() {
    let e = estate();
    let (columns, rows) = run(&e.site, "owners-missing-approved-updates", &[]).await;
    assert_eq!(
        columns[..5],
        [
            "computer",
            "last_logged_on_user",
            "update_id",
            "title",
            "deployment"
        ]
    );
    // Servers only (desk-1 and lap-1 are not); Required only (srv-1 has U2 installed);
    // approved only (U3 is only in the disabled deployment Old). A restart pending is
    // still missing.
    assert_eq!(
        pick(
            &rows,
            &[
                "computer",
                "last_logged_on_user",
                "update_id",
                "title",
                "deployment",
                "restart_pending"
            ]
        ),
        rows_of(&[
            &["srv-1", "alice", U1, "one", "Patch, Web", "0"],
            &["srv-2", "bob", U1, "one", "Patch, Web", "1"],
            &["srv-2", "bob", U2, "two", "Patch", "0"],
        ])
    );

    // An update removed from its only deployment is no longer approved.
    e.site
        .store
        .remove_deployment_update("Patch", U2, &audit("remove"))
        .expect("remove");
    let (_, rows) = run(&e.site, "owners-missing-approved-updates", &[]).await;
    assert_eq!(
        pick(&rows, &["computer", "title", "deployment"]),
        rows_of(&[
            &["srv-1", "one", "Patch, Web"],
            &["srv-2", "one", "Patch, Web"]
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn computers_are_counted_by_chassis_and_os() {
    let e = estate();
    let (columns, rows) = run(&e.site, "computers-by-chassis-and-os", &[]).await;
    assert_eq!(columns, ["chassis", "os", "computers"]);
    let bookworm = "Debian GNU/Linux 12 (bookworm)";
    assert_eq!(
        pick(&rows, &["chassis", "os", "computers"]),
        rows_of(&[
            &["desktop", bookworm, "1"],
            // lap-1 sent no pretty name: its id and release.
            &["portable", "ubuntu 24.04", "1"],
            &["server", bookworm, "2"],
            // new-1 sent no inventory.
            &["unknown", "unknown", "1"],
        ])
    );
    let (_, rows) = run(
        &e.site,
        "computers-by-chassis-and-os",
        &[("collection", "Web servers")],
    )
    .await;
    assert_eq!(
        pick(&rows, &["chassis", "os", "computers"]),
        rows_of(&[&["desktop", bookworm, "1"], &["server", bookworm, "1"]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distribution_and_compliance_reports_filter_by_an_optional_collection() {
    let e = estate();
    let site = &e.site;
    let summary = [
        "deployment",
        "targeted",
        "install_verified",
        "no_status",
        "failed",
    ];

    // Without the parameter, left empty, or as All Systems: every targeted computer.
    let everyone = rows_of(&[
        &["Old", "5", "0", "5", "0"],
        &["Patch", "5", "1", "1", "3"],
        &["Web", "2", "0", "2", "0"],
    ]);
    for params in [
        &[][..],
        &[("collection", "")],
        &[("collection", "All Systems")],
        &[("collection", "sms00001")],
    ] {
        let (columns, rows) = run(site, "distribution-status-summary", params).await;
        assert_eq!(
            columns,
            [
                "deployment_id",
                "deployment",
                "collection",
                "enabled",
                "targeted",
                "install_verified",
                "in_progress",
                "no_status",
                "failed"
            ]
        );
        assert_eq!(pick(&rows, &summary), everyone, "{params:?}");
    }
    // A collection by name or by id (any case): its members only, and only the
    // deployments that target one of them.
    let (_, rows) = run(
        site,
        "distribution-status-summary",
        &[("collection", "Web servers")],
    )
    .await;
    assert_eq!(
        pick(&rows, &summary),
        rows_of(&[
            &["Old", "2", "0", "2", "0"],
            &["Patch", "2", "0", "0", "2"],
            &["Web", "2", "0", "2", "0"],
        ])
    );
    let (_, rows) = run(
        site,
        "distribution-status-summary",
        &[("collection", &e.laptops.to_lowercase())],
    )
    .await;
    assert_eq!(
        pick(&rows, &summary),
        rows_of(&[&["Old", "1", "0", "1", "0"], &["Patch", "1", "0", "0", "1"]])
    );
    // A collection that does not exist holds no computer.
    let (_, rows) = run(
        site,
        "distribution-status-summary",
        &[("collection", "No such")],
    )
    .await;
    assert!(rows.is_empty(), "{rows:?}");

    // By update.
    let (_, rows) = run(site, "distribution-status-by-update", &[("update", U1)]).await;
    assert_eq!(
        pick(&rows, &["deployment", "status", "computers"]),
        rows_of(&[
            &["Patch", "failed", "3"],
            &["Patch", "not_received", "1"],
            &["Patch", "succeeded", "1"],
            &["Web", "not_received", "2"],
        ])
    );
    let (_, rows) = run(
        site,
        "distribution-status-by-update",
        &[("update", U1), ("collection", "Web servers")],
    )
    .await;
    assert_eq!(
        pick(&rows, &["deployment", "status", "computers"]),
        rows_of(&[&["Patch", "failed", "2"], &["Web", "not_received", "2"]])
    );

    let (_, rows) = run(
        site,
        "computers-with-update-distribution-status",
        &[("update", "a2")],
    )
    .await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    let (_, rows) = run(
        site,
        "computers-with-update-distribution-status",
        &[("update", "a2"), ("collection", "Laptops")],
    )
    .await;
    assert_eq!(
        pick(&rows, &["computer", "deployment", "status", "detail"]),
        rows_of(&[&["lap-1", "Patch", "failed", "E3"]])
    );

    // Failures: the count and the last error are both of the collection's members.
    let (_, rows) = run(site, "failed-distributions-summary", &[]).await;
    assert_eq!(
        pick(&rows, &["deployment", "failed", "last_error"]),
        rows_of(&[&["Patch", "3", "E3"]])
    );
    let (_, rows) = run(
        site,
        "failed-distributions-summary",
        &[("collection", "Web servers")],
    )
    .await;
    assert_eq!(
        pick(&rows, &["deployment", "failed", "last_error"]),
        rows_of(&[&["Patch", "2", "E2"]])
    );

    // Compliance of one update.
    let (_, rows) = run(site, "compliance-by-update", &[("update", U1)]).await;
    assert_eq!(rows.len(), 5, "{rows:?}");
    let (_, rows) = run(
        site,
        "compliance-by-update",
        &[("update", U1), ("collection", "Web servers")],
    )
    .await;
    assert_eq!(
        pick(&rows, &["computer", "state"]),
        rows_of(&[&["desk-1", "required"], &["srv-1", "required"]])
    );
    let (_, rows) = run(
        site,
        "computers-for-update",
        &[("update", "a1"), ("collection", "Web servers")],
    )
    .await;
    assert_eq!(
        pick(&rows, &["computer", "state"]),
        rows_of(&[&["desk-1", "required"], &["srv-1", "required"]])
    );

    // A required parameter is still required; an unknown one is named.
    let (status, v) = get(
        site,
        "/api/v1/reports/distribution-status-by-update?collection=Laptops",
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("'update'"), "{v}");
    let (status, v) = get(
        site,
        "/api/v1/reports/distribution-status-summary?colection=Laptops",
    )
    .await;
    assert_eq!(status, 400, "{v}");
    assert!(v.to_string().contains("collection (optional)"), "{v}");

    // The list tells a required parameter from an optional one.
    let (status, list) = get(site, "/api/v1/reports").await;
    assert_eq!(status, 200);
    let info = |name: &str| {
        list.as_array()
            .expect("a list")
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} is listed"))
            .clone()
    };
    for (name, required) in [
        ("distribution-status-summary", serde_json::json!([])),
        (
            "distribution-status-by-update",
            serde_json::json!(["update"]),
        ),
        (
            "computers-with-update-distribution-status",
            serde_json::json!(["update"]),
        ),
        ("failed-distributions-summary", serde_json::json!([])),
        ("compliance-by-update", serde_json::json!(["update"])),
        ("computers-for-update", serde_json::json!(["update"])),
        ("computers-by-chassis-and-os", serde_json::json!([])),
    ] {
        let r = info(name);
        assert_eq!(r["parameters"], required, "{name}");
        // compliance-by-update also takes a state (the console lists one state's computers).
        let optional = if name == "compliance-by-update" {
            serde_json::json!(["collection", "state"])
        } else {
            serde_json::json!(["collection"])
        };
        assert_eq!(r["optional_parameters"], optional, "{name}");
    }
    for name in ["inventory-health", "owners-missing-approved-updates"] {
        let r = info(name);
        assert!(r.get("completed_by").is_none(), "{r}");
        assert!(r.get("optional_parameters").is_none(), "{r}");
    }
}

/// A scoped administrator's run reads the narrowed copies: the members view, the
/// inventory reports (which read the machine policy, a table of no client's data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_runs_see_only_the_scopes_clients() {
    let e = estate();
    let store = &e.site.store;
    let scope = Scope::of(&["CS100002".to_string()]);
    let run_scoped = |name: &str| {
        let r = koshin_server::reports::find(&e.site.data, name).expect("a built-in report");
        store
            .run_report_optional(&r.sql, &[], &r.optional, &scope)
            .unwrap_or_else(|err| panic!("{name}: {err}"))
            .1
    };
    let (_, members) = store
        .run_report(
            "SELECT collection, computer FROM v_collection_members ORDER BY collection, computer",
            &[],
            &Scope::All,
        )
        .expect("members");
    let mut expect = vec![
        ["All Systems", "desk-1"],
        ["All Systems", "lap-1"],
        ["All Systems", "new-1"],
        ["All Systems", "srv-1"],
        ["All Systems", "srv-2"],
        ["Laptops", "lap-1"],
        ["Web servers", "desk-1"],
        ["Web servers", "srv-1"],
    ];
    assert_eq!(Value::from(members), serde_json::json!(expect));
    let (_, members) = store
        .run_report(
            "SELECT collection, computer FROM v_collection_members ORDER BY collection, computer",
            &[],
            &scope,
        )
        .expect("scoped members");
    expect.retain(|[_, c]| *c == "desk-1" || *c == "srv-1");
    assert_eq!(Value::from(members), serde_json::json!(expect));

    let health = run_scoped("inventory-health");
    assert_eq!(
        health
            .iter()
            .map(|r| (r[0].clone(), r[4].clone()))
            .collect::<Vec<_>>(),
        [(Value::from("desk-1"), Value::from("scan overdue"))]
    );
    let owners = run_scoped("owners-missing-approved-updates");
    assert_eq!(owners.len(), 1, "{owners:?}");
    assert_eq!(owners[0][0], "srv-1");
    let counts = run_scoped("computers-by-chassis-and-os");
    assert_eq!(counts.len(), 2, "{counts:?}");
}
