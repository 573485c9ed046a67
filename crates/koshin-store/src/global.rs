//! Global data down the hierarchy (S9): collections (members, maintenance windows) and
//! deployments (updates, content package) replicate from a parent to its children.
//!
//! Triggers (migration 12) log every change with a sequence number in the change's own
//! transaction. A parent answers a child with every object changed after the child's last
//! sequence — whole, as it is now — and what was deleted; the child applies that in one
//! transaction together with the new sequence on its parent link, so an answer is applied
//! entirely or not at all, and never twice. The parent's totals verify the result: a child
//! whose copy does not add up rolls the answer back and asks for everything again.
//!
//! Replicated rows carry the site they came from (`origin`); administrators at the child
//! cannot change them (`refuse_replicated`).

use std::collections::HashSet;

use koshin_domain::status::StatusMessage;
use koshin_wire::{
    GlobalCollection, GlobalData, GlobalDeployment, GlobalPackage, GlobalPackageFile, GlobalTotals,
    GlobalWindow,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::content::{all_dps, distribute_tx};
use crate::sqlite::{SqliteStore, lock};
use crate::traits::GlobalStore;
use crate::{Result, StoreError};

/// What applying a parent's answer changed here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GlobalApplied {
    pub collections: usize,
    pub deployments: usize,
    pub deleted: usize,
    /// Packages newly queued for this site's distribution points.
    pub distributions: usize,
    /// Members the parent named that are not clients of this site or its children.
    pub members_elsewhere: usize,
}

