//! Collections and administrators' scopes. All Systems has no member rows: it is every
//! client. A scoped administrator sees the members of their collections and nothing else;
//! [`SqliteStore::scope_clients`] turns a scope into the set of client keys every query of
//! theirs is filtered by.

use std::collections::HashSet;

use koshin_domain::Scope;
use koshin_domain::collections::{ALL_SYSTEMS_ID, collection_id};
use rusqlite::{Connection, OptionalExtension, params};

use crate::clients::single;
use crate::sqlite::{SqliteStore, lock};
use crate::traits::{AuditEntry, CollectionMember, CollectionRecord, CollectionStore};
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

/// Whether client `key` is inside the scope.
pub(crate) fn in_scope(set: &Option<HashSet<i64>>, key: i64) -> bool {
    set.as_ref().is_none_or(|s| s.contains(&key))
}

struct Found {
    key: i64,
    record: CollectionRecord,
}

fn find(conn: &Connection, key: &str) -> Result<Option<Found>> {
    conn.query_row(
        "SELECT id, collection_id, name, comment, built_in, created_ms, created_by FROM collections
         WHERE collection_id = ?1 COLLATE NOCASE OR name = ?1",
        params![key],
        |r| {
            Ok(Found {
                key: r.get(0)?,
                record: CollectionRecord {
                    id: r.get(1)?,
                    name: r.get(2)?,
                    comment: r.get(3)?,
                    built_in: r.get::<_, i64>(4)? != 0,
                    members: 0,
                    created_ms: r.get(5)?,
                    created_by: r.get(6)?,
                },
            })
        },
    )
    .optional()
    .map_err(Into::into)
}

fn not_found(key: &str) -> StoreError {
    StoreError::NotFound(format!("collection '{key}'"))
}

/// The members of a collection (every client for All Systems) inside the scope.
fn members(
    conn: &Connection,
    c: &Found,
    scope: &Option<HashSet<i64>>,
) -> Result<Vec<CollectionMember>> {
    let sql = if c.record.id == ALL_SYSTEMS_ID {
        "SELECT id, name, client_id, enrolled_ms, 'koshin' FROM clients WHERE ?1 = ?1 ORDER BY name, client_id"
    } else {
        "SELECT c.id, c.name, c.client_id, m.added_ms, m.added_by FROM collection_members m
         JOIN clients c ON c.id = m.client WHERE m.collection = ?1 ORDER BY c.name, c.client_id"
    };
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(params![c.key], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            CollectionMember {
                name: r.get(1)?,
                client_id: r.get(2)?,
                added_ms: r.get(3)?,
                added_by: r.get(4)?,
            },
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (key, m) = row?;
        if in_scope(scope, key) {
            out.push(m);
        }
    }
    Ok(out)
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
        audit: &AuditEntry,
    ) -> Result<CollectionRecord> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        if find(&tx, name)?.is_some() {
            return Err(StoreError::Conflict(format!(
                "a collection named '{name}' exists already"
            )));
        }
        let next: i64 = tx.query_row("SELECT MAX(id) + 1 FROM collections", [], |r| r.get(0))?;
        let id = collection_id(site_code, next);
        tx.execute(
            "INSERT INTO collections(id, collection_id, name, comment, created_ms, created_by) VALUES (?1,?2,?3,?4,?5,?6)",
            params![next, id, name, comment, audit.time_ms, audit.actor],
        )?;
        write_audit(&tx, audit)?;
        let found = find(&tx, &id)?.ok_or_else(|| not_found(&id))?;
        tx.commit()?;
        Ok(found.record)
    }

    fn list_collections(&self, scope: &Scope) -> Result<Vec<CollectionRecord>> {
        let conn = self.reader();
        let set = scope_clients(&conn, scope)?;
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
            let n = members(&conn, &found, &set)?.len();
            let mut record = found.record;
            record.members = i64::try_from(n).unwrap_or(i64::MAX);
            out.push(record);
        }
        Ok(out)
    }

    fn collection(
        &self,
        key: &str,
        scope: &Scope,
    ) -> Result<Option<(CollectionRecord, Vec<CollectionMember>)>> {
        let conn = self.reader();
        let Some(found) = find(&conn, key)? else {
            return Ok(None);
        };
        if !visible(&found.record, scope) {
            return Ok(None);
        }
        let set = scope_clients(&conn, scope)?;
        let m = members(&conn, &found, &set)?;
        let mut record = found.record;
        record.members = i64::try_from(m.len()).unwrap_or(i64::MAX);
        Ok(Some((record, m)))
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
        let found = find(&tx, key)?.ok_or_else(|| not_found(key))?;
        crate::global::refuse_replicated(&tx, "collections", found.key)?;
        if found.record.built_in {
            return Err(StoreError::Invalid(format!(
                "{} ({}) holds every client; its members cannot be changed",
                found.record.name, found.record.id
            )));
        }
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
                "INSERT INTO collection_members(collection, client, added_ms, added_by) VALUES (?1,?2,?3,?4)
                 ON CONFLICT DO NOTHING",
                params![found.key, k, audit.time_ms, audit.actor],
            )?;
        }
        let mut removed = 0;
        for k in remove {
            removed += tx.execute(
                "DELETE FROM collection_members WHERE collection = ?1 AND client = ?2",
                params![found.key, k],
            )?;
        }
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
