//! State-message ingestion with group commit.
//!
//! A batch is acknowledged only once it is durable: its transaction committed with
//! `synchronous=FULL`. A commit costs the same whether it carries one batch or twenty (the
//! WAL append, the `fsync`, the page cache's end-of-transaction work), so batches that
//! arrive while the writer is busy wait in a queue, and the next caller to get the writer
//! stores every waiting batch in one transaction and answers each of them. One batch alone
//! is one transaction, as before; under load the cost of a commit is shared.
//!
//! Each batch is still its own unit: it is checked against `state_batches` in the same
//! transaction (a batch sent twice, even twice in one group, is stored once), and if one
//! batch of a group fails, the group is rolled back and every batch of it is stored again
//! in a transaction of its own, so a failure is answered to the batch that caused it only.
//! No caller is answered before the transaction holding its batch has committed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex, TryLockError};
use std::time::Duration;

use koshin_domain::compliance::UpdateState;
use koshin_wire::{BatchAck, StateBatch};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::sqlite::SqliteStore;
use crate::traits::ClientIdentity;
use crate::{Result, StoreError};

/// The most state messages one group transaction takes (one batch always goes, however
/// large): bounds how long a transaction holds the writer and how much one failure redoes.
const GROUP_MESSAGES: usize = 50_000;

/// How long a waiting caller sleeps before it looks at the writer again, when no one told
/// it its batch was stored (the writer may be held by other work than ingestion).
const POLL: Duration = Duration::from_millis(2);

/// The catalog keys cached for ingestion: at most this many update ids.
const KEY_CACHE: usize = 1_000_000;

/// The batches waiting for the writer, and the update keys already looked up.
#[derive(Default)]
pub(crate) struct IngestQueue {
    waiting: Mutex<VecDeque<Arc<Pending>>>,
    /// Update id → `updates.ukey`. An update's key never changes and updates are never
    /// deleted, so a key once read from a committed row stays true for this database.
    keys: Mutex<HashMap<String, i64>>,
}

/// A batch in the queue, and its answer once the transaction holding it has ended.
struct Pending {
    client: ClientIdentity,
    batch: StateBatch,
    states: Vec<UpdateState>,
    now_ms: i64,
    answer: Mutex<Option<Result<BatchAck>>>,
    stored: Condvar,
}

impl Pending {
    fn take(&self) -> Option<Result<BatchAck>> {
        hold(&self.answer).take()
    }

    fn answer(&self, a: Result<BatchAck>) {
        *hold(&self.answer) = Some(a);
        self.stored.notify_all();
    }

    /// Sleeps until this batch is answered or `POLL` has passed.
    fn wait(&self) {
        let guard = hold(&self.answer);
        if guard.is_none() {
            drop(
                self.stored
                    .wait_timeout(guard, POLL)
                    .unwrap_or_else(|p| p.into_inner()),
            );
        }
    }
}

/// A lock that a panic elsewhere does not make unusable: the data behind it stays whole
/// (a queue, a cache).
fn hold<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Stores `batch` (already validated into `states`) and answers once it is durable: in a
/// transaction of its own, or in one with the batches waiting beside it.
pub(crate) fn submit(
    store: &SqliteStore,
    client: &ClientIdentity,
    batch: &StateBatch,
    states: Vec<UpdateState>,
    now_ms: i64,
) -> Result<BatchAck> {
    let me = Arc::new(Pending {
        client: client.clone(),
        batch: batch.clone(),
        states,
        now_ms,
        answer: Mutex::new(None),
        stored: Condvar::new(),
    });
    hold(&store.ingest.waiting).push_back(me.clone());
    loop {
        if let Some(answer) = me.take() {
            return answer;
        }
        let conn = match store.writer.try_lock() {
            Ok(conn) => conn,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                me.wait();
                continue;
            }
        };
        let mut conn = conn;
        store_waiting(store, &mut conn);
        drop(conn);
        // Whoever waits first takes the writer next, without waiting out its poll.
        let next = hold(&store.ingest.waiting).front().cloned();
        if let Some(next) = next {
            next.stored.notify_all();
        }
    }
}

