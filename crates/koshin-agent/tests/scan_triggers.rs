//! C2, C5, C6 against a real site: what each trigger of a scan does with the metadata
//! (fetch it, or use what is stored locally), the TTL, the incremental catalog, and the
//! first scan's random time within two hours of the first policy.

mod common;

use common::*;
use koshin_domain::scan::ScanTrigger;

const DAY_MS: i64 = 24 * HOUR_MS;

/// C5/C6: non-forced online scans fetch only without metadata or when it is older than the
/// TTL (and then reset it), forced online scans always fetch and reset the TTL, offline
/// scans never contact the site — and every kind evaluates the same states.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggers_fetch_metadata_as_c5_and_the_ttl_say() {
    let site = TestSite::start().await;
    let agent = site.enroll("pc-triggers", TYPICAL).await;
    assert_eq!(agent.kv_i64("metadata_fetched_ms"), None);

    // A fresh agent's scheduled scan fetches the whole catalog.
    let before = now_ms();
    let first = agent.scan_ok(ScanTrigger::Schedule).await;
    assert!(
        first.online,
        "a fresh agent's schedule scan fetches metadata"
    );
    assert_eq!(first.kind, "non-forced online");
    assert_eq!(first.trigger, "schedule");
    let catalogs = site.requests_matching("/api/v1/mp/catalog");
    assert_eq!(catalogs.len(), 1, "{catalogs:?}");
    assert!(
        catalogs[0].starts_with("GET /api/v1/mp/catalog?since=0&token="),
        "{catalogs:?}"
    );
    let fetched = agent.kv_i64("metadata_fetched_ms").expect("fetched");
    assert!(fetched >= before && fetched <= now_ms());
    assert_eq!(first.updates.len(), 5, "{:?}", states(&first));
    let expected = states(&first);
    assert_eq!(scanned(&first, HELLO_OLD), st("installed", false));
    assert_eq!(scanned(&first, HELLO_NEW), st("required", false));
    assert_eq!(scanned(&first, LIBFOO_SEC), st("required", false));
    assert_eq!(scanned(&first, CURL), st("not_required", false));
    // The TTL the policy gave (C6: 24 h).
    assert_eq!(agent.kv_i64("metadata_ttl_minutes"), Some(24 * 60));

    // Within the TTL, every non-forced online scan uses the local metadata: no request.
    for t in [
        ScanTrigger::Schedule,
        ScanTrigger::Reevaluation,
        ScanTrigger::BeforeDownload,
        ScanTrigger::BeforeInstall,
    ] {
        let n = site.request_count();
        let out = agent.scan_ok(t).await;
        assert!(!out.online, "{} scan within the TTL fetched", t.name());
        assert_eq!(out.kind, "non-forced online");
        assert_eq!(
            site.request_count(),
            n,
            "{} scan contacted the site",
            t.name()
        );
        assert_eq!(agent.kv_i64("metadata_fetched_ms"), Some(fetched));
        assert_eq!(states(&out), expected);
        assert_eq!(out.state_messages, 0);
    }

    // Just inside the TTL (23 h) still local; past it (25 h) each fetches and resets it.
    for t in [
        ScanTrigger::Schedule,
        ScanTrigger::Reevaluation,
        ScanTrigger::BeforeDownload,
        ScanTrigger::BeforeInstall,
    ] {
        let inside = now_ms() - 23 * HOUR_MS;
        agent.set_kv_i64("metadata_fetched_ms", inside);
        let out = agent.scan_ok(t).await;
        assert!(
            !out.online,
            "{} scan with 23 h old metadata fetched",
            t.name()
        );
        assert_eq!(agent.kv_i64("metadata_fetched_ms"), Some(inside));

        agent.set_kv_i64("metadata_fetched_ms", now_ms() - 25 * HOUR_MS);
        let catalogs = site.requests_matching("/api/v1/mp/catalog").len();
        let before = now_ms();
        let out = agent.scan_ok(t).await;
        assert!(
            out.online,
            "{} scan with 25 h old metadata did not fetch",
            t.name()
        );
        assert_eq!(
            site.requests_matching("/api/v1/mp/catalog").len(),
            catalogs + 1
        );
        let now = agent.kv_i64("metadata_fetched_ms").expect("fetched");
        assert!(now >= before, "{} did not reset the TTL", t.name());
        assert_eq!(states(&out), expected);
    }

    // Forced online: always fetch, even with fresh metadata, and reset the TTL.
    for t in [
        ScanTrigger::ScanCycle,
        ScanTrigger::DeploymentEvaluationCycle,
    ] {
        agent.set_kv_i64("metadata_fetched_ms", now_ms() - HOUR_MS);
        let catalogs = site.requests_matching("/api/v1/mp/catalog").len();
        let before = now_ms();
        let out = agent.scan_ok(t).await;
        assert!(out.online, "{} did not fetch", t.name());
        assert_eq!(out.kind, "forced online");
        assert_eq!(
            site.requests_matching("/api/v1/mp/catalog").len(),
            catalogs + 1
        );
        assert!(agent.kv_i64("metadata_fetched_ms").expect("fetched") >= before);
        assert_eq!(states(&out), expected);
    }

    // Forced offline: never contact the site, even with metadata past its TTL.
    for t in [
        ScanTrigger::AfterInstall,
        ScanTrigger::AfterRestart,
        ScanTrigger::Offline,
    ] {
        let stale = now_ms() - 3 * DAY_MS;
        agent.set_kv_i64("metadata_fetched_ms", stale);
        let n = site.request_count();
        let out = agent.scan_ok(t).await;
        assert!(!out.online, "{} fetched", t.name());
        assert_eq!(out.kind, "forced offline");
        assert_eq!(out.trigger, t.name());
        assert_eq!(site.request_count(), n, "{} contacted the site", t.name());
        assert_eq!(agent.kv_i64("metadata_fetched_ms"), Some(stale));
        assert_eq!(states(&out), expected);
    }

    // Every scan is recorded with its trigger, kind and whether it fetched; the site gets
    // the records with the next batch.
    let db = agent.db();
    let n_scans: i64 = db
        .conn
        .query_row("SELECT COUNT(*) FROM scans", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n_scans, 1 + 4 + 8 + 2 + 3);
    drop(db);
    agent.send().await;
    let rows = site.query(
        "SELECT trigger, kind, online, COUNT(*) FROM scans WHERE client = (SELECT id FROM clients WHERE client_id = :c) GROUP BY trigger, kind, online ORDER BY trigger, online",
        &[("c", &agent.client_id())],
    );
    let got: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} / {} / {} x{}",
                r[0].as_str().unwrap(),
                r[1].as_str().unwrap(),
                r[2],
                r[3]
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            "after-install / forced offline / 0 x1",
            "after-restart / forced offline / 0 x1",
            "before-download / non-forced online / 0 x2",
            "before-download / non-forced online / 1 x1",
            "before-install / non-forced online / 0 x2",
            "before-install / non-forced online / 1 x1",
            "deployment-evaluation-cycle / forced online / 1 x1",
            "offline / forced offline / 0 x1",
            "reevaluation / non-forced online / 0 x2",
            "reevaluation / non-forced online / 1 x1",
            "scan-cycle / forced online / 1 x1",
            "schedule / non-forced online / 0 x2",
            "schedule / non-forced online / 1 x2",
        ]
    );
}

