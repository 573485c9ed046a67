//! Collections and administrators' scopes. All Systems has no member rows: it is every
//! client. A scoped administrator sees the members of their collections and nothing else;
//! [`SqliteStore::scope_clients`] turns a scope into the set of client keys every query of
//! theirs is filtered by.

use std::collections::HashSet;

use koshin_domain::Scope;
use koshin_domain::collections::{ALL_SYSTEMS_ID, Rules, collection_id};
use rusqlite::{Connection, OptionalExtension, params};

use crate::clients::single;
use crate::membership::{Evaluated, rules_from};
use crate::sqlite::{SqliteStore, lock};
use crate::traits::{
    AuditEntry, CollectionMember, CollectionRecord, CollectionStore, CollectionVersion, Paging,
};
use crate::trust::write_audit;
use crate::{Result, StoreError};

/// The client keys a scope covers; `None` is every client.
pub(crate) fn scope_clients(conn: &Connection, scope: &Scope) -> Result<Option<HashSet<i64>>> {
    let Scope::Collections(ids) = scope else {
        return Ok(None);
    };
    let json = serde_json::to_string(ids).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT m.client FROM collection_members m JOIN collections k ON k.id = m.collection
         WHERE k.collection_id IN (SELECT value FROM json_each(?1))",
    )?;
    let set = stmt
        .query_map(params![json], |r| r.get(0))?
        .collect::<rusqlite::Result<HashSet<i64>>>()?;
    Ok(Some(set))
}

/// The scope as an SQL condition on the client key `column`, with its one parameter: NULL
/// for every client, or the JSON list of the scope's collection ids (the same members as
/// `scope_clients`).
pub(crate) fn scope_sql(column: &str, param: usize) -> String {
    format!(
        "(?{param} IS NULL OR {column} IN (SELECT sm.client FROM collection_members sm JOIN collections sk ON sk.id = sm.collection WHERE sk.collection_id IN (SELECT value FROM json_each(?{param}))))"
    )
}

/// The parameter of `scope_sql`.
pub(crate) fn scope_param(scope: &Scope) -> Result<Option<String>> {
    match scope {
        Scope::All => Ok(None),
        Scope::Collections(ids) => serde_json::to_string(ids)
            .map(Some)
            .map_err(|e| StoreError::Invalid(e.to_string())),
    }
}

/// Whether client `key` is inside the scope.
pub(crate) fn in_scope(set: &Option<HashSet<i64>>, key: i64) -> bool {
    set.as_ref().is_none_or(|s| s.contains(&key))
}

struct Found {
    key: i64,
    record: CollectionRecord,
}

fn find(conn: &Connection, key: &str) -> Result<Option<Found>> {
    let row = conn
        .query_row(
            "SELECT k.id, k.collection_id, k.name, k.comment, k.built_in, k.created_ms, k.created_by,
                    k.version, k.query, k.limiting, k.includes, k.excludes, k.origin,
                    e.evaluated_ms, e.full_ms
             FROM collections k LEFT JOIN collection_evaluations e ON e.collection = k.id
             WHERE k.collection_id = ?1 COLLATE NOCASE OR k.name = ?1",
            params![key],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    CollectionRecord {
                        id: r.get(1)?,
                        name: r.get(2)?,
                        comment: r.get(3)?,
                        built_in: r.get::<_, i64>(4)? != 0,
                        members: 0,
                        created_ms: r.get(5)?,
                        created_by: r.get(6)?,
                        version: r.get(7)?,
                        rules: Rules::default(),
                        origin: r.get(12)?,
                        evaluated_ms: r.get(13)?,
                        full_evaluated_ms: r.get(14)?,
                    },
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<String>>(9)?,
                    r.get::<_, String>(10)?,
                    r.get::<_, String>(11)?,
                ))
            },
        )
        .optional()?;
    let Some((key, mut record, query, limiting, includes, excludes)) = row else {
        return Ok(None);
    };
    record.rules = rules_from(query, limiting, &includes, &excludes)?;
    Ok(Some(Found { key, record }))
}

