//! Trust (issue "TLS, identity, roles, audit"): every route enforces the authorization it
//! states; a Read-only Analyst cannot change anything; clients enroll with a token or wait
//! for approval, are refused once revoked, and report only for themselves; administrators
//! log in with a password, tokens are revocable, and the audit log names who did what.

mod common;

use common::*;
use koshin_domain::{Permission, scan::ScanTrigger};
use koshin_server::http::router::{Access, ROUTES};
use serde_json::json;

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
            Access::Replica => {
                for token in [
                    None,
                    Some("ksu_wrong"),
                    Some(site.token.as_str()),
                    Some(credential.as_str()),
                ] {
                    let (s, v) = call(&site, r.method, &path, token, None).await;
                    assert_eq!(s, 401, "{} {path} with {token:?}: {v}", r.method);
                }
            }
            Access::Site => {
                // Neither an administrator's token nor a client's credential is a site's.
                for token in [
                    None,
                    Some("ksl_wrong"),
                    Some(site.token.as_str()),
                    Some(credential.as_str()),
                ] {
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
    // The password is stored as argon2, never as itself; no report may read it.
    let db = rusqlite::Connection::open(site.data.join("site.db")).expect("site.db");
    let hash: String = db
        .query_row(
            "SELECT password_hash FROM admins WHERE name = 'sum'",
            [],
            |r| r.get(0),
        )
        .expect("hash");
    let refused = site
        .site
        .store
        .run_report(
            "SELECT password_hash FROM admins",
            &[],
            &koshin_domain::Scope::All,
        )
        .expect_err("a secret");
    assert!(refused.to_string().contains("may only read"), "{refused}");
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

/// Must show 1 (scopes): an administrator scoped to a collection sees only its clients —
/// in the client list, one client, an update's "required by", reports and collections —
/// and can neither act on nor add a client outside it. The audit log names who made the
/// collection, changed its members and set the scope.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_administrator_sees_only_the_clients_of_their_collections() {
    let site = TestSite::start().await;
    for name in ["web-1", "db-1"] {
        let agent = site.enroll(name, TYPICAL).await;
        agent.scan_ok(ScanTrigger::ScanCycle).await;
        assert!(agent.send().await.messages > 0);
    }
    let root = Some(site.token.as_str());
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/collections",
        root,
        Some(json!({"name": "Web servers", "comment": "the web tier"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["id"], "CS100002");
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/collections/Web%20servers/members",
        root,
        Some(json!({"add": ["web-1"]})),
    )
    .await;
    assert_eq!(
        (s, &v["added"], &v["members"]),
        (200, &json!(1), &json!(1)),
        "{v}"
    );
    // A scope must name a collection that exists.
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/admins",
        root,
        Some(json!({"name": "typo", "role": "Read-only Analyst", "password": "correct horse battery", "scopes": ["Web srvers"]})),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    let wendy = admin_with_role(&site, "wendy", "Software Update Manager").await;
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/admins/wendy/scopes",
        root,
        Some(json!({"scopes": ["Web servers"]})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["scopes"], json!(["CS100002"]));
    let me = Some(wendy.as_str());

    let names = |v: &serde_json::Value, field: &str| -> Vec<String> {
        v.as_array()
            .expect("a list")
            .iter()
            .map(|c| c[field].as_str().expect("name").to_string())
            .collect()
    };
    let (_, all) = call(&site, "GET", "/api/v1/clients", root, None).await;
    assert_eq!(names(&all, "name"), ["db-1", "web-1"]);
    let (_, mine) = call(&site, "GET", "/api/v1/clients", me, None).await;
    assert_eq!(names(&mine, "name"), ["web-1"]);
    let (s, _) = call(&site, "GET", "/api/v1/clients/db-1", me, None).await;
    assert_eq!(s, 404);
    let (s, _) = call(&site, "POST", "/api/v1/clients/db-1/revoke", me, None).await;
    assert_eq!(s, 404);
    let (s, _) = call(&site, "GET", "/api/v1/clients/web-1", me, None).await;
    assert_eq!(s, 200);

    // Reports read the same views, narrowed to the scope.
    let rows = |v: &serde_json::Value| v["rows"].as_array().expect("rows").clone();
    let (s, v) = call(
        &site,
        "GET",
        "/api/v1/reports/updates-for-computer?computer=db-1",
        me,
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert!(rows(&v).is_empty(), "{v}");
    let (_, v) = call(
        &site,
        "GET",
        "/api/v1/reports/updates-for-computer?computer=web-1",
        me,
        None,
    )
    .await;
    assert!(!rows(&v).is_empty(), "{v}");
    let required = |v: &serde_json::Value| -> i64 {
        rows(v)
            .iter()
            .map(|r| r["required"].as_i64().unwrap_or(0))
            .sum()
    };
    let (_, everyone) = call(
        &site,
        "GET",
        "/api/v1/reports/updates-with-counts",
        root,
        None,
    )
    .await;
    let (_, scoped) = call(
        &site,
        "GET",
        "/api/v1/reports/updates-with-counts",
        me,
        None,
    )
    .await;
    assert!(required(&everyone) > 0);
    assert_eq!(required(&everyone), 2 * required(&scoped), "{scoped}");

    // An update's "required by" lists only the scope's clients.
    let update = site.query(
        "SELECT update_id FROM v_update_states WHERE state = 'required' LIMIT 1",
        &[],
    )[0][0]
        .as_str()
        .expect("an update")
        .to_string();
    let (_, u) = call(
        &site,
        "GET",
        &format!("/api/v1/updates/{update}"),
        root,
        None,
    )
    .await;
    assert_eq!(names(&u["required_by"], "name"), ["db-1", "web-1"]);
    let (_, u) = call(&site, "GET", &format!("/api/v1/updates/{update}"), me, None).await;
    assert_eq!(names(&u["required_by"], "name"), ["web-1"]);

    // Collections: only theirs; no client from outside may be added.
    let (_, c) = call(&site, "GET", "/api/v1/collections", me, None).await;
    assert_eq!(names(&c, "name"), ["Web servers"]);
    let (_, c) = call(&site, "GET", "/api/v1/collections", root, None).await;
    assert_eq!(names(&c, "name"), ["All Systems", "Web servers"]);
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/collections/CS100002/members",
        me,
        Some(json!({"add": ["db-1"]})),
    )
    .await;
    assert_eq!(s, 404, "{v}");
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/collections/All%20Systems/members",
        root,
        Some(json!({"add": ["db-1"]})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    // The scope's collection cannot be deleted while it is one.
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/collections/CS100002/delete",
        root,
        None,
    )
    .await;
    assert_eq!(s, 409, "{v}");

    let (_, log) = call(&site, "GET", "/api/v1/audit", root, None).await;
    let log = log.as_array().expect("entries");
    for (action, target) in [
        ("create collection", "Web servers"),
        ("change collection members", "Web servers"),
        ("set administrator scopes", "wendy"),
    ] {
        assert!(
            log.iter().any(|e| e["action"] == action
                && e["target"] == target
                && e["actor"] == "admin (site init)"),
            "{action} {target}: {log:?}"
        );
    }
}