/// C5: an offline scan needs local metadata; on an agent that never fetched any it fails
/// with a clear reason, and the failed scan is recorded (at the agent, then at the site).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_scan_without_local_metadata_fails_clearly_and_is_recorded() {
    let site = TestSite::start().await;
    let agent = site.enroll("pc-nometa", TYPICAL).await;
    for t in [
        ScanTrigger::Offline,
        ScanTrigger::AfterInstall,
        ScanTrigger::AfterRestart,
    ] {
        let n = site.request_count();
        let err = agent.scan(t).await.expect_err("no local metadata");
        let msg = format!("{err:#}");
        assert!(msg.contains("no local metadata"), "{}: {msg}", t.name());
        assert_eq!(site.request_count(), n, "{} contacted the site", t.name());
    }
    // The real binary says the same and exits non-zero.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_koshin-agent"))
        .arg("--state")
        .arg(&agent.state)
        .args(["scan", "--offline"])
        .output()
        .expect("koshin-agent runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no local metadata"), "{stderr}");

    assert_eq!(agent.queue_length(), 0, "a failed scan queues no state");
    let status = koshin_agent::enroll::status(&agent.state).expect("status");
    let last = status.last_scan.expect("the failed scan is recorded");
    assert!(
        last.result.starts_with("failed: no local metadata"),
        "{}",
        last.result
    );
    assert!(!last.online);
    assert_eq!(last.kind, "forced offline");
    assert_eq!(agent.db().unsent_scans().unwrap(), 4);

    // The site gets the failed scans; the client's states stay unknown.
    let sent = agent.send().await;
    assert_eq!(sent.messages, 0);
    let rows = site.query(
        "SELECT result FROM scans WHERE client = (SELECT id FROM clients WHERE client_id = :c)",
        &[("c", &agent.client_id())],
    );
    assert_eq!(rows.len(), 4);
    for r in &rows {
        assert!(
            r[0].as_str()
                .unwrap()
                .starts_with("failed: no local metadata")
        );
    }
    let c = site.client("pc-nometa");
    assert!(
        c.last_scan_record
            .expect("last scan at the site")
            .result
            .starts_with("failed")
    );
    assert_eq!(c.summary.unknown, 5);
    assert_eq!(
        c.summary.required + c.summary.installed + c.summary.not_required,
        0
    );

    // After an online scan, the offline scan works.
    agent.scan_ok(ScanTrigger::ScanCycle).await;
    let out = agent.scan_ok(ScanTrigger::Offline).await;
    assert!(!out.online);
}

