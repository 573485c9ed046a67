//! State message batches at the management point: stored once however often they arrive
//! (by batch id), rejected whole with a clear reason when malformed, only for the sender
//! itself, and only with a valid client credential.

mod common;

use common::*;
use koshin_agent::mp::{Mp, MpError};
use koshin_agent::send::SendError;
use koshin_domain::scan::ScanTrigger;
use koshin_wire::{ScanRecord, StateBatch, StateMessage};

const STATE_MESSAGES: &str = "/api/v1/mp/state-messages";

/// The batch the agent bound its queued rows to, built as the agent builds it.
fn bound_batch(agent: &TestAgent) -> StateBatch {
    let db = agent.db();
    let batch_id: String = db
        .conn
        .query_row(
            "SELECT DISTINCT batch_id FROM queue WHERE batch_id IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .expect("one bound batch");
    let mut stmt = db
        .conn
        .prepare("SELECT update_id, revision, state, restart_pending, time_ms, scan_id FROM queue WHERE batch_id=?1 ORDER BY seq")
        .unwrap();
    let messages = stmt
        .query_map([&batch_id], |r| {
            Ok(StateMessage {
                update_id: r.get(0)?,
                revision: r.get(1)?,
                state: r.get(2)?,
                restart_pending: r.get::<_, i64>(3)? != 0,
                time: jiff::Timestamp::from_millisecond(r.get(4)?).unwrap(),
                scan_id: r.get(5)?,
            })
        })
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let mut stmt = db
        .conn
        .prepare("SELECT json FROM scans WHERE batch_id=?1 AND sent = 0 ORDER BY started_ms")
        .unwrap();
    let scans = stmt
        .query_map([&batch_id], |r| r.get::<_, String>(0))
        .unwrap()
        .map(|j| serde_json::from_str::<ScanRecord>(&j.unwrap()).unwrap())
        .collect();
    StateBatch {
        batch_id,
        client_id: agent.client_id(),
        messages,
        scans,
    }
}

/// POSTs a JSON body to the state message route with `credential`; (status, reason or
/// answer).
async fn post(
    site: &TestSite,
    credential: Option<&str>,
    body: &impl serde::Serialize,
) -> (u16, serde_json::Value) {
    let mut req = site.http().post(format!("{}{STATE_MESSAGES}", site.url));
    if let Some(c) = credential {
        req = req.bearer_auth(c);
    }
    let resp = req.json(body).send().await.expect("POST");
    let status = resp.status().as_u16();
    let text = resp.text().await.expect("body");
    let v = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, v)
}

fn reason(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        v => v["error"].as_str().unwrap_or_default().to_string(),
    }
}

fn message(update_id: &str, state: &str) -> StateMessage {
    StateMessage {
        update_id: update_id.to_string(),
        revision: 1,
        state: state.to_string(),
        restart_pending: false,
        time: jiff::Timestamp::now(),
        scan_id: uuid::Uuid::new_v4().to_string(),
    }
}

/// Everything the site keeps of one client's state messages, to show nothing changed.
fn footprint(site: &TestSite, client_id: &str) -> Vec<Vec<serde_json::Value>> {
    let p = [("c", client_id)];
    let mut rows = site.query(
        "SELECT ukey, state, restart_pending, time_ms FROM update_states WHERE client = (SELECT id FROM clients WHERE client_id = :c) ORDER BY ukey",
        &p,
    );
    for sql in [
        "SELECT COUNT(*) FROM state_history WHERE client = (SELECT id FROM clients WHERE client_id = :c)",
        "SELECT COUNT(*) FROM state_batches WHERE client = (SELECT id FROM clients WHERE client_id = :c)",
        "SELECT COUNT(*) FROM scans WHERE client = (SELECT id FROM clients WHERE client_id = :c)",
    ] {
        rows.extend(site.query(sql, &p));
    }
    rows
}