/// Rules as an administrator wrote them (collections by id or name, a query in any
/// spelling) made into what is stored: collection ids, the query in its canonical form.
fn resolve_rules(conn: &Connection, own: Option<&str>, rules: &Rules) -> Result<Rules> {
    let id_of = |name: &str| -> Result<String> {
        let found = find(conn, name)?.ok_or_else(|| {
            StoreError::NotFound(format!("collection '{name}' (koshin collections list)"))
        })?;
        if Some(found.record.id.as_str()) == own {
            return Err(StoreError::Invalid(format!(
                "{} cannot read its own members in its rules",
                found.record.name
            )));
        }
        Ok(found.record.id)
    };
    let limiting = match &rules.limiting {
        None => None,
        Some(l) => Some(id_of(l)?).filter(|id| id != ALL_SYSTEMS_ID),
    };
    let mut includes = Vec::new();
    for i in &rules.includes {
        let id = id_of(i)?;
        if !includes.contains(&id) {
            includes.push(id);
        }
    }
    let mut excludes = Vec::new();
    for e in &rules.excludes {
        let id = id_of(e)?;
        if !excludes.contains(&id) {
            excludes.push(id);
        }
    }
    let query = match &rules.query {
        None => None,
        Some(q) if q.trim().is_empty() => None,
        Some(q) => Some(
            koshin_domain::query::parse(q)
                .map_err(|e| StoreError::Invalid(format!("query: {e}")))?
                .text(),
        ),
    };
    Ok(Rules {
        query,
        limiting,
        includes,
        excludes,
    })
}

fn to_json(list: &[String]) -> Result<String> {
    serde_json::to_string(list).map_err(|e| StoreError::Invalid(e.to_string()))
}

/// Makes `rules` the collection's current rules and saves them as its next version.
fn save_rules(
    tx: &Connection,
    key: i64,
    version: i64,
    rules: &Rules,
    note: &str,
    audit: &AuditEntry,
) -> Result<()> {
    let (includes, excludes) = (to_json(&rules.includes)?, to_json(&rules.excludes)?);
    tx.execute(
        "UPDATE collections SET version = ?2, query = ?3, limiting = ?4, includes = ?5, excludes = ?6
         WHERE id = ?1",
        params![key, version, rules.query, rules.limiting, includes, excludes],
    )?;
    tx.execute(
        "INSERT INTO collection_versions(collection, version, query, limiting, includes, excludes,
                                         saved_ms, saved_by, note)
         VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)",
        params![
            key,
            version,
            rules.query,
            rules.limiting,
            includes,
            excludes,
            audit.time_ms,
            audit.actor,
            note
        ],
    )?;
    Ok(())
}

/// A local, not built-in collection (rules and direct members can change).
fn changeable(tx: &Connection, key: &str) -> Result<Found> {
    let found = find(tx, key)?.ok_or_else(|| not_found(key))?;
    crate::global::refuse_replicated(tx, "collections", found.key)?;
    if found.record.built_in {
        return Err(StoreError::Invalid(format!(
            "{} ({}) holds every client; it has no rules or members to change",
            found.record.name, found.record.id
        )));
    }
    Ok(found)
}

/// Saves `rules` (already resolved) as the next version of `found` and evaluates it and
/// what reads it.
fn apply_rules(
    tx: &Connection,
    found: &Found,
    rules: &Rules,
    note: &str,
    audit: &AuditEntry,
) -> Result<CollectionRecord> {
    crate::membership::check_no_cycle(tx, &found.record.id, rules)?;
    save_rules(tx, found.key, found.record.version + 1, rules, note, audit)?;
    crate::membership::evaluate_full(
        tx,
        Some(std::slice::from_ref(&found.record.id)),
        audit.time_ms,
    )?;
    write_audit(tx, audit)?;
    let f = find(tx, &found.record.id)?.ok_or_else(|| not_found(&found.record.id))?;
    let (_, n) = members(tx, &f, &Scope::All, COUNT_ONLY)?;
    let mut record = f.record;
    record.members = i64::try_from(n).unwrap_or(i64::MAX);
    Ok(record)
}

fn not_found(key: &str) -> StoreError {
    StoreError::NotFound(format!("collection '{key}'"))
}

/// The members of a collection (every client for All Systems) inside the scope.
/// No members, only how many there are.
const COUNT_ONLY: Paging = Paging {
    offset: 0,
    limit: Some(0),
};

