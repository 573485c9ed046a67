//! Sending queued state messages: rows are bound to a batch id before the first attempt, so
//! a batch resent after a lost answer carries the same id and the site stores it once; rows
//! leave the queue only when the site has acknowledged their batch.

use anyhow::Context;
use koshin_wire::{ScanRecord, StateBatch, StateMessage};
use rusqlite::{OptionalExtension, params};

use crate::BATCH_SIZE;
use crate::db::{AgentDb, Identity};
use crate::mp::{Mp, MpError};
use crate::ts;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub batches: u64,
    pub messages: u64,
    /// Batches the site refused as malformed, set aside in `dead_letters`.
    pub refused: u64,
}

/// Moves a refused batch out of the queue into `dead_letters`, kept for diagnosis.
fn set_aside(db: &mut AgentDb, batch_id: &str, reason: &str) -> anyhow::Result<()> {
    let tx = db.conn.transaction()?;
    tx.execute(
        "INSERT INTO dead_letters(batch_id, reason, time_ms, messages) SELECT ?1, ?2, ?3, COUNT(*) FROM queue WHERE batch_id = ?1",
        params![batch_id, reason, crate::now_ms()],
    )?;
    tx.execute("DELETE FROM queue WHERE batch_id=?1", params![batch_id])?;
    tx.execute(
        "UPDATE scans SET sent = 1 WHERE batch_id=?1",
        params![batch_id],
    )?;
    tx.commit()?;
    Ok(())
}

/// Binds the next rows to a batch (or returns the batch already bound but not acknowledged).
fn next_batch(db: &mut AgentDb) -> anyhow::Result<Option<String>> {
    let tx = db.conn.transaction()?;
    let pending: Option<String> = tx
        .query_row(
            "SELECT batch_id FROM queue WHERE batch_id IS NOT NULL UNION SELECT batch_id FROM scans WHERE batch_id IS NOT NULL AND sent = 0 LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = pending {
        tx.commit()?;
        return Ok(Some(id));
    }
    let id = bind(&tx)?;
    tx.commit()?;
    Ok(id)
}

/// Binds the next unbound rows to a new batch; its id, or `None` when nothing was unbound.
fn bind(tx: &rusqlite::Transaction<'_>) -> anyhow::Result<Option<String>> {
    let id = uuid::Uuid::new_v4().to_string();
    let n = tx.execute(
        "UPDATE queue SET batch_id=?1 WHERE seq IN (SELECT seq FROM queue WHERE batch_id IS NULL ORDER BY seq LIMIT ?2)",
        params![id, BATCH_SIZE as i64],
    )?;
    // A scan record travels with the last of the queued messages, never ahead of them: the
    // site takes a scan record as "every state of this scan has arrived".
    let unbound: i64 = tx.query_row(
        "SELECT COUNT(*) FROM queue WHERE batch_id IS NULL",
        [],
        |r| r.get(0),
    )?;
    let s = if unbound == 0 {
        tx.execute(
            "UPDATE scans SET batch_id=?1 WHERE batch_id IS NULL AND sent = 0",
            params![id],
        )?
    } else {
        0
    };
    Ok((n + s > 0).then_some(id))
}

/// Every queued message and unsent scan record, bound to batches as sending binds them and
/// read back without sending: what an offline scan writes to its results file. They stay
/// queued, so an agent that reaches its site later sends the same batches, which the site
/// takes once.
pub fn pending_batches(db: &mut AgentDb, client_id: &str) -> anyhow::Result<Vec<StateBatch>> {
    let tx = db.conn.transaction()?;
    while bind(&tx)?.is_some() {}
    tx.commit()?;
    let ids: Vec<String> = db
        .conn
        .prepare(
            "SELECT batch_id FROM queue WHERE batch_id IS NOT NULL
             UNION SELECT batch_id FROM scans WHERE batch_id IS NOT NULL AND sent = 0",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    ids.iter().map(|id| load_batch(db, client_id, id)).collect()
}

fn load_batch(db: &AgentDb, client_id: &str, batch_id: &str) -> anyhow::Result<StateBatch> {
    let mut stmt = db.conn.prepare_cached(
        "SELECT update_id, revision, state, restart_pending, time_ms, scan_id FROM queue WHERE batch_id=?1 ORDER BY seq",
    )?;
    let messages = stmt
        .query_map(params![batch_id], |r| {
            Ok(StateMessage {
                update_id: r.get(0)?,
                revision: r.get(1)?,
                state: r.get(2)?,
                restart_pending: r.get::<_, i64>(3)? != 0,
                time: ts(r.get(4)?),
                scan_id: r.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut stmt = db.conn.prepare_cached(
        "SELECT json FROM scans WHERE batch_id=?1 AND sent = 0 ORDER BY started_ms",
    )?;
    let scans = stmt
        .query_map(params![batch_id], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?
        .into_iter()
        .map(|j| {
            serde_json::from_str::<ScanRecord>(&j).context("a queued scan record is unreadable")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(StateBatch {
        batch_id: batch_id.to_string(),
        client_id: client_id.to_string(),
        messages,
        scans,
    })
}

/// Sends everything queued. Stops at the first failure, leaving the rest queued.
pub async fn send_all(db: &mut AgentDb, id: &Identity, mp: &Mp) -> Result<Sent, SendError> {
    let mut sent = Sent::default();
    while let Some(batch_id) = next_batch(db).map_err(SendError::Local)? {
        let batch = load_batch(db, &id.client_id, &batch_id).map_err(SendError::Local)?;
        let ack = match mp.send(&batch).await {
            Ok(ack) => ack,
            // The site refused the batch itself (not the credential, not a passing fault):
            // sending it again cannot help, and it must not hold back what comes after it.
            Err(MpError::Refused(400 | 413 | 422, reason)) => {
                set_aside(db, &batch_id, &reason).map_err(SendError::Local)?;
                tracing::error!(batch = %batch_id, %reason, "the site refused a batch of state messages; set aside");
                sent.refused += 1;
                continue;
            }
            Err(e) => return Err(SendError::Site(e)),
        };
        let tx = db
            .conn
            .transaction()
            .map_err(|e| SendError::Local(e.into()))?;
        let done = || -> rusqlite::Result<()> {
            tx.execute("DELETE FROM queue WHERE batch_id=?1", params![ack.batch_id])?;
            tx.execute(
                "UPDATE scans SET sent = 1 WHERE batch_id=?1",
                params![ack.batch_id],
            )?;
            // Updates the site does not know (a site restored from an older backup) are no
            // longer tracked; a later scan reports them again if the site learns them.
            for u in &ack.unknown_updates {
                tx.execute("DELETE FROM last_states WHERE update_id=?1", params![u])?;
            }
            Ok(())
        };
        done().map_err(|e| SendError::Local(e.into()))?;
        tx.commit().map_err(|e| SendError::Local(e.into()))?;
        sent.batches += 1;
        sent.messages += batch.messages.len() as u64;
    }
    Ok(sent)
}

#[derive(Debug)]
pub enum SendError {
    Site(MpError),
    Local(anyhow::Error),
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Site(e) => write!(f, "{e}"),
            SendError::Local(e) => write!(f, "the agent's queue: {e:#}"),
        }
    }
}

impl std::error::Error for SendError {}
