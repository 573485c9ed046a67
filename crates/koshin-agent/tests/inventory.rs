//! Inventory from agent to site: the agent collects its machine's
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

/// Custom inventory classes: the site defines a class whose properties are read
/// from a key-value file, a JSON file and a sysctl; two agents on test roots with different
/// files get it in machine policy, collect it and send it; a collection query over
/// `custom.CLASS.PROPERTY` matches exactly the right one. A changed class is a new policy,
/// and the agent sends its inventory again at once; commands are not run under a test root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_inventory_classes_reach_agents_and_queries() {
    let site = TestSite::start().await;
    let set = |body: serde_json::Value| {
        let site = &site;
        async move {
            call(
                site,
                "POST",
                "/api/v1/inventory/classes",
                Some(&site.token),
                Some(body),
            )
            .await
        }
    };
    let version_before = site
        .site
        .store
        .machine_policy()
        .expect("policy")
        .expect("a synced site has a policy")
        .0;
    for body in [
        json!({"class": "app", "property": "tier", "source":
            {"kind": "file", "path": "/etc/app.conf", "format": "key-value", "key": "TIER"}}),
        json!({"class": "app", "property": "node", "source":
            {"kind": "file", "path": "/etc/app.json", "format": "json", "key": "app.nodes.0.name"}}),
        json!({"class": "net", "property": "ip-forward", "source":
            {"kind": "sysctl", "key": "net.ipv4.ip_forward"}}),
        json!({"class": "app", "property": "hello", "source":
            {"kind": "command", "argv": ["echo", "hello"]}}),
    ] {
        let (s, v) = set(body).await;
        assert_eq!(s, 200, "{v}");
    }
    // Refused: a name out of the rules, an unknown format, a relative path, no program.
    for bad in [
        json!({"class": "App", "property": "x", "source": {"kind": "sysctl", "key": "a.b"}}),
        json!({"class": "app", "property": "x", "source":
            {"kind": "file", "path": "/etc/a", "format": "yaml", "key": "k"}}),
        json!({"class": "app", "property": "x", "source":
            {"kind": "file", "path": "etc/a", "key": "k"}}),
        json!({"class": "app", "property": "x", "source": {"kind": "command", "argv": []}}),
        json!({"class": "app", "property": "x", "source": {"kind": "registry"}}),
    ] {
        let (s, v) = set(bad.clone()).await;
        assert_eq!(s, 400, "{bad}: {v}");
    }
    let (s, list) = call(
        &site,
        "GET",
        "/api/v1/inventory/classes",
        Some(&site.token),
        None,
    )
    .await;
    assert_eq!(s, 200, "{list}");
    let paths: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|c| c["path"].as_str())
        .collect();
    assert_eq!(
        paths,
        [
            "custom.app.hello",
            "custom.app.node",
            "custom.app.tier",
            "custom.net.ip-forward"
        ]
    );
    let (version, _) = site
        .site
        .store
        .machine_policy()
        .expect("policy")
        .expect("policy");
    assert_eq!(version, version_before + 4, "each change is a new policy");
    // The public policy does not show the site's files and commands.
    let (s, public) = call(&site, "GET", "/api/v1/policy/machine", None, None).await;
    assert_eq!(s, 200, "{public}");
    assert!(public.get("inventory_classes").is_none(), "{public}");

    let gold = site.enroll("app-gold", TYPICAL).await;
    let silver = site.enroll("app-silver", TYPICAL).await;
    for (a, tier, node, forward) in [
        (&gold, "\"gold\"", "n-east", "1"),
        (&silver, "silver", "n-west", "0"),
    ] {
        std::fs::write(
            a.root.join("etc/app.conf"),
            format!("# app settings\nTIER={tier}\n"),
        )
        .expect("app.conf");
        std::fs::write(
            a.root.join("etc/app.json"),
            json!({"app": {"nodes": [{"name": node}, {"name": "spare"}]}}).to_string(),
        )
        .expect("app.json");
        std::fs::create_dir_all(a.root.join("proc/sys/net/ipv4")).expect("proc");
        std::fs::write(
            a.root.join("proc/sys/net/ipv4/ip_forward"),
            format!("{forward}\n"),
        )
        .expect("sysctl");
        koshin_agent::runner::poll_policy(&a.db(), &a.mp())
            .await
            .expect("policy");
        assert_eq!(koshin_agent::inventory_classes::held(&a.db()).len(), 4);
        let sent = koshin_agent::inventory::send(&a.db(), &a.mp(), &a.root)
            .await
            .expect("inventory");
        assert!(sent.whole);
    }
    // The agent shows them as it sends them; the command was not run under a test root.
    let classes = koshin_agent::inventory_classes::held_in(&gold.state);
    let inv = koshin_agent::inventory::collect_with(&gold.root, &classes);
    assert_eq!(inv.properties["custom.app.tier"], ["gold"]);
    assert!(!inv.properties.contains_key("custom.app.hello"));

    let preview = |q: &'static str| {
        let site = &site;
        async move {
            let (s, v) = call(
                site,
                "POST",
                "/api/v1/collections/preview",
                Some(&site.token),
                Some(json!({ "query": q })),
            )
            .await;
            assert_eq!(s, 200, "{q}: {v}");
            v["clients"]
                .as_array()
                .expect("clients")
                .iter()
                .map(|c| c["computer"].as_str().unwrap_or_default().to_string())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(preview("custom.app.tier = \"gold\"").await, ["app-gold"]);
    assert_eq!(
        preview("custom.app.node = \"n-west\"").await,
        ["app-silver"]
    );
    assert_eq!(preview("custom.net.ip-forward = 1").await, ["app-gold"]);
    assert_eq!(
        preview("custom.app.tier ~ \"*\" and custom.net.ip-forward >= 0").await,
        ["app-gold", "app-silver"]
    );
    assert!(preview("custom.app.hello = hello").await.is_empty());

    // Deleting a property is a new policy; the agent notices it and sends at once what
    // changed: the property is gone at the site.
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/inventory/classes/app/delete",
        Some(&site.token),
        Some(json!({"property": "tier"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["deleted"], 1);
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/inventory/classes/app/delete",
        Some(&site.token),
        Some(json!({"property": "tier"})),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    gold.set_kv_i64("next_inventory_ms", i64::MAX);
    koshin_agent::runner::poll_policy(&gold.db(), &gold.mp())
        .await
        .expect("policy");
    assert!(
        gold.kv_i64("next_inventory_ms").unwrap_or(i64::MAX) <= now_ms(),
        "a changed class makes the inventory due"
    );
    let sent = koshin_agent::inventory::send(&gold.db(), &gold.mp(), &gold.root)
        .await
        .expect("inventory");
    assert!(!sent.whole);
    assert_eq!(sent.properties_sent, 1, "{sent:?}");
    assert!(preview("custom.app.tier = \"gold\"").await.is_empty());
    assert_eq!(preview("custom.app.node = \"n-east\"").await, ["app-gold"]);

    // Who changed the classes is in the audit log.
    let (s, audit) = call(&site, "GET", "/api/v1/audit", Some(&site.token), None).await;
    assert_eq!(s, 200, "{audit}");
    let text = audit.to_string();
    assert!(text.contains("set inventory class property"), "{text}");
    assert!(text.contains("delete inventory class"), "{text}");
}