/// Refuses a change, made at this site, to an object replicated from a parent.
pub(crate) fn refuse_replicated(conn: &Connection, table: &str, key: i64) -> Result<()> {
    let (id_col, what) = match table {
        "collections" => ("collection_id", "collection"),
        "deployments" => ("deployment_id", "deployment"),
        _ => return Ok(()),
    };
    let origin: Option<(String, Option<String>)> = conn
        .query_row(
            &format!("SELECT {id_col}, origin FROM {table} WHERE id = ?1"),
            params![key],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((id, Some(site))) = origin {
        return Err(StoreError::Invalid(format!(
            "{what} {id} is replicated from site {site}: change it there"
        )));
    }
    Ok(())
}

fn load_collection(conn: &Connection, collection_id: &str) -> Result<Option<GlobalCollection>> {
    let row: Option<(i64, GlobalCollection)> = conn
        .query_row(
            "SELECT id, collection_id, name, comment, built_in, created_ms, created_by
             FROM collections WHERE collection_id = ?1",
            params![collection_id],
            |r| {
                Ok((
                    r.get(0)?,
                    GlobalCollection {
                        collection_id: r.get(1)?,
                        name: r.get(2)?,
                        comment: r.get(3)?,
                        built_in: r.get::<_, i64>(4)? != 0,
                        members: Vec::new(),
                        windows: Vec::new(),
                        created_ms: r.get(5)?,
                        created_by: r.get(6)?,
                    },
                ))
            },
        )
        .optional()?;
    let Some((key, mut c)) = row else {
        return Ok(None);
    };
    c.members = conn
        .prepare_cached(
            "SELECT c.client_id FROM collection_members m JOIN clients c ON c.id = m.client
             WHERE m.collection = ?1 ORDER BY 1",
        )?
        .query_map(params![key], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    c.windows = conn
        .prepare_cached(
            "SELECT name, spec FROM maintenance_windows WHERE collection = ?1 ORDER BY name",
        )?
        .query_map(params![key], |r| {
            Ok(GlobalWindow {
                name: r.get(0)?,
                spec: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(c))
}

fn load_package(conn: &Connection, key: i64) -> Result<Option<GlobalPackage>> {
    let row: Option<GlobalPackage> = conn
        .query_row(
            "SELECT package_id, name, priority, source_version FROM content_packages WHERE id = ?1",
            params![key],
            |r| {
                Ok(GlobalPackage {
                    package_id: r.get(0)?,
                    name: r.get(1)?,
                    priority: r.get(2)?,
                    source_version: r.get(3)?,
                    files: Vec::new(),
                    updates: Vec::new(),
                })
            },
        )
        .optional()?;
    let Some(mut p) = row else {
        return Ok(None);
    };
    p.files = conn
        .prepare_cached(
            "SELECT sha256, name, size, filename FROM package_files WHERE package = ?1 ORDER BY sha256",
        )?
        .query_map(params![key], |r| {
            Ok(GlobalPackageFile {
                sha256: r.get(0)?,
                name: r.get(1)?,
                size: r.get(2)?,
                filename: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    p.updates = conn
        .prepare_cached("SELECT update_id FROM package_updates WHERE package = ?1 ORDER BY 1")?
        .query_map(params![key], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(p))
}

fn load_deployment(conn: &Connection, deployment_id: &str) -> Result<Option<GlobalDeployment>> {
    let row: Option<(i64, Option<i64>, GlobalDeployment)> = conn
        .query_row(
            "SELECT d.id, d.package, d.deployment_id, d.name, d.update_group, k.collection_id, d.available,
                    d.deadline, d.utc, d.allow_postpone, d.notification, d.suppress_servers,
                    d.suppress_workstations, d.download_first, d.recurrence_days, d.enabled, d.reenable_ms,
                    d.generation, r.deployment_id, d.created_ms, d.created_by, d.expedited_inventory, d.program
             FROM deployments d JOIN collections k ON k.id = d.collection
             LEFT JOIN deployments r ON r.id = d.rollback_of
             WHERE d.deployment_id = ?1",
            params![deployment_id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    GlobalDeployment {
                        deployment_id: r.get(2)?,
                        name: r.get(3)?,
                        update_group: r.get(4)?,
                        collection_id: r.get(5)?,
                        package: None,
                        available: r.get(6)?,
                        deadline: r.get(7)?,
                        utc: r.get::<_, i64>(8)? != 0,
                        allow_postpone: r.get::<_, i64>(9)? != 0,
                        notification: r.get(10)?,
                        suppress_servers: r.get::<_, i64>(11)? != 0,
                        suppress_workstations: r.get::<_, i64>(12)? != 0,
                        download_first: r.get::<_, i64>(13)? != 0,
                        recurrence_days: r.get(14)?,
                        expedited_inventory: r.get::<_, i64>(21)? != 0,
                        program: r.get(22)?,
                        enabled: r.get::<_, i64>(15)? != 0,
                        reenable_ms: r.get(16)?,
                        generation: r.get(17)?,
                        rollback_of: r.get(18)?,
                        updates: Vec::new(),
                        created_ms: r.get(19)?,
                        created_by: r.get(20)?,
                    },
                ))
            },
        )
        .optional()?;
    let Some((key, package, mut d)) = row else {
        return Ok(None);
    };
    d.updates = conn
        .prepare_cached(
            "SELECT update_id, removed_ms FROM deployment_updates WHERE deployment = ?1 ORDER BY 1",
        )?
        .query_map(params![key], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    if let Some(p) = package {
        d.package = load_package(conn, p)?;
    }
    Ok(Some(d))
}

fn totals(conn: &Connection, replicated_only: bool) -> Result<GlobalTotals> {
    let only = if replicated_only {
        " AND origin IS NOT NULL"
    } else {
        ""
    };
    let count = |sql: String| conn.query_row(&sql, [], |r| r.get::<_, i64>(0));
    Ok(GlobalTotals {
        collections: count(format!(
            "SELECT COUNT(*) FROM collections WHERE built_in = 0{only}"
        ))?,
        deployments: count(format!(
            "SELECT COUNT(*) FROM deployments WHERE 1 = 1{only}"
        ))?,
    })
}

/// The global data changed after `since`, read in one transaction.
pub(crate) fn changes(conn: &mut Connection, site: &str, since: i64) -> Result<GlobalData> {
    let tx = conn.transaction()?;
    let upto: i64 = tx.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM global_changes",
        [],
        |r| r.get(0),
    )?;
    // A child ahead of the log (this site's database was restored from a backup) gets
    // everything.
    let since = if since > upto || since < 0 { 0 } else { since };
    let objects: Vec<(String, String)> = tx
        .prepare_cached(
            "SELECT kind, object_id FROM global_changes WHERE seq > ?1
             GROUP BY kind, object_id ORDER BY MAX(seq)",
        )?
        .query_map(params![since], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = GlobalData {
        site: site.to_string(),
        since,
        upto,
        full: since == 0,
        totals: totals(&tx, false)?,
        ..Default::default()
    };
    for (kind, id) in objects {
        if kind == "collection" {
            match load_collection(&tx, &id)? {
                Some(c) => out.collections.push(c),
                None => out.deleted_collections.push(id),
            }
        } else {
            match load_deployment(&tx, &id)? {
                Some(d) => out.deployments.push(d),
                None => out.deleted_deployments.push(id),
            }
        }
    }
    tx.commit()?;
    Ok(out)
}

/// A name free here: the parent's, or the parent's with its site code when a local object
/// holds that name already.
fn free_name(
    tx: &Connection,
    table: &str,
    id_col: &str,
    name: &str,
    id: &str,
    origin: &str,
) -> Result<String> {
    let holder: Option<String> = tx
        .query_row(
            &format!("SELECT {id_col} FROM {table} WHERE name = ?1"),
            params![name],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match holder {
        Some(h) if h != id => format!("{name} ({origin})"),
        _ => name.to_string(),
    })
}

fn next_key(tx: &Connection, table: &str) -> Result<i64> {
    Ok(tx.query_row(
        &format!("SELECT COALESCE(MAX(id), 0) + 1 FROM {table}"),
        [],
        |r| r.get(0),
    )?)
}

fn apply_collection(
    tx: &Connection,
    origin: &str,
    c: &GlobalCollection,
    applied: &mut GlobalApplied,
) -> Result<()> {
    let existing: Option<(i64, Option<String>, i64)> = tx
        .query_row(
            "SELECT id, origin, built_in FROM collections WHERE collection_id = ?1",
            params![c.collection_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let key = match existing {
        // All Systems is every site's own: only its windows come from above.
        Some((key, _, 1)) => key,
        Some((_, None, _)) => {
            return Err(StoreError::Conflict(format!(
                "collection {} exists here as this site's own; site codes must be unique in the hierarchy",
                c.collection_id
            )));
        }
        Some((key, Some(_), _)) => {
            let name = free_name(
                tx,
                "collections",
                "collection_id",
                &c.name,
                &c.collection_id,
                origin,
            )?;
            tx.execute(
                "UPDATE collections SET name = ?2, comment = ?3 WHERE id = ?1",
                params![key, name, c.comment],
            )?;
            key
        }
        None if c.built_in => return Ok(()),
        None => {
            let key = next_key(tx, "collections")?;
            let name = free_name(
                tx,
                "collections",
                "collection_id",
                &c.name,
                &c.collection_id,
                origin,
            )?;
            tx.execute(
                "INSERT INTO collections(id, collection_id, name, comment, created_ms, created_by, origin)
                 VALUES (?1,?2,?3,?4,?5,?6,?7)",
                params![key, c.collection_id, name, c.comment, c.created_ms, c.created_by, origin],
            )?;
            key
        }
    };
    if !c.built_in {
        tx.execute(
            "DELETE FROM collection_members WHERE collection = ?1",
            params![key],
        )?;
        let mut find = tx.prepare_cached("SELECT id FROM clients WHERE client_id = ?1")?;
        let mut add = tx.prepare_cached(
            "INSERT OR IGNORE INTO collection_members(collection, client, added_ms, added_by)
             VALUES (?1, ?2, ?3, ?4)",
        )?;
        for m in &c.members {
            match find
                .query_row(params![m], |r| r.get::<_, i64>(0))
                .optional()?
            {
                Some(client) => {
                    add.execute(params![key, client, c.created_ms, origin])?;
                }
                None => applied.members_elsewhere += 1,
            }
        }
    }
    tx.execute(
        "DELETE FROM maintenance_windows WHERE collection = ?1 AND origin IS NOT NULL",
        params![key],
    )?;
    for w in &c.windows {
        tx.execute(
            "INSERT INTO maintenance_windows(collection, name, spec, created_ms, created_by, origin)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(collection, name) DO UPDATE SET spec = excluded.spec, origin = excluded.origin",
            params![key, w.name, w.spec, c.created_ms, c.created_by, origin],
        )?;
    }
    applied.collections += 1;
    Ok(())
}

/// The package of a replicated deployment, created or brought up to date; a new package, or
/// a new source version, is queued for every distribution point of this site.
fn apply_package(
    tx: &Connection,
    origin: &str,
    p: &GlobalPackage,
    now_ms: i64,
    applied: &mut GlobalApplied,
) -> Result<i64> {
    let existing: Option<(i64, i64)> = tx
        .query_row(
            "SELECT id, source_version FROM content_packages WHERE package_id = ?1",
            params![p.package_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    if let Some((key, version)) = existing
        && version == p.source_version
    {
        return Ok(key);
    }
    let name = free_name(
        tx,
        "content_packages",
        "package_id",
        &p.name,
        &p.package_id,
        origin,
    )?;
    let key = match existing {
        Some((key, _)) => {
            tx.execute(
                "UPDATE content_packages SET name = ?2, priority = ?3, source_version = ?4 WHERE id = ?1",
                params![key, name, p.priority, p.source_version],
            )?;
            tx.execute("DELETE FROM package_files WHERE package = ?1", params![key])?;
            tx.execute(
                "DELETE FROM package_updates WHERE package = ?1",
                params![key],
            )?;
            tx.execute(
                "UPDATE package_targets SET state = 'waiting', source_version = ?2, queued_ms = ?3,
                     attempts = 0, retry_at_ms = NULL, error = NULL, bytes_sent = 0
                 WHERE package = ?1",
                params![key, p.source_version, now_ms],
            )?;
            key
        }
        None => {
            let key = next_key(tx, "content_packages")?;
            tx.execute(
                "INSERT INTO content_packages(id, package_id, name, priority, source_version, created_ms, created_by, origin)
                 VALUES (?1,?2,?3,?4,?5,?6,?7,?8)",
                params![key, p.package_id, name, p.priority, p.source_version, now_ms, origin, origin],
            )?;
            key
        }
    };
    for f in &p.files {
        tx.execute(
            "INSERT OR IGNORE INTO package_files(package, sha256, name, size, filename) VALUES (?1,?2,?3,?4,?5)",
            params![key, f.sha256, f.name, f.size, f.filename],
        )?;
    }
    for u in &p.updates {
        tx.execute(
            "INSERT OR IGNORE INTO package_updates(package, update_id) VALUES (?1, ?2)",
            params![key, u],
        )?;
    }
    if existing.is_none() {
        let dps = all_dps(tx)?;
        distribute_tx(tx, key, &dps, &[], now_ms)?;
    }
    applied.distributions += 1;
    Ok(key)
}

fn apply_deployment(
    tx: &Connection,
    origin: &str,
    d: &GlobalDeployment,
    now_ms: i64,
    applied: &mut GlobalApplied,
) -> Result<()> {
    let collection: i64 = tx
        .query_row(
            "SELECT id FROM collections WHERE collection_id = ?1",
            params![d.collection_id],
            |r| r.get(0),
        )
        .optional()?
        .ok_or_else(|| {
            StoreError::Invalid(format!(
                "deployment {} targets collection {}, which is not here",
                d.deployment_id, d.collection_id
            ))
        })?;
    let package = match &d.package {
        Some(p) => Some(apply_package(tx, origin, p, now_ms, applied)?),
        None => None,
    };
    let rollback_of: Option<i64> = match &d.rollback_of {
        Some(r) => tx
            .query_row(
                "SELECT id FROM deployments WHERE deployment_id = ?1",
                params![r],
                |row| row.get(0),
            )
            .optional()?,
        None => None,
    };
    let existing: Option<(i64, Option<String>)> = tx
        .query_row(
            "SELECT id, origin FROM deployments WHERE deployment_id = ?1",
            params![d.deployment_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let key = match existing {
        Some((_, None)) => {
            return Err(StoreError::Conflict(format!(
                "deployment {} exists here as this site's own; site codes must be unique in the hierarchy",
                d.deployment_id
            )));
        }
        Some((key, Some(_))) => key,
        None => next_key(tx, "deployments")?,
    };
    let name = free_name(
        tx,
        "deployments",
        "deployment_id",
        &d.name,
        &d.deployment_id,
        origin,
    )?;
    tx.execute(
        "INSERT INTO deployments(id, deployment_id, name, update_group, collection, package, available, deadline, utc,
             allow_postpone, notification, suppress_servers, suppress_workstations, download_first, recurrence_days,
             enabled, reenable_ms, generation, rollback_of, created_ms, created_by, origin, expedited_inventory, program)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20,?21,?22,?23,?24)
         ON CONFLICT(id) DO UPDATE SET name = excluded.name, update_group = excluded.update_group,
             collection = excluded.collection, package = excluded.package, available = excluded.available,
             deadline = excluded.deadline, utc = excluded.utc, allow_postpone = excluded.allow_postpone,
             notification = excluded.notification, suppress_servers = excluded.suppress_servers,
             suppress_workstations = excluded.suppress_workstations, download_first = excluded.download_first,
             recurrence_days = excluded.recurrence_days, enabled = excluded.enabled,
             reenable_ms = excluded.reenable_ms, generation = excluded.generation,
             rollback_of = excluded.rollback_of, expedited_inventory = excluded.expedited_inventory,
             program = excluded.program",
        params![
            key,
            d.deployment_id,
            name,
            d.update_group,
            collection,
            package,
            d.available,
            d.deadline,
            i64::from(d.utc),
            i64::from(d.allow_postpone),
            d.notification,
            i64::from(d.suppress_servers),
            i64::from(d.suppress_workstations),
            i64::from(d.download_first),
            d.recurrence_days,
            i64::from(d.enabled),
            d.reenable_ms,
            d.generation,
            rollback_of,
            d.created_ms,
            d.created_by,
            origin,
            i64::from(d.expedited_inventory),
            d.program,
        ],
    )?;
    tx.execute(
        "DELETE FROM deployment_updates WHERE deployment = ?1",
        params![key],
    )?;
    for (u, removed) in &d.updates {
        tx.execute(
            "INSERT INTO deployment_updates(deployment, update_id, removed_ms) VALUES (?1, ?2, ?3)",
            params![key, u, removed],
        )?;
    }
    applied.deployments += 1;
    Ok(())
}

fn delete_deployment(tx: &Connection, id: &str) -> Result<usize> {
    let key: Option<(i64, Option<i64>)> = tx
        .query_row(
            "SELECT id, package FROM deployments WHERE deployment_id = ?1 AND origin IS NOT NULL",
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((key, package)) = key else {
        return Ok(0);
    };
    tx.execute(
        "UPDATE deployments SET rollback_of = NULL WHERE rollback_of = ?1",
        params![key],
    )?;
    tx.execute("DELETE FROM deployments WHERE id = ?1", params![key])?;
    if let Some(p) = package {
        tx.execute(
            "DELETE FROM content_packages WHERE id = ?1 AND origin IS NOT NULL
                 AND NOT EXISTS (SELECT 1 FROM deployments WHERE package = ?1)",
            params![p],
        )?;
    }
    Ok(1)
}

/// Deletes a replicated collection; one a deployment of this site still targets stays, as
/// this site's own from now on.
fn delete_collection(tx: &Connection, id: &str) -> Result<usize> {
    let key: Option<i64> = tx
        .query_row(
            "SELECT id FROM collections WHERE collection_id = ?1 AND origin IS NOT NULL AND built_in = 0",
            params![id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(key) = key else {
        return Ok(0);
    };
    let used: bool = tx.query_row(
        "SELECT EXISTS (SELECT 1 FROM deployments WHERE collection = ?1)",
        params![key],
        |r| r.get(0),
    )?;
    if used {
        tx.execute(
            "UPDATE collections SET origin = NULL WHERE id = ?1",
            params![key],
        )?;
        return Ok(0);
    }
    tx.execute("DELETE FROM collections WHERE id = ?1", params![key])?;
    Ok(1)
}

/// Applies a parent's answer in one transaction, with the new sequence on the parent link;
/// verified against the parent's totals before it commits.
pub(crate) fn apply(
    conn: &mut Connection,
    parent: &str,
    data: &GlobalData,
    now_ms: i64,
) -> Result<GlobalApplied> {
    let tx = conn.transaction()?;
    let have: Option<i64> = tx
        .query_row(
            "SELECT global_seq FROM site_links WHERE code = ?1 AND relation = 'parent'",
            params![parent],
            |r| r.get(0),
        )
        .optional()?;
    let have = have.ok_or_else(|| StoreError::NotFound(format!("parent site {parent}")))?;
    if !data.full && data.since != have {
        return Err(StoreError::Conflict(format!(
            "the parent's answer starts after change {}, but this site has applied up to {have}",
            data.since
        )));
    }
    let mut applied = GlobalApplied::default();
    for id in &data.deleted_deployments {
        applied.deleted += delete_deployment(&tx, id)?;
    }
    for c in &data.collections {
        apply_collection(&tx, parent, c, &mut applied)?;
    }
    for d in &data.deployments {
        apply_deployment(&tx, parent, d, now_ms, &mut applied)?;
    }
    for id in &data.deleted_collections {
        applied.deleted += delete_collection(&tx, id)?;
    }
    if data.full {
        // Everything the parent holds was in the answer: what is not, is gone there.
        let keep: HashSet<&str> = data
            .deployments
            .iter()
            .map(|d| d.deployment_id.as_str())
            .collect();
        let held: Vec<String> = tx
            .prepare("SELECT deployment_id FROM deployments WHERE origin IS NOT NULL")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for id in held.iter().filter(|id| !keep.contains(id.as_str())) {
            applied.deleted += delete_deployment(&tx, id)?;
        }
        let keep: HashSet<&str> = data
            .collections
            .iter()
            .map(|c| c.collection_id.as_str())
            .collect();
        let held: Vec<String> = tx
            .prepare(
                "SELECT collection_id FROM collections WHERE origin IS NOT NULL AND built_in = 0",
            )?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for id in held.iter().filter(|id| !keep.contains(id.as_str())) {
            applied.deleted += delete_collection(&tx, id)?;
        }
    }
    let here = totals(&tx, true)?;
    if here != data.totals {
        return Err(StoreError::Corrupt(format!(
            "replicated global data does not add up: site {parent} holds {} collections and {} deployments, this site {} and {}",
            data.totals.collections, data.totals.deployments, here.collections, here.deployments
        )));
    }
    tx.execute(
        "UPDATE site_links SET global_seq = ?2 WHERE code = ?1",
        params![parent, data.upto],
    )?;
    tx.commit()?;
    Ok(applied)
}

/// Stores status messages a child sent up, each once by its origin; how many were new.
pub(crate) fn store_forwarded_status(
    conn: &mut Connection,
    messages: &[(String, StatusMessage)],
) -> Result<u64> {
    let tx = conn.transaction()?;
    let mut stored = 0u64;
    for (origin, m) in messages {
        m.validate()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        stored += crate::sqlite::insert_status_row(&tx, m, Some(origin))? as u64;
    }
    tx.commit()?;
    Ok(stored)
}

impl GlobalStore for SqliteStore {
    fn global_changes(&self, since: i64) -> Result<GlobalData> {
        let mut conn = self.reader();
        let site: String = conn
            .query_row(
                "SELECT value FROM site_kv WHERE key = 'site_code'",
                [],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or_default();
        changes(&mut conn, &site, since)
    }

    fn apply_global(&self, parent: &str, data: &GlobalData, now_ms: i64) -> Result<GlobalApplied> {
        let mut conn = lock(&self.writer);
        apply(&mut conn, parent, data, now_ms)
    }

    fn store_forwarded_status(&self, messages: &[(String, StatusMessage)]) -> Result<u64> {
        let mut conn = lock(&self.writer);
        store_forwarded_status(&mut conn, messages)
    }

    fn set_link_down(&self, code: &str, down: bool) -> Result<bool> {
        let conn = lock(&self.writer);
        Ok(conn.execute(
            "UPDATE site_links SET link_down = ?2 WHERE code = ?1 AND link_down != ?2",
            params![code, i64::from(down)],
        )? > 0)
    }
}
