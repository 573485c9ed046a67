//! Trust (issue "TLS, identity, roles, audit"): every route enforces the authorization it
//! states; a Read-only Analyst cannot change anything; clients enroll with a token or wait
//! for approval, are refused once revoked, and report only for themselves; administrators
//! log in with a password, tokens are revocable, and the audit log names who did what.

mod common;

use common::*;
use koshin_domain::{Permission, scan::ScanTrigger};
use koshin_server::http::router::{Access, ROUTES};
use serde_json::json;

async fn call(
    site: &TestSite,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    let url = format!("{}{path}", site.url);
    let mut r = match method {
        "GET" => site.http().get(url),
        "POST" => site.http().post(url),
        other => panic!("method {other}"),
    };
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    if let Some(b) = body {
        r = r.json(&b);
    } else if method == "POST" {
        r = r.json(&json!({}));
    }
    let resp = r.send().await.expect("request");
    let status = resp.status().as_u16();
    let v = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, v)
}

/// Creates an administrator with `role` and logs in: its token.
async fn admin_with_role(site: &TestSite, name: &str, role: &str) -> String {
    let (s, v) = call(
        site,
        "POST",
        "/api/v1/admins",
        Some(&site.token),
        Some(json!({"name": name, "role": role, "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = call(
        site,
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"name": name, "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v["token"].as_str().expect("token").to_string()
}

/// Must show 1: a walk over the router's list of routes. Without a token, or with a wrong
/// one, every administrator and client route is refused; a Read-only Analyst is refused
/// every route that needs more than reading; public routes say why in the list.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_enforces_the_authorization_it_states() {
    let site = TestSite::start().await;
    let analyst = admin_with_role(&site, "ana", "Read-only Analyst").await;
    let agent = site.enroll("pc-walk", TYPICAL).await;
    let credential = agent.identity().credential;
    // A Read-only Analyst cannot sync, approve or create administrators.
    let (s, _) = call(
        &site,
        "POST",
        "/api/v1/sync",
        Some(&analyst),
        Some(json!({"full": false})),
    )
    .await;
    assert_eq!(s, 403);
    let (s, _) = call(
        &site,
        "POST",
        "/api/v1/clients/pc-walk/revoke",
        Some(&analyst),
        None,
    )
    .await;
    assert_eq!(s, 403);
    let (s, v) = call(
        &site,
        "GET",
        "/api/v1/reports/updates-with-counts",
        Some(&analyst),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let mut walked = 0;
    // Logout last: it revokes the analyst's token.
    let mut routes: Vec<_> = ROUTES.iter().collect();
    routes.sort_by_key(|r| r.path == "/api/v1/logout");
    for r in routes {
        let path = r
            .path
            .replace("{id}", "x")
            .replace("{key}", "pc-walk")
            .replace("{name}", "nobody");
        match r.access {
            Access::Admin(p) => {
                for token in [None, Some("ksn_wrong"), Some(credential.as_str())] {
                    let (s, v) = call(&site, r.method, &path, token, None).await;
                    assert_eq!(s, 401, "{} {path} with {token:?}: {v}", r.method);
                }
                let (s, v) = call(&site, r.method, &path, Some(&analyst), None).await;
                if p == Permission::Read {
                    assert!(
                        s != 401 && s != 403,
                        "{} {path} refused a reader: {s} {v}",
                        r.method
                    );
                } else {
                    assert_eq!(
                        s,
                        403,
                        "{} {path} let a Read-only Analyst {}: {v}",
                        r.method,
                        p.name()
                    );
                }
            }
            Access::Client => {
                for token in [None, Some("ksc_wrong"), Some(site.token.as_str())] {
                    let (s, v) = call(&site, r.method, &path, token, None).await;
                    assert_eq!(s, 401, "{} {path} with {token:?}: {v}", r.method);
                }
            }
            Access::Public(why) => {
                assert!(why.len() > 10, "{} {path}: say why it is public", r.method);
                let (s, v) = call(&site, r.method, &path, None, None).await;
                assert!(
                    s != 401 && s != 403,
                    "{} {path} is public but refused: {s} {v}",
                    r.method
                );
            }
        }
        walked += 1;
    }
    assert!(walked >= 25);
}

/// Must show 2: a pending client gets nothing until approved; a revoked client is refused;
/// an enrollment token spends its uses; nobody takes over a client id without a token; a
/// client reports only for itself. Must show 4 (in part): the audit log names who approved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_enroll_with_a_token_or_wait_for_approval() {
    let site = TestSite::start().await;

    // No token: pending, and the management point answers nothing.
    let pending = TestAgent::new("pc-pending", TYPICAL);
    koshin_agent::enroll::enroll(&koshin_agent::enroll::EnrollOptions {
        site: site.url.clone(),
        token: String::new(),
        name: Some("pc-pending".into()),
        state: pending.state.clone(),
        root: pending.root.clone(),
        ca_certificate: None,
    })
    .await
    .expect("enrolls, pending");
    assert_eq!(
        pending.db().get("approval").unwrap().as_deref(),
        Some("pending")
    );
    let err = pending
        .scan(ScanTrigger::ScanCycle)
        .await
        .expect_err("pending gets no policy");
    assert!(format!("{err:#}").contains("pending approval"), "{err:#}");

    // Taking over its client id without a token is refused.
    let cid = pending.client_id();
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/clients/enroll",
        None,
        Some(json!({"client_id": cid, "name": "evil", "os": "x", "os_release": "x", "architecture": "amd64", "agent_version": "x"})),
    )
    .await;
    assert_eq!(s, 409, "{v}");

    // An administrator approves it: now it scans and reports.
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/clients/pc-pending/approve",
        Some(&site.token),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["approval"], "approved");
    pending.scan_ok(ScanTrigger::ScanCycle).await;
    assert!(pending.send().await.messages > 0);

    // An enrollment token with one use: the first enrollment is approved, the second refused.
    let (s, t) = call(
        &site,
        "POST",
        "/api/v1/enrollment-tokens",
        Some(&site.token),
        Some(json!({"uses": 1, "hours": 1, "description": "lab"})),
    )
    .await;
    assert_eq!(s, 200, "{t}");
    let token = t["token"].as_str().expect("token shown once").to_string();
    let first = TestAgent::new("pc-token", TYPICAL);
    let opts = |a: &TestAgent, name: &str| koshin_agent::enroll::EnrollOptions {
        site: site.url.clone(),
        token: token.clone(),
        name: Some(name.into()),
        state: a.state.clone(),
        root: a.root.clone(),
        ca_certificate: None,
    };
    koshin_agent::enroll::enroll(&opts(&first, "pc-token"))
        .await
        .expect("first use");
    assert_eq!(
        first.db().get("approval").unwrap().as_deref(),
        Some("approved")
    );
    // The agent's database holds its credential: readable by its user only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&first.state.join("agent.db")), 0o600);
        assert_eq!(mode(&first.state), 0o700);
    }
    first.scan_ok(ScanTrigger::ScanCycle).await;
    let second = TestAgent::new("pc-token-2", TYPICAL);
    let err = koshin_agent::enroll::enroll(&opts(&second, "pc-token-2"))
        .await
        .expect_err("used up");
    assert!(format!("{err:#}").contains("used up"), "{err:#}");
    let (_, list) = call(
        &site,
        "GET",
        "/api/v1/enrollment-tokens",
        Some(&site.token),
        None,
    )
    .await;
    assert_eq!(list[0]["used"], 1);
    assert_eq!(list[0]["uses_left"], 0);
    assert!(
        list[0].get("token").is_none(),
        "a listed token is never shown again"
    );

    // A client reports only for itself.
    let other = pending.client_id();
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/mp/state-messages",
        Some(&first.identity().credential),
        Some(json!({"batch_id": "b1", "client_id": other, "messages": [], "scans": []})),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("only for itself"),
        "{v}"
    );

    // Revoked: every later request of it fails.
    let (s, _) = call(
        &site,
        "POST",
        "/api/v1/clients/pc-token/revoke",
        Some(&site.token),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let err = first
        .scan(ScanTrigger::ScanCycle)
        .await
        .expect_err("revoked");
    assert!(format!("{err:#}").contains("revoked"), "{err:#}");
    let (s, _) = call(
        &site,
        "GET",
        "/api/v1/mp/policy",
        Some(&first.identity().credential),
        None,
    )
    .await;
    assert_eq!(s, 403);

    // The audit log: who approved and revoked, and who made the token.
    let (_, log) = call(&site, "GET", "/api/v1/audit", Some(&site.token), None).await;
    let log = log.as_array().expect("entries");
    let find = |action: &str, target: &str| {
        log.iter()
            .find(|e| e["action"] == action && e["target"] == target)
            .unwrap_or_else(|| panic!("no '{action}' of {target} in {log:?}"))
            .clone()
    };
    let e = find("approve client", "pc-pending");
    assert_eq!(e["actor"], "admin (site init)");
    assert_eq!(e["role"], "Full Administrator");
    find("revoke client", "pc-token");
    assert!(log.iter().any(|e| e["action"] == "create enrollment token"));
}

