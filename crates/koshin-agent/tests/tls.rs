//! Agents over HTTPS (C7): the first contact is verified with `--ca-cert`, the CA the
//! enrollment answer carries is stored and from then on is the only root the agent trusts;
//! scans and state messages go over HTTPS; an https enrollment without a known CA, or with
//! another site's CA, fails before anything is sent.

mod common;

use std::path::Path;
use std::process::Command;

use common::*;
use koshin_agent::db::CA_CERTIFICATE_KEY;
use koshin_agent::enroll::{EnrollOptions, enroll};
use koshin_domain::scan::ScanTrigger;

const AGENT: &str = env!("CARGO_BIN_EXE_koshin-agent");

fn options(site: &TestSite, url: &str, agent: &TestAgent, ca: Option<String>) -> EnrollOptions {
    EnrollOptions {
        site: url.to_string(),
        token: site.token.clone(),
        name: Some(agent.name.clone()),
        state: agent.state.clone(),
        root: agent.root.clone(),
        ca_certificate: ca,
    }
}

fn ca_pem(data: &Path) -> String {
    std::fs::read_to_string(data.join("pki").join("ca.crt")).expect("the site's ca.crt")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_enrolls_scans_and_reports_over_https_with_the_site_ca() {
    let site = TestSite::start().await;
    let https = serve_https(&site.site).await;
    let ca = ca_pem(&site.data);

    // No CA known: refused before any request, saying what to give.
    let agent = TestAgent::new("pc-tls", TYPICAL);
    let err = enroll(&options(&site, &https.url, &agent, None))
        .await
        .expect_err("an https enrollment needs the site CA");
    assert!(format!("{err:#}").contains("--ca-cert"), "{err:#}");

    // Another site's CA does not verify this site: nothing is stored.
    let (other, _) = koshin_server::pki::SiteCa::generate("CS2").expect("another CA");
    let err = enroll(&options(
        &site,
        &https.url,
        &agent,
        Some(other.certificate_pem().to_string()),
    ))
    .await
    .expect_err("another CA");
    assert!(format!("{err:#}").contains("enrollment failed"), "{err:#}");
    assert!(agent.db().get("credential").unwrap().is_none());
    assert!(site.clients().is_empty());

    // With the site CA: enrolled; the CA is stored.
    enroll(&options(&site, &https.url, &agent, Some(ca.clone())))
        .await
        .expect("enroll over https");
    let id = agent.identity();
    assert_eq!(id.site_url, https.url);
    assert_eq!(id.ca_certificate.as_deref(), Some(ca.as_str()));

    // Scan and state messages over HTTPS, with the stored CA.
    let out = agent.scan_ok(ScanTrigger::ScanCycle).await;
    assert!(out.state_messages > 0, "{out:?}");
    let sent = agent.send().await;
    assert!(sent.messages > 0 && sent.refused == 0, "{sent:?}");
    assert_eq!(
        site.current_state(&id.client_id, HELLO_NEW),
        Some(st("required", false))
    );
    assert_eq!(
        site.current_state(&id.client_id, LIBFOO_SEC),
        Some(st("required", false))
    );
    // None of it went through the plain listener.
    assert_eq!(
        site.request_count(),
        0,
        "{:?}",
        site.requests.lock().unwrap()
    );

    // A CA that no longer matches (the site was given a new one): the agent refuses the
    // site rather than trusting anything else.
    agent
        .db()
        .set(CA_CERTIFICATE_KEY, other.certificate_pem())
        .expect("set");
    assert!(agent.scan(ScanTrigger::ScanCycle).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_binary_enrolls_with_ca_cert_and_keeps_the_ca_it_was_given() {
    let site = TestSite::start().await;
    let https = serve_https(&site.site).await;
    let agent = TestAgent::new("pc-bin", TYPICAL);
    let ca_file = agent.dir.path().join("site-ca.crt");
    std::fs::write(&ca_file, ca_pem(&site.data)).expect("write ca");
    let run = |args: &[&str]| {
        Command::new(AGENT)
            .arg("--state")
            .arg(&agent.state)
            .args(args)
            .env_remove("KOSHIN_TOKEN")
            .env_remove("KOSHIN_CA_CERT")
            .output()
            .expect("koshin-agent runs")
    };
    let root = agent.root.display().to_string();
    let ca_arg = ca_file.display().to_string();

    // Without --ca-cert: a clear error.
    let out = run(&[
        "enroll",
        "--site",
        &https.url,
        "--token",
        &site.token,
        "--root",
        &root,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--ca-cert"), "{err}");

    let out = run(&[
        "enroll",
        "--site",
        &https.url,
        "--token",
        &site.token,
        "--root",
        &root,
        "--name",
        "pc-bin",
        "--ca-cert",
        &ca_arg,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The file is not needed any more: the agent stored the site's CA.
    std::fs::remove_file(&ca_file).expect("remove ca file");
    for args in [&["scan"][..], &["send-now"][..]] {
        let out = run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let client_id = agent.client_id();
    assert_eq!(
        site.current_state(&client_id, HELLO_NEW),
        Some(st("required", false))
    );
    assert_eq!(site.request_count(), 0, "all of it over HTTPS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_enrolled_over_plain_http_stores_the_site_ca() {
    let site = TestSite::start().await;
    let agent = site.enroll("pc-plain", TYPICAL).await;
    assert_eq!(
        agent.identity().ca_certificate.as_deref(),
        Some(ca_pem(&site.data).as_str())
    );
    // Plain HTTP keeps working with a CA stored.
    agent.scan_ok(ScanTrigger::ScanCycle).await;
    assert!(agent.send().await.messages > 0);
}

/// Mutual TLS: the agent makes its own key and sends a signing request at enrollment; the
/// site CA signs it. With `client_certificates = "required"` the agent, enrolled over the
/// plain listener, scans and reports over HTTPS with that certificate, while a client
/// without one is refused at the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_gets_a_client_certificate_and_uses_it_where_one_is_required() {
    let site = TestSite::start_with(|cfg| {
        cfg.tls.client_certificates = koshin_server::config::ClientCertificates::Required;
    })
    .await;
    let https = serve_https(&site.site).await;
    let agent = TestAgent::new("pc-mtls", TYPICAL);
    enroll(&options(&site, &site.url, &agent, None))
        .await
        .expect("enroll over the plain listener");
    let id = agent.identity();
    let pair = id
        .client_identity
        .clone()
        .expect("a client certificate and key");
    assert!(pair.contains("BEGIN CERTIFICATE") && pair.contains("PRIVATE KEY"));
    // The key was made here; the enrollment carried only a signing request for it.
    let key = agent.db().get("client_key").unwrap().expect("key");
    assert!(key.contains("PRIVATE KEY"));

    // The management point over HTTPS, with the certificate: scan and report.
    agent.db().set("site_url", &https.url).expect("set");
    let out = agent.scan_ok(ScanTrigger::ScanCycle).await;
    assert!(out.online);
    let sent = agent.send().await;
    assert!(sent.messages > 0 && sent.refused == 0, "{sent:?}");
    assert_eq!(
        site.current_state(&id.client_id, HELLO_NEW),
        Some(st("required", false))
    );

    // Without a client certificate the same HTTPS site refuses the handshake.
    agent
        .db()
        .conn
        .execute("DELETE FROM kv WHERE key = 'client_certificate'", [])
        .expect("forget the certificate");
    assert!(agent.identity().client_identity.is_none());
    let err = agent
        .scan(ScanTrigger::ScanCycle)
        .await
        .expect_err("no client certificate");
    assert!(!format!("{err:#}").is_empty());
}
