//! Update groups, deployments, maintenance windows and each client's state of each
//! deployment. A deployment snapshots its group's updates (each removable on its own, P28),
//! and brings a content package of their files, distributed in the same transaction.

use std::collections::BTreeMap;

use koshin_domain::Scope;
use koshin_domain::content::Priority;
use koshin_domain::deployments::{MaintenanceWindow, parse_time};
use koshin_wire::{
    DeployedFile, DeployedUpdate, DeployedUpdateOut, DeploymentClientOut, DeploymentDetail,
    DeploymentOut, DeploymentPolicy, NewDeployment, UpdateGroupOut, UpdateRef, WindowOut,
};
use rusqlite::{Connection, OptionalExtension, params};

use crate::content::{all_dps, create_package_tx, distribute_tx, resolve_update_key};
use crate::sqlite::{SqliteStore, lock, ts};
use crate::traits::{AuditEntry, DeploymentStore, Paging};
use crate::trust::write_audit;
use crate::{Result, StoreError};

fn group_key(conn: &Connection, name: &str) -> Result<i64> {
    conn.query_row(
        "SELECT id FROM update_groups WHERE name = ?1",
        params![name],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("update group '{name}'")))
}

fn deployment_key(conn: &Connection, key: &str) -> Result<i64> {
    conn.query_row(
        "SELECT id FROM deployments WHERE deployment_id = ?1 COLLATE NOCASE OR name = ?1",
        params![key],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("deployment '{key}'")))
}

fn collection_key(conn: &Connection, key: &str) -> Result<(i64, String)> {
    conn.query_row(
        "SELECT id, collection_id FROM collections WHERE collection_id = ?1 COLLATE NOCASE OR name = ?1",
        params![key],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("collection '{key}'")))
}