/// A batch whose answer was lost is sent again with the same id and stored once: the
/// site answers `duplicate: true`, the history is not duplicated, and the agent's queue
/// empties.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_sent_twice_is_stored_once() {
    let site = TestSite::start().await;
    let agent = site.enroll("pc-dup", TYPICAL).await;
    let cid = agent.client_id();
    let out = agent.scan_ok(ScanTrigger::ScanCycle).await;
    assert_eq!(out.state_messages, 4);

    // The first attempt goes nowhere (the site cannot be reached): the rows are bound to a
    // batch id and stay queued.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let nowhere = Mp::new(
        &format!("http://127.0.0.1:{closed}"),
        &agent.identity().credential,
    )
    .unwrap();
    let mut db = agent.db();
    let err = koshin_agent::send::send_all(&mut db, &agent.identity(), &nowhere)
        .await
        .expect_err("the site cannot be reached");
    assert!(matches!(err, SendError::Site(MpError::Offline(_))), "{err}");
    drop(db);
    assert_eq!(agent.queue_length(), 4);
    let batch = bound_batch(&agent);
    assert_eq!(batch.messages.len(), 4);
    assert_eq!(batch.scans.len(), 1);

    // That batch arrives (say the answer was lost on the way back) — twice.
    let cred = agent.identity().credential;
    let (code, ack) = post(&site, Some(&cred), &batch).await;
    assert_eq!(code, 200, "{ack}");
    assert_eq!(ack["batch_id"], batch.batch_id.as_str());
    assert_eq!(ack["stored"], 4);
    assert_eq!(ack["duplicate"], false);
    let after_first = footprint(&site, &cid);
    let (code, ack) = post(&site, Some(&cred), &batch).await;
    assert_eq!(code, 200, "{ack}");
    assert_eq!(ack["stored"], 0);
    assert_eq!(ack["duplicate"], true);
    assert_eq!(footprint(&site, &cid), after_first);

    // The agent retries the same batch id: acknowledged as a duplicate, the queue empties.
    let sent = agent.send().await;
    assert_eq!(sent.batches, 1);
    assert_eq!(agent.queue_length(), 0);
    assert_eq!(agent.db().unsent_scans().unwrap(), 0);
    assert_eq!(footprint(&site, &cid), after_first);
    assert_eq!(site.history_len(&cid), 4);
    assert_eq!(
        site.count(
            "SELECT COUNT(*) FROM state_batches WHERE batch_id = :b",
            &[("b", &batch.batch_id)]
        ),
        1
    );
    assert_eq!(
        site.current_state(&cid, HELLO_NEW),
        Some(st("required", false))
    );

    // The same batch id from another client is that client's own batch, not a duplicate.
    let other = site.enroll("pc-dup-2", TYPICAL).await;
    let mut theirs = batch.clone();
    theirs.client_id = other.client_id();
    let (code, ack) = post(&site, Some(&other.identity().credential), &theirs).await;
    assert_eq!(code, 200, "{ack}");
    assert_eq!(ack["duplicate"], false);
    assert_eq!(site.history_len(&other.client_id()), 4);
    assert_eq!(site.history_len(&cid), 4);
}

/// Malformed batches get a 4xx with a reason that names the problem, and nothing of them
/// is applied — not their valid messages, not their scan records, not their batch id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_batch_is_refused_whole_with_a_reason() {
    let site = TestSite::start().await;
    let agent = site.enroll("pc-bad", TYPICAL).await;
    let cid = agent.client_id();
    agent.scan_ok(ScanTrigger::ScanCycle).await;
    agent.send().await;
    let cred = agent.identity().credential;
    let before = footprint(&site, &cid);
    let hello = site.update_id(HELLO_NEW);
    let libfoo = site.update_id(LIBFOO_SEC);
    let scan = ScanRecord {
        scan_id: uuid::Uuid::new_v4().to_string(),
        trigger: "schedule".into(),
        kind: "non-forced online".into(),
        online: false,
        started: jiff::Timestamp::now(),
        duration_ms: 3,
        result: "succeeded".into(),
        content_version: 1,
        content_token: None,
        required: 0,
        installed: 2,
        not_required: 0,
    };
    let batch = |messages: Vec<StateMessage>| StateBatch {
        batch_id: uuid::Uuid::new_v4().to_string(),
        client_id: cid.clone(),
        messages,
        scans: vec![scan.clone()],
    };

    let cases: Vec<(&str, StateBatch, &str)> = vec![
        (
            "a bad state",
            batch(vec![
                message(&hello, "installed"),
                message(&libfoo, "maybe"),
            ]),
            "state 'maybe'",
        ),
        (
            "the unknown state",
            batch(vec![message(&hello, "unknown")]),
            "state 'unknown'",
        ),
        (
            "an update id that is not a UUID",
            batch(vec![
                message(&hello, "installed"),
                message("hello-2.10-4", "installed"),
            ]),
            "'hello-2.10-4' is not a UUID",
        ),
        (
            "an empty batch id",
            StateBatch {
                batch_id: "  ".into(),
                ..batch(vec![message(&hello, "installed")])
            },
            "batch_id",
        ),
    ];
    for (what, b, want) in &cases {
        let (code, v) = post(&site, Some(&cred), b).await;
        assert_eq!(code, 400, "{what}: {v}");
        let r = reason(&v);
        assert!(
            r.contains(want),
            "{what}: the reason '{r}' does not say {want}"
        );
        assert_eq!(footprint(&site, &cid), before, "{what} changed the site");
    }

    // An update the site does not know (a site restored from an older backup), among valid
    // messages: the known ones are stored, the unknown one is not, and the answer names it
    // so the client stops reporting it instead of retrying the batch forever.
    let unknown_id = uuid::Uuid::new_v4().to_string();
    let b = batch(vec![
        message(&hello, "installed"),
        message(&libfoo, "installed"),
        message(&unknown_id, "required"),
    ]);
    let (code, v) = post(&site, Some(&cred), &b).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["duplicate"], false);
    assert_eq!(v["stored"], 2);
    assert_eq!(v["unknown_updates"], serde_json::json!([unknown_id]));
    assert_eq!(
        site.current_state(&cid, HELLO_NEW),
        Some(st("installed", false))
    );
    let history_now = footprint(&site, &cid);
    assert_ne!(history_now, before, "the known messages were stored");
    // Sent again: a duplicate, nothing more stored.
    let (code, v) = post(&site, Some(&cred), &b).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["duplicate"], true);
    assert_eq!(footprint(&site, &cid), history_now);
    let before = history_now;

    // More than 200,000 messages.
    let many: Vec<StateMessage> = (0..200_001)
        .map(|i| {
            let mut m = message(if i % 2 == 0 { &hello } else { &libfoo }, "required");
            m.scan_id = scan.scan_id.clone();
            m
        })
        .collect();
    let (code, v) = post(&site, Some(&cred), &batch(many)).await;
    assert_eq!(code, 400, "{v}");
    let r = reason(&v);
    assert!(r.contains("200000") && r.contains("200001"), "{r}");
    assert_eq!(footprint(&site, &cid), before);

    // Not a batch at all.
    for (what, body) in [
        (
            "no messages",
            serde_json::json!({"batch_id": uuid::Uuid::new_v4().to_string(), "client_id": cid}),
        ),
        (
            "a message without a time",
            serde_json::json!({"batch_id": "b", "client_id": cid, "messages": [{"update_id": hello, "revision": 1, "state": "required", "scan_id": "s"}]}),
        ),
    ] {
        let (code, v) = post(&site, Some(&cred), &body).await;
        assert!((400..500).contains(&code), "{what}: {code} {v}");
        let r = reason(&v);
        assert!(
            r.contains("messages") || r.contains("time"),
            "{what}: '{r}' does not name the missing field"
        );
        assert_eq!(footprint(&site, &cid), before);
    }
    let resp = site
        .http()
        .post(format!("{}{STATE_MESSAGES}", site.url))
        .bearer_auth(&cred)
        .header("content-type", "application/json")
        .body("{\"batch_id\": ")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
    assert_eq!(footprint(&site, &cid), before);
}

