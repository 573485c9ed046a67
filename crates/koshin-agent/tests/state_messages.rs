//! C1, C4, C8 against a real site: a state message only for each update whose state
//! changed, the site's current state and history after sending, restart pending, and
//! Unknown where the site has no state message.

mod common;

use common::*;
use koshin_domain::scan::ScanTrigger;

/// The (update title, state, restart_pending) rows of an agent's queue, in order.
fn queued(agent: &TestAgent, site: &TestSite) -> Vec<(String, String, bool)> {
    let db = agent.db();
    let mut stmt = db
        .conn
        .prepare("SELECT update_id, state, restart_pending FROM queue ORDER BY seq")
        .unwrap();
    let rows: Vec<(String, String, bool)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.into_iter()
        .map(|(id, s, r)| {
            let title = site.query("SELECT title FROM updates WHERE id = :i", &[("i", &id)]);
            (title[0][0].as_str().unwrap().to_string(), s, r)
        })
        .collect()
}

/// The site's history of one client for one update: (state code, restart_pending), oldest
/// first.
fn history(site: &TestSite, client_id: &str, title: &str) -> Vec<(i64, bool)> {
    site.query(
        "SELECT h.state, h.restart_pending FROM state_history h JOIN updates u ON u.id = h.update_id
         WHERE h.client = (SELECT id FROM clients WHERE client_id = :c) AND u.title = :t ORDER BY h.time_ms, h.id",
        &[("c", client_id), ("t", title)],
    )
    .iter()
    .map(|r| (r[0].as_i64().unwrap(), r[1].as_i64().unwrap() != 0))
    .collect()
}

const REQUIRED: i64 = 1;
const NOT_REQUIRED: i64 = 2;
const INSTALLED: i64 = 3;

/// C4: the first scan queues a message per update that applies (the scan record covers the
/// rest), a scan that changes nothing queues none, an installation queues exactly the updates
/// it changed; the site's current state follows and its history keeps every state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_changed_states_are_queued_and_the_site_keeps_history() {
    let site = TestSite::start().await;
    let agent = site.enroll("pc-changes", TYPICAL).await;
    let cid = agent.client_id();

    let first = agent.scan_ok(ScanTrigger::ScanCycle).await;
    assert_eq!(first.updates.len(), 5);
    assert_eq!(
        first.state_messages, 4,
        "one message per update that applies here"
    );
    assert_eq!(agent.queue_length(), 4);

    let again = agent.scan_ok(ScanTrigger::ScanCycle).await;
    assert_eq!(again.state_messages, 0, "nothing changed");
    let offline = agent.scan_ok(ScanTrigger::Offline).await;
    assert_eq!(offline.state_messages, 0);
    assert_eq!(agent.queue_length(), 4);

    let sent = agent.send().await;
    assert_eq!(sent.messages, 4);
    assert_eq!(agent.queue_length(), 0);
    assert_eq!(site.history_len(&cid), 4);
    assert_eq!(
        site.current_state(&cid, HELLO_NEW),
        Some(st("required", false))
    );
    assert_eq!(
        site.current_state(&cid, HELLO_OLD),
        Some(st("installed", false))
    );
    assert_eq!(
        site.current_state(&cid, CURL),
        Some(st("not_required", false))
    );

    // Installing hello 2.10-4 changes exactly one update: required → installed.
    agent.set_installed(&[("hello", "2.10-4"), ("libfoo1", "1.0-1")]);
    let out = agent.scan_ok(ScanTrigger::AfterInstall).await;
    assert!(!out.online);
    assert_eq!(scanned(&out, HELLO_NEW), st("installed", false));
    assert_eq!(scanned(&out, HELLO_OLD), st("installed", false));
    assert_eq!(out.state_messages, 1);
    assert_eq!(
        queued(&agent, &site),
        vec![(HELLO_NEW.to_string(), "installed".to_string(), false)]
    );
    // Before it is sent, the site still has the old state.
    assert_eq!(
        site.current_state(&cid, HELLO_NEW),
        Some(st("required", false))
    );
    assert_eq!(agent.send().await.messages, 1);
    assert_eq!(
        site.current_state(&cid, HELLO_NEW),
        Some(st("installed", false))
    );
    assert_eq!(
        history(&site, &cid, HELLO_NEW),
        vec![(REQUIRED, false), (INSTALLED, false)]
    );
    assert_eq!(site.history_len(&cid), 5);

    // Two changes of the same update before a send: both kept in the history, the newer
    // one is the current state.
    agent.set_installed(&[("hello", "2.10-4"), ("libfoo1", "1.0-1+deb12u1")]);
    let out = agent.scan_ok(ScanTrigger::AfterInstall).await;
    assert_eq!(out.state_messages, 1);
    agent.set_installed(&[("hello", "2.10-4"), ("libfoo1", "1.0-1")]);
    let out = agent.scan_ok(ScanTrigger::Offline).await;
    assert_eq!(out.state_messages, 1);
    assert_eq!(
        queued(&agent, &site),
        vec![
            (LIBFOO_SEC.to_string(), "installed".to_string(), false),
            (LIBFOO_SEC.to_string(), "required".to_string(), false),
        ]
    );
    assert_eq!(agent.send().await.messages, 2);
    assert_eq!(
        site.current_state(&cid, LIBFOO_SEC),
        Some(st("required", false))
    );
    assert_eq!(
        history(&site, &cid, LIBFOO_SEC),
        vec![(REQUIRED, false), (INSTALLED, false), (REQUIRED, false)]
    );

    // Removing libfoo1 makes both libfoo updates not required: two messages.
    agent.set_installed(&[("hello", "2.10-4")]);
    let out = agent.scan_ok(ScanTrigger::Offline).await;
    assert_eq!(out.state_messages, 2);
    let mut q = queued(&agent, &site);
    q.sort();
    assert_eq!(
        q,
        vec![
            (LIBFOO_OLD.to_string(), "not_required".to_string(), false),
            (LIBFOO_SEC.to_string(), "not_required".to_string(), false),
        ]
    );
    agent.send().await;
    assert_eq!(
        site.current_state(&cid, LIBFOO_OLD),
        Some(st("not_required", false))
    );
    assert_eq!(
        history(&site, &cid, LIBFOO_OLD),
        vec![(INSTALLED, false), (NOT_REQUIRED, false)]
    );
    assert_eq!(site.history_len(&cid), 9);
    // A state row per update that ever applied here (curl never did: Not required by the
    // scan record alone).
    assert_eq!(
        site.count(
            "SELECT COUNT(*) FROM update_states WHERE client = (SELECT id FROM clients WHERE client_id = :c)",
            &[("c", &cid)],
        ),
        4
    );
}

