//! Inventory from agent to site (issue 9, first part): the agent collects its machine's
//! inventory under its root and sends it whole the first time, then only what changed; a
//! site that holds another inventory than the agent's base gets the whole one again; the
//! site's views show every property and package.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_site_holds_each_clients_inventory_whole_then_by_changes() {
    let site = TestSite::start().await;
    let agent = site.enroll("pc-inv", TYPICAL).await;
    std::fs::create_dir_all(agent.root.join("sys/class/dmi/id")).expect("dmi");
    std::fs::write(agent.root.join("sys/class/dmi/id/chassis_type"), "23\n").expect("chassis");
    std::fs::write(agent.root.join("etc/hostname"), "pc-inv\n").expect("hostname");
    let send = || async {
        koshin_agent::inventory::send(&agent.db(), &agent.mp(), &agent.root)
            .await
            .expect("send inventory")
    };

    // The first time: whole.
    let first = send().await;
    assert!(first.whole);
    assert_eq!(first.ack.packages, 2);
    let props = |p: &str| {
        site.query(
            "SELECT value FROM v_inventory WHERE computer = 'pc-inv' AND property = :p ORDER BY 1",
            &[("p", p)],
        )
    };
    assert_eq!(props("chassis"), [[json!("server")]]);
    assert_eq!(props("os.release"), [[json!("12")]]);
    let packages = || {
        site.query(
            "SELECT package, architecture, version FROM v_installed_packages WHERE computer = 'pc-inv' ORDER BY 1",
            &[],
        )
    };
    assert_eq!(
        packages(),
        [
            [json!("hello"), json!("amd64"), json!("2.10-3")],
            [json!("libfoo1"), json!("amd64"), json!("1.0-1")]
        ]
    );

    // Then only what changed: one package upgraded, one removed, one added.
    agent.set_installed(&[("hello", "2.10-4"), ("curl", "7.88.1-10")]);
    let second = send().await;
    assert!(!second.whole);
    assert_eq!(second.packages_sent, 3, "{second:?}");
    assert_eq!(
        packages(),
        [
            [json!("curl"), json!("amd64"), json!("7.88.1-10")],
            [json!("hello"), json!("amd64"), json!("2.10-4")]
        ]
    );
    assert_eq!(props("packages"), [[json!("2")]]);

    // The agent's base is not what the site holds (the site was restored from a backup,
    // say): the site refuses the changes and the agent sends the whole inventory.
    agent
        .db()
        .set(
            "inventory_sent",
            &serde_json::to_string(&koshin_agent::inventory::Inventory::default()).expect("json"),
        )
        .expect("set");
    let third = send().await;
    assert!(third.whole, "{third:?}");
    assert_eq!(third.ack.packages, 2);
    assert_eq!(props("chassis"), [[json!("server")]]);

    // The client's inventory time is recorded.
    let when = site.query(
        "SELECT COUNT(*) FROM v_inventory WHERE computer = 'pc-inv' AND inventory_ms IS NOT NULL",
        &[],
    );
    assert!(when[0][0].as_i64().unwrap_or(0) > 0);
}

/// The site evaluates a collection query over stored inventory and compliance: two
/// machines with different packages and roles, each query matching exactly the right ones;
/// a malformed query is refused with where it went wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_preview_matches_by_inventory_and_compliance() {
    let site = TestSite::start().await;
    let web = site.enroll("web-01", TYPICAL).await;
    let db = site
        .enroll(
            "db-01",
            &[("hello", "2.10-4"), ("postgresql-15", "15.5-0+deb12u1")],
        )
        .await;
    std::fs::create_dir_all(db.root.join("etc/systemd/system/multi-user.target.wants"))
        .expect("wants");
    std::fs::write(
        db.root
            .join("etc/systemd/system/multi-user.target.wants/postgresql.service"),
        "",
    )
    .expect("service");
    for a in [&web, &db] {
        std::fs::write(a.root.join("etc/hostname"), format!("{}\n", a.name)).expect("name");
        koshin_agent::inventory::send(&a.db(), &a.mp(), &a.root)
            .await
            .expect("inventory");
        a.scan_ok(koshin_domain::scan::ScanTrigger::ScanCycle).await;
        a.send().await;
    }
    let preview = |q: &str| {
        let (site, q) = (&site, q.to_string());
        async move {
            let (s, v) = call(
                site,
                "POST",
                "/api/v1/collections/preview",
                Some(&site.token),
                Some(json!({ "query": q })),
            )
            .await;
            (s, v)
        }
    };
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["clients"]
            .as_array()
            .expect("clients")
            .iter()
            .map(|c| c["computer"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    for (q, want) in [
        ("os.release = 12", vec!["db-01", "web-01"]),
        ("name ~ \"web-*\"", vec!["web-01"]),
        ("installed(hello) < \"2.10-4\"", vec!["web-01"]),
        (
            "installed(postgresql-15) and service = postgresql",
            vec!["db-01"],
        ),
        (&format!("required(\"{HELLO_NEW}\")"), vec!["web-01"]),
        ("not installed(libfoo1)", vec!["db-01"]),
    ] {
        let (s, v) = preview(q).await;
        assert_eq!(s, 200, "{q}: {v}");
        assert_eq!(names(&v), want, "{q}: {v}");
    }
    let (s, v) = preview("chassis = (server").await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("at character"),
        "{v}"
    );
}
