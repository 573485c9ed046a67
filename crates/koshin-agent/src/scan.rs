//! A compliance scan (C3–C6): decide online or offline from the trigger and the TTL, refresh
//! the cached catalog incrementally by content version when online, evaluate every update
//! against the machine, and — in one transaction — record the scan, keep the new states and
//! queue a state message for each update whose state changed.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, anyhow};
use koshin_domain::compliance::{self, TargetBinary, UpdateState};
use koshin_domain::localpub::LocalUpdate;
use koshin_domain::scan::{ScanKind, ScanTrigger};
use koshin_wire::{ClientCatalog, ScanOutput, ScanPackage, ScanRecord, ScanUpdate};
use rusqlite::params;

use crate::db::AgentDb;
use crate::dpkg::Machine;
use crate::mp::Mp;
use crate::{now_ms, ts};

/// Default TTL of local metadata when no policy said otherwise (C6).
pub const DEFAULT_TTL_MINUTES: u64 = 24 * 60;

/// Applies a catalog answer to the local cache.
pub fn apply_catalog(db: &mut AgentDb, cat: &ClientCatalog, now: i64) -> anyhow::Result<()> {
    let tx = db.conn.transaction()?;
    if cat.since == 0 {
        tx.execute("DELETE FROM catalog_binaries", [])?;
        tx.execute("DELETE FROM catalog_updates", [])?;
    }
    {
        let mut del_bins = tx.prepare_cached("DELETE FROM catalog_binaries WHERE update_id=?1")?;
        let mut del_upd = tx.prepare_cached("DELETE FROM catalog_updates WHERE id=?1")?;
        let mut upd = tx.prepare_cached(
            "INSERT OR REPLACE INTO catalog_updates(id, revision, title, product, classification, expired, local_json) VALUES (?1,?2,?3,?4,?5,?6,?7)",
        )?;
        let mut bin = tx.prepare_cached(
            "INSERT INTO catalog_binaries(update_id, name, architecture, version) VALUES (?1,?2,?3,?4)",
        )?;
        for u in &cat.updates {
            if cat.since > 0 {
                del_bins.execute(params![u.id])?;
            }
            if u.expired {
                // Expired updates are not scanned.
                del_upd.execute(params![u.id])?;
                continue;
            }
            let local = u.local.as_ref().map(|v| v.to_string());
            upd.execute(params![
                u.id,
                u.revision,
                u.title,
                u.product,
                u.classification,
                false,
                local
            ])?;
            for b in &u.binaries {
                bin.execute(params![u.id, b.name, b.architecture, b.version])?;
            }
        }
    }
    tx.execute(
        "INSERT INTO kv(key, value) VALUES ('content_version', ?1) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        params![cat.content_version.to_string()],
    )?;
    tx.execute(
        "INSERT INTO kv(key, value) VALUES ('metadata_fetched_ms', ?1) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        params![now.to_string()],
    )?;
    tx.execute(
        "INSERT INTO kv(key, value) VALUES ('catalog_token', ?1) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        params![cat.token],
    )?;
    tx.commit()?;
    Ok(())
}

struct Evaluated {
    id: String,
    revision: u32,
    title: String,
    classification: String,
    state: UpdateState,
    restart_pending: bool,
    packages: Vec<ScanPackage>,
}

