//! Disconnected operation: the site makes a signed offline scan
//! catalog (6710); a machine with no network to any site, never enrolled, scans a real dpkg
//! root against the file and writes its results; imported at the site they register the
//! client and appear in `updates-for-computer` like any scan, once; a tampered or truncated
//! catalog, or one without a trusted key, is refused with the reason.

mod common;

use common::*;
use koshin_testkit::DebSpec;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_with_no_site_scans_the_offline_catalog_and_its_results_are_imported() {
    let site = TestSite::start().await;

    // The site makes the catalog (an administrator with Sync), reporting 6710.
    let resp = site
        .http()
        .get(format!("{}/api/v1/catalog/offline", site.url))
        .bearer_auth(&site.token)
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 200);
    let catalog = resp.bytes().await.expect("body").to_vec();
    assert!(catalog.starts_with(b"KOSHIN-SCAN-CATALOG 1\n"));
    assert!(
        site.count(
            "SELECT COUNT(*) FROM v_status_messages WHERE message_id = 6710",
            &[]
        ) == 1
    );
    let dir = tempfile::tempdir().expect("dir");
    let file = dir.path().join("scan-catalog.ksc");
    std::fs::write(&file, &catalog).expect("write catalog");
    let key = site.site.content.public_key.clone();

    // A machine no site knows: hello 2.10-3 installed by dpkg, its own state folder.
    let root = koshin_testkit::DpkgRoot::new().expect("dpkg root");
    std::fs::create_dir_all(root.path().join("etc")).expect("etc");
    std::fs::write(root.path().join("etc/hostname"), "isolated-1\n").expect("hostname");
    let deb = site.archive.root().join(
        DebSpec::new("hello", "2.10-3", "amd64")
            .source("hello", None)
            .pool_path("main"),
    );
    let out = dpkg(root.path(), &["-i", &deb.display().to_string()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state");
    let results = dir.path().join("results.json");
    let scan = |key: Option<String>, file: std::path::PathBuf| {
        let (state, root, results) = (state.clone(), root.path().to_path_buf(), results.clone());
        async move {
            koshin_agent::offline::scan(
                &state,
                &root,
                &file,
                key.as_deref(),
                &results,
                koshin_agent::scan::Detail::All,
            )
            .await
        }
    };

    // Refused, with the reason: no key yet, a changed byte, a cut file.
    let err = scan(None, file.clone()).await.expect_err("no key");
    assert!(format!("{err:#}").contains("--key"), "{err:#}");
    let tampered = dir.path().join("tampered.ksc");
    let mut bytes = catalog.clone();
    let at = bytes.len() - 20;
    bytes[at] ^= 0x01;
    std::fs::write(&tampered, &bytes).expect("write");
    let err = scan(Some(key.clone()), tampered)
        .await
        .expect_err("tampered");
    assert!(format!("{err:#}").contains("bad signature"), "{err:#}");
    let cut = dir.path().join("cut.ksc");
    std::fs::write(&cut, &catalog[..catalog.len() / 2]).expect("write");
    let err = scan(Some(key.clone()), cut).await.expect_err("truncated");
    assert!(format!("{err:#}").contains("truncated"), "{err:#}");

    // The real file, the key given once (and trusted from then on).
    let (out, r) = scan(Some(key.clone()), file.clone())
        .await
        .expect("offline scan");
    assert!(!out.online);
    let hello = out
        .updates
        .iter()
        .find(|u| u.title == HELLO_NEW)
        .expect("hello 2.10-4 scanned");
    assert_eq!(hello.state, "required");
    assert_eq!(r.client.name, "isolated-1");
    assert_eq!(r.catalog_site, "CS1");
    let (again, _) = scan(None, file.clone())
        .await
        .expect("the key is trusted now");
    assert!(!again.online);

    // Imported at the site: the client is registered and its states count like any scan.
    let text = std::fs::read_to_string(&results).expect("results");
    let results_json: serde_json::Value = serde_json::from_str(&text).expect("json");
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/import/scan-results",
        Some(&site.token),
        Some(results_json.clone()),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["registered"], true, "{v}");
    assert!(v["stored"].as_u64().unwrap_or(0) > 0, "{v}");
    let rows = site
        .admin_get("/api/v1/reports/updates-for-computer?computer=isolated-1")
        .await;
    let required: Vec<&str> = rows["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["state"] == "required")
        .filter_map(|r| r["title"].as_str())
        .collect();
    assert!(required.contains(&HELLO_NEW), "{rows:#}");
    // Imported twice: taken once.
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/import/scan-results",
        Some(&site.token),
        Some(results_json),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        (v["duplicate"].clone(), v["stored"].clone()),
        (json!(true), json!(0))
    );
    // Something else is refused.
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/import/scan-results",
        Some(&site.token),
        Some(json!({"format": "other", "client": {"client_id": "x", "name": "n", "os": "", "os_release": "", "architecture": "", "agent_version": ""}, "catalog_site": "CS1", "content_version": 1, "batches": []})),
    )
    .await;
    assert_eq!(s, 400, "{v}");

    // The machine enrolls later (with a token the site trusts): it keeps the client id its
    // results were imported under, so the site has one record for it, with its states.
    let clients_before = site.clients().len();
    koshin_agent::enroll::enroll(&koshin_agent::enroll::EnrollOptions {
        site: site.url.clone(),
        token: site.token.clone(),
        name: Some("isolated-1".into()),
        state: state.clone(),
        root: root.path().to_path_buf(),
        ca_certificate: None,
    })
    .await
    .expect("enroll after the offline scan");
    assert_eq!(site.clients().len(), clients_before, "one record");
    assert_eq!(
        koshin_agent::db::AgentDb::open(&state)
            .expect("agent db")
            .identity()
            .expect("identity")
            .client_id,
        r.client.client_id
    );
}

