//! Linked sites authenticate each other with certificates: a child that joins over
//! `https://` gets a link certificate from its parent's CA; its replication goes over HTTPS
//! presenting it, trusting the parent's CA only; the parent's notification reaches the
//! child over HTTPS verified by the child's CA. A Site route refuses another site's or an
//! agent's certificate with the link's token, and, on a certificate-bound link, HTTPS
//! without a certificate; plain HTTP with the token still works.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use koshin_server::init::{InitOptions, init_site};
use koshin_server::sync::SyncManager;

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A client trusting only `ca`, presenting `identity` (certificate and key, PEM) if given.
fn client(ca: &str, identity: Option<String>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(ca.as_bytes()).expect("ca"));
    if let Some(pem) = identity {
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes()).expect("identity"));
    }
    b.build().expect("client")
}

async fn catalog(c: &reqwest::Client, base: &str, token: &str) -> (u16, String) {
    let r = c
        .get(format!("{base}/api/v1/sites/catalog"))
        .bearer_auth(token)
        .send()
        .await
        .expect("request");
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await.unwrap_or_default();
    (status, v["error"].as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linked_sites_authenticate_each_other_with_certificates() {
    let mut top = TestSite::start().await;
    let top_https = serve_https(&top.site).await;
    let top_ca = read(&top.data.join("pki/ca.crt"));

    // PS1 joins CS1 over https, verifying it with CS1's CA; CS1 reaches PS1 over https.
    let dir = tempfile::Builder::new()
        .prefix("kmtls")
        .tempdir()
        .expect("dir");
    let data = dir.path().join("data");
    init_site(&InitOptions {
        code: "PS1".into(),
        data: data.clone(),
        upstreams: Vec::new(),
        listen: None,
        parent: Some(top_https.url.clone()),
        secondary: false,
    })
    .expect("init child");
    let ps1 = Served::open(&data).await;
    let ps1_https = serve_https(&ps1.site).await;
    let token = join_token(&top.url, &top.token).await;
    let join = |ca: Option<&str>| {
        let (ps1, top_https, token, own) = (&ps1, &top_https, &token, &ps1_https.url);
        let ca = ca.map(str::to_string);
        async move {
            koshin_server::hierarchy::join_parent(
                ps1.site.store.as_ref(),
                &koshin_server::hierarchy::JoinTls {
                    pki: &ps1.site.pki,
                    parent_ca: ca.as_deref(),
                },
                "PS1",
                false,
                &top_https.url,
                token,
                own,
            )
            .await
        }
    };
    // Without the parent's CA, an https join is refused before anything is sent.
    let err = join(None).await.expect_err("no parent CA");
    assert!(err.to_string().contains("--parent-ca"), "{err}");
    assert_eq!(join(Some(&top_ca)).await.expect("join"), "CS1");

    // What each side keeps.
    let at_child = data.join("pki/links/CS1");
    assert_eq!(read(&at_child.join("ca.crt")), top_ca);
    assert!(read(&at_child.join("client.crt")).contains("BEGIN CERTIFICATE"));
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(at_child.join("client.key"))
            .expect("client.key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let at_parent = top.data.join("pki/links/PS1");
    assert_eq!(
        read(&at_parent.join("ca.crt")),
        read(&data.join("pki/ca.crt"))
    );
    assert_eq!(
        read(&at_parent.join("issued.crt")),
        read(&at_child.join("client.crt"))
    );
    // One sync at the top: the notification goes to PS1 over https (the link's URL), PS1
    // replicates over https with its certificate.
    let (_stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(SyncManager::new(ps1.site.clone()).run(rx));
    let cv = top.publish_libfoo_deb12u2().await;
    until("PS1's content version", || ps1.content_version() == cv).await;
    let links = top.site.store.site_links().expect("links");
    let l = links.iter().find(|l| l.code == "PS1").expect("PS1 link");
    assert!(l.url.starts_with("https://"), "{}", l.url);
    assert!(!l.notify_pending, "{l:?}");
    assert_eq!(l.last_error, None);
    let wsync = read(&data.join("logs/wsyncmgr.log"));
    assert!(
        wsync.contains("Found parent sync notification file CS1.SYN"),
        "{wsync}"
    );

    // PS1's token with PS1's certificate: served.
    let ps1_token = ps1
        .site
        .store
        .link_token("CS1")
        .expect("token")
        .expect("a token");
    let own = format!(
        "{}\n{}",
        read(&at_child.join("client.crt")),
        read(&at_child.join("client.key"))
    );
    let (status, _) = catalog(&client(&top_ca, Some(own)), &top_https.url, &ps1_token).await;
    assert_eq!(status, 200);

    // PS1's token with an agent's certificate from CS1's CA: refused.
    let agent = top.site.pki.ca().issue_client("pc-1").expect("agent cert");
    let agent_id = format!("{}\n{}", agent.certificate_pem, agent.private_key.expose());
    let (status, reason) =
        catalog(&client(&top_ca, Some(agent_id)), &top_https.url, &ps1_token).await;
    assert_eq!(status, 403, "{reason}");
    assert!(reason.contains("not a site's link certificate"), "{reason}");

    // ... with another site's link certificate: refused.
    let (key, csr) = koshin_server::links::key_and_csr("PS2").expect("csr");
    let ps2_cert = top.site.pki.ca().sign_site_csr(&csr, "PS2").expect("sign");
    let ps2_id = format!("{ps2_cert}\n{}", key.expose());
    let (status, reason) =
        catalog(&client(&top_ca, Some(ps2_id)), &top_https.url, &ps1_token).await;
    assert_eq!(status, 403, "{reason}");
    assert!(reason.contains("site PS2's"), "{reason}");

    // ... over HTTPS without a certificate, on the certificate-bound link: refused.
    let (status, reason) = catalog(&client(&top_ca, None), &top_https.url, &ps1_token).await;
    assert_eq!(status, 403, "{reason}");
    assert!(reason.contains("certificate-bound"), "{reason}");

    // Plain HTTP with the token (loopback development): still served.
    let (status, reason) = catalog(&reqwest::Client::new(), &top.url, &ps1_token).await;
    assert_eq!(status, 200, "{reason}");
}
