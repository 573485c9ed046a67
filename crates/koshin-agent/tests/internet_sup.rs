//! Internet-facing update points (S10): registered at the site as internet-facing, served
//! over HTTPS only with a certificate from the site CA, synced by their own poll of the
//! site's active update point — never inside the site's sync (no 6706 for them) — and,
//! when the site is away, fed with a catalog export file (`koshin sup import`).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use koshin_server::isup::{CERT_FILE, InternetSup, InternetSupIdentity, KEY_FILE};
use serde_json::json;

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn catalog_of(store: &dyn koshin_store::Store) -> BTreeMap<String, (u32, bool)> {
    store
        .stored_updates()
        .expect("stored")
        .into_iter()
        .map(|s| (s.id.to_string(), (s.revision, s.expired)))
        .collect()
}

fn sync_messages(s: &TestSite) -> Vec<u32> {
    s.site
        .store
        .query_status(
            &koshin_wire::StatusQuery {
                component: Some("SMS_WSUS_SYNC_MANAGER".into()),
                ..Default::default()
            },
            &koshin_domain::Scope::All,
        )
        .expect("status")
        .into_iter()
        .map(|m| m.message_id)
        .collect()
}

/// Registers an internet-facing update point `name` at `url` and writes its data folder
/// as `koshin sup serve --internet` does; returns its identity.
async fn register(site: &TestSite, name: &str, url: &str, data: &Path) -> InternetSupIdentity {
    let (s, v) = call(
        site,
        "POST",
        "/api/v1/sups/register-internet",
        Some(&site.token),
        Some(json!({"name": name, "url": url, "names": ["127.0.0.1"]})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    std::fs::create_dir_all(data.join("tls")).expect("tls dir");
    std::fs::write(
        data.join(CERT_FILE),
        v["certificate"].as_str().expect("cert"),
    )
    .expect("cert");
    std::fs::write(data.join(KEY_FILE), v["private_key"].as_str().expect("key")).expect("key");
    let identity = InternetSupIdentity {
        site: site.url.clone(),
        site_code: v["site_code"].as_str().expect("code").into(),
        name: name.into(),
        url: url.into(),
        pull_token: v["pull_token"].as_str().expect("pull").into(),
        archive_key: v["archive_key"].as_str().expect("archive key").into(),
        ca_certificate: v["ca_certificate"].as_str().expect("ca").into(),
    };
    std::fs::write(
        data.join(koshin_server::isup::IDENTITY_FILE),
        serde_json::to_string(&identity).expect("json"),
    )
    .expect("identity");
    identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internet_facing_update_point_serves_https_only_and_catches_up_by_its_own_poll() {
    let mut site = TestSite::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let url = format!("https://127.0.0.1:{port}");
    let identity = register(&site, "ISUP-1", &url, dir.path()).await;
    let isup = InternetSup::open(dir.path(), identity.clone()).expect("open");
    let store = isup.store.clone();
    tokio::spawn(koshin_server::isup::serve(
        isup,
        listener,
        Duration::from_millis(200),
        std::future::pending(),
    ));

    // It catches up with the site by its poll.
    let cv = site.content_version();
    until("the first poll", || {
        store.content_state().expect("state").0 == cv
    })
    .await;
    assert_eq!(
        catalog_of(store.as_ref()).len(),
        catalog_of(site.site.store.as_ref()).len()
    );

    // HTTPS with the site CA: the same catalog as the site's.
    let certs =
        reqwest::Certificate::from_pem_bundle(identity.ca_certificate.as_bytes()).expect("ca");
    let https = reqwest::Client::builder()
        .tls_certs_only(certs)
        .build()
        .expect("client");
    let r = https
        .get(format!("{url}/api/v1/mp/catalog?since=0"))
        .send()
        .await
        .expect("https answers");
    assert_eq!(r.status(), 200);
    let served: koshin_wire::ClientCatalog = r.json().await.expect("catalog");
    let at_site = site.site.store.client_catalog(0, "").expect("site catalog");
    assert_eq!(served.content_version, at_site.content_version);
    assert_eq!(
        serde_json::to_value(&served.updates).expect("json"),
        serde_json::to_value(&at_site.updates).expect("json")
    );

    // No plain HTTP at all on its port.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client")
        .get(format!("http://127.0.0.1:{port}/api/v1/health"))
        .send()
        .await;
    assert!(
        plain
            .as_ref()
            .map(|r| !r.status().is_success())
            .unwrap_or(true),
        "plain HTTP must fail: {plain:?}"
    );

    // The site's own sync does not sync it (no 6706); it catches up by itself.
    let cv2 = site.publish_libfoo_deb12u2().await;
    assert!(cv2 > cv);
    let last: Vec<u32> = sync_messages(&site).into_iter().rev().take(4).collect();
    assert!(!last.contains(&6706), "{last:?}");
    let sitelog = std::fs::read_to_string(site.data.join("logs/wsyncmgr.log")).expect("log");
    assert!(
        !sitelog.contains("Synchronizing update point ISUP-1"),
        "{sitelog}"
    );
    until("the poll after the site's sync", || {
        store.content_state().expect("state") == site.site.store.content_state().expect("site")
    })
    .await;
    assert_eq!(
        catalog_of(store.as_ref()).keys().collect::<Vec<_>>(),
        catalog_of(site.site.store.as_ref())
            .keys()
            .collect::<Vec<_>>()
    );
    let log = std::fs::read_to_string(dir.path().join("logs/wsyncmgr.log")).expect("isup log");
    for line in [
        "Synchronizing update point ISUP-1 with site CS1 ...",
        "Done synchronizing update point ISUP-1",
        &format!("Set content version of update point ISUP-1 to {cv2}"),
    ] {
        assert!(
            log.contains(line),
            "the update point's log lacks '{line}':\n{log}"
        );
    }
    // Policy (made at the site's sync) lists it, marked internet-facing.
    let (_, policy) = call(&site, "GET", "/api/v1/policy/machine", None, None).await;
    assert!(
        policy["update_points"]
            .as_array()
            .expect("points")
            .iter()
            .any(|p| p["url"] == json!(url) && p["role"] == json!("internet")),
        "{policy}"
    );

    // The site knows how it is.
    let (_, sups) = call(&site, "GET", "/api/v1/sups", Some(&site.token), None).await;
    assert_eq!(sups[0]["name"], json!("ISUP-1"), "{sups}");
    assert_eq!(sups[0]["role"], json!("internet"), "{sups}");
    site.served.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sup_import_feeds_an_internet_facing_update_point_whose_site_is_away() {
    let mut site = TestSite::start().await;
    let dir = tempfile::tempdir().expect("dir");
    register(&site, "ISUP-2", "https://127.0.0.1:9", dir.path()).await;
    let file = {
        let snap = site.site.store.export_catalog(None).expect("export");
        koshin_server::export::write("CS1", snap, &site.site.content.key).expect("write")
    };
    site.served.stop().await;

    let mut flipped = file.clone();
    let i = flipped.len() - 5;
    flipped[i] ^= 0x10;
    let err = koshin_server::isup::import_file(dir.path(), &flipped).expect_err("tampered");
    assert!(err.to_string().contains("bad signature"), "{err:#}");
    let err = koshin_server::isup::import_file(dir.path(), &file[..file.len() / 2])
        .expect_err("truncated");
    assert!(err.to_string().contains("truncated"), "{err:#}");

    let answer = koshin_server::isup::import_file(dir.path(), &file).expect("import");
    assert!(answer.applied, "{}", answer.message);
    let identity = InternetSup::identity(dir.path()).expect("identity");
    let isup = InternetSup::open(dir.path(), identity).expect("open");
    assert_eq!(
        isup.store.content_state().expect("state"),
        site.site.store.content_state().expect("site state")
    );
    assert_eq!(
        catalog_of(isup.store.as_ref()),
        catalog_of(site.site.store.as_ref())
    );
    let again = koshin_server::isup::import_file(dir.path(), &file).expect("again");
    assert!(!again.applied, "{}", again.message);
}
