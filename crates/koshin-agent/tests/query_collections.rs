//! Query collections end to end: real agents on real dpkg roots, with different
//! packages and chassis, send inventory and scan; a query collection holds exactly the
//! machines its query matches, every version of its rules is kept and a rollback restores
//! the earlier membership; a deployment to it reaches exactly its members, and a machine
//! that installed the update leaves the collection at the evaluator's next incremental pass.

mod common;

use std::time::{Duration, Instant};

use common::*;
use koshin_testkit::DpkgRoot;
use serde_json::json;

async fn post(site: &TestSite, path: &str, body: serde_json::Value) -> serde_json::Value {
    site.admin_post(path, body).await
}

async fn get(site: &TestSite, path: &str) -> serde_json::Value {
    site.admin_get(path).await
}

/// The members of a collection: (computer, via), by name.
async fn members(site: &TestSite, collection: &str) -> Vec<(String, String)> {
    let c = get(
        site,
        &format!("/api/v1/collections/{}", collection.replace(' ', "%20")),
    )
    .await;
    c["member_list"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or_default().to_string(),
                m["via"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn q(name: &str) -> (String, String) {
    (name.to_string(), "query".to_string())
}

/// A machine on a real dpkg root with its chassis (SMBIOS type) and its application tier
/// (read by the site's custom class `app`) set, which has sent its inventory and its scan.
async fn machine(
    site: &TestSite,
    name: &str,
    chassis: &str,
    tier: &str,
    remove_hello: bool,
) -> (DpkgRoot, TestAgent) {
    let (root, agent) = dpkg_machine(&site.archive, site, name).await;
    std::fs::write(agent.root.join("etc/app.conf"), format!("TIER={tier}\n")).expect("app.conf");
    koshin_agent::runner::poll_policy(&agent.db(), &agent.mp())
        .await
        .expect("policy");
    if remove_hello {
        let out = dpkg(root.path(), &["-r", "hello"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let dmi = agent.root.join("sys/class/dmi/id");
    std::fs::create_dir_all(&dmi).expect("dmi");
    std::fs::write(dmi.join("chassis_type"), format!("{chassis}\n")).expect("chassis");
    std::fs::write(agent.root.join("etc/hostname"), format!("{name}\n")).expect("hostname");
    koshin_agent::inventory::send(&agent.db(), &agent.mp(), &agent.root)
        .await
        .expect("inventory");
    agent
        .scan_ok(koshin_domain::scan::ScanTrigger::ScanCycle)
        .await;
    agent.send().await;
    (root, agent)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_collection_follows_inventory_keeps_its_versions_and_scopes_a_deployment() {
    let site = TestSite::start_with(|c| c.collections.incremental_seconds = 1).await;
    site.site
        .store
        .ensure_local_dp("KOSHIN-TEST", &format!("{}/dp", site.url), now_ms())
        .expect("local dp url");
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(koshin_server::content::distmgr::run(
        site.site.clone(),
        rx.clone(),
    ));

    // A custom inventory class: the application tier, from /etc/app.conf.
    post(
        &site,
        "/api/v1/inventory/classes",
        json!({"class": "app", "property": "tier", "source":
            {"kind": "file", "path": "/etc/app.conf", "format": "key-value", "key": "TIER"}}),
    )
    .await;

    // web-1: a gold server missing hello 2.10-4; web-2: a silver desktop missing it; db-1:
    // a gold server without hello at all (23 is a rack-mount chassis, 3 a desktop).
    let (web1_root, web1) = machine(&site, "web-1", "23", "gold", false).await;
    let (_web2_root, web2) = machine(&site, "web-2", "3", "silver", false).await;
    let (_db1_root, db1) = machine(&site, "db-1", "23", "gold", true).await;

    // Custom class values are queried like built-in ones.
    post(
        &site,
        "/api/v1/collections",
        json!({"name": "Gold tier", "query": "custom.app.tier = gold"}),
    )
    .await;
    assert_eq!(
        members(&site, "Gold tier").await,
        vec![q("db-1"), q("web-1")]
    );
    post(
        &site,
        "/api/v1/collections",
        json!({"name": "Gold without hello", "limiting": "Gold tier",
               "query": "not installed(hello)"}),
    )
    .await;
    assert_eq!(members(&site, "Gold without hello").await, vec![q("db-1")]);

    // Phase 1: the servers missing hello.
    let created = post(
        &site,
        "/api/v1/collections",
        json!({"name": "Missing hello", "query": format!("required(\"{HELLO_NEW}\") and chassis = server")}),
    )
    .await;
    assert_eq!(created["version"], 1, "{created}");
    assert_eq!(members(&site, "Missing hello").await, vec![q("web-1")]);
    // A malformed query is refused with where, and nothing is saved.
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/collections/Missing%20hello/rules",
        Some(&site.token),
        Some(json!({"query": "chassis = (server"})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("at character"),
        "{v}"
    );

    // Phase 2 widens it to every machine missing hello.
    let v2 = post(
        &site,
        "/api/v1/collections/Missing%20hello/rules",
        json!({"query": format!("required(\"{HELLO_NEW}\")"), "note": "phase 2: workstations"}),
    )
    .await;
    assert_eq!(v2["version"], 2, "{v2}");
    assert_eq!(
        members(&site, "Missing hello").await,
        vec![q("web-1"), q("web-2")]
    );

    // History keeps both; rolling back to phase 1 restores its membership, as version 3.
    let history = get(&site, "/api/v1/collections/Missing%20hello/history").await;
    let versions: Vec<(i64, bool)> = history
        .as_array()
        .expect("history")
        .iter()
        .map(|v| (v["version"].as_i64().unwrap_or(0), v["current"] == true))
        .collect();
    assert_eq!(versions, vec![(1, false), (2, true)]);
    assert_eq!(history[1]["note"], "phase 2: workstations");
    let back = post(
        &site,
        "/api/v1/collections/Missing%20hello/rollback",
        json!({"version": 1}),
    )
    .await;
    assert_eq!(back["version"], 3, "{back}");
    assert_eq!(back["rules"]["query"], history[0]["query"], "{back}");
    assert_eq!(members(&site, "Missing hello").await, vec![q("web-1")]);

    // A deployment to the query collection reaches exactly its member.
    post(
        &site,
        "/api/v1/update-groups",
        json!({"name": "hello fix", "updates": [HELLO_NEW]}),
    )
    .await;
    post(
        &site,
        "/api/v1/deployments",
        json!({"name": "hello-fix", "update_group": "hello fix", "collection": "Missing hello",
               "utc": true, "expedited_inventory": true}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let d = get(&site, "/api/v1/deployments/hello-fix").await;
        let package = d["package"].as_str().expect("package").to_string();
        let p = get(&site, &format!("/api/v1/content/{package}")).await;
        if p["targets"]
            .as_array()
            .is_some_and(|t| !t.is_empty() && t.iter().all(|t| t["state"] == "installed"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "content not distributed: {p:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(evaluate_deployments(&web2).await.is_empty());
    assert!(evaluate_deployments(&db1).await.is_empty());
    let e = evaluate_deployments(&web1).await;
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0].state, "succeeded", "{e:?}");
    assert_eq!(
        web1_root.package_state("hello").expect("dpkg -s"),
        Some(("install ok installed".into(), "2.10-4".into()))
    );
    let d = get(&site, "/api/v1/deployments/hello-fix").await;
    let targeted: Vec<&str> = d["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .filter_map(|c| c["computer"].as_str())
        .collect();
    assert_eq!(targeted, ["web-1"], "{d:#}");
    // The deployment asks for an expedited inventory: web-1's is due at once (I4), and
    // the site then holds hello 2.10-4 for it; web-2's stays on its daily cycle.
    assert_eq!(web1.kv_i64("next_inventory_ms"), Some(0));
    assert_ne!(web2.kv_i64("next_inventory_ms"), Some(0));
    koshin_agent::inventory::send(&web1.db(), &web1.mp(), &web1.root)
        .await
        .expect("inventory");
    assert_eq!(
        site.query(
            "SELECT version FROM v_installed_packages WHERE computer = 'web-1' AND package = 'hello'",
            &[]
        ),
        [[json!("2.10-4")]]
    );

    // web-1 reports hello installed: the evaluator's incremental pass (every second here)
    // takes it out of "Missing hello", with no one asking.
    web1.send().await;
    let evaluator = tokio::spawn(koshin_server::colleval::run(site.site.clone(), rx));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !members(&site, "Missing hello").await.is_empty() {
        assert!(Instant::now() < deadline, "web-1 is still a member");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A new machine missing it joins the same way.
    let (_web3_root, _web3) = machine(&site, "web-3", "17", "silver", false).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while members(&site, "Missing hello").await != vec![q("web-3")] {
        assert!(
            Instant::now() < deadline,
            "web-3 did not join: {}",
            std::fs::read_to_string(site.site.data.join("logs/colleval.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = std::fs::read_to_string(site.site.data.join("logs/colleval.log")).expect("log");
    assert!(log.contains("1 left") && log.contains("1 joined"), "{log}");
    drop(tx);
    let _ = evaluator.await;

    // Inventory health: a client that never sent inventory, and one whose last is older
    // than a week (web-2, a desktop), are listed; the others are not.
    let _quiet = site.enroll("quiet-1", TYPICAL).await;
    let db = rusqlite::Connection::open(site.data.join("site.db")).expect("site db");
    db.execute(
        "UPDATE clients SET inventory_ms = ?1 WHERE name = 'web-2'",
        [now_ms() - 9 * 86_400_000],
    )
    .expect("age web-2's inventory");
    let health = site.admin_get("/api/v1/reports/inventory-health").await;
    let problems: Vec<(String, String)> = health["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| {
            r["problem"]
                .as_str()
                .is_some_and(|p| p.starts_with("inventory"))
        })
        .map(|r| {
            (
                r["computer"].as_str().unwrap_or_default().to_string(),
                r["problem"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        problems,
        vec![
            ("quiet-1".to_string(), "inventory never sent".to_string()),
            ("web-2".to_string(), "inventory overdue".to_string()),
        ],
        "{health:#}"
    );
}
