//! The agent against a site restored from a backup (the case the agent's catalog code
//! names: "a restored or new site"): queued state messages the restored site cannot take,
//! and a restored site whose content version catches up with the agent's.

mod common;

use common::*;
use koshin_domain::scan::ScanTrigger;
use koshin_testkit::DebSpec;

/// Points an agent at another site (the restored one answers at a new address).
fn move_to(agent: &TestAgent, site: &Served) {
    agent.db().set("site_url", &site.url).expect("set site_url");
}

/// C1/C4: a batch the site refuses for good (here: it names an update the restored site
/// does not have) must not stop the agent from ever reporting again. Today the refused
/// batch stays bound at the head of the queue and every later state message waits behind
/// it forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_batch_does_not_block_all_later_state_messages() {
    let mut site = TestSite::start().await;
    let agent = site.enroll("pc-restored", TYPICAL).await;
    let cid = agent.client_id();
    agent.scan_ok(ScanTrigger::ScanCycle).await;
    agent.send().await;
    let (_keep, backup) = site.backup();

    // A new update; the agent scans it and queues its state...
    site.publish_libfoo_deb12u2().await;
    let out = agent.scan_ok(ScanTrigger::ScanCycle).await;
    assert_eq!(out.state_messages, 1);
    // ...but the site is lost before the batch arrives, and restored from the backup.
    let restored = Served::open(&backup).await;
    move_to(&agent, &restored);
    assert_eq!(restored.history_len(&cid), 4);

    // The restored site does not know that update: it stores the rest of the batch and
    // names the unknown update, so the agent stops reporting it and the queue moves on.
    let mut db = agent.db();
    let id = db.identity().unwrap();
    let sent = koshin_agent::send::send_all(&mut db, &id, &agent.mp())
        .await
        .expect("the batch is acknowledged");
    assert_eq!(sent.refused, 0);
    drop(db);
    assert_eq!(agent.queue_length(), 0, "nothing stays stuck in the queue");

    // The machine changes; the next scan sees the restored catalog and queues the change.
    agent.set_installed(&[("hello", "2.10-4"), ("libfoo1", "1.0-1")]);
    let out = agent.scan_ok(ScanTrigger::ScanCycle).await;
    assert!(out.online);
    assert!(out.updates.iter().all(|u| u.title != LIBFOO_SEC2));
    assert_eq!(scanned(&out, HELLO_NEW), st("installed", false));

    // The agent keeps sending, as its send schedule would.
    for _ in 0..3 {
        let mut db = agent.db();
        let id = db.identity().unwrap();
        let _ = koshin_agent::send::send_all(&mut db, &id, &agent.mp()).await;
    }
    assert_eq!(
        restored.current_state(&cid, HELLO_NEW),
        Some(st("installed", false)),
        "the installation never reaches the site: the queue is stuck behind a batch the \
         site refuses ({} messages still queued)",
        agent.queue_length()
    );
}

/// S6/C3: a content version names a catalog only within one history of the site. A site
/// restored from a backup that then syncs reaches the agent's content version again with
/// different contents; the agent must not take it for the catalog it has.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_site_at_the_agents_content_version_is_not_mistaken_for_its_catalog() {
    let mut site = TestSite::start().await;
    let with_curl = [
        ("hello", "2.10-3"),
        ("libfoo1", "1.0-1"),
        ("curl", "7.88.1-10"),
    ];
    let agent = site.enroll("pc-cv", &with_curl).await;
    agent.scan_ok(ScanTrigger::ScanCycle).await;
    agent.send().await;
    let (_keep, backup) = site.backup();

    // The site syncs libfoo's new update (content version 2), the agent fetches it.
    let cv2 = site.publish_libfoo_deb12u2().await;
    let out = agent.scan_ok(ScanTrigger::ScanCycle).await;
    assert_eq!(out.content_version, cv2);

    // The site is lost and restored from the backup. Meanwhile the upstream published a
    // curl security update; the restored site's sync brings both at the same content
    // version the agent already has.
    site.archive
        .add(
            SECURITY,
            "main",
            &DebSpec::new("curl", "7.88.1-10+deb12u5", "amd64").source("curl", None),
        )
        .expect("add curl");
    site.publish_security();
    let restored = Served::open(&backup).await;
    let restored_cv = restored.sync().await;
    assert_eq!(
        restored_cv, cv2,
        "the restored site is at the agent's content version"
    );
    move_to(&agent, &restored);

    let out = agent.scan_ok(ScanTrigger::ScanCycle).await;
    assert!(out.online);
    let titles: Vec<&str> = out.updates.iter().map(|u| u.title.as_str()).collect();
    assert!(
        titles.contains(&"curl 7.88.1-10+deb12u5"),
        "the agent never learns of the restored site's curl security update: {titles:?}"
    );
    assert_eq!(
        scanned(&out, "curl 7.88.1-10+deb12u5"),
        st("required", false)
    );
}