/// Administrators log in with a password (argon2 at rest), tokens are revocable, a
/// disabled administrator's tokens stop working, and secrets stay out of Debug output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn administrators_log_in_and_tokens_are_revocable() {
    let site = TestSite::start().await;
    let token = admin_with_role(&site, "sum", "Software Update Manager").await;
    let (s, _) = call(
        &site,
        "POST",
        "/api/v1/sync",
        Some(&token),
        Some(json!({"full": false})),
    )
    .await;
    assert_eq!(s, 200);
    // Not an administrator manager.
    let (s, _) = call(&site, "GET", "/api/v1/admins", Some(&token), None).await;
    assert_eq!(s, 403);
    // A wrong password and an unknown name get the same answer.
    for (name, pw) in [
        ("sum", "wrong password!!"),
        ("nobody", "correct horse battery"),
    ] {
        let (s, v) = call(
            &site,
            "POST",
            "/api/v1/login",
            None,
            Some(json!({"name": name, "password": pw})),
        )
        .await;
        assert_eq!(s, 401);
        assert_eq!(v["error"], "wrong administrator name or password");
    }
    // The password is stored as argon2, never as itself.
    let stored = site.query("SELECT password_hash FROM admins WHERE name = 'sum'", &[]);
    let hash = stored[0][0].as_str().expect("hash");
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains("correct horse"));
    // Logout revokes the token.
    let (s, _) = call(&site, "POST", "/api/v1/logout", Some(&token), None).await;
    assert_eq!(s, 200);
    let (s, _) = call(&site, "GET", "/api/v1/site", Some(&token), None).await;
    assert_eq!(s, 401);
    // Disabling an administrator revokes every token of theirs.
    let token = admin_with_role(&site, "ops", "Operations Administrator").await;
    let (s, _) = call(&site, "GET", "/api/v1/site", Some(&token), None).await;
    assert_eq!(s, 200);
    let (s, _) = call(
        &site,
        "POST",
        "/api/v1/admins/ops/disable",
        Some(&site.token),
        None,
    )
    .await;
    assert_eq!(s, 200);
    let (s, _) = call(&site, "GET", "/api/v1/site", Some(&token), None).await;
    assert_eq!(s, 401);
    // The audit log has who created them and who requested the sync.
    let (_, log) = call(&site, "GET", "/api/v1/audit", Some(&site.token), None).await;
    let log = log.as_array().expect("entries");
    assert!(
        log.iter()
            .any(|e| e["action"] == "create administrator" && e["target"] == "sum")
    );
    assert!(
        log.iter()
            .any(|e| e["action"] == "request sync" && e["actor"] == "sum")
    );
    assert!(
        log.iter()
            .any(|e| e["action"] == "disable administrator" && e["target"] == "ops")
    );
    // Secrets never in Debug output.
    let req = koshin_wire::LoginRequest {
        name: "x".into(),
        password: "hunter2-secret".into(),
        hours: None,
    };
    assert!(!format!("{req:?}").contains("hunter2"));
    let resp = koshin_wire::EnrollResponse {
        client_id: "c".into(),
        credential: "ksc_secret-credential".into(),
        site: "CS1".into(),
        approval: "approved".into(),
        ca_certificate: None,
        client_certificate: None,
    };
    assert!(!format!("{resp:?}").contains("secret-credential"));
}
