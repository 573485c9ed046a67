//! Deployments end to end (issue "update groups, deadlines, maintenance windows,
//! installation, restarts, rollback"): a real signed archive, a real distribution point, a
//! real dpkg root where hello 2.10-3 and libfoo1 1.0-1 are installed by dpkg, and the agent
//! deciding and installing exactly what is deployed.

mod common;

use std::time::{Duration, Instant};

use common::*;
use koshin_agent::deploy::Evaluated;
use koshin_testkit::{DebSpec, DpkgRoot};
use serde_json::json;

fn version(root: &DpkgRoot, package: &str) -> Option<(String, String)> {
    root.package_state(package).expect("dpkg -s")
}

async fn machine(site: &TestSite, name: &str) -> (DpkgRoot, TestAgent) {
    dpkg_machine(&site.archive, site, name).await
}

/// The site's own distribution point at the served URL, the distribution manager running
/// (until the sender is dropped), and an agent on a real dpkg root that has scanned and
/// reported.
async fn ready(
    site: &TestSite,
    name: &str,
    role: Option<&str>,
) -> (tokio::sync::watch::Sender<bool>, DpkgRoot, TestAgent) {
    site.site
        .store
        .ensure_local_dp("KOSHIN-TEST", &format!("{}/dp", site.url), now_ms())
        .expect("local dp url");
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(koshin_server::content::distmgr::run(site.site.clone(), rx));
    let (root, agent) = machine(site, name).await;
    if let Some(r) = role {
        agent.db().set("role", r).expect("role");
    }
    agent
        .scan_ok(koshin_domain::scan::ScanTrigger::ScanCycle)
        .await;
    agent.send().await;
    (tx, root, agent)
}

async fn evaluate(agent: &TestAgent) -> Vec<Evaluated> {
    evaluate_deployments(agent).await
}

async fn post(site: &TestSite, path: &str, body: serde_json::Value) -> serde_json::Value {
    site.admin_post(path, body).await
}

async fn get(site: &TestSite, path: &str) -> serde_json::Value {
    site.admin_get(path).await
}

