//! A compliance scan (C3–C6): decide online or offline from the trigger and the TTL, refresh
//! the cached catalog incrementally by content version when online, evaluate the updates
//! against the machine, and — in one transaction — record the scan, keep the new states and
//! queue a state message for each update whose state changed.
//!
//! A scan costs what is installed, not what is in the catalog: only updates with a binary
//! installed here (found through the name index) and local publisher updates are
//! evaluated; every other update is Not required. `last_states` keeps the last reported
//! state of updates that were Required or Installed; an update marked `reported` in the
//! cache and absent there was last reported Not required. An update new in the catalog that
//! is Not required gets no message: the scan record names the catalog version it covered,
//! which tells the site the same for every such update at once.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, anyhow};
use koshin_domain::compliance::{self, TargetBinary, UpdateState};
use koshin_domain::localpub::LocalUpdate;
use koshin_domain::scan::{ScanKind, ScanTrigger};
use koshin_wire::{ClientCatalog, ScanOutput, ScanPackage, ScanRecord, ScanUpdate};
use rusqlite::{OptionalExtension, params};

use crate::db::AgentDb;
use crate::dpkg::Machine;
use crate::mp::Mp;
use crate::{now_ms, ts};

/// Default TTL of local metadata when no policy said otherwise (C6).
pub const DEFAULT_TTL_MINUTES: u64 = 24 * 60;

/// Which updates a scan's output lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Every update of the catalog, Not required ones too (`--json`).
    All,
    /// Required and Installed updates only (the plain report).
    Applicable,
}

