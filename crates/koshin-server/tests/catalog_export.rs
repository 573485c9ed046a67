//! Catalog export and import (S10, docs/catalog-export.md): a full export taken into a
//! fresh site gives it the same update ids, revisions, expiry and content version; an
//! incremental export applies only onto its base version; importing twice changes nothing;
//! a tampered, truncated or foreign file is refused with its reason and nothing is applied.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::http::Request;
use common::*;
use koshin_domain::SyncKind;
use koshin_server::Site;
use koshin_server::export::{self, ExportError};
use koshin_server::init::{InitOptions, init_site};
use tower::ServiceExt;

/// (id → (revision, expired, superseded_by)) of a site's catalog.
fn catalog_of(site: &Site) -> BTreeMap<String, (u32, bool, Option<String>)> {
    site.store
        .stored_updates()
        .expect("stored")
        .into_iter()
        .map(|s| {
            (
                s.id.to_string(),
                (
                    s.revision,
                    s.expired,
                    s.superseded_by.map(|b| b.to_string()),
                ),
            )
        })
        .collect()
}

fn state(site: &Site) -> (i64, String) {
    site.store.content_state().expect("content state")
}

/// A fresh site with no upstream, to import into.
fn fresh(code: &str) -> (tempfile::TempDir, Arc<Site>) {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("data");
    init_site(&InitOptions {
        code: code.into(),
        data: data.clone(),
        upstreams: Vec::new(),
        listen: None,
        parent: None,
        secondary: false,
    })
    .expect("init");
    (dir, Site::open(&data).expect("open"))
}

fn export_of(site: &Site, since: Option<i64>) -> Vec<u8> {
    let snap = site.store.export_catalog(since).expect("export");
    export::write(&site.config.site.code, snap, &site.content.key).expect("write")
}

fn keyring_for(exporter: &Site) -> koshin_apt::verify::Keyring {
    koshin_apt::verify::Keyring::from_armored(&[(
        "exporter".into(),
        exporter.content.public_key.clone(),
    )])
    .expect("keyring")
}

fn import(
    into: &Site,
    file: &[u8],
    exporter: &Site,
) -> Result<koshin_server::http::export::ImportAnswer, String> {
    let doc = export::verify(file, &keyring_for(exporter)).map_err(|e| e.to_string())?;
    koshin_server::http::export::apply(into.store.as_ref(), &doc).map_err(|e| e.to_string())
}

