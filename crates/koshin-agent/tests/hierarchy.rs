//! The site hierarchy (issue "top-level, primary and secondary sites"), first part: child
//! sites join with a join token; one sync at the top reaches every site in order through
//! sync notifications (`CS1.SYN`, then `PS1.SYN`), each child replicating its parent's
//! catalog with the parent's content version and logging the seeds' lines; a notification
//! a child cannot take stays pending and is delivered when it is back.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use koshin_server::init::{InitOptions, init_site};
use koshin_server::sync::SyncManager;
use serde_json::json;

/// A child site: initialised with its parent's URL, served on loopback, joined with a join
/// token, its sync manager running.
struct ChildSite {
    _dir: tempfile::TempDir,
    data: PathBuf,
    served: Served,
    _stop: tokio::sync::watch::Sender<bool>,
}

async fn child(code: &str, parent_url: &str, parent_token: &str, secondary: bool) -> ChildSite {
    let dir = tempfile::Builder::new()
        .prefix("khier")
        .tempdir()
        .expect("dir");
    let data = dir.path().join("data");
    init_site(&InitOptions {
        code: code.into(),
        data: data.clone(),
        upstreams: Vec::new(),
        listen: None,
        parent: Some(parent_url.into()),
        secondary,
    })
    .expect("init child");
    let mut cfg = koshin_server::SiteConfig::load(&data.join("koshin.toml")).expect("config");
    cfg.site.system = format!("{code}-SERVER");
    std::fs::write(data.join("koshin.toml"), cfg.to_documented_toml()).expect("write config");
    let served = Served::open(&data).await;
    let token = join_token(parent_url, parent_token).await;
    let parent = koshin_server::hierarchy::join_parent(
        served.site.store.as_ref(),
        &koshin_server::hierarchy::JoinTls {
            pki: &served.site.pki,
            parent_ca: None,
        },
        code,
        secondary,
        parent_url,
        &token,
        &served.url,
    )
    .await
    .expect("join");
    assert!(!parent.is_empty());
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(SyncManager::new(served.site.clone()).run(rx));
    ChildSite {
        _dir: dir,
        data,
        served,
        _stop: stop,
    }
}

/// Waits for a new child's first sync (at its start) to end: its machine policy is made, so
/// a client can scan.
async fn first_sync_done(c: &ChildSite) {
    until("the child's first sync", || {
        log(&c.data).contains("Successfully synchronized sites with parent")
    })
    .await;
}