/// Waits until the deployment's content is on the site's own distribution point.
async fn content_ready(site: &TestSite, deployment: &str) {
    let d = get(site, &format!("/api/v1/deployments/{}", enc(deployment))).await;
    let package = d["package"].as_str().expect("package").to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = get(site, &format!("/api/v1/content/{package}")).await;
        if p["targets"]
            .as_array()
            .is_some_and(|t| !t.is_empty() && t.iter().all(|t| t["state"] == "installed"))
        {
            return;
        }
        assert!(Instant::now() < deadline, "content not distributed: {p:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn enc(s: &str) -> String {
    s.replace(' ', "%20")
}

fn utc_in(minutes: i64) -> String {
    (jiff::Timestamp::now() + jiff::SignedDuration::from_secs(minutes * 60))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string()
}

fn install_messages(site: &TestSite, system: &str) -> Vec<u32> {
    site.site
        .store
        .query_status(
            &koshin_wire::StatusQuery {
                system: Some(system.into()),
                ..Default::default()
            },
            &koshin_domain::Scope::All,
        )
        .expect("status")
        .into_iter()
        .filter(|m| (11250..=11270).contains(&m.message_id))
        .map(|m| m.message_id)
        .collect()
}

fn client_state(d: &serde_json::Value, computer: &str) -> String {
    d["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .find(|c| c["computer"] == computer)
        .map(|c| c["state"].as_str().unwrap_or_default().to_string())
        .unwrap_or_default()
}

/// Deployments end to end: a window in the future holds the install (11250) and a
/// window now lets it run; a disabled deployment installs nothing; removing one update keeps
/// the others; v2 is installed from the distribution point, the post-install scan reports
/// Installed and the reports show it; rollback reinstalls v1 (and is refused, naming the
/// file, where the library lacks it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_installs_v2_in_its_window_and_rolls_back_to_v1() {
    let site = TestSite::start().await;
    let (tx, root, agent) = ready(&site, "pc-deploy", None).await;

    // v1 into the library first (an earlier release of it), so that rollback can work.
    post(
        &site,
        "/api/v1/content",
        json!({"name": "hello v1", "updates": [HELLO_OLD]}),
    )
    .await;
    post(
        &site,
        "/api/v1/content/hello%20v1/distribute",
        json!({"distribution_points": ["KOSHIN-TEST"]}),
    )
    .await;

    post(
        &site,
        "/api/v1/update-groups",
        json!({"name": "November", "updates": [HELLO_NEW, LIBFOO_SEC]}),
    )
    .await;
    // A window that opens tomorrow.
    let tomorrow = (jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    post(
        &site,
        "/api/v1/collections/All%20Systems/windows",
        json!({"name": "nightly", "schedule": format!("once {tomorrow} 03:00 1h utc")}),
    )
    .await;
    let d = post(
        &site,
        "/api/v1/deployments",
        json!({"name": "nov-patch", "update_group": "November", "collection": "All Systems",
               "available": utc_in(-5), "deadline": utc_in(60), "utc": true,
               "allow_postpone": false, "notification": "November patches", "priority": "high"}),
    )
    .await;
    assert!(
        d["id"].as_str().is_some_and(|i| i.starts_with("CS1D")),
        "{d}"
    );
    content_ready(&site, "nov-patch").await;

    // Outside the window: held, 11250.
    let e = evaluate(&agent).await;
    assert_eq!(e[0].state, "waiting_for_window", "{e:?}");
    assert_eq!(e[0].messages, [11250]);
    assert_eq!(version(&root, "hello").unwrap().1, "2.10-3");
    let d = get(&site, "/api/v1/deployments/nov-patch").await;
    assert_eq!(client_state(&d, "pc-deploy"), "waiting_for_window", "{d:#}");
    // A page past the clients: none listed, the summary still counts them all.
    let past = get(&site, "/api/v1/deployments/nov-patch?limit=10&offset=1").await;
    assert_eq!(
        past["clients"].as_array().map(Vec::len),
        Some(0),
        "{past:#}"
    );
    assert_eq!(past["summary"], d["summary"]);
    assert!(install_messages(&site, "pc-deploy").contains(&11250));

    // A window open now.
    let start = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(30))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%H:%M")
        .to_string();
    post(
        &site,
        "/api/v1/collections/All%20Systems/windows",
        json!({"name": "nightly", "schedule": format!("daily {start} 2h utc")}),
    )
    .await;

    // Disabled: nothing is installed.
    post(&site, "/api/v1/deployments/nov-patch/disable", json!({})).await;
    let e = evaluate(&agent).await;
    assert!(e.is_empty(), "{e:?}");
    assert_eq!(version(&root, "hello").unwrap().1, "2.10-3");

    // One update removed, enabled again: hello goes to 2.10-4, libfoo1 stays.
    post(
        &site,
        "/api/v1/deployments/nov-patch/remove-update",
        json!({"update": LIBFOO_SEC}),
    )
    .await;
    post(&site, "/api/v1/deployments/nov-patch/enable", json!({})).await;
    let e = evaluate(&agent).await;
    assert_eq!(e[0].state, "succeeded", "{e:?}");
    assert!(e[0].messages.contains(&11268), "{e:?}");
    assert_eq!(
        version(&root, "hello"),
        Some(("install ok installed".into(), "2.10-4".into()))
    );
    assert_eq!(version(&root, "libfoo1").unwrap().1, "1.0-1");
    // The post-install scan's state messages reached the site: compliant for hello.
    let states = site.query(
        "SELECT title, state FROM v_update_states WHERE computer = 'pc-deploy' ORDER BY title",
        &[],
    );
    assert!(
        states
            .iter()
            .any(|r| r[0] == HELLO_NEW && r[1] == "installed"),
        "{states:?}"
    );
    assert!(
        states
            .iter()
            .any(|r| r[0] == LIBFOO_SEC && r[1] == "required"),
        "{states:?}"
    );
    let d = get(&site, "/api/v1/deployments/nov-patch").await;
    assert_eq!(client_state(&d, "pc-deploy"), "succeeded", "{d:#}");
    // A second evaluation does nothing more.
    let e = evaluate(&agent).await;
    assert_eq!(e[0].state, "succeeded");

    // Rollback: v1 is in the library, so it is reinstalled.
    let r = post(&site, "/api/v1/deployments/nov-patch/rollback", json!({})).await;
    assert_eq!(r["rollback_of"], d["id"]);
    content_ready(&site, "nov-patch rollback").await;
    let e = evaluate(&agent).await;
    let rb = e
        .iter()
        .find(|e| e.deployment == r["id"])
        .expect("rollback evaluated");
    assert_eq!(rb.state, "succeeded", "{e:?}");
    assert_eq!(version(&root, "hello").unwrap().1, "2.10-3");

    // A rollback whose earlier version the library lacks is refused, naming it.
    post(
        &site,
        "/api/v1/update-groups",
        json!({"name": "libfoo", "updates": [LIBFOO_SEC]}),
    )
    .await;
    post(
        &site,
        "/api/v1/deployments",
        json!({"name": "libfoo-patch", "update_group": "libfoo", "collection": "All Systems", "utc": true}),
    )
    .await;
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/deployments/libfoo-patch/rollback",
        Some(&site.token),
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("libfoo1 1.0-1")),
        "{v}"
    );
    // The audit log says who created the deployment.
    let log = get(&site, "/api/v1/audit").await;
    assert!(
        log.as_array()
            .expect("log")
            .iter()
            .any(|e| e["action"] == "create deployment" && e["target"] == "nov-patch"),
        "{log}"
    );
    drop(tx);
}