fn set_kv(tx: &rusqlite::Transaction<'_>, key: &str, value: &str) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO kv(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// Applies a catalog answer to the local cache. An answer from version 0 replaces the
/// cache and forgets what was reported (a new or restored site hears every state again).
pub fn apply_catalog(db: &mut AgentDb, cat: &ClientCatalog, now: i64) -> anyhow::Result<()> {
    let tx = db.conn.transaction()?;
    if cat.since == 0 {
        tx.execute("DELETE FROM catalog_binaries", [])?;
        tx.execute("DELETE FROM catalog_updates", [])?;
        tx.execute("DELETE FROM last_states", [])?;
    }
    {
        let mut del_bins = tx.prepare_cached("DELETE FROM catalog_binaries WHERE update_id=?1")?;
        let mut del_upd = tx.prepare_cached("DELETE FROM catalog_updates WHERE id=?1")?;
        let mut del_state = tx.prepare_cached("DELETE FROM last_states WHERE update_id=?1")?;
        // A revised update keeps its `reported` mark: a revision alone is not a state change.
        let mut upd = tx.prepare_cached(
            "INSERT INTO catalog_updates(id, revision, title, product, classification, expired, local_json) VALUES (?1,?2,?3,?4,?5,0,?6)
             ON CONFLICT(id) DO UPDATE SET revision=excluded.revision, title=excluded.title, product=excluded.product,
               classification=excluded.classification, local_json=excluded.local_json",
        )?;
        let mut bin = tx.prepare_cached(
            "INSERT INTO catalog_binaries(update_id, name, architecture, version) VALUES (?1,?2,?3,?4)",
        )?;
        for u in &cat.updates {
            if cat.since > 0 {
                del_bins.execute(params![u.id])?;
            }
            if u.expired {
                // Expired updates are not scanned, and no longer tracked.
                del_upd.execute(params![u.id])?;
                del_state.execute(params![u.id])?;
                continue;
            }
            let local = u.local.as_ref().map(|v| v.to_string());
            upd.execute(params![
                u.id,
                u.revision,
                u.title,
                u.product,
                u.classification,
                local
            ])?;
            for b in &u.binaries {
                bin.execute(params![u.id, b.name, b.architecture, b.version])?;
            }
        }
    }
    let count: i64 = tx.query_row("SELECT COUNT(*) FROM catalog_updates", [], |r| r.get(0))?;
    set_kv(&tx, "catalog_updates", &count.to_string())?;
    set_kv(&tx, "content_version", &cat.content_version.to_string())?;
    set_kv(&tx, "catalog_token", &cat.token)?;
    set_kv(&tx, "metadata_fetched_ms", &now.to_string())?;
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

/// The last reported (state, restart_pending) of updates last reported Required or Installed.
fn last_states(db: &AgentDb) -> anyhow::Result<HashMap<String, (String, bool)>> {
    let mut stmt = db
        .conn
        .prepare_cached("SELECT update_id, state, restart_pending FROM last_states")?;
    let mut rows = stmt.query([])?;
    let mut out = HashMap::new();
    while let Some(r) = rows.next()? {
        out.insert(r.get(0)?, (r.get(1)?, r.get::<_, i64>(2)? != 0));
    }
    Ok(out)
}

/// Evaluates the updates that can apply here: those with a binary installed on this machine
/// and the local publisher's.
fn evaluate(
    db: &AgentDb,
    machine: &Machine,
    last: &HashMap<String, (String, bool)>,
) -> anyhow::Result<Vec<Evaluated>> {
    // Every cached binary whose name is installed here, with its update, in one query.
    let mut names: Vec<&str> = machine.installed.keys().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let names = serde_json::to_string(&names)?;
    let mut bins: HashMap<String, (u32, String, String, Vec<TargetBinary>)> = HashMap::new();
    {
        let mut stmt = db.conn.prepare_cached(
            "SELECT b.name, b.architecture, b.version, b.update_id, u.revision, u.title, u.classification
             FROM json_each(?1) AS n
             JOIN catalog_binaries b ON b.name = n.value
             JOIN catalog_updates u ON u.id = b.update_id",
        )?;
        let mut rows = stmt.query([&names])?;
        while let Some(r) = rows.next()? {
            let name: String = r.get(0)?;
            let arch: String = r.get(1)?;
            if !machine
                .installed
                .contains_key(&(name.clone(), arch.clone()))
            {
                continue;
            }
            let id: String = r.get(3)?;
            let entry = match bins.get_mut(&id) {
                Some(e) => e,
                None => bins
                    .entry(id)
                    .or_insert((r.get(4)?, r.get(5)?, r.get(6)?, Vec::new())),
            };
            entry.3.push(TargetBinary {
                name,
                architecture: arch,
                version: r.get(2)?,
            });
        }
    }
    let mut out = Vec::with_capacity(bins.len());
    let restart_flag = |id: &str, state: UpdateState, packages: &[compliance::PackageResult]| {
        // C1/C8: installed but waiting for a restart stays Required, flagged — unless it was
        // reported Installed before (another update of the package waits, not this one).
        machine.restart_required
            && state == UpdateState::Installed
            && last.get(id) != Some(&("installed".to_string(), false))
            && packages
                .iter()
                .any(|p| machine.restart_packages.contains(&p.name))
    };
    let mut push = |id: String,
                    revision: u32,
                    title: String,
                    classification: String,
                    eval: compliance::Evaluation| {
        let pending = restart_flag(&id, eval.state, &eval.packages);
        out.push(Evaluated {
            state: if pending {
                UpdateState::Required
            } else {
                eval.state
            },
            restart_pending: pending,
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
            id,
            revision,
            title,
            classification,
        });
    };
    for (id, (revision, title, classification, b)) in bins {
        let eval = compliance::evaluate_apt(&b, machine);
        push(id, revision, title, classification, eval);
    }
    let mut stmt = db.conn.prepare_cached(
        "SELECT id, revision, title, classification, local_json FROM catalog_updates WHERE local_json IS NOT NULL",
    )?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let json: String = r.get(4)?;
        let local: LocalUpdate = serde_json::from_str(&json)
            .with_context(|| format!("cached local update {id} is unreadable"))?;
        let eval = compliance::evaluate_local(&local.detection, machine);
        if eval.state != UpdateState::NotRequired {
            push(id, r.get(1)?, r.get(2)?, r.get(3)?, eval);
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The replica update points of the machine policy this agent holds (S8), in order.
fn replica_update_points(db: &AgentDb) -> anyhow::Result<Vec<String>> {
    let policy: Option<koshin_wire::MachinePolicy> = db
        .get("policy")?
        .and_then(|p| serde_json::from_str(&p).ok());
    Ok(policy
        .map(|p| {
            p.update_points
                .into_iter()
                .filter(|u| u.role == "replica")
                .map(|u| u.url)
                .collect()
        })
        .unwrap_or_default())
}

/// Runs one scan and lists every update in its output.
pub async fn scan(
    db: &mut AgentDb,
    mp: Option<&Mp>,
    root: &Path,
    trigger: ScanTrigger,
) -> anyhow::Result<ScanOutput> {
    scan_detail(db, mp, root, trigger, Detail::All).await
}

/// Runs one scan. A failure is recorded as a failed scan and returned.
pub async fn scan_detail(
    db: &mut AgentDb,
    mp: Option<&Mp>,
    root: &Path,
    trigger: ScanTrigger,
    detail: Detail,
) -> anyhow::Result<ScanOutput> {
    let started = Instant::now();
    let started_ms = now_ms();
    let kind = trigger.kind();
    let scan_id = uuid::Uuid::new_v4().to_string();
    let result = scan_inner(db, mp, root, kind, started_ms).await;
    let duration_ms = started.elapsed().as_millis() as u64;
    let cv = db.get_i64("content_version")?.unwrap_or(0);
    match result {
        Ok((online, evaluated, last)) => {
            let count = |s: UpdateState| evaluated.iter().filter(|e| e.state == s).count() as u64;
            let total = db.get_i64("catalog_updates")?.unwrap_or(0).max(0) as u64;
            let (required, installed) =
                (count(UpdateState::Required), count(UpdateState::Installed));
            let record = ScanRecord {
                scan_id: scan_id.clone(),
                trigger: trigger.name().into(),
                kind: kind.name().into(),
                online,
                started: ts(started_ms),
                duration_ms,
                result: "succeeded".into(),
                content_version: cv,
                content_token: db.get("catalog_token")?,
                required,
                installed,
                not_required: total.saturating_sub(required + installed),
            };
            let t = Instant::now();
            let queued = commit_scan(db, &record, &evaluated, &last)?;
            tracing::debug!(
                commit_ms = t.elapsed().as_secs_f64() * 1e3,
                queued,
                "scan recorded"
            );
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
            let mut updates: Vec<ScanUpdate> = evaluated
                .into_iter()
                .map(|e| ScanUpdate {
                    id: e.id,
                    title: e.title,
                    classification: e.classification,
                    state: e.state.name().into(),
                    restart_pending: e.restart_pending,
                    packages: e.packages,
                })
                .collect();
            if detail == Detail::All {
                let applicable: HashSet<String> = updates.iter().map(|u| u.id.clone()).collect();
                let mut stmt = db.conn.prepare_cached(
                    "SELECT id, title, classification FROM catalog_updates ORDER BY id",
                )?;
                let mut rows = stmt.query([])?;
                while let Some(r) = rows.next()? {
                    let id: String = r.get(0)?;
                    if !applicable.contains(&id) {
                        updates.push(ScanUpdate {
                            id,
                            title: r.get(1)?,
                            classification: r.get(2)?,
                            state: UpdateState::NotRequired.name().into(),
                            restart_pending: false,
                            packages: Vec::new(),
                        });
                    }
                }
                updates.sort_by(|a, b| a.id.cmp(&b.id));
            }
            Ok(ScanOutput {
                kind: kind.name().into(),
                trigger: trigger.name().into(),
                online,
                duration_ms,
                content_version: cv,
                state_messages: queued,
                required: record.required,
                installed: record.installed,
                not_required: record.not_required,
                updates,
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
                content_token: None,
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

type Scanned = (bool, Vec<Evaluated>, HashMap<String, (String, bool)>);

async fn scan_inner(
    db: &mut AgentDb,
    mp: Option<&Mp>,
    root: &Path,
    kind: ScanKind,
    now: i64,
) -> anyhow::Result<Scanned> {
    let ttl_ms = db
        .get_i64("metadata_ttl_minutes")?
        .unwrap_or(DEFAULT_TTL_MINUTES as i64)
        * 60_000;
    let last_fetch = db.get_i64("metadata_fetched_ms")?;
    let online = kind.fetches_metadata(last_fetch, ttl_ms, now);
    if online {
        let mp =
            mp.ok_or_else(|| anyhow!("an online scan needs the site, and this scan has none"))?;
        // C3: the scan asks for the update point to use and records it in local policy. When
        // the site does not answer, the replicas of the policy it gave last serve the scan.
        let replicas = replica_update_points(db)?;
        if let Err(e) = crate::runner::poll_policy(db, mp).await {
            if replicas.is_empty() {
                return Err(anyhow!("cannot get the machine policy: {e}"));
            }
            tracing::warn!(error = %e, "the site's update point does not answer; trying its replicas");
        }
        let since = db.get_i64("content_version")?.unwrap_or(0);
        let token = db.get("catalog_token")?.unwrap_or_default();
        // A site whose catalog is not the one this agent cached (restored, rebuilt) answers
        // with its whole catalog (since = 0), which replaces the cache.
        let cat = match mp.catalog(since, &token).await {
            Ok(c) => c,
            Err(e) => {
                let mut found = None;
                for url in &replicas {
                    match mp.replica_catalog(url, since, &token).await {
                        Ok(c) => {
                            tracing::info!(replica = %url, "catalog from a replica update point");
                            found = Some(c);
                            break;
                        }
                        Err(r) => {
                            tracing::warn!(replica = %url, error = %r, "replica update point failed")
                        }
                    }
                }
                found.ok_or_else(|| anyhow!("cannot fetch the catalog: {e}"))?
            }
        };
        apply_catalog(db, &cat, now)?;
    } else if last_fetch.is_none() {
        anyhow::bail!("no local metadata yet: an online scan must run first (koshin-agent scan)");
    }
    let t = Instant::now();
    let machine = Machine::read(root)?;
    let read_ms = t.elapsed().as_secs_f64() * 1e3;
    let last = last_states(db)?;
    let evaluated = evaluate(db, &machine, &last)?;
    tracing::debug!(
        dpkg_ms = read_ms,
        evaluate_ms = t.elapsed().as_secs_f64() * 1e3 - read_ms,
        installed = machine.installed.len(),
        applicable = evaluated.len(),
        "scan evaluated"
    );
    Ok((online, evaluated, last))
}

/// Records the scan and queues a state message for each update whose state changed (C4),
/// all in one transaction. Returns how many were queued.
fn commit_scan(
    db: &mut AgentDb,
    record: &ScanRecord,
    evaluated: &[Evaluated],
    last: &HashMap<String, (String, bool)>,
) -> anyhow::Result<u64> {
    let tx = db.conn.transaction()?;
    let now = record.started.as_millisecond();
    let mut queued = 0u64;
    {
        let mut set = tx.prepare_cached(
            "INSERT INTO last_states(update_id, state, restart_pending) VALUES (?1,?2,?3) ON CONFLICT(update_id) DO UPDATE SET state=excluded.state, restart_pending=excluded.restart_pending",
        )?;
        let mut unset = tx.prepare_cached("DELETE FROM last_states WHERE update_id=?1")?;
        let mut q = tx.prepare_cached(
            "INSERT INTO queue(update_id, revision, state, restart_pending, time_ms, scan_id) VALUES (?1,?2,?3,?4,?5,?6)",
        )?;
        let mut mark =
            tx.prepare_cached("UPDATE catalog_updates SET reported = 1 WHERE id = ?1")?;
        let mut revision_of =
            tx.prepare_cached("SELECT revision FROM catalog_updates WHERE id = ?1")?;
        let mut now_applicable = HashSet::with_capacity(evaluated.len());
        for e in evaluated {
            now_applicable.insert(e.id.as_str());
            let state = (e.state.name().to_string(), e.restart_pending);
            if last.get(&e.id) == Some(&state) {
                continue;
            }
            set.execute(params![e.id, state.0, e.restart_pending])?;
            q.execute(params![
                e.id,
                e.revision,
                state.0,
                e.restart_pending,
                now,
                record.scan_id
            ])?;
            mark.execute(params![e.id])?;
            queued += 1;
        }
        // Reported Required or Installed before, Not required now.
        let not_required = UpdateState::NotRequired.name();
        for (id, (state, _)) in last {
            if now_applicable.contains(id.as_str()) {
                continue;
            }
            unset.execute(params![id])?;
            if state == not_required {
                continue;
            }
            if let Some(rev) = revision_of
                .query_row([id], |r| r.get::<_, u32>(0))
                .optional()?
            {
                q.execute(params![id, rev, not_required, false, now, record.scan_id])?;
                queued += 1;
            }
        }
        // Never reported (new in the catalog) and Not required: no message. The scan record
        // names the catalog version it covered, and the site counts every update of that
        // catalog without a Required or Installed state as Not required — a first scan
        // sends what applies here, not one message per update in the catalog.
        tx.execute(
            "UPDATE catalog_updates SET reported = 1 WHERE reported = 0",
            [],
        )?;
    }
    let json = serde_json::to_string(record)?;
    tx.execute(
        "INSERT INTO scans(scan_id, started_ms, json) VALUES (?1, ?2, ?3)",
        params![record.scan_id, now, json],
    )?;
    let restart = evaluated.iter().any(|e| e.restart_pending);
    set_kv(&tx, "restart_pending", if restart { "1" } else { "0" })?;
    tx.commit()?;
    Ok(queued)
}