fn log(data: &Path) -> String {
    std::fs::read_to_string(data.join("logs").join("wsyncmgr.log")).unwrap_or_default()
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn messages(s: &Served) -> Vec<u32> {
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
        .filter(|m| m.site == s.site.config.site.code)
        .map(|m| m.message_id)
        .collect()
}

/// The replication manager's status messages at a site: (id, insertion strings).
fn link_messages(s: &Served) -> Vec<(u32, Vec<String>)> {
    s.site
        .store
        .query_status(
            &koshin_wire::StatusQuery {
                component: Some("SMS_REPLICATION_MANAGER".into()),
                ..Default::default()
            },
            &koshin_domain::Scope::All,
        )
        .expect("status")
        .into_iter()
        .filter(|m| m.site == s.site.config.site.code)
        .map(|m| (m.message_id, m.insertion_strings))
        .collect()
}

/// Must show (in part): one sync at CS1 reaches PS1, PS2 and SS1 (under PS1) in order, with
/// 6701, 6704 and 6702 at each child (no 6705: the metadata came by replication), the
/// seeds' log lines, and CS1's content version everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sync_at_the_top_reaches_every_site_in_order() {
    let mut top = TestSite::start().await;
    let ps1 = child("PS1", &top.url, &top.token, false).await;
    let ps2 = child("PS2", &top.url, &top.token, false).await;
    let ss1 = child("SS1", &ps1.served.url, &ps1.served.token, true).await;

    // The links, from both ends.
    let (_, links) = call(&top, "GET", "/api/v1/sites/links", Some(&top.token), None).await;
    let codes: Vec<&str> = links
        .as_array()
        .expect("links")
        .iter()
        .map(|l| l["code"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(codes, ["PS1", "PS2"]);

    // A new update at the top, and one sync there.
    let cv = top.publish_libfoo_deb12u2().await;
    for c in [&ps1, &ps2, &ss1] {
        let s = &c.served;
        until("the child's content version", || s.content_version() == cv).await;
        assert_eq!(
            s.site.store.catalog_counts().expect("counts"),
            top.site.store.catalog_counts().expect("counts")
        );
        let m = messages(s);
        assert!(m.starts_with(&[6701, 6704, 6702]), "{m:?}");
        assert!(!m.contains(&6705), "{m:?}");
    }
    // The content version is committed before the sync's last lines are written.
    for (c, parent) in [(&ps1, "CS1"), (&ps2, "CS1"), (&ss1, "PS1")] {
        let done = format!("Successfully synchronized sites with parent {parent}, version {cv}");
        until("the child's last sync lines", || {
            log(&c.data).contains(&done)
        })
        .await;
    }
    let l = log(&ps1.data);
    for line in [
        "Found parent sync notification file CS1.SYN",
        "Performing sync on parent request",
        &format!("Successfully synchronized sites with parent CS1, version {cv}"),
        "Sending sync notification to child sites: SS1",
    ] {
        assert!(l.contains(line), "PS1 log lacks '{line}':\n{l}");
    }
    assert!(
        log(&ss1.data).contains(&format!(
            "Successfully synchronized sites with parent PS1, version {cv}"
        )),
        "{}",
        log(&ss1.data)
    );
    assert!(log(&top.data).contains("Sending sync notification to child sites: PS1, PS2"));
    // The update arrived at the bottom with its id and metadata.
    let title = LIBFOO_SEC2;
    let at = |s: &Served| {
        s.site
            .store
            .run_report(
                "SELECT update_id, revision, superseded_by FROM v_updates WHERE title = :t",
                &[("t".into(), title.into())],
                &koshin_domain::Scope::All,
            )
            .expect("query")
            .1
    };
    assert_eq!(at(&ss1.served), at(&top));
    // Client data flows up: clients of PS1, PS2 and SS1 report to their own site, and the
    // top-level site counts them all — SS1's through PS1.
    for (c, name) in [(&ps1, "pc-ps1"), (&ps2, "pc-ps2"), (&ss1, "pc-ss1")] {
        let agent = c.served.enroll(name, TYPICAL).await;
        agent
            .scan_ok(koshin_domain::scan::ScanTrigger::ScanCycle)
            .await;
        assert!(agent.send().await.messages > 0);
    }
    for c in [&ss1, &ps1, &ps2] {
        koshin_server::hierarchy::forward_once(&c.served.site)
            .await
            .expect("forward");
    }
    let clients = top.query(
        "SELECT computer, site FROM v_clients ORDER BY computer",
        &[],
    );
    assert_eq!(
        clients,
        [
            [json!("pc-ps1"), json!("PS1")],
            [json!("pc-ps2"), json!("PS2")],
            [json!("pc-ss1"), json!("SS1")]
        ]
    );
    let counts = top.query(
        "SELECT required, unknown FROM v_update_compliance WHERE title = :t",
        &[("t", HELLO_NEW)],
    );
    assert_eq!(
        counts,
        [[json!(3), json!(0)]],
        "every client counted at CS1"
    );
    // Forwarding again sends nothing twice.
    assert_eq!(
        koshin_server::hierarchy::forward_once(&ps1.served.site)
            .await
            .expect("forward"),
        0
    );

    // A second sync with nothing new keeps every content version.
    top.sync().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for c in [&ps1, &ps2, &ss1] {
        until("the child's second sync", || {
            messages(&c.served).iter().filter(|m| **m == 6702).count() >= 2
        })
        .await;
        assert_eq!(c.served.content_version(), cv);
    }
}

/// A child that cannot be reached keeps its notification pending at the parent, and it is
/// delivered (and the child syncs) when it is back; a join token serves once; a linked
/// site's routes refuse administrators' tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_notification_waits_for_a_child_that_is_away() {
    let top = TestSite::start().await;
    let mut ps1 = child("PS1", &top.url, &top.token, false).await;
    first_sync_done(&ps1).await;
    // PS1 goes away: the parent's notification cannot be delivered.
    let data = ps1.data.clone();
    let _ = ps1._stop.send(true);
    ps1.served.stop().await;
    // Meanwhile CS1 syncs twice, revising a local update twice: PS1 misses a revision.
    let lp = top.data.join("local-publisher");
    std::fs::create_dir_all(&lp).expect("local publisher");
    for round in 1..=2 {
        std::fs::write(
            lp.join("fix.toml"),
            format!(
                "[[update]]\ntitle = \"Contoso fix\"\nvendor = \"Contoso\"\narticle_id = \"KB-1\"\n\
                 classification = \"Updates\"\ndescription = \"Round {round}\"\n\
                 [update.detection]\npackage = {{ name = \"contoso\", version_below = \"2\" }}\n"
            ),
        )
        .expect("definition");
        top.sync().await;
    }
    let cv = top.content_version();
    let (_, links) = call(&top, "GET", "/api/v1/sites/links", Some(&top.token), None).await;
    assert_eq!(links[0]["notify_pending"], true, "{links}");
    assert_eq!(links[0]["down"], true, "{links}");
    assert!(links[0]["last_error"].as_str().is_some(), "{links}");
    // The link's state is in a status message: down (4800), once however often it fails.
    SyncManager::new(top.site.clone())
        .notify_children(false)
        .await;
    let m = link_messages(&top);
    assert_eq!(m.len(), 1, "{m:?}");
    assert_eq!((m[0].0, m[0].1[0].as_str()), (4800, "PS1"), "{m:?}");
    // It is back (on a new port: it says hello with its address); the retry delivers it.
    let back = Served::open(&data).await;
    koshin_server::hierarchy::hello(&back.site, &back.url)
        .await
        .expect("hello");
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(SyncManager::new(back.site.clone()).run(rx));
    SyncManager::new(top.site.clone())
        .notify_children(false)
        .await;
    until("PS1 to catch up", || back.content_version() == cv).await;
    // The same revisions as CS1, though it missed one of CS1's syncs.
    let revisions = "SELECT update_id, revision FROM v_updates ORDER BY 1";
    let want = top.query(revisions, &[]);
    assert!(
        want.iter().any(|r| r[1] == json!(2)),
        "a revised update at CS1: {want:?}"
    );
    assert_eq!(back.query(revisions, &[]), want);
    let (_, links) = call(&top, "GET", "/api/v1/sites/links", Some(&top.token), None).await;
    assert_eq!(links[0]["notify_pending"], false, "{links}");
    assert_eq!(links[0]["down"], false, "{links}");
    let m: Vec<u32> = link_messages(&top).into_iter().map(|m| m.0).collect();
    assert_eq!(m, [4800, 4801]);
    drop(stop);

    // A join token serves once.
    let token = join_token(&top.url, &top.token).await;
    let join = |code: &str| {
        json!({"code": code, "kind": "primary", "url": "http://127.0.0.1:1",
               "join_token": token, "parent_to_child_token": "x".repeat(40)})
    };
    let (s, v) = call(&top, "POST", "/api/v1/sites/join", None, Some(join("PS7"))).await;
    assert_eq!(s, 200, "{v}");
    let (s, _) = call(&top, "POST", "/api/v1/sites/join", None, Some(join("PS8"))).await;
    assert_eq!(s, 401);
    // A child reports only for its own clients, not for another child's.
    let ps1_token = back
        .site
        .store
        .link_token("CS1")
        .expect("link")
        .expect("token");
    let forged = json!([{
        "client": {"client_id": "0b5d5e54-1111-4111-8111-111111111111", "name": "pc-x", "os": "Debian",
                   "os_release": "12", "architecture": "amd64", "site": "PS7", "agent_version": "x"},
        "batch": {"batch_id": "b1", "client_id": "0b5d5e54-1111-4111-8111-111111111111", "messages": []}
    }]);
    let (s, v) = call(
        &top,
        "POST",
        "/api/v1/sites/client-batches",
        Some(&ps1_token),
        Some(forged),
    )
    .await;
    assert_eq!(s, 403, "{v}");
    // An administrator's token is not a site's.
    let (s, _) = call(&top, "GET", "/api/v1/sites/catalog", Some(&top.token), None).await;
    assert_eq!(s, 401);
}

/// A child stopped in the middle of replicating (kill -9: its run is left "running") runs
/// the sync again when it starts, without a new notification, and ends with its parent's
/// catalog and version; its client data queued before the stop goes up once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_stopped_during_replication_resumes_at_its_start() {
    let mut top = TestSite::start().await;
    let mut ps1 = child("PS1", &top.url, &top.token, false).await;
    first_sync_done(&ps1).await;
    let agent = ps1.served.enroll("pc-ps1", TYPICAL).await;
    agent
        .scan_ok(koshin_domain::scan::ScanTrigger::ScanCycle)
        .await;
    assert!(agent.send().await.messages > 0);
    // PS1 stops: its sync manager and its server. A run it had begun stays "running".
    let _ = ps1._stop.send(true);
    let data = ps1.data.clone();
    ps1.served
        .site
        .store
        .start_run(koshin_domain::SyncKind::Full, "parent CS1", now_ms())
        .expect("a run under way");
    ps1.served.stop().await;
    let cv = top.publish_libfoo_deb12u2().await;
    // It starts again (on a new port; it says hello), and resumes.
    let back = Served::open(&data).await;
    koshin_server::hierarchy::hello(&back.site, &back.url)
        .await
        .expect("hello");
    let (stop, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(SyncManager::new(back.site.clone()).run(rx));
    until("PS1 to resume its sync", || back.content_version() == cv).await;
    assert!(
        log(&data).contains("Sync interrupted by a stop of the site server. Will retry now"),
        "{}",
        log(&data)
    );
    // The batches stored before the stop go up once, however often they are sent. (The
    // resumed sync's own status messages go up too: forward until the queue is empty.)
    let done = format!("Successfully synchronized sites with parent CS1, version {cv}");
    until("the resumed sync to end", || log(&data).contains(&done)).await;
    for _ in 0..20 {
        if koshin_server::hierarchy::forward_once(&back.site)
            .await
            .expect("forward")
            == 0
        {
            break;
        }
    }
    let rows = top.query(
        "SELECT COUNT(*) FROM v_scans WHERE computer = 'pc-ps1'",
        &[],
    );
    assert_eq!(rows, [[json!(1)]]);
    let links = back.site.store.site_links().expect("links");
    assert_eq!(links[0].queued_up, 0, "nothing left to send");
    drop(stop);
}

/// S8: a replica update point is synced after the site's active one (6706 between 6705
/// and 6702) to the same content version, and serves a client's scan when the site is down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_update_point_is_synced_after_the_active_one_and_serves_when_it_is_down() {
    use koshin_server::sup::{SupIdentity, SupState, router};
    let mut site = TestSite::start().await;
    let dir = tempfile::tempdir().expect("dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let push = format!("ksp_{}", hex::encode(rand::random::<[u8; 32]>()));
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/sups/register",
        Some(&site.token),
        Some(json!({"name": "REPLICA-1", "url": url, "push_token": push})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let state = SupState::open(
        dir.path(),
        SupIdentity {
            site: site.url.clone(),
            site_code: "CS1".into(),
            name: "REPLICA-1".into(),
            url: url.clone(),
            pull_token: v["pull_token"].as_str().expect("pull token").into(),
            push_token_sha256: koshin_server::init::hash_token(&push),
        },
    )
    .expect("replica");
    let replica_store = state.store.clone();
    tokio::spawn(async move {
        axum::serve(listener, router(state))
            .await
            .expect("serve replica");
    });

    let cv = site.publish_libfoo_deb12u2().await;
    let m: Vec<u32> = messages(&site)
        .into_iter()
        .rev()
        .take(5)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    assert_eq!(
        m,
        [6701, 6704, 6705, 6706, 6702],
        "the last sync's messages"
    );
    assert_eq!(replica_store.content_version().expect("cv").1, cv);
    let l = log(&site.data);
    for line in [
        "Synchronizing replica update points",
        "Synchronizing update point REPLICA-1 ...",
        "Done synchronizing update point REPLICA-1",
    ] {
        assert!(l.contains(line), "the site log lacks '{line}'");
    }
    let (_, sups) = call(&site, "GET", "/api/v1/sups", Some(&site.token), None).await;
    assert_eq!(sups[0]["content_version"], json!(cv), "{sups}");

    // A client knows the replica from policy; the site goes down; the scan still runs.
    let agent = site.enroll("pc-ha", TYPICAL).await;
    koshin_agent::runner::poll_policy(&agent.db(), &agent.mp())
        .await
        .expect("policy");
    site.served.stop().await;
    let out = agent
        .scan(koshin_domain::scan::ScanTrigger::ScanCycle)
        .await
        .expect("a scan served by the replica");
    assert!(out.online);
    assert!(
        out.updates
            .iter()
            .any(|u| u.title == HELLO_NEW && u.state == "required"),
        "{:?}",
        out.updates
    );
}

/// Global data flows down and client data of it flows up (S9): a collection of a PS1 client
/// and a deployment to it, made at CS1, replicate to PS1 (read-only there); PS1 distributes
/// the content from CS1's library to its own distribution point; the PS1 client installs
/// from it with real dpkg; its state of the deployment and its status messages reach CS1,
/// once; a change to the deployment at CS1 follows at PS1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_made_at_the_top_reach_a_primary_and_their_state_comes_back() {
    let top = TestSite::start().await;
    let ps1 = child("PS1", &top.url, &top.token, false).await;
    first_sync_done(&ps1).await;
    let mut stops = Vec::new();
    for s in [&top.served, &ps1.served] {
        s.site
            .store
            .ensure_local_dp(
                &s.site.config.system_name(),
                &format!("{}/dp", s.url),
                now_ms(),
            )
            .expect("local dp");
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(koshin_server::content::distmgr::run(s.site.clone(), rx));
        stops.push(tx);
    }
    let (root, agent) = dpkg_machine(&top.archive, &ps1.served, "pc-ps1").await;
    agent
        .scan_ok(koshin_domain::scan::ScanTrigger::ScanCycle)
        .await;
    agent.send().await;
    koshin_server::hierarchy::forward_once(&ps1.served.site)
        .await
        .expect("forward");

    let admin = |path: &str, body: serde_json::Value| {
        let (top, path) = (&top, path.to_string());
        async move {
            let (s, v) = call(top, "POST", &path, Some(&top.token), Some(body)).await;
            assert_eq!(s, 200, "{path}: {v}");
            v
        }
    };
    admin("/api/v1/collections", json!({"name": "PS1 pilot"})).await;
    admin(
        "/api/v1/collections/PS1%20pilot/members",
        json!({"add": ["pc-ps1"]}),
    )
    .await;
    admin(
        "/api/v1/collections/PS1%20pilot/windows",
        json!({"name": "always", "schedule": "daily 00:00 24h utc"}),
    )
    .await;
    admin(
        "/api/v1/update-groups",
        json!({"name": "Hello", "updates": [HELLO_NEW]}),
    )
    .await;
    let past = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(5))
        .to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let d = admin(
        "/api/v1/deployments",
        json!({"name": "hello-pilot", "update_group": "Hello", "collection": "PS1 pilot",
               "available": past, "deadline": past, "utc": true, "allow_postpone": false}),
    )
    .await;
    let id = d["id"].as_str().expect("id").to_string();

    // Down to PS1, in one go, verified.
    let applied = koshin_server::hierarchy::pull_global(&ps1.served.site)
        .await
        .expect("replicate global data");
    assert_eq!(
        (applied.collections, applied.deployments),
        (1, 1),
        "{applied:?}"
    );
    let at_ps1 = |path: String| {
        let ps1 = &ps1.served;
        async move {
            let (s, v) = call(ps1, "GET", &path, Some(&ps1.token), None).await;
            assert_eq!(s, 200, "{path}: {v}");
            v
        }
    };
    let d1 = at_ps1(format!("/api/v1/deployments/{id}")).await;
    assert_eq!(d1["name"], "hello-pilot", "{d1}");
    assert_eq!(d1["collection"], "PS1 pilot", "{d1}");
    let c1 = at_ps1("/api/v1/collections/PS1%20pilot".into()).await;
    assert_eq!(c1["members"], 1, "{c1}");
    assert!(
        link_messages(&ps1.served).iter().any(|m| m.0 == 4802),
        "{:?}",
        link_messages(&ps1.served)
    );
    // Nothing changed: nothing applied, and the same answer is never applied twice.
    let again = koshin_server::hierarchy::pull_global(&ps1.served.site)
        .await
        .expect("again");
    assert_eq!(again, Default::default());
    // Replicated objects are changed at their site, not here.
    let (s, v) = call(
        &ps1.served,
        "POST",
        &format!("/api/v1/deployments/{id}/disable"),
        Some(&ps1.served.token),
        None,
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["error"]
            .as_str()
            .unwrap_or_default()
            .contains("replicated from site CS1"),
        "{v}"
    );

    // PS1 distributes the package from CS1's library; the client installs from PS1's point.
    let package = d1["package"].as_str().expect("package").to_string();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = at_ps1(format!("/api/v1/content/{package}")).await;
        if p["targets"]
            .as_array()
            .is_some_and(|t| !t.is_empty() && t.iter().all(|t| t["state"] == "installed"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "content not at PS1: {p:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let e = evaluate_deployments(&agent).await;
    assert_eq!(e[0].state, "succeeded", "{e:?}");
    assert_eq!(
        root.package_state("hello").expect("dpkg -s").map(|v| v.1),
        Some("2.10-4".to_string())
    );

    // Its state and its messages come up to CS1, once.
    for _ in 0..3 {
        koshin_server::hierarchy::forward_once(&ps1.served.site)
            .await
            .expect("forward");
    }
    let (_, d0) = call(
        &top,
        "GET",
        &format!("/api/v1/deployments/{id}"),
        Some(&top.token),
        None,
    )
    .await;
    let state = d0["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .find(|c| c["computer"] == "pc-ps1")
        .map(|c| c["state"].clone());
    assert_eq!(state, Some(json!("succeeded")), "{d0:#}");
    let count = |sql: &str| top.count(sql, &[]);
    let installs = count(
        "SELECT COUNT(*) FROM v_status_messages WHERE system = 'pc-ps1' AND message_id BETWEEN 11250 AND 11270",
    );
    assert!(installs >= 1);
    let ps1_syncs =
        count("SELECT COUNT(*) FROM v_status_messages WHERE site = 'PS1' AND message_id = 6702");
    assert!(ps1_syncs >= 1);
    // Sent again (a lost acknowledgement): stored once, by its origin.
    let item = json!([{
        "kind": "status",
        "status": {
            "origin": "PS1:999999", "message_id": 6701, "severity": "I", "level": "M",
            "source": "koshin Server", "component": "SMS_WSUS_SYNC_MANAGER",
            "system": "PS1-SERVER", "site": "PS1", "process_id": 1, "thread_id": 1,
            "time_ms": 1, "insertion_strings": [], "attributes": {}
        }
    }]);
    let ps1_token = ps1
        .served
        .site
        .store
        .link_token("CS1")
        .expect("link")
        .expect("token");
    let before = count("SELECT COUNT(*) FROM v_status_messages WHERE site = 'PS1'");
    for _ in 0..2 {
        let (s, v) = call(
            &top,
            "POST",
            "/api/v1/sites/client-batches",
            Some(&ps1_token),
            Some(item.clone()),
        )
        .await;
        assert_eq!(s, 200, "{v}");
    }
    assert_eq!(
        count("SELECT COUNT(*) FROM v_status_messages WHERE site = 'PS1'"),
        before + 1
    );
    // One that does not read is named and acknowledged, not a reason to refuse the rest.
    let (s, v) = call(
        &top,
        "POST",
        "/api/v1/sites/client-batches",
        Some(&ps1_token),
        Some(json!([{"kind": "status", "status": {"origin": "PS1:999998", "message_id": "x"}}])),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["refused"].as_array().map(Vec::len), Some(1), "{v}");

    // A change at CS1 follows.
    admin(&format!("/api/v1/deployments/{id}/disable"), json!({})).await;
    koshin_server::hierarchy::pull_global(&ps1.served.site)
        .await
        .expect("replicate the change");
    let d1 = at_ps1(format!("/api/v1/deployments/{id}")).await;
    assert_eq!(d1["enabled"], false, "{d1}");
    let links = at_ps1("/api/v1/sites/links".into()).await;
    assert!(links[0]["global_seq"].as_i64().unwrap_or(0) > 0, "{links}");
    drop(stops);
}