/// C1/C8: installed but waiting for a restart is Required with restart pending — in the
/// agent's output and at the site — and after the restart a scan reports Installed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_pending_is_required_until_the_after_restart_scan() {
    let site = TestSite::start().await;
    let agent = site.enroll("pc-restart", TYPICAL).await;
    let cid = agent.client_id();
    agent.scan_ok(ScanTrigger::ScanCycle).await;
    agent.send().await;
    assert_eq!(
        site.current_state(&cid, LIBFOO_SEC),
        Some(st("required", false))
    );

    // libfoo1's security update is installed and the machine needs a restart for it.
    agent.set_installed(&[("hello", "2.10-3"), ("libfoo1", "1.0-1+deb12u1")]);
    agent.set_reboot_required(Some(&["libfoo1"]));
    let out = agent.scan_ok(ScanTrigger::AfterInstall).await;
    assert_eq!(scanned(&out, LIBFOO_SEC), st("required", true));
    // Updates of packages that need no restart are unaffected.
    assert_eq!(scanned(&out, HELLO_OLD), st("installed", false));
    assert_eq!(scanned(&out, HELLO_NEW), st("required", false));
    assert!(
        queued_titles(&agent, &site).contains(&LIBFOO_SEC.to_string()),
        "the restart pending state is a change"
    );
    assert_eq!(
        agent.db().get("restart_pending").unwrap().as_deref(),
        Some("1")
    );

    // The real binary says so too.
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_koshin-agent"))
        .arg("--state")
        .arg(&agent.state)
        .args(["scan", "--trigger", "after-install"])
        .output()
        .expect("koshin-agent runs");
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let text = String::from_utf8_lossy(&cli.stdout);
    let line = text
        .lines()
        .find(|l| l.contains(LIBFOO_SEC))
        .unwrap_or_else(|| panic!("no line for {LIBFOO_SEC}: {text}"));
    assert!(
        line.trim_start().starts_with("required") && line.contains("(restart pending)"),
        "{line}"
    );
    assert!(text.contains("0 state messages queued"), "{text}");

    agent.send().await;
    assert_eq!(
        site.current_state(&cid, LIBFOO_SEC),
        Some(st("required", true))
    );
    // `koshin clients show` (GET /api/v1/clients/NAME) shows it.
    let show = site.admin_get("/api/v1/clients/pc-restart").await;
    let u = show["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .find(|u| u["title"] == LIBFOO_SEC)
        .expect("libfoo's security update is listed")
        .clone();
    assert_eq!(u["state"], "required");
    assert_eq!(u["restart_pending"], true);

    // After the restart (the flag is gone) an after-restart scan reports Installed.
    agent.set_reboot_required(None);
    let out = agent.scan_ok(ScanTrigger::AfterRestart).await;
    assert!(!out.online);
    assert_eq!(out.kind, "forced offline");
    assert_eq!(scanned(&out, LIBFOO_SEC), st("installed", false));
    assert!(out.updates.iter().all(|u| !u.restart_pending));
    assert_eq!(
        agent.db().get("restart_pending").unwrap().as_deref(),
        Some("0")
    );
    agent.send().await;
    assert_eq!(
        site.current_state(&cid, LIBFOO_SEC),
        Some(st("installed", false))
    );
    let c = site.client("pc-restart");
    let u = c
        .updates
        .iter()
        .find(|u| u.title == LIBFOO_SEC)
        .expect("listed");
    assert_eq!((u.state.as_str(), u.restart_pending), ("installed", false));
    assert_eq!(
        history(&site, &cid, LIBFOO_SEC),
        vec![(REQUIRED, false), (REQUIRED, true), (INSTALLED, false)]
    );
}