/// A client reports only for itself (403), and only with its own valid credential (401).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_client_itself_may_send_its_states() {
    let site = TestSite::start().await;
    let a = site.enroll("pc-self-a", TYPICAL).await;
    let b = site.enroll("pc-self-b", TYPICAL).await;
    a.scan_ok(ScanTrigger::ScanCycle).await;
    let hello = site.update_id(HELLO_NEW);
    let a_before = footprint(&site, &a.client_id());
    let b_before = footprint(&site, &b.client_id());
    let for_b = StateBatch {
        batch_id: uuid::Uuid::new_v4().to_string(),
        client_id: b.client_id(),
        messages: vec![message(&hello, "installed")],
        scans: vec![],
    };

    // a's credential, b's client id.
    let (code, v) = post(&site, Some(&a.identity().credential), &for_b).await;
    assert_eq!(code, 403, "{v}");
    let r = reason(&v);
    assert!(
        r.contains("only for itself") && r.contains(&b.client_id()),
        "{r}"
    );

    // No credential, a wrong one, a revoked one (re-enrollment replaces it), an admin
    // token (not a client credential).
    let old = b.identity().credential;
    koshin_agent::enroll::enroll(&koshin_agent::enroll::EnrollOptions {
        site: site.url.clone(),
        token: site.token.clone(),
        name: Some("pc-self-b".into()),
        state: b.state.clone(),
        root: b.root.clone(),
        ca_certificate: None,
    })
    .await
    .expect("enroll again");
    assert_ne!(b.identity().credential, old);
    for (what, cred) in [
        ("no credential", None),
        ("a wrong credential", Some("ksc_0000")),
        ("a replaced credential", Some(old.as_str())),
        ("an administrator token", Some(site.token.as_str())),
    ] {
        let (code, v) = post(&site, cred, &for_b).await;
        assert_eq!(code, 401, "{what}: {v}");
        assert!(!reason(&v).is_empty(), "{what}: no reason");
    }
    // The agent's own client gets the same answer through its error type.
    let bad = Mp::new(&site.url, "ksc_wrong").unwrap();
    match bad.send(&for_b).await {
        Err(MpError::Refused(401, reason)) => assert!(reason.contains("credential"), "{reason}"),
        other => panic!("expected 401, got {other:?}"),
    }
    for path in ["/api/v1/mp/policy", "/api/v1/mp/catalog?since=0"] {
        let resp = site
            .http()
            .get(format!("{}{path}", site.url))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 401, "{path}");
    }
    assert_eq!(footprint(&site, &a.client_id()), a_before);
    assert_eq!(footprint(&site, &b.client_id()), b_before);

    // b's current credential works.
    let (code, v) = post(&site, Some(&b.identity().credential), &for_b).await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        site.current_state(&b.client_id(), HELLO_NEW),
        Some(st("installed", false))
    );
}