/// C3/S6: an online scan asks only for what is new since the content version it has, and
/// keeps the rest of its cached catalog.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_scan_fetches_the_catalog_incrementally() {
    let mut site = TestSite::start().await;
    let cv1 = site.content_version();
    assert!(cv1 >= 1);
    let agent = site.enroll("pc-incr", TYPICAL).await;
    let first = agent.scan_ok(ScanTrigger::ScanCycle).await;
    assert_eq!(first.content_version, cv1);
    assert_eq!(agent.kv_i64("content_version"), Some(cv1));
    assert_eq!(first.state_messages, 4);

    let cv2 = site.publish_libfoo_deb12u2().await;
    assert!(
        cv2 > cv1,
        "the sync of a new version raised the content version"
    );

    // Within the TTL a scheduled scan does not see it.
    let out = agent.scan_ok(ScanTrigger::Schedule).await;
    assert!(!out.online);
    assert!(out.updates.iter().all(|u| u.title != LIBFOO_SEC2));

    // A forced scan asks for what is new since cv1 only.
    let out = agent.scan_ok(ScanTrigger::ScanCycle).await;
    assert!(out.online);
    let catalogs = site.requests_matching("/api/v1/mp/catalog");
    assert!(
        catalogs
            .last()
            .unwrap()
            .starts_with(&format!("GET /api/v1/mp/catalog?since={cv1}&token=")),
        "{catalogs:?}"
    );
    assert_eq!(agent.kv_i64("content_version"), Some(cv2));
    assert_eq!(out.content_version, cv2);
    assert_eq!(out.updates.len(), 6, "{:?}", states(&out));
    assert_eq!(scanned(&out, LIBFOO_SEC2), st("required", false));
    // The older updates are still in the cache and evaluate the same.
    for (title, s) in states(&first) {
        assert_eq!(scanned(&out, &title), s, "{title}");
    }
    assert_eq!(out.state_messages, 1, "only the new update's state is new");

    // Nothing new: the next forced scan asks since cv2 and changes nothing.
    let again = agent.scan_ok(ScanTrigger::DeploymentEvaluationCycle).await;
    assert!(
        site.requests_matching("/api/v1/mp/catalog")
            .last()
            .unwrap()
            .starts_with(&format!("GET /api/v1/mp/catalog?since={cv2}&token="))
    );
    assert_eq!(states(&again), states(&out));
    assert_eq!(again.state_messages, 0);

    // The site sees the new update as required for this client once it is sent.
    agent.send().await;
    assert_eq!(
        site.current_state(&agent.client_id(), LIBFOO_SEC2),
        Some(st("required", false))
    );
}