/// Takes the waiting batches (up to `GROUP_MESSAGES`), stores them and answers each.
fn store_waiting(store: &SqliteStore, conn: &mut Connection) {
    let group: Vec<Arc<Pending>> = {
        let mut waiting = hold(&store.ingest.waiting);
        let mut group = Vec::new();
        let mut messages = 0;
        while let Some(p) = waiting.front() {
            if !group.is_empty() && messages + p.batch.messages.len() > GROUP_MESSAGES {
                break;
            }
            messages += p.batch.messages.len();
            if let Some(p) = waiting.pop_front() {
                group.push(p);
            }
        }
        group
    };
    if group.is_empty() {
        return;
    }
    let mut keys = hold(&store.ingest.keys);
    if keys.len() > KEY_CACHE {
        keys.clear();
    }
    // IMMEDIATE: the write lock is taken (waiting as long as the busy timeout) before the
    // first read, so the transaction never has to upgrade a read snapshot another writer
    // made stale.
    let together = (|| -> Result<Vec<BatchAck>> {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let acks = group
            .iter()
            .map(|p| store_batch(&tx, &mut keys, p))
            .collect::<Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(acks)
    })();
    match together {
        Ok(acks) => {
            for (p, ack) in group.iter().zip(acks) {
                p.answer(Ok(ack));
            }
        }
        Err(e) if group.len() == 1 => group[0].answer(Err(e)),
        // The transaction was rolled back: each batch again on its own, so only the one
        // that fails is answered with its failure.
        Err(_) => {
            for p in &group {
                let alone = (|| -> Result<BatchAck> {
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let ack = store_batch(&tx, &mut keys, p)?;
                    tx.commit()?;
                    Ok(ack)
                })();
                p.answer(alone);
            }
        }
    }
}

/// The update key of `id`, from the cache or the catalog; `None` for an update this site
/// does not have.
fn update_key(
    tx: &rusqlite::Transaction<'_>,
    keys: &mut HashMap<String, i64>,
    id: &str,
) -> Result<Option<i64>> {
    if let Some(k) = keys.get(id) {
        return Ok(Some(*k));
    }
    let found = tx
        .prepare_cached("SELECT ukey FROM updates WHERE id=?1")?
        .query_row(params![id], |r| r.get::<_, i64>(0))
        .optional()?;
    if let Some(k) = found {
        keys.insert(id.to_string(), k);
    }
    Ok(found)
}

