//! The scan tool (seed 002, I1–I4): the top-level site wraps its offline scan catalog in a
//! Debian package, keeps it in the "Offline Scan Catalog" content package and sends it to
//! the distribution points; setup makes a pre-production collection with one test client, the
//! scan tool's collection limited to it, and a normal and an expedited program deployment.
//! Only the test client gets the tool at first: it fetches the package from its distribution
//! point, scans against the catalog inside (never against the site's catalog) and its results
//! appear in `updates-for-computer`; broadening, refused until then, removes the limiting
//! rule, and the other client gets the tool too.

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

async fn content_installed(site: &TestSite, package: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = site.admin_get(&format!("/api/v1/content/{package}")).await;
        if p["targets"]
            .as_array()
            .is_some_and(|t| !t.is_empty() && t.iter().all(|t| t["state"] == "installed"))
        {
            return p;
        }
        assert!(Instant::now() < deadline, "content not distributed: {p:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn required(rows: &serde_json::Value) -> Vec<String> {
    rows["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["state"] == "required")
        .filter_map(|r| r["title"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scan_tool_reaches_the_test_client_through_a_distribution_point_then_every_client() {
    let site = TestSite::start().await;
    site.site
        .store
        .ensure_local_dp("KOSHIN-TEST", &format!("{}/dp", site.url), now_ms())
        .expect("local dp");
    let (_stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(koshin_server::content::distmgr::run(site.site.clone(), rx));
    let (_root_a, test_client) = dpkg_machine(&site.archive, &site, "scan-test-1").await;
    let (_root_b, other) = dpkg_machine(&site.archive, &site, "scan-other-1").await;

    // A client the site does not know cannot be the test client.
    let (status, v) = call(
        &site,
        "POST",
        "/api/v1/catalog/scan-tool",
        Some(&site.token),
        Some(json!({"test_client": "nobody"})),
    )
    .await;
    assert_eq!(status, 404, "{v}");

    let t = site
        .admin_post(
            "/api/v1/catalog/scan-tool",
            json!({"test_client": "scan-test-1"}),
        )
        .await;
    assert_eq!(t["test_client"], "scan-test-1", "{t:#}");
    assert_eq!(t["members"], 1, "only the test client at first: {t:#}");
    assert_eq!(t["collection"], "Offline Scan Tool");
    assert_eq!(t["pre_production"], "Offline Scan Tool (pre-production)");
    assert!(t["broadened"].is_null());
    // The catalog was made (6710) and packaged as a real .deb in the content package.
    assert_eq!(
        site.count(
            "SELECT COUNT(*) FROM v_status_messages WHERE message_id = 6710",
            &[]
        ),
        1
    );
    // Its updates say they are in the offline catalog (I5).
    let u = site
        .admin_get(&format!("/api/v1/updates/{}", site.update_id(HELLO_NEW)))
        .await;
    assert_eq!(
        u["in_offline_catalog"].as_i64(),
        Some(site.content_version()),
        "{u:#}"
    );
    let package = t["package_id"].as_str().expect("package id").to_string();
    let p = content_installed(&site, &package).await;
    assert_eq!(p["name"], "Offline Scan Catalog", "{p:#}");
    let files = p["file_list"].as_array().expect("files");
    assert_eq!(files.len(), 1, "{p:#}");
    let deb_name = files[0]["name"].as_str().expect("name");
    assert!(
        deb_name.starts_with("koshin-scan-catalog_") && deb_name.ends_with("_all.deb"),
        "{deb_name}"
    );
    // Set up twice: refused, naming when.
    let (status, v) = call(
        &site,
        "POST",
        "/api/v1/catalog/scan-tool",
        Some(&site.token),
        Some(json!({"test_client": "scan-test-1"})),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    // Broadening before the test client has reported is refused with what to do.
    let (status, v) = call(
        &site,
        "POST",
        "/api/v1/catalog/scan-tool/broaden",
        Some(&site.token),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    assert!(v.to_string().contains("has not reported a scan"), "{v}");

    // The other client is not in the collection yet: it gets no scan tool.
    assert!(evaluate_deployments(&other).await.is_empty());

    // The test client fetches the package from its distribution point and scans against
    // the catalog inside it; the expedited program makes its inventory due at once.
    let e = evaluate_deployments(&test_client).await;
    assert_eq!(e.len(), 2, "{e:?}");
    for d in &e {
        assert_eq!(d.state, "succeeded", "{e:?}");
        assert!(
            d.detail.contains("scanned against the offline catalog")
                && d.detail.contains("from KOSHIN-TEST"),
            "{e:?}"
        );
    }
    assert_eq!(test_client.kv_i64("next_inventory_ms"), Some(0));
    let rows = site
        .admin_get("/api/v1/reports/updates-for-computer?computer=scan-test-1")
        .await;
    assert!(required(&rows).contains(&HELLO_NEW.to_string()), "{rows:#}");
    let other_rows = site
        .admin_get("/api/v1/reports/updates-for-computer?computer=scan-other-1")
        .await;
    assert!(required(&other_rows).is_empty(), "{other_rows:#}");

    // Broadened: the limiting rule goes (a new version of the rules), every eligible client
    // is a member, and the other client scans with the tool too.
    let t = site
        .admin_post("/api/v1/catalog/scan-tool/broaden", json!({}))
        .await;
    assert!(!t["broadened"].is_null(), "{t:#}");
    assert_eq!(t["test_client_state"], "succeeded", "{t:#}");
    assert_eq!(t["members"], 2, "{t:#}");
    let history = site
        .admin_get("/api/v1/collections/Offline%20Scan%20Tool/history")
        .await;
    assert_eq!(history.as_array().map(Vec::len), Some(2), "{history:#}");
    let e = evaluate_deployments(&other).await;
    assert!(
        e.len() == 2 && e.iter().all(|d| d.state == "succeeded"),
        "{e:?}"
    );
    let other_rows = site
        .admin_get("/api/v1/reports/updates-for-computer?computer=scan-other-1")
        .await;
    assert!(
        required(&other_rows).contains(&HELLO_NEW.to_string()),
        "{other_rows:#}"
    );
}