/// A maintainer script that fails ends in a failed status with dpkg's reason, the
/// previous version still installed and dpkg's database consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_maintainer_script_fails_the_deployment_and_leaves_dpkg_consistent() {
    let mut site = TestSite::start().await;
    site.archive
        .add(
            SECURITY,
            "main",
            &DebSpec::new("hello", "2.10-5", "amd64")
                .source("hello", None)
                .script("preinst", "#!/bin/sh\necho 'preinst refuses' >&2\nexit 1\n"),
        )
        .expect("add");
    site.publish_security();
    site.sync().await;
    let (tx, root, agent) = ready(&site, "pc-fail", None).await;
    post(
        &site,
        "/api/v1/update-groups",
        json!({"name": "bad", "updates": ["hello 2.10-5"]}),
    )
    .await;
    post(
        &site,
        "/api/v1/deployments",
        json!({"name": "bad-hello", "update_group": "bad", "collection": "All Systems", "utc": true}),
    )
    .await;
    content_ready(&site, "bad-hello").await;
    let e = evaluate(&agent).await;
    assert_eq!(e[0].state, "failed", "{e:?}");
    assert!(e[0].detail.contains("pre-installation script"), "{e:?}");
    assert_eq!(
        version(&root, "hello"),
        Some(("install ok installed".into(), "2.10-3".into()))
    );
    let audit = dpkg(root.path(), &["--audit"]);
    assert!(
        audit.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );
    let d = get(&site, "/api/v1/deployments/bad-hello").await;
    assert_eq!(client_state(&d, "pc-fail"), "failed", "{d:#}");
    drop(tx);
}

/// A user postpones until the deadline (11253); a package that asks for a restart on a
/// workstation whose deployment suppresses workstation restarts is installed and reported
/// restart pending with 11266, and the post-install scan says the restart is pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postponing_and_a_suppressed_restart() {
    let mut site = TestSite::start().await;
    site.archive
        .add(
            SECURITY,
            "main",
            &DebSpec::new("hello", "2.10-6", "amd64")
                .source("hello", None)
                .script(
                    "postinst",
                    "#!/bin/sh\nmkdir -p \"$DPKG_ROOT/run\"\necho hello >> \"$DPKG_ROOT/run/reboot-required.pkgs\"\ntouch \"$DPKG_ROOT/run/reboot-required\"\n",
                ),
        )
        .expect("add");
    site.publish_security();
    site.sync().await;
    let (tx, root, agent) = ready(&site, "pc-desk", Some("workstation")).await;
    post(
        &site,
        "/api/v1/update-groups",
        json!({"name": "restart", "updates": ["hello 2.10-6"]}),
    )
    .await;
    post(
        &site,
        "/api/v1/deployments",
        json!({"name": "needs-restart", "update_group": "restart", "collection": "All Systems",
               "utc": true, "available": utc_in(-1), "deadline": utc_in(120),
               "suppress_restart_workstations": true}),
    )
    .await;
    content_ready(&site, "needs-restart").await;
    // The user postpones: it waits for the deadline.
    koshin_agent::runner::poll_policy(&agent.db(), &agent.mp())
        .await
        .expect("policy");
    koshin_agent::deploy::evaluate(
        &mut agent.db(),
        &agent.mp(),
        &agent.root,
        &agent.state,
        true,
    )
    .await
    .expect("first evaluation");
    let id = koshin_agent::deploy::cached(&agent.db()).expect("cached")[0]
        .id
        .clone();
    koshin_agent::deploy::postpone(&agent.db(), &id).expect("postpone");
    let e = evaluate(&agent).await;
    assert_eq!(e[0].state, "waiting", "{e:?}");
    assert!(e[0].detail.contains("postponed"), "{e:?}");
    assert_eq!(e[0].messages, [11253]);
    assert_eq!(version(&root, "hello").unwrap().1, "2.10-3");
    assert!(install_messages(&site, "pc-desk").contains(&11253));

    // A deployment users may not postpone installs at once.
    post(
        &site,
        "/api/v1/deployments/needs-restart/disable",
        json!({}),
    )
    .await;
    post(
        &site,
        "/api/v1/deployments",
        json!({"name": "needs-restart-now", "update_group": "restart", "collection": "All Systems",
               "utc": true, "suppress_restart_workstations": true, "allow_postpone": false}),
    )
    .await;
    content_ready(&site, "needs-restart-now").await;
    let e = evaluate(&agent).await;
    let now = e.iter().find(|e| e.state != "waiting").expect("evaluated");
    assert_eq!(now.state, "restart_pending", "{e:?}");
    assert_eq!(now.messages, [11266]);
    assert_eq!(version(&root, "hello").unwrap().1, "2.10-6");
    let states = site.query(
        "SELECT state, restart_pending FROM v_update_states WHERE computer = 'pc-desk' AND title = 'hello 2.10-6'",
        &[],
    );
    assert_eq!(
        states,
        [[json!("required"), json!(1)]],
        "installed, waiting for its restart"
    );
    drop(tx);
}