/// Revises hello 2.10-3 (hello-doc goes) and expires libfoo 1.0-1 at the exporter.
async fn change(fx: &mut Fixture) -> i64 {
    fx.archive.remove(STABLE, "hello-doc", "2.10-3");
    fx.archive.remove(STABLE, "libfoo1", "1.0-1");
    fx.publish_stable();
    fx.sync_ok(SyncKind::Full).await.content_version
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_export_gives_a_fresh_site_the_same_catalog_and_a_second_import_changes_nothing() {
    let mut fx = Fixture::new();
    fx.sync_ok(SyncKind::Full).await;
    let cv = change(&mut fx).await;
    let before = catalog_of(&fx.site);
    assert!(before.values().any(|(rev, _, _)| *rev > 1), "{before:?}");
    assert!(
        before.values().any(|(_, expired, _)| *expired),
        "{before:?}"
    );

    let file = export_of(&fx.site, None);
    let (_d, b) = fresh("PS9");
    let answer = import(&b, &file, &fx.site).expect("import");
    assert!(answer.applied);
    assert_eq!(answer.content_version, cv);
    assert_eq!(
        catalog_of(&b),
        before,
        "ids, revisions, expiry, supersedence"
    );
    assert_eq!(state(&b), state(&fx.site), "content version and token");

    let again = import(&b, &file, &fx.site).expect("second import");
    assert!(!again.applied, "{}", again.message);
    assert!(
        again.message.contains("already imported"),
        "{}",
        again.message
    );
    assert_eq!(catalog_of(&b), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incremental_export_applies_only_onto_its_base_version() {
    let mut fx = Fixture::new();
    let base = fx.sync_ok(SyncKind::Full).await.content_version;
    let (_d, b) = fresh("PS9");
    import(&b, &export_of(&fx.site, None), &fx.site).expect("full import");
    let cv = change(&mut fx).await;
    assert!(cv > base);

    let delta = export_of(&fx.site, Some(base));
    let (h, _) = export::read_header(&delta).expect("header");
    assert_eq!((h.since, h.content_version), (base, cv));
    assert!(
        (h.updates as usize) < catalog_of(&fx.site).len(),
        "an incremental export holds only what changed: {h:?}"
    );

    // On the wrong base (a fresh site at 0): refused, naming both versions; nothing applied.
    let (_d2, c) = fresh("PS8");
    let err = import(&c, &delta, &fx.site).expect_err("wrong base");
    assert!(err.contains("wrong base version"), "{err}");
    assert!(err.contains(&format!("content version {base}")), "{err}");
    assert!(err.contains("content version 0"), "{err}");
    assert!(catalog_of(&c).is_empty());
    assert_eq!(state(&c).0, 0);

    // On the right base: exactly the exporter's catalog.
    let answer = import(&b, &delta, &fx.site).expect("incremental import");
    assert!(answer.applied);
    assert_eq!(catalog_of(&b), catalog_of(&fx.site));
    assert_eq!(state(&b), state(&fx.site));
    let again = import(&b, &delta, &fx.site).expect("twice");
    assert!(!again.applied, "{}", again.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tampered_truncated_or_foreign_file_is_refused_with_its_reason() {
    let fx = Fixture::new();
    fx.sync_ok(SyncKind::Full).await;
    let file = export_of(&fx.site, None);
    let ring = keyring_for(&fx.site);
    assert!(export::verify(&file, &ring).is_ok());

    let mut flipped = file.clone();
    let last = flipped.len() - 10;
    flipped[last] ^= 0x01;
    let e = export::verify(&flipped, &ring).expect_err("flipped");
    assert!(matches!(e, ExportError::BadSignature(_)), "{e}");
    assert!(e.to_string().starts_with("bad signature"), "{e}");

    let e = export::verify(&file[..file.len() - 100], &ring).expect_err("truncated");
    assert!(matches!(e, ExportError::Truncated(_)), "{e}");
    assert!(e.to_string().starts_with("truncated"), "{e}");

    let e = export::verify(b"PK\x03\x04 a zip file", &ring).expect_err("zip");
    assert!(
        e.to_string().starts_with("not a koshin catalog export"),
        "{e}"
    );

    let (_d, other) = fresh("PS7");
    let e = export::verify(&file, &keyring_for(&other)).expect_err("foreign");
    assert!(matches!(e, ExportError::UnknownKey(_)), "{e}");
}

async fn call(
    site: &Arc<Site>,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let token = std::fs::read_to_string(site.data.join("admin.token")).expect("token");
    let resp = koshin_server::http::app(site.clone())
        .oneshot(
            Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", format!("Bearer {}", token.trim()))
                .body(Body::from(body))
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
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// Over the API: an unknown key is refused until the exporter's key is trusted; a flipped
/// byte is refused; nothing is applied on refusal; a good file is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_import_route_verifies_before_it_applies() {
    let fx = Fixture::new();
    fx.sync_ok(SyncKind::Full).await;
    let file = export_of(&fx.site, None);
    let (_d, b) = fresh("PS9");

    let (s, v) = call(&b, "POST", "/api/v1/catalog/import", file.clone()).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("does not trust"),
        "{v}"
    );
    assert!(catalog_of(&b).is_empty());

    let (s, v) = call(
        &b,
        "POST",
        "/api/v1/catalog/keys",
        fx.site.content.public_key.clone().into_bytes(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["fingerprint"],
        serde_json::json!(fx.site.content.key.fingerprint())
    );

    let mut flipped = file.clone();
    let i = (flipped.len() / 2 + 300).min(flipped.len() - 1);
    flipped[i] ^= 0x80;
    let (s, v) = call(&b, "POST", "/api/v1/catalog/import", flipped).await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("nothing applied"),
        "{v}"
    );
    assert!(catalog_of(&b).is_empty());

    let (s, v) = call(&b, "POST", "/api/v1/catalog/import", file.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["applied"], serde_json::json!(true), "{v}");
    assert_eq!(catalog_of(&b), catalog_of(&fx.site));
    let (s, v) = call(&b, "POST", "/api/v1/catalog/import", file).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["applied"], serde_json::json!(false), "{v}");
}

async fn call_json(
    site: &Arc<Site>,
    method: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let token = std::fs::read_to_string(site.data.join("admin.token")).expect("token");
    let resp = koshin_server::http::app(site.clone())
        .oneshot(
            Request::builder()
                .method(method)
                .uri(path)
                .header("authorization", format!("Bearer {}", token.trim()))
                .header("content-type", "application/json")
                .body(Body::from(body.to_string()))
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
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

/// P14: the update groups and deployments tested at a test site go to production in a
/// signed file. Refused, with nothing applied, while production lacks the updates or the
/// collection, or when the file is tampered with; then imported all at once, the new
/// deployment disabled for review; imported again, nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approvals_and_deployments_go_from_a_test_site_into_production() {
    let fx = Fixture::new();
    fx.sync_ok(SyncKind::Full).await;
    let hello = apt_id("hello", "2.10-3");
    for (path, body) in [
        (
            "/api/v1/update-groups",
            serde_json::json!({"name": "Pilot fixes", "description": "tested", "updates": [hello]}),
        ),
        (
            "/api/v1/collections",
            serde_json::json!({"name": "Web servers"}),
        ),
        (
            "/api/v1/deployments",
            serde_json::json!({"name": "Pilot rollout", "update_group": "Pilot fixes",
                "collection": "Web servers", "deadline": "2030-01-01T02:00:00", "utc": true,
                "recurrence_days": 7}),
        ),
    ] {
        let (s, v) = call_json(&fx.site, "POST", path, body).await;
        assert_eq!(s, 200, "{path}: {v}");
    }
    let (file, defs) =
        koshin_server::definitions::export(&fx.site, &[], &[]).expect("export definitions");
    assert!(file.starts_with(b"KOSHIN-DEPLOYMENTS 1\n"));
    assert_eq!(defs.groups.len(), 1);
    assert_eq!(defs.deployments.len(), 1);

    let (_d, prod) = fresh("PRD");
    let import = |bytes: Vec<u8>| {
        let prod = prod.clone();
        async move { call(&prod, "POST", "/api/v1/deployment-definitions", bytes).await }
    };
    // Signed by a key production does not trust yet.
    let (s, v) = import(file.clone()).await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("does not trust"), "{v}");
    let (s, v) = call(
        &prod,
        "POST",
        "/api/v1/catalog/keys",
        fx.site.content.public_key.clone().into_bytes(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    // Tampered: refused with the reason.
    let mut flipped = file.clone();
    let last = flipped.len() - 10;
    flipped[last] ^= 0x01;
    let (s, v) = import(flipped).await;
    assert_eq!(s, 400, "{v}");
    assert!(v.to_string().contains("bad signature"), "{v}");
    // Production lacks the updates: refused, naming them and what to do.
    let (s, v) = import(file.clone()).await;
    assert_eq!(s, 409, "{v}");
    assert!(
        v.to_string().contains("not in this site's catalog") && v.to_string().contains(&hello),
        "{v}"
    );
    let catalog = export_of(&fx.site, None);
    import_catalog_into(&prod, &catalog, &fx.site);
    // ... and the collection: refused, nothing applied (the group is not there either).
    let (s, v) = import(file.clone()).await;
    assert_eq!(s, 409, "{v}");
    assert!(v.to_string().contains("create it first"), "{v}");
    assert!(prod.store.list_update_groups().expect("groups").is_empty());
    let (s, v) = call_json(
        &prod,
        "POST",
        "/api/v1/collections",
        serde_json::json!({"name": "Web servers"}),
    )
    .await;
    assert_eq!(s, 200, "{v}");

    let (s, v) = import(file.clone()).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["groups_created"], serde_json::json!(["Pilot fixes"]));
    assert_eq!(
        v["deployments_created"],
        serde_json::json!(["Pilot rollout"])
    );
    let d = prod
        .store
        .list_deployments(&koshin_domain::Scope::All)
        .expect("deployments");
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].name, "Pilot rollout");
    assert!(!d[0].enabled, "imported disabled, for review");
    assert_eq!(d[0].deadline.as_deref(), Some("2030-01-01T02:00:00"));
    assert_eq!(d[0].recurrence_days, Some(7));
    assert_eq!(d[0].updates.len(), 1);
    assert_eq!(d[0].updates[0].id, hello);
    assert!(d[0].id.starts_with("PRDD"), "{}", d[0].id);

    // Again: nothing changes.
    let (s, v) = import(file).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v["deployments_unchanged"],
        serde_json::json!(["Pilot rollout"])
    );
    assert_eq!(v["groups_unchanged"], serde_json::json!(["Pilot fixes"]));
    assert_eq!(
        prod.store
            .list_deployments(&koshin_domain::Scope::All)
            .expect("deployments")
            .len(),
        1
    );
}

fn import_catalog_into(into: &Site, file: &[u8], exporter: &Site) {
    let answer = import(into, file, exporter).expect("catalog import");
    assert!(answer.applied, "{}", answer.message);
}
