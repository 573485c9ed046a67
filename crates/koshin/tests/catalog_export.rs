//! `koshin catalog export|import|keys` with the real binary (docs/catalog-export.md): a
//! site's catalog exported to a signed file and imported into a disconnected site, which
//! first refuses a key it does not trust, then takes it once and only once; a flipped byte
//! is refused with its reason.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

use koshin_testkit::{Archive, DebSpec, SuiteSpec};

fn archive() -> (Archive, koshin_testkit::LoopbackServer) {
    let mut a = Archive::new().expect("archive");
    a.add(
        "bookworm",
        "main",
        &DebSpec::new("hello", "2.10-3+b1", "amd64").source("hello", Some("2.10-3")),
    )
    .expect("deb");
    a.add(
        "bookworm",
        "main",
        &DebSpec::new("hello-doc", "2.10-3", "all").source("hello", None),
    )
    .expect("deb");
    a.add(
        "bookworm-security",
        "main",
        &DebSpec::new("libfoo1", "1.0-1+deb12u1", "amd64").source("foo", None),
    )
    .expect("deb");
    a.publish(&SuiteSpec::new("bookworm", "bookworm"))
        .expect("publish");
    a.publish(&SuiteSpec::new("bookworm-security", "bookworm-security").label("Debian-Security"))
        .expect("publish");
    let server = a.serve().expect("serve");
    (a, server)
}