fn queued_titles(agent: &TestAgent, site: &TestSite) -> Vec<String> {
    queued(agent, site).into_iter().map(|q| q.0).collect()
}

/// C5/C8: the running agent itself runs the after-restart scan when it starts after the
/// restart that completed an installation, and sends its result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_agent_scans_after_the_restart() {
    let site = TestSite::start().await;
    let agent = site.enroll("pc-reboot", TYPICAL).await;
    let cid = agent.client_id();
    agent.scan_ok(ScanTrigger::ScanCycle).await;
    agent.set_installed(&[("hello", "2.10-3"), ("libfoo1", "1.0-1+deb12u1")]);
    agent.set_reboot_required(Some(&["libfoo1"]));
    agent.scan_ok(ScanTrigger::AfterInstall).await;
    agent.send().await;
    assert_eq!(
        site.current_state(&cid, LIBFOO_SEC),
        Some(st("required", true))
    );

    // The machine restarted; the agent starts. No scheduled scan is due; sending is.
    agent.set_reboot_required(None);
    agent.set_kv_i64("next_scan_ms", now_ms() + 24 * HOUR_MS);
    agent.set_kv_i64("next_send_ms", now_ms() - 1);
    let state = agent.state.clone();
    let before = now_ms();
    koshin_agent::runner::run(
        &state,
        tokio::time::sleep(std::time::Duration::from_millis(1500)),
    )
    .await
    .expect("agent runs");
    let status = koshin_agent::enroll::status(&agent.state).unwrap();
    let last = status.last_scan.expect("a scan");
    assert_eq!(last.trigger, "after-restart");
    assert_eq!(last.result, "succeeded");
    assert_eq!(status.queue_length, 0, "the result was sent");
    assert_eq!(
        site.current_state(&cid, LIBFOO_SEC),
        Some(st("installed", false))
    );
    // C4: the next batch goes in 15 minutes.
    assert_eq!(status.send_interval_minutes, 15);
    let next = agent.kv_i64("next_send_ms").expect("next send");
    assert!(
        (before + 15 * 60_000..=now_ms() + 15 * 60_000).contains(&next),
        "next send {} s ahead",
        (next - now_ms()) / 1000
    );
}

/// C8: "An updated state can take up to 2 minutes to reach the MP." When the agent starts
/// after the restart that completed an installation, the Installed state of its
/// after-restart scan goes to the site within 2 minutes — not with the next regular batch,
/// up to 15 minutes later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_after_restart_state_reaches_the_site_within_two_minutes() {
    let site = TestSite::start().await;
    let agent = site.enroll("pc-c8", TYPICAL).await;
    let cid = agent.client_id();
    agent.scan_ok(ScanTrigger::ScanCycle).await;
    agent.set_installed(&[("hello", "2.10-3"), ("libfoo1", "1.0-1+deb12u1")]);
    agent.set_reboot_required(Some(&["libfoo1"]));
    agent.scan_ok(ScanTrigger::AfterInstall).await;
    agent.send().await;

    // The restart: the regular send schedule (kept from before) is 14 minutes away.
    agent.set_reboot_required(None);
    agent.set_kv_i64("next_scan_ms", now_ms() + 24 * HOUR_MS);
    agent.set_kv_i64("next_send_ms", now_ms() + 14 * 60_000);
    let state = agent.state.clone();
    koshin_agent::runner::run(
        &state,
        tokio::time::sleep(std::time::Duration::from_millis(1500)),
    )
    .await
    .expect("agent runs");
    let status = koshin_agent::enroll::status(&agent.state).unwrap();
    let scanned_at = status.last_scan.expect("a scan").started.as_millisecond();
    let at_site = site.current_state(&cid, LIBFOO_SEC) == Some(st("installed", false));
    let next_send = agent.kv_i64("next_send_ms").expect("next send");
    assert!(
        at_site || next_send <= scanned_at + 2 * 60_000,
        "the after-restart Installed state waits {} s for the regular batch",
        (next_send - scanned_at) / 1000
    );
}