/// C6: the TTL is the site's (the policy's metadata_ttl_minutes), not a fixed 24 hours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ttl_comes_from_the_sites_policy() {
    let site = TestSite::start_with(|cfg| cfg.policy.metadata_ttl_minutes = 60).await;
    let agent = site.enroll("pc-ttl", TYPICAL).await;
    assert!(agent.scan_ok(ScanTrigger::Schedule).await.online);
    assert_eq!(agent.kv_i64("metadata_ttl_minutes"), Some(60));
    let status = koshin_agent::enroll::status(&agent.state).unwrap();
    let fetched = status.metadata_fetched.expect("fetched").as_millisecond();
    assert_eq!(
        status.ttl_expires.expect("expiry").as_millisecond(),
        fetched + HOUR_MS
    );
    agent.set_kv_i64("metadata_fetched_ms", now_ms() - 59 * 60_000);
    assert!(!agent.scan_ok(ScanTrigger::Schedule).await.online);
    agent.set_kv_i64("metadata_fetched_ms", now_ms() - 61 * 60_000);
    assert!(agent.scan_ok(ScanTrigger::Schedule).await.online);
}

/// C2: on its first machine policy a client schedules its first scan at a random time
/// within the next 2 hours (the policy's first_scan_window_minutes, 120 by default); a later
/// policy does not move it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_scan_is_scheduled_randomly_within_two_hours_of_the_policy() {
    let site = TestSite::start().await;
    let mut times = Vec::new();
    for i in 0..6 {
        let agent = site.enroll(&format!("pc-first-{i}"), TYPICAL).await;
        assert_eq!(agent.kv_i64("next_scan_ms"), None);
        let before = now_ms();
        koshin_agent::runner::poll_policy(&agent.db(), &agent.mp())
            .await
            .expect("poll policy");
        let after = now_ms();
        let policy: koshin_wire::MachinePolicy =
            serde_json::from_str(&agent.db().get("policy").unwrap().expect("policy stored"))
                .expect("policy JSON");
        assert_eq!(policy.first_scan_window_minutes, 120);
        let received = agent.kv_i64("first_policy_ms").expect("first_policy_ms");
        assert!((before..=after).contains(&received));
        let at = agent.kv_i64("next_scan_ms").expect("next_scan_ms");
        assert!(
            (received..received + 2 * HOUR_MS).contains(&at),
            "first scan {} ms after the policy",
            at - received
        );
        // A second policy poll keeps the first scan where it is.
        koshin_agent::runner::poll_policy(&agent.db(), &agent.mp())
            .await
            .expect("poll policy");
        assert_eq!(agent.kv_i64("next_scan_ms"), Some(at));
        assert_eq!(agent.kv_i64("first_policy_ms"), Some(received));
        assert!(agent.kv_i64("next_policy_poll_ms").expect("next poll") > after);
        times.push(at - received);
    }
    let mut distinct = times.clone();
    distinct.sort();
    distinct.dedup();
    assert!(
        distinct.len() >= times.len() - 1,
        "first scan offsets are not random: {times:?}"
    );
    // Spread over the window, not all bunched at its start.
    assert!(
        times.iter().any(|t| *t > 10 * 60_000),
        "all first scans within 10 minutes: {times:?}"
    );
}