/// One page of a collection's members inside the scope, in name order, and how many
/// there are.
fn members(
    conn: &Connection,
    c: &Found,
    scope: &Scope,
    page: Paging,
) -> Result<(Vec<CollectionMember>, u64)> {
    let (rows_sql, count_sql) = if c.record.id == ALL_SYSTEMS_ID {
        (
            format!(
                "SELECT name, client_id, enrolled_ms, 'koshin', 'all' FROM clients c
                 WHERE ?1 = ?1 AND {} ORDER BY name, client_id LIMIT ?3 OFFSET ?4",
                scope_sql("c.id", 2)
            ),
            format!(
                "SELECT COUNT(*) FROM clients c WHERE ?1 = ?1 AND {}",
                scope_sql("c.id", 2)
            ),
        )
    } else {
        (
            format!(
                "SELECT c.name, c.client_id, m.added_ms, m.added_by, m.via FROM collection_members m
                 JOIN clients c ON c.id = m.client WHERE m.collection = ?1 AND {}
                 ORDER BY c.name, c.client_id LIMIT ?3 OFFSET ?4",
                scope_sql("m.client", 2)
            ),
            format!(
                "SELECT COUNT(*) FROM collection_members m WHERE m.collection = ?1 AND {}",
                scope_sql("m.client", 2)
            ),
        )
    };
    let scope = scope_param(scope)?;
    let total: i64 = conn
        .prepare_cached(&count_sql)?
        .query_row(params![c.key, scope], |r| r.get(0))?;
    let (limit, offset) = page.sql();
    let mut stmt = conn.prepare_cached(&rows_sql)?;
    let out = stmt
        .query_map(params![c.key, scope, limit, offset], |r| {
            Ok(CollectionMember {
                name: r.get(0)?,
                client_id: r.get(1)?,
                added_ms: r.get(2)?,
                added_by: r.get(3)?,
                via: r.get(4)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((out, u64::try_from(total).unwrap_or(0)))
}

/// The collections an administrator of this scope may see: all of them, or those of the
/// scope.
fn visible(record: &CollectionRecord, scope: &Scope) -> bool {
    match scope {
        Scope::All => true,
        Scope::Collections(ids) => ids.iter().any(|i| i == &record.id),
    }
}

/// The client key of a client named by name or client id.
fn client_key(conn: &Connection, key: &str) -> Result<i64> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM clients WHERE name = ?1 COLLATE NOCASE OR client_id = ?1 LIMIT 2",
    )?;
    let found = stmt
        .query_map(params![key], |r| r.get::<_, i64>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    single(found, key)?.ok_or_else(|| StoreError::NotFound(format!("client '{key}'")))
}

impl CollectionStore for SqliteStore {
    fn create_collection(
        &self,
        site_code: &str,
        name: &str,
        comment: &str,
        rules: &Rules,
        audit: &AuditEntry,
    ) -> Result<CollectionRecord> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        if find(&tx, name)?.is_some() {
            return Err(StoreError::Conflict(format!(
                "a collection named '{name}' exists already"
            )));
        }
        let rules = resolve_rules(&tx, None, rules)?;
        let next: i64 = tx.query_row("SELECT MAX(id) + 1 FROM collections", [], |r| r.get(0))?;
        let id = collection_id(site_code, next);
        tx.execute(
            "INSERT INTO collections(id, collection_id, name, comment, created_ms, created_by, version)
             VALUES (?1,?2,?3,?4,?5,?6,0)",
            params![next, id, name, comment, audit.time_ms, audit.actor],
        )?;
        let found = find(&tx, &id)?.ok_or_else(|| not_found(&id))?;
        let record = apply_rules(&tx, &found, &rules, "created", audit)?;
        tx.commit()?;
        Ok(record)
    }

    fn set_collection_rules(
        &self,
        key: &str,
        rules: &Rules,
        note: &str,
        audit: &AuditEntry,
    ) -> Result<CollectionRecord> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let found = changeable(&tx, key)?;
        let rules = resolve_rules(&tx, Some(&found.record.id), rules)?;
        if rules == found.record.rules {
            return Err(StoreError::Invalid(format!(
                "these are the rules of {} already (version {})",
                found.record.name, found.record.version
            )));
        }
        let record = apply_rules(&tx, &found, &rules, note, audit)?;
        tx.commit()?;
        Ok(record)
    }

    fn rollback_collection(
        &self,
        key: &str,
        version: i64,
        audit: &AuditEntry,
    ) -> Result<CollectionRecord> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let found = changeable(&tx, key)?;
        let row = tx
            .query_row(
                "SELECT query, limiting, includes, excludes FROM collection_versions
                 WHERE collection = ?1 AND version = ?2",
                params![found.key, version],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<String>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()?
            .ok_or_else(|| {
                StoreError::NotFound(format!(
                    "version {version} of {} (koshin collections history {})",
                    found.record.name, found.record.name
                ))
            })?;
        let rules = rules_from(row.0, row.1, &row.2, &row.3)?;
        // The collections it read may have gone since.
        for id in rules.depends_on() {
            if find(&tx, id)?.is_none() {
                return Err(StoreError::Invalid(format!(
                    "version {version} reads collection {id}, which no longer exists"
                )));
            }
        }
        let record = apply_rules(
            &tx,
            &found,
            &rules,
            &format!("rollback to version {version}"),
            audit,
        )?;
        tx.commit()?;
        Ok(record)
    }

    fn collection_history(&self, key: &str, scope: &Scope) -> Result<Vec<CollectionVersion>> {
        let conn = self.reader();
        let found = find(&conn, key)?.ok_or_else(|| not_found(key))?;
        if !visible(&found.record, scope) {
            return Err(not_found(key));
        }
        let mut stmt = conn.prepare_cached(
            "SELECT version, query, limiting, includes, excludes, saved_ms, saved_by, note
             FROM collection_versions WHERE collection = ?1 ORDER BY version",
        )?;
        let rows = stmt
            .query_map(params![found.key], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (version, query, limiting, includes, excludes, saved_ms, saved_by, note) in rows {
            out.push(CollectionVersion {
                version,
                rules: rules_from(query, limiting, &includes, &excludes)?,
                saved_ms,
                saved_by,
                note,
                current: version == found.record.version,
            });
        }
        Ok(out)
    }

    fn evaluate_collections(
        &self,
        key: Option<&str>,
        full: bool,
        now_ms: i64,
    ) -> Result<Evaluated> {
        let mut conn = lock(&self.writer);
        let mut out = crate::membership::evaluate_incremental(&mut conn, now_ms)?;
        let tx = conn.transaction()?;
        let changed = match key {
            Some(k) => {
                let found = find(&tx, k)?.ok_or_else(|| not_found(k))?;
                if found.record.built_in || found.record.origin.is_some() {
                    return Err(StoreError::Invalid(format!(
                        "{} is {}; it is not evaluated here",
                        found.record.name,
                        match &found.record.origin {
                            Some(o) => format!("replicated from site {o}"),
                            None => "every client".to_string(),
                        }
                    )));
                }
                Some(vec![found.record.id])
            }
            None => None,
        };
        if key.is_some() || full {
            let e = crate::membership::evaluate_full(&tx, changed.as_deref(), now_ms)?;
            out.collections = out.collections.max(e.collections);
            out.clients += e.clients;
            out.joined += e.joined;
            out.left += e.left;
        }
        tx.commit()?;
        Ok(out)
    }

    fn list_collections(&self, scope: &Scope) -> Result<Vec<CollectionRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached("SELECT collection_id FROM collections ORDER BY id")?;
        let ids = stmt
            .query_map([], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut out = Vec::new();
        for id in ids {
            let Some(found) = find(&conn, &id)? else {
                continue;
            };
            if !visible(&found.record, scope) {
                continue;
            }
            let (_, n) = members(&conn, &found, scope, COUNT_ONLY)?;
            let mut record = found.record;
            record.members = i64::try_from(n).unwrap_or(i64::MAX);
            out.push(record);
        }
        Ok(out)
    }

    fn collection_page(
        &self,
        key: &str,
        scope: &Scope,
        page: Paging,
    ) -> Result<Option<(CollectionRecord, Vec<CollectionMember>, u64)>> {
        let conn = self.reader();
        let Some(found) = find(&conn, key)? else {
            return Ok(None);
        };
        if !visible(&found.record, scope) {
            return Ok(None);
        }
        let (m, total) = members(&conn, &found, scope, page)?;
        let mut record = found.record;
        record.members = i64::try_from(total).unwrap_or(i64::MAX);
        Ok(Some((record, m, total)))
    }

    fn change_members(
        &self,
        key: &str,
        add: &[String],
        remove: &[String],
        scope: &Scope,
        audit: &AuditEntry,
    ) -> Result<(usize, usize)> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let found = changeable(&tx, key)?;
        let set = scope_clients(&tx, scope)?;
        let keys = |names: &[String]| -> Result<Vec<i64>> {
            let mut out = Vec::with_capacity(names.len());
            for n in names {
                let k = client_key(&tx, n)?;
                if !in_scope(&set, k) {
                    return Err(StoreError::NotFound(format!("client '{n}' in your scope")));
                }
                out.push(k);
            }
            Ok(out)
        };
        let add = keys(add)?;
        let remove = keys(remove)?;
        let mut added = 0;
        for k in add {
            added += tx.execute(
                "INSERT INTO collection_direct(collection, client, added_ms, added_by) VALUES (?1,?2,?3,?4)
                 ON CONFLICT DO NOTHING",
                params![found.key, k, audit.time_ms, audit.actor],
            )?;
        }
        let mut removed = 0;
        for k in remove {
            removed += tx.execute(
                "DELETE FROM collection_direct WHERE collection = ?1 AND client = ?2",
                params![found.key, k],
            )?;
        }
        crate::membership::evaluate_full(
            &tx,
            Some(std::slice::from_ref(&found.record.id)),
            audit.time_ms,
        )?;
        write_audit(&tx, audit)?;
        tx.commit()?;
        Ok((added, removed))
    }

    fn delete_collection(&self, key: &str, audit: &AuditEntry) -> Result<CollectionRecord> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let found = find(&tx, key)?.ok_or_else(|| not_found(key))?;
        crate::global::refuse_replicated(&tx, "collections", found.key)?;
        if found.record.built_in {
            return Err(StoreError::Invalid(format!(
                "{} is built in and cannot be deleted",
                found.record.name
            )));
        }
        let scoped: Option<String> = tx
            .query_row(
                "SELECT a.name FROM admins a, json_each(a.scopes) j
                 WHERE j.value = ?1 AND a.disabled_ms IS NULL LIMIT 1",
                params![found.record.id],
                |r| r.get(0),
            )
            .optional()?;
        let reader: Option<String> = tx
            .query_row(
                "SELECT name FROM collections WHERE id != ?2 AND (limiting = ?1
                     OR EXISTS (SELECT 1 FROM json_each(includes) WHERE value = ?1)
                     OR EXISTS (SELECT 1 FROM json_each(excludes) WHERE value = ?1)) LIMIT 1",
                params![found.record.id, found.key],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(other) = reader {
            return Err(StoreError::Conflict(format!(
                "the rules of collection {other} read {}; change them first (koshin collections set)",
                found.record.name
            )));
        }
        if let Some(admin) = scoped {
            return Err(StoreError::Conflict(format!(
                "{} is the scope of administrator {admin}; change their scope first (koshin admins scope)",
                found.record.name
            )));
        }
        tx.execute("DELETE FROM collections WHERE id = ?1", params![found.key])?;
        write_audit(&tx, audit)?;
        tx.commit()?;
        Ok(found.record)
    }

    fn resolve_collections(&self, keys: &[String]) -> Result<Vec<String>> {
        let conn = self.reader();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let found = find(&conn, k)?.ok_or_else(|| not_found(k))?;
            if !out.contains(&found.record.id) {
                out.push(found.record.id);
            }
        }
        Ok(out)
    }

    fn set_admin_scopes(&self, name: &str, scopes: &[String], audit: &AuditEntry) -> Result<()> {
        let json = serde_json::to_string(scopes).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let n = tx.execute(
            "UPDATE admins SET scopes = ?2 WHERE name = ?1",
            params![name, json],
        )?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("administrator '{name}'")));
        }
        write_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }
}