fn init(data: &Path, code: &str, lines: &[String]) {
    let mut args = vec![
        "site".to_string(),
        "init".into(),
        "--code".into(),
        code.into(),
        "--data".into(),
    ];
    args.push(data.display().to_string());
    for l in lines {
        args.push("--upstream".into());
        args.push(l.clone());
    }
    let out = Command::new(KOSHIN)
        .args(&args)
        .output()
        .expect("init runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn fails(out: &std::process::Output, why: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "koshin should have failed: {err}");
    assert!(err.contains(why), "the reason should say '{why}': {err}");
}

fn ids(site: &str, token: &str) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = json(&koshin(site, token, &["updates", "list", "--json"]))
        .as_array()
        .expect("updates")
        .iter()
        .map(|u| {
            (
                u["id"].as_str().unwrap_or_default().to_string(),
                u["revision"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn catalog_export_and_import_between_two_sites() {
    let (a, server) = archive();
    let dir = tempfile::tempdir().expect("tempdir");
    let line = |suite: &str| {
        format!(
            "deb [signed-by={} arch=amd64] {} {suite} main",
            a.keyring().display(),
            a.uri(&server)
        )
    };
    let lines = [line("bookworm"), line("bookworm-security")];
    let top = dir.path().join("top");
    let cut = dir.path().join("cut");
    init(&top, "CS1", &lines);
    init(&cut, "CS2", &lines);
    let (s1, t1) = serve(&top);
    let (s2, t2) = serve(&cut);
    let out = koshin(&s1.url, &t1, &["sync", "--full", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let file = dir.path().join("catalog.kce");
    let file_arg = file.display().to_string();
    let v = json(&koshin(
        &s1.url,
        &t1,
        &["catalog", "export", &file_arg, "--json"],
    ));
    assert_eq!(v["site"], "CS1", "{v}");
    assert_eq!(v["since"], 0, "{v}");
    assert!(v["updates"].as_u64().unwrap_or(0) > 0, "{v}");
    let cv = v["content_version"].as_i64().expect("cv");

    // The other site does not know CS1's key yet.
    fails(
        &koshin(&s2.url, &t2, &["catalog", "import", &file_arg]),
        "does not trust",
    );
    // A flipped byte is refused, whatever the key.
    let mut bytes = std::fs::read(&file).expect("read");
    let n = bytes.len();
    bytes[n - 20] ^= 0x04;
    let bad = dir.path().join("bad.kce");
    std::fs::write(&bad, &bytes).expect("write");
    let key = top.join("pki").join("archive-key.pub.asc");
    let key_arg = key.display().to_string();
    fails(
        &koshin(
            &s2.url,
            &t2,
            &[
                "catalog",
                "import",
                &bad.display().to_string(),
                "--key",
                &key_arg,
            ],
        ),
        "bad signature",
    );
    assert!(ids(&s2.url, &t2).is_empty(), "nothing applied");

    let v = json(&koshin(
        &s2.url,
        &t2,
        &["catalog", "import", &file_arg, "--json"],
    ));
    assert_eq!(v["applied"], true, "{v}");
    assert_eq!(v["content_version"], cv, "{v}");
    assert_eq!(ids(&s2.url, &t2), ids(&s1.url, &t1));

    let out = koshin(&s2.url, &t2, &["catalog", "import", &file_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already imported"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let keys = json(&koshin(&s2.url, &t2, &["catalog", "keys", "--json"]));
    assert_eq!(
        keys.as_array().map(Vec::len),
        Some(2),
        "its own and CS1's: {keys}"
    );
    let out = koshin(&s2.url, &t2, &["catalog", "keys"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("FINGERPRINT"));

    // The update groups and deployments tried at CS1 go to CS2 (P14), disabled for review.
    let hello = ids(&s1.url, &t1)
        .into_iter()
        .map(|(id, _)| id)
        .next()
        .expect("an update");
    for (site, token) in [(&s1.url, &t1), (&s2.url, &t2)] {
        let out = koshin(site, token, &["collections", "create", "Web servers"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for args in [
        vec!["update-groups", "create", "pilot", "--update", &hello],
        vec![
            "deployments",
            "create",
            "pilot-web",
            "--group",
            "pilot",
            "--collection",
            "Web servers",
        ],
    ] {
        let out = koshin(&s1.url, &t1, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let defs = dir.path().join("pilot.kdd");
    let defs_arg = defs.display().to_string();
    let v = json(&koshin(
        &s1.url,
        &t1,
        &["deployments", "export", &defs_arg, "--json"],
    ));
    assert_eq!(v["site"], "CS1", "{v}");
    assert_eq!(v["deployments"], "1", "{v}");
    let out = koshin(&s2.url, &t2, &["deployments", "import", &defs_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("deployments created (disabled") && text.contains("pilot-web"),
        "{text}"
    );
    let list = json(&koshin(&s2.url, &t2, &["deployments", "list", "--json"]));
    assert_eq!(list[0]["name"], "pilot-web", "{list}");
    assert_eq!(list[0]["enabled"], false, "{list}");
    let v = json(&koshin(
        &s2.url,
        &t2,
        &["deployments", "import", &defs_arg, "--json"],
    ));
    assert_eq!(v["deployments_unchanged"][0], "pilot-web", "{v}");
    // The scan tool is not set up at CS2: said so.
    let out = koshin(&s2.url, &t2, &["catalog", "scan-tool", "show"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("not set up"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// `koshin sup serve --internet` registers, gets its certificate from the site CA and
/// answers HTTPS only; `koshin sup import` feeds it from an export file, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internet_facing_update_point_from_the_command_line() {
    let (a, server) = archive();
    let dir = tempfile::tempdir().expect("tempdir");
    let line = |suite: &str| {
        format!(
            "deb [signed-by={} arch=amd64] {} {suite} main",
            a.keyring().display(),
            a.uri(&server)
        )
    };
    let top = dir.path().join("top");
    init(&top, "CS1", &[line("bookworm"), line("bookworm-security")]);
    let (s1, t1) = serve(&top);
    let out = koshin(&s1.url, &t1, &["sync", "--full", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = dir.path().join("catalog.kce");
    json(&koshin(
        &s1.url,
        &t1,
        &["catalog", "export", &file.display().to_string(), "--json"],
    ));

    let isup_data = dir.path().join("isup");
    let isup = start(
        &[
            "sup",
            "serve",
            "--internet",
            "--site",
            &s1.url,
            "--token",
            &t1,
            "--data",
            &isup_data.display().to_string(),
            "--listen",
            "127.0.0.1:0",
            "--name",
            "ISUP-CLI",
            "--poll-seconds",
            "3600",
        ],
        "served on ",
    );
    assert!(isup.url.starts_with("https://127.0.0.1:"), "{}", isup.url);
    let ca = std::fs::read(top.join("pki").join("ca.crt")).expect("ca");
    let https = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).expect("ca pem"))
        .build()
        .expect("client");
    let r = https
        .get(format!("{}/api/v1/health", isup.url))
        .send()
        .await
        .expect("https answers");
    assert_eq!(r.status(), 200);
    let plain = reqwest::get(format!(
        "{}/api/v1/health",
        isup.url.replacen("https://", "http://", 1)
    ))
    .await;
    assert!(
        plain
            .as_ref()
            .map(|r| !r.status().is_success())
            .unwrap_or(true),
        "no plain HTTP: {plain:?}"
    );
    drop(isup);

    // Offline: the export goes in once (the first poll may have taken it already).
    let data_arg = isup_data.display().to_string();
    let file_arg = file.display().to_string();
    let v = json(&koshin(
        &s1.url,
        &t1,
        &["sup", "import", &file_arg, "--data", &data_arg, "--json"],
    ));
    assert_eq!(v["site"], "CS1", "{v}");
    let out = koshin(
        &s1.url,
        &t1,
        &["sup", "import", &file_arg, "--data", &data_arg],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("already imported"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut bytes = std::fs::read(&file).expect("read");
    bytes.truncate(bytes.len() - 7);
    let cut = dir.path().join("cut.kce");
    std::fs::write(&cut, &bytes).expect("write");
    fails(
        &koshin(
            &s1.url,
            &t1,
            &[
                "sup",
                "import",
                &cut.display().to_string(),
                "--data",
                &data_arg,
            ],
        ),
        "truncated",
    );
}

/// `koshin catalog offline` makes the signed offline scan catalog (6710); a machine no site
/// knows scans against it; `koshin import scan-results` registers it at the site, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_catalog_and_scan_results_from_the_command_line() {
    let (a, server) = archive();
    let dir = tempfile::tempdir().expect("tempdir");
    let lines = [format!(
        "deb [signed-by={} arch=amd64] {} bookworm main",
        a.keyring().display(),
        a.uri(&server)
    )];
    let data = dir.path().join("site");
    init(&data, "CS1", &lines);
    let (s, t) = serve(&data);
    let out = koshin(&s.url, &t, &["sync", "--full", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = dir.path().join("scan-catalog.ksc");
    let v = json(&koshin(
        &s.url,
        &t,
        &["catalog", "offline", &file.display().to_string(), "--json"],
    ));
    assert_eq!(v["site"], "CS1", "{v}");
    assert!(v["updates"].as_u64().unwrap_or(0) > 0, "{v}");
    let messages = json(&koshin(
        &s.url,
        &t,
        &["status-messages", "--id", "6710", "--json"],
    ));
    assert_eq!(messages.as_array().map(Vec::len), Some(1), "{messages}");

    let root = koshin_testkit::DpkgRoot::new().expect("root");
    std::fs::create_dir_all(root.path().join("etc")).expect("etc");
    std::fs::write(root.path().join("etc/hostname"), "isolated-2\n").expect("hostname");
    let state = dir.path().join("agent");
    std::fs::create_dir_all(&state).expect("state");
    let results = dir.path().join("results.json");
    let key = std::fs::read_to_string(data.join("pki").join("archive-key.pub.asc")).expect("key");
    koshin_agent::offline::scan(
        &state,
        root.path(),
        &file,
        Some(&key),
        &results,
        koshin_agent::scan::Detail::Applicable,
    )
    .await
    .expect("offline scan");

    let results_arg = results.display().to_string();
    let v = json(&koshin(
        &s.url,
        &t,
        &["import", "scan-results", &results_arg, "--json"],
    ));
    assert_eq!(v["registered"], true, "{v}");
    assert_eq!(v["computer"], "isolated-2", "{v}");
    let out = koshin(&s.url, &t, &["import", "scan-results", &results_arg]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("imported before"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let clients = json(&koshin(&s.url, &t, &["clients", "list", "--json"]));
    assert!(
        clients
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["name"] == "isolated-2")),
        "{clients}"
    );
    // The sync host: the site, shown, a second one refused, removed.
    let v = json(&koshin(
        &s.url,
        &t,
        &["catalog", "sync-host", "site", "--json"],
    ));
    assert_eq!(v["host"], "site", "{v}");
    let v = json(&koshin(&s.url, &t, &["catalog", "sync-host", "--json"]));
    assert_eq!(v["refresh_days"], 7, "{v}");
    fails(
        &koshin(&s.url, &t, &["catalog", "sync-host", "isolated-2"]),
        "sync host already",
    );
    let out = koshin(&s.url, &t, &["catalog", "sync-host", "--remove"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("no longer the sync host"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Not results: refused, and said so.
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{}").expect("write");
    fails(
        &koshin(
            &s.url,
            &t,
            &["import", "scan-results", &bad.display().to_string()],
        ),
        "not offline scan results",
    );
}