/// Evaluates every cached update against the machine.
fn evaluate(db: &AgentDb, machine: &Machine) -> anyhow::Result<Vec<Evaluated>> {
    // What was reported last: an update reported plain Installed before does not become
    // restart-pending because another update of the same package waits for a restart.
    let mut reported_installed: std::collections::HashSet<String> =
        std::collections::HashSet::new();
    {
        let mut stmt = db.conn.prepare_cached(
            "SELECT update_id FROM last_states WHERE state = 'installed' AND restart_pending = 0",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            reported_installed.insert(r.get(0)?);
        }
    }
    // Only binaries this machine has can make an update Required or Installed: look them up
    // by name instead of reading the whole catalog.
    let mut bins: HashMap<String, Vec<TargetBinary>> = HashMap::new();
    {
        let mut stmt = db.conn.prepare_cached(
            "SELECT update_id, architecture, version FROM catalog_binaries WHERE name = ?1",
        )?;
        let mut names: Vec<&str> = machine.installed.keys().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            let mut rows = stmt.query([name])?;
            while let Some(r) = rows.next()? {
                let arch: String = r.get(1)?;
                if !machine
                    .installed
                    .contains_key(&(name.to_string(), arch.clone()))
                {
                    continue;
                }
                bins.entry(r.get(0)?).or_default().push(TargetBinary {
                    name: name.to_string(),
                    architecture: arch,
                    version: r.get(2)?,
                });
            }
        }
    }
    let mut out = Vec::new();
    let mut stmt = db.conn.prepare_cached(
        "SELECT id, revision, title, classification, local_json FROM catalog_updates ORDER BY id",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let local: Option<String> = r.get(4)?;
        let eval = match local {
            Some(json) => {
                let local: LocalUpdate = serde_json::from_str(&json)
                    .with_context(|| format!("cached local update {id} is unreadable"))?;
                compliance::evaluate_local(&local.detection, machine)
            }
            None => match bins.get(&id) {
                Some(b) => compliance::evaluate_apt(b, machine),
                None => compliance::Evaluation {
                    state: UpdateState::NotRequired,
                    packages: Vec::new(),
                },
            },
        };
        let mut state = eval.state;
        let mut restart_pending = false;
        // C1/C8: installed but waiting for a restart stays Required, flagged.
        if machine.restart_required
            && state == UpdateState::Installed
            && !reported_installed.contains(&id)
            && eval
                .packages
                .iter()
                .any(|p| machine.restart_packages.contains(&p.name))
        {
            state = UpdateState::Required;
            restart_pending = true;
        }
        out.push(Evaluated {
            id,
            revision: r.get(1)?,
            title: r.get(2)?,
            classification: r.get(3)?,
            state,
            restart_pending,
            packages: eval
                .packages
                .into_iter()
                .map(|p| ScanPackage {
                    name: p.name,
                    arch: p.arch,
                    installed: p.installed,
                    target: p.target,
                })
                .collect(),
        });
    }
    Ok(out)
}

/// Runs one scan. A failure is recorded as a failed scan and returned.
pub async fn scan(
    db: &mut AgentDb,
    mp: Option<&Mp>,
    root: &Path,
    trigger: ScanTrigger,
) -> anyhow::Result<ScanOutput> {
    let started = Instant::now();
    let started_ms = now_ms();
    let kind = trigger.kind();
    let scan_id = uuid::Uuid::new_v4().to_string();
    let result = scan_inner(db, mp, root, kind, started_ms, &scan_id).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let cv = db.get_i64("content_version")?.unwrap_or(0);
    match result {
        Ok((online, evaluated)) => {
            let count = |s: UpdateState| evaluated.iter().filter(|e| e.state == s).count() as u64;
            let record = ScanRecord {
                scan_id: scan_id.clone(),
                trigger: trigger.name().into(),
                kind: kind.name().into(),
                online,
                started: ts(started_ms),
                duration_ms,
                result: "succeeded".into(),
                content_version: cv,
                required: count(UpdateState::Required),
                installed: count(UpdateState::Installed),
                not_required: count(UpdateState::NotRequired),
            };
            let queued = commit_scan(db, &record, &evaluated)?;
            // C8: the state after an installation or its restart reaches the site within
            // 2 minutes, not at the next regular batch.
            if queued > 0
                && matches!(
                    trigger,
                    ScanTrigger::AfterInstall | ScanTrigger::AfterRestart
                )
            {
                let soon = now_ms() + (rand::random::<f64>() * 60_000.0) as i64;
                let next = db.get_i64("next_send_ms")?.map_or(soon, |t| t.min(soon));
                db.set_i64("next_send_ms", next)?;
            }
            Ok(ScanOutput {
                kind: kind.name().into(),
                trigger: trigger.name().into(),
                online,
                duration_ms,
                content_version: cv,
                state_messages: queued,
                updates: evaluated
                    .into_iter()
                    .map(|e| ScanUpdate {
                        id: e.id,
                        title: e.title,
                        classification: e.classification,
                        state: e.state.name().into(),
                        restart_pending: e.restart_pending,
                        packages: e.packages,
                    })
                    .collect(),
            })
        }
        Err(e) => {
            let record = ScanRecord {
                scan_id,
                trigger: trigger.name().into(),
                kind: kind.name().into(),
                online: false,
                started: ts(started_ms),
                duration_ms,
                result: format!("failed: {e}"),
                content_version: cv,
                required: 0,
                installed: 0,
                not_required: 0,
            };
            let json = serde_json::to_string(&record)?;
            db.conn.execute(
                "INSERT INTO scans(scan_id, started_ms, json) VALUES (?1, ?2, ?3)",
                params![record.scan_id, started_ms, json],
            )?;
            Err(e)
        }
    }
}