fn load_group(conn: &Connection, id: i64) -> Result<UpdateGroupOut> {
    let (name, description): (String, String) = conn.query_row(
        "SELECT name, description FROM update_groups WHERE id = ?1",
        params![id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut stmt = conn.prepare_cached(
        "SELECT m.update_id, COALESCE(u.title, m.update_id) FROM update_group_members m
         LEFT JOIN updates u ON u.id = m.update_id WHERE m.grp = ?1 ORDER BY 2",
    )?;
    let updates = stmt
        .query_map(params![id], |r| {
            Ok(UpdateRef {
                id: r.get(0)?,
                title: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(UpdateGroupOut {
        name,
        description,
        updates,
    })
}

/// Whether client `client` is a member of collection `collection` (All Systems: all).
fn member_sql() -> &'static str {
    "(k.collection_id = 'SMS00001' OR EXISTS (SELECT 1 FROM collection_members m WHERE m.collection = k.id AND m.client = c.id))"
}

fn load_deployment(conn: &Connection, id: i64) -> Result<DeploymentOut> {
    let mut d = conn.query_row(
        "SELECT d.deployment_id, d.name, d.update_group, k.name, p.package_id, d.available, d.deadline, d.utc,
                d.allow_postpone, d.notification, d.suppress_servers, d.suppress_workstations, d.download_first,
                d.recurrence_days, d.enabled, d.reenable_ms, d.generation, r.deployment_id, d.created_ms, d.created_by,
                d.expedited_inventory, d.program
         FROM deployments d JOIN collections k ON k.id = d.collection
         LEFT JOIN content_packages p ON p.id = d.package
         LEFT JOIN deployments r ON r.id = d.rollback_of
         WHERE d.id = ?1",
        params![id],
        |r| {
            Ok(DeploymentOut {
                id: r.get(0)?,
                name: r.get(1)?,
                update_group: r.get(2)?,
                collection: r.get(3)?,
                package: r.get(4)?,
                available: r.get(5)?,
                deadline: r.get(6)?,
                utc: r.get::<_, i64>(7)? != 0,
                allow_postpone: r.get::<_, i64>(8)? != 0,
                notification: r.get(9)?,
                suppress_restart_servers: r.get::<_, i64>(10)? != 0,
                suppress_restart_workstations: r.get::<_, i64>(11)? != 0,
                install_from_dp: r.get::<_, i64>(12)? == 0,
                recurrence_days: r.get::<_, Option<i64>>(13)?.map(|v| v as u32),
                expedited_inventory: r.get::<_, i64>(20)? != 0,
                program: r.get(21)?,
                enabled: r.get::<_, i64>(14)? != 0,
                reenable_at: r.get::<_, Option<i64>>(15)?.map(ts),
                generation: r.get(16)?,
                rollback_of: r.get(17)?,
                created: ts(r.get(18)?),
                created_by: r.get(19)?,
                updates: Vec::new(),
                summary: BTreeMap::new(),
            })
        },
    )?;
    let mut stmt = conn.prepare_cached(
        "SELECT du.update_id, COALESCE(u.title, du.update_id), du.removed_ms FROM deployment_updates du
         LEFT JOIN updates u ON u.id = du.update_id WHERE du.deployment = ?1 ORDER BY 2",
    )?;
    d.updates = stmt
        .query_map(params![id], |r| {
            Ok(DeployedUpdateOut {
                id: r.get(0)?,
                title: r.get(1)?,
                removed: r.get::<_, Option<i64>>(2)?.map(ts),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(d)
}

/// Every targeted client (inside `scope`) with its state of the deployment; clients that
/// have not reported are "not_received".
/// The clients a deployment targets inside the scope (`?1` the deployment, `?2` the
/// scope): approved members of its collection, each with its status row if it has one.
fn targeted_sql() -> String {
    format!(
        "FROM deployments d JOIN collections k ON k.id = d.collection
         JOIN clients c ON {}
         LEFT JOIN deployment_status s ON s.client = c.id AND s.deployment = d.id
         WHERE d.id = ?1 AND c.approval = 'approved' AND {}",
        member_sql(),
        crate::collections::scope_sql("c.id", 2)
    )
}

/// How many targeted clients (inside the scope) are in each state.
fn state_counts(conn: &Connection, id: i64, scope: &Scope) -> Result<BTreeMap<String, i64>> {
    let scope = crate::collections::scope_param(scope)?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT COALESCE(s.state, 'not_received'), COUNT(*) {} GROUP BY 1",
        targeted_sql()
    ))?;
    let counts = stmt
        .query_map(params![id, scope], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<BTreeMap<String, i64>>>()?;
    Ok(counts)
}

/// One page of the targeted clients' states (inside the scope), in name order.
fn client_states(
    conn: &Connection,
    id: i64,
    recurrence_days: Option<u32>,
    scope: &Scope,
    now_ms: i64,
    page: Paging,
) -> Result<Vec<DeploymentClientOut>> {
    let scope = crate::collections::scope_param(scope)?;
    let (limit, offset) = page.sql();
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT c.name, c.client_id, s.state, s.detail, s.time_ms, s.generation, s.last_success_ms
         {} ORDER BY c.name, c.client_id LIMIT ?3 OFFSET ?4",
        targeted_sql()
    ))?;
    let rows = stmt.query_map(params![id, scope, limit, offset], |r| {
        Ok(DeploymentClientOut {
            computer: r.get(0)?,
            client_id: r.get(1)?,
            state: r
                .get::<_, Option<String>>(2)?
                .unwrap_or_else(|| "not_received".into()),
            detail: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
            time: r.get::<_, Option<i64>>(4)?.map(ts),
            generation: r.get::<_, Option<i64>>(5)?.unwrap_or(0),
            last_success: r.get::<_, Option<i64>>(6)?.map(ts),
            overdue: false,
        })
    })?;
    let mut out = Vec::new();
    for row in rows {
        let mut c = row?;
        if let Some(days) = recurrence_days {
            let interval = i64::from(days) * 86_400_000;
            c.overdue = c
                .last_success
                .is_none_or(|t| now_ms - t.as_millisecond() > interval);
        }
        out.push(c);
    }
    Ok(out)
}

fn check_time(s: &str) -> Result<()> {
    parse_time(s).map(drop).map_err(StoreError::Invalid)
}

fn next_deployment_id(tx: &Connection, site_code: &str) -> Result<(i64, String)> {
    let next: i64 = tx.query_row(
        "SELECT COALESCE(MAX(id), 0) + 1 FROM deployments",
        [],
        |r| r.get(0),
    )?;
    // Deployment ids follow Configuration Manager's assignment ids: a number, here after
    // the site code and a 'D' so they never read as a package id.
    Ok((next, format!("{site_code}D{next:05}")))
}

impl SqliteStore {
    /// One change to a deployment (by id or name) and its audit entry, in one transaction;
    /// the deployment as it is after.
    fn change_deployment(
        &self,
        key: &str,
        audit: &AuditEntry,
        change: impl FnOnce(&Connection, i64) -> Result<()>,
    ) -> Result<DeploymentOut> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let id = deployment_key(&tx, key)?;
        crate::global::refuse_replicated(&tx, "deployments", id)?;
        change(&tx, id)?;
        write_audit(&tx, audit)?;
        let d = load_deployment(&tx, id)?;
        tx.commit()?;
        Ok(d)
    }
}

impl DeploymentStore for SqliteStore {
    fn create_update_group(
        &self,
        name: &str,
        description: &str,
        updates: &[String],
        audit: &AuditEntry,
    ) -> Result<UpdateGroupOut> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let n = tx.execute(
            "INSERT INTO update_groups(name, description, created_ms, created_by) VALUES (?1,?2,?3,?4) ON CONFLICT DO NOTHING",
            params![name, description, audit.time_ms, audit.actor],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "an update group named '{name}' exists already"
            )));
        }
        let id = tx.last_insert_rowid();
        for u in updates {
            let uid = resolve_update_key(&tx, u)?;
            tx.execute(
                "INSERT OR IGNORE INTO update_group_members(grp, update_id) VALUES (?1, ?2)",
                params![id, uid],
            )?;
        }
        write_audit(&tx, audit)?;
        let g = load_group(&tx, id)?;
        tx.commit()?;
        Ok(g)
    }

    fn security_rollup_updates(&self, product: &str) -> Result<Vec<String>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT u.id FROM updates u JOIN update_summary s ON s.ukey = u.ukey
             WHERE u.product = ?1 AND u.classification = 'Security Updates' AND u.expired = 0
               AND u.superseded_by IS NULL AND s.required > 0 ORDER BY u.title",
        )?;
        Ok(stmt
            .query_map(params![product], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    fn change_update_group(
        &self,
        name: &str,
        add: &[String],
        remove: &[String],
        audit: &AuditEntry,
    ) -> Result<UpdateGroupOut> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let id = group_key(&tx, name)?;
        for u in add {
            let uid = resolve_update_key(&tx, u)?;
            tx.execute(
                "INSERT OR IGNORE INTO update_group_members(grp, update_id) VALUES (?1, ?2)",
                params![id, uid],
            )?;
        }
        for u in remove {
            let uid = resolve_update_key(&tx, u)?;
            tx.execute(
                "DELETE FROM update_group_members WHERE grp = ?1 AND update_id = ?2",
                params![id, uid],
            )?;
        }
        write_audit(&tx, audit)?;
        let g = load_group(&tx, id)?;
        tx.commit()?;
        Ok(g)
    }

    fn list_update_groups(&self) -> Result<Vec<UpdateGroupOut>> {
        let conn = self.reader();
        let ids: Vec<i64> = conn
            .prepare_cached("SELECT id FROM update_groups ORDER BY name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        ids.into_iter().map(|id| load_group(&conn, id)).collect()
    }

    fn create_deployment(
        &self,
        site_code: &str,
        d: &NewDeployment,
        available: &str,
        priority: Priority,
        audit: &AuditEntry,
    ) -> Result<DeploymentOut> {
        check_time(available)?;
        if let Some(dl) = &d.deadline {
            check_time(dl)?;
            if parse_time(dl).ok() < parse_time(available).ok() {
                return Err(StoreError::Invalid(
                    "the deadline is before the available time".into(),
                ));
            }
        }
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        if tx
            .query_row(
                "SELECT 1 FROM deployments WHERE name = ?1",
                params![d.name],
                |_| Ok(()),
            )
            .optional()?
            .is_some()
        {
            return Err(StoreError::Conflict(format!(
                "a deployment named '{}' exists already",
                d.name
            )));
        }
        let (updates, package) = deployment_content(&tx, d)?;
        if d.program.is_none() && updates.is_empty() {
            return Err(StoreError::Invalid(format!(
                "update group '{}' holds no updates",
                d.update_group
            )));
        }
        let (collection, _) = collection_key(&tx, &d.collection)?;
        let id = insert_deployment(
            &tx, site_code, d, available, collection, &updates, package, None, priority, audit,
        )?;
        write_audit(&tx, audit)?;
        let out = load_deployment(&tx, id)?;
        tx.commit()?;
        Ok(out)
    }

    fn import_definitions(
        &self,
        site_code: &str,
        defs: &koshin_wire::DeploymentDefinitions,
        available_now: &str,
        enable: bool,
        audit: &AuditEntry,
    ) -> Result<koshin_wire::DefinitionsImported> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let mut out = koshin_wire::DefinitionsImported {
            site: defs.site.clone(),
            enabled: enable,
            ..Default::default()
        };
        // Every update first: a missing one refuses the whole file.
        let mut missing = Vec::new();
        for g in &defs.groups {
            for u in &g.updates {
                let known = tx
                    .query_row("SELECT 1 FROM updates WHERE id = ?1", params![u.id], |_| {
                        Ok(())
                    })
                    .optional()?
                    .is_some();
                if !known {
                    missing.push(format!("{} ({})", u.title, u.id));
                }
            }
        }
        if !missing.is_empty() {
            missing.sort();
            missing.dedup();
            let n = missing.len();
            missing.truncate(5);
            return Err(StoreError::Invalid(format!(
                "{n} update(s) of the file are not in this site's catalog, e.g. {}; sync, or import the catalog of site {} first (koshin catalog import)",
                missing.join(", "),
                defs.site
            )));
        }
        for g in &defs.groups {
            let want: std::collections::BTreeSet<&str> =
                g.updates.iter().map(|u| u.id.as_str()).collect();
            match group_key(&tx, &g.name) {
                Ok(id) => {
                    let have: std::collections::BTreeSet<String> = tx
                        .prepare_cached(
                            "SELECT update_id FROM update_group_members WHERE grp = ?1",
                        )?
                        .query_map(params![id], |r| r.get(0))?
                        .collect::<rusqlite::Result<_>>()?;
                    if have.iter().map(String::as_str).ne(want.iter().copied()) {
                        return Err(StoreError::Conflict(format!(
                            "update group '{}' exists here with other updates; rename one of them and import again",
                            g.name
                        )));
                    }
                    out.groups_unchanged.push(g.name.clone());
                }
                Err(StoreError::NotFound(_)) => {
                    tx.execute(
                        "INSERT INTO update_groups(name, description, created_ms, created_by) VALUES (?1,?2,?3,?4)",
                        params![g.name, g.description, audit.time_ms, audit.actor],
                    )?;
                    let id = tx.last_insert_rowid();
                    for u in &want {
                        tx.execute(
                            "INSERT OR IGNORE INTO update_group_members(grp, update_id) VALUES (?1, ?2)",
                            params![id, u],
                        )?;
                    }
                    out.groups_created.push(g.name.clone());
                }
                Err(e) => return Err(e),
            }
        }
        for def in &defs.deployments {
            let d = &def.spec;
            let existing: Option<i64> = tx
                .query_row(
                    "SELECT id FROM deployments WHERE name = ?1",
                    params![d.name],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(id) = existing {
                let have = load_deployment(&tx, id)?;
                let (collection, _) = collection_key(&tx, &d.collection)?;
                let (want_collection, _) = collection_key(&tx, &have.collection)?;
                if have.update_group != d.update_group
                    || have.program != d.program
                    || collection != want_collection
                {
                    return Err(StoreError::Conflict(format!(
                        "deployment '{}' exists here with another update group, program or collection; rename one of them and import again",
                        d.name
                    )));
                }
                out.deployments_unchanged.push(d.name.clone());
                continue;
            }
            let (collection, _) = collection_key(&tx, &d.collection).map_err(|e| match e {
                StoreError::NotFound(_) => StoreError::Invalid(format!(
                    "deployment '{}' goes to collection '{}', which this site does not have; create it first",
                    d.name, d.collection
                )),
                other => other,
            })?;
            let (updates, package) = deployment_content(&tx, d)?;
            let available = d.available.as_deref().unwrap_or(available_now);
            check_time(available)?;
            let priority = d
                .priority
                .as_deref()
                .and_then(Priority::parse)
                .unwrap_or(Priority::Medium);
            let id = insert_deployment(
                &tx, site_code, d, available, collection, &updates, package, None, priority, audit,
            )?;
            if !(enable && def.enabled) {
                tx.execute(
                    "UPDATE deployments SET enabled = 0 WHERE id = ?1",
                    params![id],
                )?;
            }
            out.deployments_created.push(d.name.clone());
        }
        write_audit(&tx, audit)?;
        tx.commit()?;
        Ok(out)
    }

    fn list_deployments(&self, scope: &Scope) -> Result<Vec<DeploymentOut>> {
        let conn = self.reader();
        let ids: Vec<i64> = conn
            .prepare_cached("SELECT id FROM deployments ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::new();
        for id in ids {
            let mut d = load_deployment(&conn, id)?;
            d.summary = state_counts(&conn, id, scope)?;
            out.push(d);
        }
        Ok(out)
    }

    fn deployment_page(
        &self,
        key: &str,
        scope: &Scope,
        page: Paging,
    ) -> Result<Option<(DeploymentDetail, u64)>> {
        let conn = self.reader();
        let id = match deployment_key(&conn, key) {
            Ok(id) => id,
            Err(StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut d = load_deployment(&conn, id)?;
        let now = jiff::Timestamp::now().as_millisecond();
        d.summary = state_counts(&conn, id, scope)?;
        let total = d.summary.values().sum::<i64>();
        let clients = client_states(&conn, id, d.recurrence_days, scope, now, page)?;
        Ok(Some((
            DeploymentDetail {
                deployment: d,
                clients,
            },
            u64::try_from(total).unwrap_or(0),
        )))
    }

    fn set_deployment_enabled(
        &self,
        key: &str,
        enabled: bool,
        reenable_ms: Option<i64>,
        audit: &AuditEntry,
    ) -> Result<DeploymentOut> {
        self.change_deployment(key, audit, |tx, id| {
            tx.execute(
                "UPDATE deployments SET enabled = ?2, reenable_ms = ?3 WHERE id = ?1",
                params![
                    id,
                    i64::from(enabled),
                    if enabled { None } else { reenable_ms }
                ],
            )?;
            Ok(())
        })
    }

    fn remove_deployment_update(
        &self,
        key: &str,
        update: &str,
        audit: &AuditEntry,
    ) -> Result<DeploymentOut> {
        self.change_deployment(key, audit, |tx, id| {
            let uid = resolve_update_key(tx, update)?;
            let n = tx.execute(
                "UPDATE deployment_updates SET removed_ms = ?3 WHERE deployment = ?1 AND update_id = ?2 AND removed_ms IS NULL",
                params![id, uid, audit.time_ms],
            )?;
            if n == 0 {
                return Err(StoreError::NotFound(format!(
                    "update '{update}' in deployment '{key}'"
                )));
            }
            Ok(())
        })
    }

    fn rerun_deployment(&self, key: &str, audit: &AuditEntry) -> Result<DeploymentOut> {
        self.change_deployment(key, audit, |tx, id| {
            tx.execute(
                "UPDATE deployments SET generation = generation + 1 WHERE id = ?1",
                params![id],
            )?;
            Ok(())
        })
    }

    fn rollback_deployment(
        &self,
        site_code: &str,
        key: &str,
        name: &str,
        audit: &AuditEntry,
    ) -> Result<DeploymentOut> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let id = deployment_key(&tx, key)?;
        let original = load_deployment(&tx, id)?;
        // The previous version of each deployed update: the update it superseded.
        let mut previous = Vec::new();
        let mut missing = Vec::new();
        for u in original.updates.iter().filter(|u| u.removed.is_none()) {
            let prev: Option<(String, String)> = tx
                .query_row(
                    "SELECT id, title FROM updates WHERE superseded_by = ?1 ORDER BY revised_ms DESC LIMIT 1",
                    params![u.id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((pid, ptitle)) = prev else {
                missing.push(format!("{}: no earlier version in the catalog", u.title));
                continue;
            };
            let mut stmt = tx.prepare_cached(
                "SELECT b.name, b.version, b.sha256 FROM update_binaries b
                 WHERE b.update_id = ?1 AND NOT EXISTS (SELECT 1 FROM content_files c WHERE c.sha256 = b.sha256)",
            )?;
            let absent: Vec<String> = stmt
                .query_map(params![pid], |r| {
                    Ok(format!(
                        "{} {} (SHA-256 {})",
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            if absent.is_empty() {
                previous.push(pid);
            } else {
                missing.push(format!(
                    "{ptitle}: the content library does not hold {}",
                    absent.join(", ")
                ));
            }
        }
        if !missing.is_empty() {
            return Err(StoreError::Invalid(format!(
                "cannot roll back {}: {}",
                original.name,
                missing.join("; ")
            )));
        }
        let (collection, _) = collection_key(&tx, &original.collection)?;
        let spec = NewDeployment {
            name: name.to_string(),
            update_group: format!("{} (rollback)", original.update_group),
            collection: original.collection.clone(),
            available: None,
            deadline: None,
            utc: true,
            allow_postpone: Some(false),
            notification: format!("Rollback of {}", original.name),
            suppress_restart_servers: original.suppress_restart_servers,
            suppress_restart_workstations: original.suppress_restart_workstations,
            install_from_dp: original.install_from_dp,
            recurrence_days: None,
            expedited_inventory: original.expedited_inventory,
            program: None,
            priority: None,
            distribution_points: Vec::new(),
        };
        let now = jiff::Timestamp::from_millisecond(audit.time_ms)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
            .to_zoned(jiff::tz::TimeZone::UTC)
            .datetime()
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string();
        let new = insert_deployment(
            &tx,
            site_code,
            &spec,
            &now,
            collection,
            &previous,
            None,
            Some(id),
            Priority::High,
            audit,
        )?;
        // The original stops: its updates would otherwise be installed again.
        tx.execute(
            "UPDATE deployments SET enabled = 0 WHERE id = ?1",
            params![id],
        )?;
        write_audit(&tx, audit)?;
        let d = load_deployment(&tx, new)?;
        tx.commit()?;
        Ok(d)
    }

    fn add_window(
        &self,
        collection: &str,
        name: &str,
        spec: &str,
        audit: &AuditEntry,
    ) -> Result<WindowOut> {
        let w = MaintenanceWindow::parse(spec).map_err(StoreError::Invalid)?;
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let (k, _) = collection_key(&tx, collection)?;
        let n = tx.execute(
            "INSERT INTO maintenance_windows(collection, name, spec, created_ms, created_by) VALUES (?1,?2,?3,?4,?5)
             ON CONFLICT(collection, name) DO UPDATE SET spec = excluded.spec",
            params![k, name, w.to_string(), audit.time_ms, audit.actor],
        )?;
        debug_assert!(n <= 1);
        write_audit(&tx, audit)?;
        let cname: String = tx.query_row(
            "SELECT name FROM collections WHERE id = ?1",
            params![k],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(WindowOut {
            collection: cname,
            name: name.to_string(),
            schedule: w.to_string(),
        })
    }

    fn remove_window(&self, collection: &str, name: &str, audit: &AuditEntry) -> Result<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let (k, _) = collection_key(&tx, collection)?;
        let n = tx.execute(
            "DELETE FROM maintenance_windows WHERE collection = ?1 AND name = ?2",
            params![k, name],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!(
                "maintenance window '{name}' of collection '{collection}'"
            )));
        }
        write_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn list_windows(&self) -> Result<Vec<WindowOut>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT k.name, w.name, w.spec FROM maintenance_windows w JOIN collections k ON k.id = w.collection ORDER BY 1, 2",
        )?;
        Ok(stmt
            .query_map([], |r| {
                Ok(WindowOut {
                    collection: r.get(0)?,
                    name: r.get(1)?,
                    schedule: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    fn client_deployments(&self, client: i64, now_ms: i64) -> Result<Vec<DeploymentPolicy>> {
        let conn = self.reader();
        // Windows of every collection the client is in.
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT w.spec FROM maintenance_windows w JOIN collections k ON k.id = w.collection
             JOIN clients c ON c.id = ?1 WHERE {} ORDER BY w.id",
            member_sql()
        ))?;
        let windows: Vec<String> = stmt
            .query_map(params![client], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT d.id FROM deployments d JOIN collections k ON k.id = d.collection JOIN clients c ON c.id = ?1
             WHERE {} AND (d.enabled = 1 OR (d.reenable_ms IS NOT NULL AND d.reenable_ms <= ?2))
             ORDER BY d.id",
            member_sql()
        ))?;
        let ids: Vec<i64> = stmt
            .query_map(params![client, now_ms], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let d = load_deployment(&conn, id)?;
            let rollback = d.rollback_of.is_some();
            let mut updates = Vec::new();
            for u in d.updates.iter().filter(|u| u.removed.is_none()) {
                let mut stmt = conn.prepare_cached(
                    "SELECT name, version, architecture, filename, sha256, size FROM update_binaries
                     WHERE update_id = ?1 ORDER BY name, architecture",
                )?;
                let files = stmt
                    .query_map(params![u.id], |r| {
                        let sha: String = r.get(4)?;
                        let filename: String = r.get(3)?;
                        let base = filename.rsplit('/').next().unwrap_or(&filename).to_string();
                        Ok(DeployedFile {
                            package: r.get(0)?,
                            version: r.get(1)?,
                            architecture: r.get(2)?,
                            pool_path: format!(
                                "pool/{}/{sha}/{base}",
                                sha.get(..2).unwrap_or("00")
                            ),
                            sha256: sha,
                            size: r.get::<_, i64>(5)? as u64,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
                updates.push(DeployedUpdate {
                    update_id: u.id.clone(),
                    title: u.title.clone(),
                    files,
                });
            }
            let mut stmt = conn.prepare_cached(
                "SELECT p.name FROM package_targets t JOIN distribution_points p ON p.id = t.dp
                 JOIN deployments d ON d.package = t.package WHERE d.id = ?1 AND t.state = 'installed' ORDER BY 1",
            )?;
            let content_on = stmt
                .query_map(params![id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let scan_catalog = match d.program {
                Some(_) => program_file(&conn, id)?,
                None => None,
            };
            out.push(DeploymentPolicy {
                id: d.id,
                name: d.name,
                generation: d.generation,
                available: d.available,
                deadline: d.deadline,
                utc: d.utc,
                allow_postpone: d.allow_postpone,
                notification: d.notification,
                suppress_restart_servers: d.suppress_restart_servers,
                suppress_restart_workstations: d.suppress_restart_workstations,
                install_from_dp: d.install_from_dp,
                recurrence_days: d.recurrence_days,
                expedited_inventory: d.expedited_inventory,
                rollback,
                updates,
                windows: windows.clone(),
                content_on,
                scan_catalog,
            });
        }
        Ok(out)
    }

    fn report_deployment_status(
        &self,
        client: i64,
        deployment_id: &str,
        generation: i64,
        state: &str,
        detail: &str,
        time_ms: i64,
    ) -> Result<()> {
        let conn = lock(&self.writer);
        let id = deployment_key(&conn, deployment_id)?;
        conn.execute(
            "INSERT INTO deployment_status(client, deployment, generation, state, detail, time_ms, last_success_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, CASE WHEN ?4 = 'succeeded' THEN ?6 END)
             ON CONFLICT(client, deployment) DO UPDATE SET generation = excluded.generation, state = excluded.state,
                 detail = excluded.detail, time_ms = excluded.time_ms,
                 last_success_ms = COALESCE(excluded.last_success_ms, deployment_status.last_success_ms)
             WHERE excluded.time_ms >= deployment_status.time_ms",
            params![client, id, generation, state, detail, time_ms],
        )?;
        Ok(())
    }
}

/// The file a program deployment's client fetches: its package's one file (the offline
/// scan catalog's Debian package), where distribution points keep it.
fn program_file(conn: &Connection, deployment: i64) -> Result<Option<DeployedFile>> {
    Ok(conn
        .query_row(
            "SELECT f.sha256, f.size, c.control FROM deployments d
             JOIN package_files f ON f.package = d.package
             JOIN content_files c ON c.sha256 = f.sha256
             WHERE d.id = ?1 ORDER BY f.name LIMIT 1",
            params![deployment],
            |r| {
                let sha: String = r.get(0)?;
                let size: i64 = r.get(1)?;
                let control: String = r.get(2)?;
                Ok((sha, size, control))
            },
        )
        .optional()?
        .map(|(sha, size, control)| {
            let field = |name: &str| {
                control
                    .lines()
                    .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default()
            };
            let (package, version, architecture) =
                (field("Package"), field("Version"), field("Architecture"));
            let base = format!("{package}_{version}_{architecture}.deb");
            DeployedFile {
                pool_path: format!("pool/{}/{sha}/{base}", sha.get(..2).unwrap_or("00")),
                package,
                version,
                architecture,
                sha256: sha,
                size: size.max(0) as u64,
            }
        }))
}

/// The package a program deployment runs from: the site's offline scan catalog package.
/// What a deployment installs: its update group's updates, or for a program deployment no
/// updates and the program's package.
fn deployment_content(tx: &Connection, d: &NewDeployment) -> Result<(Vec<String>, Option<i64>)> {
    if let Some(program) = &d.program {
        return Ok((Vec::new(), Some(program_package(tx, program, d)?)));
    }
    let group = group_key(tx, &d.update_group)?;
    let updates = tx
        .prepare_cached("SELECT update_id FROM update_group_members WHERE grp = ?1 ORDER BY 1")?
        .query_map(params![group], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok((updates, None))
}

fn program_package(tx: &Connection, program: &str, d: &NewDeployment) -> Result<i64> {
    if !koshin_wire::PROGRAMS.contains(&program) {
        return Err(StoreError::Invalid(format!(
            "unknown program '{program}'; the programs are {}",
            koshin_wire::PROGRAMS.join(", ")
        )));
    }
    if !d.update_group.is_empty() {
        return Err(StoreError::Invalid(
            "a program deployment installs no updates: give a program or an update group, not both"
                .into(),
        ));
    }
    tx.query_row(
        "SELECT id FROM content_packages WHERE name = ?1",
        params![koshin_wire::OFFLINE_CATALOG_PACKAGE],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| {
        StoreError::Invalid(format!(
            "the site has no '{}' package yet: make the offline scan catalog first \
             (koshin catalog offline FILE, or at the sync host's next refresh)",
            koshin_wire::OFFLINE_CATALOG_PACKAGE
        ))
    })
}

#[allow(clippy::too_many_arguments)]
fn insert_deployment(
    tx: &Connection,
    site_code: &str,
    d: &NewDeployment,
    available: &str,
    collection: i64,
    updates: &[String],
    program_package: Option<i64>,
    rollback_of: Option<i64>,
    priority: Priority,
    audit: &AuditEntry,
) -> Result<i64> {
    let (id, deployment_id) = next_deployment_id(tx, site_code)?;
    let package = match program_package {
        // A program's package is the site's own: it is on the points it is on, and on any
        // named here besides.
        Some(package) => {
            distribute_tx(tx, package, &d.distribution_points, &[], audit.time_ms)?;
            package
        }
        None => {
            let package = create_package_tx(
                tx,
                site_code,
                &format!("{} content", d.name),
                priority,
                updates,
                audit,
            )?;
            let dps = if d.distribution_points.is_empty() {
                all_dps(tx)?
            } else {
                d.distribution_points.clone()
            };
            distribute_tx(tx, package, &dps, &[], audit.time_ms)?;
            package
        }
    };
    let expedited = d.expedited_inventory
        || d.program.as_deref() == Some(koshin_wire::PROGRAM_OFFLINE_SCAN_EXPEDITED);
    tx.execute(
        "INSERT INTO deployments(id, deployment_id, name, update_group, collection, package, available, deadline, utc,
             allow_postpone, notification, suppress_servers, suppress_workstations, download_first, recurrence_days,
             rollback_of, created_ms, created_by, expedited_inventory, program)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,?19,?20)",
        params![
            id,
            deployment_id,
            d.name,
            d.update_group,
            collection,
            package,
            available,
            d.deadline,
            i64::from(d.utc),
            i64::from(d.allow_postpone.unwrap_or(true)),
            d.notification,
            i64::from(d.suppress_restart_servers),
            i64::from(d.suppress_restart_workstations),
            i64::from(!d.install_from_dp),
            d.recurrence_days.map(i64::from),
            rollback_of,
            audit.time_ms,
            audit.actor,
            i64::from(expedited),
            d.program,
        ],
    )?;
    for u in updates {
        tx.execute(
            "INSERT OR IGNORE INTO deployment_updates(deployment, update_id) VALUES (?1, ?2)",
            params![id, u],
        )?;
    }
    Ok(id)
}
