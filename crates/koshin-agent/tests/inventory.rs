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