async fn scan_inner(
    db: &mut AgentDb,
    mp: Option<&Mp>,
    root: &Path,
    kind: ScanKind,
    now: i64,
    _scan_id: &str,
) -> anyhow::Result<(bool, Vec<Evaluated>)> {
    let ttl_ms = db
        .get_i64("metadata_ttl_minutes")?
        .unwrap_or(DEFAULT_TTL_MINUTES as i64)
        * 60_000;
    let last_fetch = db.get_i64("metadata_fetched_ms")?;
    let online = kind.fetches_metadata(last_fetch, ttl_ms, now);
    if online {
        let mp =
            mp.ok_or_else(|| anyhow!("an online scan needs the site, and this scan has none"))?;
        // C3: the scan asks for the update point to use and records it in local policy.
        crate::runner::poll_policy(db, mp)
            .await
            .map_err(|e| anyhow!("cannot get the machine policy: {e}"))?;
        let since = db.get_i64("content_version")?.unwrap_or(0);
        let token = db.get("catalog_token")?.unwrap_or_default();
        // A site whose catalog is not the one this agent cached (restored, rebuilt) answers
        // with its whole catalog (since = 0), which replaces the cache.
        let cat = mp
            .catalog(since, &token)
            .await
            .map_err(|e| anyhow!("cannot fetch the catalog: {e}"))?;
        apply_catalog(db, &cat, now)?;
    } else if last_fetch.is_none() {
        anyhow::bail!("no local metadata yet: an online scan must run first (koshin-agent scan)");
    }
    let machine = Machine::read(root)?;
    Ok((online, evaluate(db, &machine)?))
}

/// Records the scan and queues a state message for each update whose state changed (C4),
/// all in one transaction. Returns how many were queued.
fn commit_scan(
    db: &mut AgentDb,
    record: &ScanRecord,
    evaluated: &[Evaluated],
) -> anyhow::Result<u64> {
    let tx = db.conn.transaction()?;
    let mut last: HashMap<String, (String, bool)> = HashMap::new();
    {
        let mut stmt =
            tx.prepare_cached("SELECT update_id, state, restart_pending FROM last_states")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            last.insert(r.get(0)?, (r.get(1)?, r.get::<_, i64>(2)? != 0));
        }
    }
    let now = record.started.as_millisecond();
    let mut queued = 0u64;
    {
        let mut set = tx.prepare_cached(
            "INSERT INTO last_states(update_id, state, restart_pending) VALUES (?1,?2,?3) ON CONFLICT(update_id) DO UPDATE SET state=excluded.state, restart_pending=excluded.restart_pending",
        )?;
        let mut q = tx.prepare_cached(
            "INSERT INTO queue(update_id, revision, state, restart_pending, time_ms, scan_id) VALUES (?1,?2,?3,?4,?5,?6)",
        )?;
        for e in evaluated {
            let now_state = (e.state.name().to_string(), e.restart_pending);
            if last.remove(&e.id).as_ref() == Some(&now_state) {
                continue;
            }
            set.execute(params![e.id, now_state.0, e.restart_pending])?;
            q.execute(params![
                e.id,
                e.revision,
                now_state.0,
                e.restart_pending,
                now,
                record.scan_id
            ])?;
            queued += 1;
        }
        // Updates no longer in the catalog (expired) are no longer tracked.
        let mut del = tx.prepare_cached("DELETE FROM last_states WHERE update_id=?1")?;
        for id in last.keys() {
            del.execute(params![id])?;
        }
    }
    let json = serde_json::to_string(record)?;
    tx.execute(
        "INSERT INTO scans(scan_id, started_ms, json) VALUES (?1, ?2, ?3)",
        params![record.scan_id, now, json],
    )?;
    let restart = evaluated.iter().any(|e| e.restart_pending);
    tx.execute(
        "INSERT INTO kv(key, value) VALUES ('restart_pending', ?1) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        params![if restart { "1" } else { "0" }],
    )?;
    tx.commit()?;
    Ok(queued)
}