/// One batch inside the group's transaction: idempotent by batch id, current state per
/// (client, update) kept newest-first, every message kept in the history, the scan records,
/// and the batch queued for the parent site when there is one.
fn store_batch(
    tx: &rusqlite::Transaction<'_>,
    keys: &mut HashMap<String, i64>,
    p: &Pending,
) -> Result<BatchAck> {
    let (client, batch, states, now_ms) = (&p.client, &p.batch, &p.states, p.now_ms);
    let seen: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM state_batches WHERE client=?1 AND batch_id=?2",
            params![client.rowid, batch.batch_id],
            |r| r.get(0),
        )
        .optional()?;
    if seen.is_some() {
        tx.execute(
            "UPDATE clients SET last_contact_ms=?2 WHERE id=?1",
            params![client.rowid, now_ms],
        )?;
        return Ok(BatchAck {
            batch_id: batch.batch_id.clone(),
            stored: 0,
            duplicate: true,
            unknown_updates: Vec::new(),
        });
    }
    let mut unknown = Vec::new();
    {
        // Triggers keep `update_summary` in step within this transaction.
        let mut current = tx.prepare_cached(
            "INSERT INTO update_states(client, ukey, state, restart_pending, revision, time_ms) VALUES (?1,?2,?3,?4,?5,?6)
             ON CONFLICT(client, ukey) DO UPDATE SET state=excluded.state, restart_pending=excluded.restart_pending,
               revision=excluded.revision, time_ms=excluded.time_ms
             WHERE excluded.time_ms >= update_states.time_ms",
        )?;
        let mut history = tx.prepare_cached(
            "INSERT INTO state_history(client, update_id, state, restart_pending, revision, time_ms, received_ms, batch_id, scan_id) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
        )?;
        for (m, state) in batch.messages.iter().zip(states) {
            let Some(ukey) = update_key(tx, keys, &m.update_id)? else {
                // Not in this catalog (e.g. a site restored from an older backup): not
                // stored, and named in the answer so the client stops reporting it.
                unknown.push(m.update_id.clone());
                continue;
            };
            let t = m.time.as_millisecond();
            current.execute(params![
                client.rowid,
                ukey,
                state.code(),
                m.restart_pending,
                m.revision,
                t
            ])?;
            history.execute(params![
                client.rowid,
                m.update_id,
                state.code(),
                m.restart_pending,
                m.revision,
                t,
                now_ms,
                batch.batch_id,
                m.scan_id
            ])?;
        }
        let mut scan = tx.prepare_cached(
            "INSERT OR IGNORE INTO scans(client, scan_id, trigger, kind, online, started_ms, duration_ms, result, content_version, required, installed, not_required) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)",
        )?;
        let mut covered = tx.prepare_cached(
            "UPDATE clients SET scanned_cv = ?2 WHERE id = ?1
               AND EXISTS (SELECT 1 FROM content_versions WHERE version = ?2 AND token = ?3)
               AND (last_scan_ms IS NULL OR last_scan_ms <= ?4)",
        )?;
        let mut last = tx.prepare_cached(
            "UPDATE clients SET last_scan_ms=?2, last_scan_json=?3 WHERE id=?1 AND (last_scan_ms IS NULL OR last_scan_ms <= ?2)",
        )?;
        for s in &batch.scans {
            let started = s.started.as_millisecond();
            scan.execute(params![
                client.rowid,
                s.scan_id,
                s.trigger,
                s.kind,
                s.online,
                started,
                s.duration_ms as i64,
                s.result,
                s.content_version,
                s.required as i64,
                s.installed as i64,
                s.not_required as i64
            ])?;
            let json = serde_json::to_string(s).map_err(|e| StoreError::Invalid(e.to_string()))?;
            last.execute(params![client.rowid, started, json])?;
            // A successful scan of a catalog that is this site's covers every update
            // up to its version: from now on no state row means Not required.
            if s.result == "succeeded"
                && let Some(token) = &s.content_token
            {
                covered.execute(params![client.rowid, s.content_version, token, started])?;
            }
        }
    }
    tx.execute(
        "INSERT INTO state_batches(client, batch_id, received_ms, messages) VALUES (?1,?2,?3,?4)",
        params![
            client.rowid,
            batch.batch_id,
            now_ms,
            batch.messages.len() as i64
        ],
    )?;
    // A child site's client data flows up (S9): the batch is queued for the parent in
    // this transaction, so it is stored here and queued there together or not at all.
    let has_parent: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM site_links WHERE relation = 'parent')",
        [],
        |r| r.get(0),
    )?;
    if has_parent {
        let info: (String, String, String, String, String, String) = tx.query_row(
            "SELECT name, os, os_release, architecture, site, agent_version FROM clients WHERE id = ?1",
            params![client.rowid],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
        )?;
        let client_json = serde_json::json!({
            "client_id": client.client_id, "name": info.0, "os": info.1, "os_release": info.2,
            "architecture": info.3, "site": info.4, "agent_version": info.5,
        })
        .to_string();
        let batch_json =
            serde_json::to_string(batch).map_err(|e| StoreError::Invalid(e.to_string()))?;
        tx.execute(
            "INSERT INTO upward_queue(client_id, client_json, batch_json, queued_ms) VALUES (?1,?2,?3,?4)",
            params![client.client_id, client_json, batch_json, now_ms],
        )?;
    }
    tx.execute(
        "UPDATE clients SET last_contact_ms=?2 WHERE id=?1",
        params![client.rowid, now_ms],
    )?;
    Ok(BatchAck {
        batch_id: batch.batch_id.clone(),
        stored: (batch.messages.len() - unknown.len()) as u64,
        duplicate: false,
        unknown_updates: unknown,
    })
}