/// C1: "installed but waiting for a restart" is the update whose installation waits for
/// the restart. An older update of the same package, installed and reported Installed long
/// before, is not waiting for anything and must stay Installed — otherwise installing a
/// security update makes every earlier update of that package Required again at the site.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_installed_before_stays_installed_while_a_newer_one_waits_for_restart() {
    let site = TestSite::start().await;
    let agent = site.enroll("pc-older", TYPICAL).await;
    let cid = agent.client_id();
    let out = agent.scan_ok(ScanTrigger::ScanCycle).await;
    assert_eq!(scanned(&out, LIBFOO_OLD), st("installed", false));
    agent.send().await;

    agent.set_installed(&[("hello", "2.10-3"), ("libfoo1", "1.0-1+deb12u1")]);
    agent.set_reboot_required(Some(&["libfoo1"]));
    let out = agent.scan_ok(ScanTrigger::AfterInstall).await;
    assert_eq!(scanned(&out, LIBFOO_SEC), st("required", true));
    assert_eq!(
        scanned(&out, LIBFOO_OLD),
        st("installed", false),
        "libfoo 1.0-1 was installed and reported Installed before this installation"
    );
    agent.send().await;
    assert_eq!(
        site.current_state(&cid, LIBFOO_OLD),
        Some(st("installed", false))
    );
}

/// C1: Unknown is every (client, update) the site has no state message for: a client that
/// never scanned, a client whose messages wait in its backlog, and an update that reached
/// the catalog after the client's last scan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_until_a_state_message_arrives() {
    let mut site = TestSite::start().await;
    let a = site.enroll("pc-a", TYPICAL).await;
    let b = site.enroll("pc-b", TYPICAL).await;
    let c = site.enroll("pc-c", TYPICAL).await;
    a.scan_ok(ScanTrigger::ScanCycle).await;
    a.send().await;
    // c scanned, but its messages are still in its backlog.
    c.scan_ok(ScanTrigger::ScanCycle).await;
    assert_eq!(c.queue_length(), 4);
    let _ = &b;

    let counts = site.updates_with_counts().await;
    assert_eq!(counts.len(), 5);
    // (required, installed, not_required, unknown): a's states, b and c unknown.
    assert_eq!(counts[HELLO_NEW], [1, 0, 0, 2]);
    assert_eq!(counts[LIBFOO_SEC], [1, 0, 0, 2]);
    assert_eq!(counts[HELLO_OLD], [0, 1, 0, 2]);
    assert_eq!(counts[LIBFOO_OLD], [0, 1, 0, 2]);
    assert_eq!(counts[CURL], [0, 0, 1, 2]);

    let list = site.admin_get("/api/v1/clients").await;
    let row = |name: &str| -> [i64; 4] {
        let r = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} listed"));
        let n = |k: &str| r[k].as_i64().unwrap();
        [
            n("required"),
            n("installed"),
            n("not_required"),
            n("unknown"),
        ]
    };
    assert_eq!(row("pc-a"), [2, 2, 1, 0]);
    assert_eq!(row("pc-b"), [0, 0, 0, 5]);
    assert_eq!(row("pc-c"), [0, 0, 0, 5]);

    // A new update arrives after a's scan: unknown for a until a scans again.
    site.publish_libfoo_deb12u2().await;
    let counts = site.updates_with_counts().await;
    assert_eq!(counts[LIBFOO_SEC2], [0, 0, 0, 3]);
    let summary = site
        .clients()
        .into_iter()
        .find(|s| s.name == "pc-a")
        .unwrap();
    assert_eq!(
        [
            summary.required,
            summary.installed,
            summary.not_required,
            summary.unknown
        ],
        [2, 2, 1, 1]
    );
    // A scan within the TTL does not know the new update either.
    let out = a.scan_ok(ScanTrigger::Schedule).await;
    assert!(!out.online);
    a.send().await;
    assert_eq!(site.client("pc-a").summary.unknown, 1);
    // A forced scan does; once sent, nothing is unknown for a.
    a.scan_ok(ScanTrigger::ScanCycle).await;
    a.send().await;
    assert_eq!(site.client("pc-a").summary.unknown, 0);
    assert_eq!(site.updates_with_counts().await[LIBFOO_SEC2], [1, 0, 0, 2]);
    // c's backlog arrives: c's unknown is only the update it has not scanned.
    c.send().await;
    let cs = site.client("pc-c").summary;
    assert_eq!(
        [cs.required, cs.installed, cs.not_required, cs.unknown],
        [2, 2, 1, 1]
    );
    assert_eq!(site.client("pc-b").summary.unknown, 6);
}