/// One sync host per hierarchy (I1): a named client is designated, a second is refused with
/// the first named; only that client is told so in its policy and may fetch the catalog,
/// which it verifies with the site's key from its policy and keeps; the site as sync host
/// makes the catalog itself when none is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sync_host_refreshes_the_offline_catalog() {
    let site = TestSite::start().await;
    let syncer = site.enroll("syncer", TYPICAL).await;
    let other = site.enroll("other", TYPICAL).await;
    let post = |path: &'static str, body: serde_json::Value| {
        let site = &site;
        async move { call(site, "POST", path, Some(&site.token), Some(body)).await }
    };
    let (s, v) = post("/api/v1/catalog/sync-host", json!({"host": "syncer"})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["refresh_days"], 7, "{v}");
    let (s, v) = post("/api/v1/catalog/sync-host", json!({"host": "site"})).await;
    assert_eq!(s, 409, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("client syncer is the offline catalog's sync host already")),
        "{v}"
    );
    let (s, v) = post("/api/v1/catalog/sync-host", json!({"host": "nobody"})).await;
    assert_eq!(s, 404, "{v}");

    for a in [&syncer, &other] {
        koshin_agent::runner::poll_policy(&a.db(), &a.mp())
            .await
            .expect("policy");
    }
    let days = |a: &TestAgent| {
        a.db()
            .get("policy")
            .expect("db")
            .and_then(|p| serde_json::from_str::<koshin_wire::MachinePolicy>(&p).ok())
            .and_then(|p| p.offline_catalog_refresh_days)
    };
    assert_eq!(days(&syncer), Some(7));
    assert_eq!(days(&other), None);
    let refused = other
        .mp()
        .offline_catalog()
        .await
        .expect_err("not the sync host");
    assert!(
        refused
            .to_string()
            .contains("not the offline scan catalog's sync host"),
        "{refused}"
    );

    let cv = koshin_agent::offline::refresh(&syncer.state, &syncer.mp())
        .await
        .expect("refresh");
    assert_eq!(cv, site.content_version());
    assert!(koshin_agent::offline::kept_catalog(&syncer.state).exists());
    assert_eq!(
        site.count(
            "SELECT COUNT(*) FROM v_status_messages WHERE message_id = 6710",
            &[]
        ),
        1
    );

    // The site takes over: it makes the catalog at once when it keeps none.
    let (s, v) = post("/api/v1/catalog/sync-host/remove", json!({})).await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = post(
        "/api/v1/catalog/sync-host",
        json!({"host": "site", "refresh_days": 3}),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    std::fs::remove_file(site.data.join(koshin_server::offline::CATALOG_FILE)).expect("remove");
    let (tx, rx) = tokio::sync::watch::channel(false);
    let host = tokio::spawn(koshin_server::offline::run(site.site.clone(), rx));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !site
        .data
        .join(koshin_server::offline::CATALOG_FILE)
        .exists()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the site made no catalog"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = tx.send(true);
    let _ = host.await;
    assert_eq!(
        site.count(
            "SELECT COUNT(*) FROM v_status_messages WHERE message_id = 6710",
            &[]
        ),
        2
    );
}
