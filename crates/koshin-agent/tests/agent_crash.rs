//! The real `koshin-agent` binary killed with SIGKILL between a scan and the send of its
//! state messages: nothing queued is lost, nothing arrives twice.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const AGENT: &str = env!("CARGO_BIN_EXE_koshin-agent");

fn agent_cmd(state: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(AGENT)
        .arg("--state")
        .arg(state)
        .args(args)
        .env_remove("KOSHIN_TOKEN")
        .output()
        .expect("koshin-agent runs")
}

fn ok(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "koshin-agent failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `koshin-agent run`, waits for "agent started" and then `settle`, and kills it
/// with SIGKILL.
fn run_and_kill(state: &std::path::Path, settle: Duration) {
    let mut child = Command::new(AGENT)
        .arg("--state")
        .arg(state)
        .arg("run")
        .env("KOSHIN_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("koshin-agent run starts");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[agent] {line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("agent started") => break,
            Ok(_) => {}
            Err(e) => {
                let _ = child.kill();
                panic!("the agent did not start: {e}");
            }
        }
    }
    std::thread::sleep(settle);
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "the agent exited on its own"
    );
    // std's kill() is SIGKILL on Unix.
    child.kill().expect("kill -9");
    let status = child.wait().expect("wait");
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9), "{status:?}");
    }
    let _ = status;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_between_scan_and_send_loses_and_duplicates_nothing() {
    let site = TestSite::start().await;
    let agent = TestAgent::new("pc-kill", TYPICAL);
    let state = agent.state.clone();
    let url = site.url.clone();
    let token = site.token.clone();
    let root = disp(&agent.root);
    // The blocking binary runs off the runtime's threads.
    let out = tokio::task::spawn_blocking({
        let state = state.clone();
        move || {
            agent_cmd(
                &state,
                &[
                    "enroll", "--site", &url, "--token", &token, "--name", "pc-kill", "--root",
                    &root,
                ],
            )
        }
    })
    .await
    .unwrap();
    assert!(ok(&out).contains("Enrolled with site CS1"));
    let cid = agent.client_id();

    let out = tokio::task::spawn_blocking({
        let state = state.clone();
        move || agent_cmd(&state, &["scan", "--json"])
    })
    .await
    .unwrap();
    let scan: koshin_wire::ScanOutput = serde_json::from_str(&ok(&out)).expect("scan JSON");
    // One message per update that applies here (4 of the catalog's 5): the fifth is Not
    // required, which the scan record tells the site without a message of its own.
    assert_eq!(scan.required + scan.installed, 4);
    assert_eq!(scan.state_messages, 4);
    assert_eq!(agent.queue_length(), 4);

    // A long send interval, the next send far away, no scan due: `run` does not send.
    agent.set_kv_i64("send_interval_minutes", 100_000);
    agent.set_kv_i64("next_send_ms", now_ms() + 24 * HOUR_MS);
    agent.set_kv_i64("next_scan_ms", now_ms() + 24 * HOUR_MS);
    for settle in [Duration::from_millis(300), Duration::from_millis(50)] {
        let s = state.clone();
        tokio::task::spawn_blocking(move || run_and_kill(&s, settle))
            .await
            .unwrap();
        assert_eq!(agent.queue_length(), 4, "the queue survives kill -9");
        assert_eq!(site.history_len(&cid), 0, "nothing was sent");
    }
    let status = koshin_agent::enroll::status(&state).expect("status after kill -9");
    assert_eq!(status.queue_length, 4);

    // send-now sends every queued message exactly once.
    let out = tokio::task::spawn_blocking({
        let state = state.clone();
        move || agent_cmd(&state, &["send-now"])
    })
    .await
    .unwrap();
    let text = ok(&out);
    assert!(
        text.contains("Sent 4 state messages in 1 batches"),
        "{text}"
    );
    assert_eq!(site.history_len(&cid), scan.state_messages as i64);
    assert_eq!(
        site.count(
            "SELECT COUNT(*) FROM update_states WHERE client = (SELECT id FROM clients WHERE client_id = :c)",
            &[("c", &cid)],
        ),
        4
    );
    for u in &scan.updates {
        assert_eq!(
            site.current_state(&cid, &u.title),
            Some((u.state.clone(), u.restart_pending)),
            "{}",
            u.title
        );
    }
    let out = tokio::task::spawn_blocking({
        let state = state.clone();
        move || agent_cmd(&state, &["status", "--json"])
    })
    .await
    .unwrap();
    let status: koshin_wire::AgentStatus = serde_json::from_str(&ok(&out)).expect("status JSON");
    assert_eq!(status.queue_length, 0);

    // Sending again sends nothing, and the site still has each message once.
    let out = tokio::task::spawn_blocking({
        let state = state.clone();
        move || agent_cmd(&state, &["send-now"])
    })
    .await
    .unwrap();
    assert!(ok(&out).contains("Sent 0 state messages in 0 batches"));
    assert_eq!(site.history_len(&cid), 4);
    assert_eq!(
        site.count(
            "SELECT COUNT(*) FROM state_batches WHERE client = (SELECT id FROM clients WHERE client_id = :c)",
            &[("c", &cid)],
        ),
        1
    );
}

/// kill -9 of a running agent that is due to send, at several moments: whatever moment
/// the kill lands, a later send-now leaves each message at the site exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_sending_loses_and_duplicates_nothing() {
    let site = TestSite::start().await;
    let agent = site.enroll("pc-kill-send", TYPICAL).await;
    let cid = agent.client_id();
    let mut expected = 0i64;
    for (round, settle) in [0u64, 5, 20, 80].into_iter().enumerate() {
        // Each round changes one state, so each round queues new messages.
        let out = agent
            .scan_ok(koshin_domain::scan::ScanTrigger::ScanCycle)
            .await;
        expected += out.state_messages as i64;
        if round % 2 == 0 {
            agent.set_installed(&[("hello", "2.10-4"), ("libfoo1", "1.0-1")]);
        } else {
            agent.set_installed(TYPICAL);
        }
        agent.set_kv_i64("next_send_ms", now_ms() - 1);
        agent.set_kv_i64("next_scan_ms", now_ms() + 24 * HOUR_MS);
        let s = agent.state.clone();
        tokio::task::spawn_blocking(move || run_and_kill(&s, Duration::from_millis(settle)))
            .await
            .unwrap();
    }
    let s = agent.state.clone();
    let out = tokio::task::spawn_blocking(move || agent_cmd(&s, &["send-now"]))
        .await
        .unwrap();
    ok(&out);
    assert_eq!(agent.queue_length(), 0);
    assert_eq!(site.history_len(&cid), expected);
    let batches = site.count(
        "SELECT COALESCE(SUM(messages), 0) FROM state_batches WHERE client = (SELECT id FROM clients WHERE client_id = :c)",
        &[("c", &cid)],
    );
    assert_eq!(batches, expected);
}
