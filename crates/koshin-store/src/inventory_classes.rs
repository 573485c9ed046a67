//! Custom inventory classes: each property and its source, stored as the wire
//! `InventorySource` JSON. Machine policy carries them to clients: a change rewrites the
//! stored policy (a new version) in its own transaction, and a policy stored by a sync
//! takes the classes held in the transaction that stores it.

use koshin_wire::{InventoryClassProperty, InventorySource};
use rusqlite::{Connection, OptionalExtension, params};

use crate::sqlite::{SqliteStore, lock};
use crate::traits::{AuditEntry, InventoryClassRecord, InventoryClassStore};
use crate::trust::write_audit;
use crate::{Result, StoreError};

fn read_all(conn: &Connection) -> Result<Vec<InventoryClassRecord>> {
    let rows: Vec<(String, String, String, i64, String)> = conn
        .prepare_cached(
            "SELECT class, property, source, changed_ms, changed_by FROM inventory_classes
             ORDER BY class, property",
        )?
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    rows.into_iter()
        .map(|(class, property, source, changed_ms, changed_by)| {
            let source: InventorySource = serde_json::from_str(&source).map_err(|e| {
                StoreError::Corrupt(format!(
                    "inventory class property {class}.{property}: unreadable source: {e}"
                ))
            })?;
            Ok(InventoryClassRecord {
                property: InventoryClassProperty {
                    class,
                    property,
                    source,
                },
                changed_ms,
                changed_by,
            })
        })
        .collect()
}

/// The classes as machine policy carries them (JSON), or None when there are none.
pub(crate) fn policy_classes(conn: &Connection) -> Result<Option<serde_json::Value>> {
    let list: Vec<InventoryClassProperty> =
        read_all(conn)?.into_iter().map(|r| r.property).collect();
    if list.is_empty() {
        return Ok(None);
    }
    serde_json::to_value(list)
        .map(Some)
        .map_err(|e| StoreError::Invalid(e.to_string()))
}

/// Puts the classes held into a machine policy body (removes them when there are none).
pub(crate) fn overlay(conn: &Connection, body: &mut serde_json::Value) -> Result<()> {
    let classes = policy_classes(conn)?;
    if let Some(o) = body.as_object_mut() {
        match classes {
            Some(c) => {
                o.insert("inventory_classes".into(), c);
            }
            None => {
                o.remove("inventory_classes");
            }
        }
    }
    Ok(())
}

/// After a change of the classes: the stored machine policy, if there is one, takes them
/// and a new version, so that clients see a new policy.
fn republish(conn: &Connection, now_ms: i64) -> Result<()> {
    let stored: Option<(i64, String)> = conn
        .query_row(
            "SELECT version, body FROM machine_policy WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((version, body)) = stored else {
        return Ok(());
    };
    let mut body: serde_json::Value = serde_json::from_str(&body)
        .map_err(|e| StoreError::Corrupt(format!("stored machine policy: {e}")))?;
    overlay(conn, &mut body)?;
    let v = version + 1;
    if let Some(o) = body.as_object_mut() {
        o.insert("policy_version".into(), v.into());
    }
    conn.execute(
        "UPDATE machine_policy SET version = ?1, body = ?2, created_ms = ?3 WHERE id = 1",
        params![v, body.to_string(), now_ms],
    )?;
    Ok(())
}

impl InventoryClassStore for SqliteStore {
    fn inventory_classes(&self) -> Result<Vec<InventoryClassRecord>> {
        read_all(&self.reader())
    }

    fn set_inventory_class(
        &self,
        p: &InventoryClassProperty,
        audit: &AuditEntry,
    ) -> Result<InventoryClassRecord> {
        let source =
            serde_json::to_string(&p.source).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let count: i64 = tx.query_row(
            "SELECT COUNT(*) FROM inventory_classes WHERE NOT (class = ?1 AND property = ?2)",
            params![p.class, p.property],
            |r| r.get(0),
        )?;
        if count as usize >= koshin_domain::inventory_classes::MAX_PROPERTIES {
            return Err(StoreError::Invalid(format!(
                "a site has at most {} inventory class properties",
                koshin_domain::inventory_classes::MAX_PROPERTIES
            )));
        }
        tx.execute(
            "INSERT INTO inventory_classes(class, property, source, changed_ms, changed_by)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(class, property) DO UPDATE SET source = excluded.source,
                 changed_ms = excluded.changed_ms, changed_by = excluded.changed_by",
            params![p.class, p.property, source, audit.time_ms, audit.actor],
        )?;
        write_audit(&tx, audit)?;
        republish(&tx, audit.time_ms)?;
        tx.commit()?;
        Ok(InventoryClassRecord {
            property: p.clone(),
            changed_ms: audit.time_ms,
            changed_by: audit.actor.clone(),
        })
    }

    fn delete_inventory_class(
        &self,
        class: &str,
        property: Option<&str>,
        audit: &AuditEntry,
    ) -> Result<usize> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let n = match property {
            Some(p) => tx.execute(
                "DELETE FROM inventory_classes WHERE class = ?1 AND property = ?2",
                params![class, p],
            )?,
            None => tx.execute(
                "DELETE FROM inventory_classes WHERE class = ?1",
                params![class],
            )?,
        };
        if n == 0 {
            return Err(StoreError::NotFound(match property {
                Some(p) => format!("inventory class property {class}.{p}"),
                None => format!("inventory class {class}"),
            }));
        }
        write_audit(&tx, audit)?;
        republish(&tx, audit.time_ms)?;
        tx.commit()?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traits::{PolicyStore, TrustStore};

    fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            time_ms: 1000,
            actor: "admin".into(),
            role: "Full Administrator".into(),
            action: action.into(),
            target: "app".into(),
            detail: String::new(),
            source: String::new(),
        }
    }

    fn prop(class: &str, property: &str, key: &str) -> InventoryClassProperty {
        InventoryClassProperty {
            class: class.into(),
            property: property.into(),
            source: InventorySource::File {
                path: "/etc/app.conf".into(),
                format: "key-value".into(),
                key: key.into(),
            },
        }
    }

    /// Classes are stored, replaced and deleted with an audit entry each; the stored
    /// policy takes them with a new version, and a policy stored later keeps them.
    #[test]
    fn classes_change_the_machine_policy() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("site.db")).expect("open");
        // Before any policy: stored, nothing to republish.
        store
            .set_inventory_class(&prop("app", "tier", "TIER"), &entry("set"))
            .expect("set");
        let v1 = store
            .put_machine_policy(&serde_json::json!({"site": "CS1"}), 1)
            .expect("policy");
        let (_, body) = store.machine_policy().expect("read").expect("policy");
        assert_eq!(body["inventory_classes"][0]["property"], "tier");
        assert_eq!(body["inventory_classes"][0]["source"]["key"], "TIER");

        store
            .set_inventory_class(&prop("app", "tier", "LEVEL"), &entry("set"))
            .expect("replace");
        store
            .set_inventory_class(&prop("app", "region", "REGION"), &entry("set"))
            .expect("set");
        let (v3, body) = store.machine_policy().expect("read").expect("policy");
        assert_eq!(v3, v1 + 2);
        assert_eq!(body["policy_version"], v3);
        assert_eq!(body["inventory_classes"].as_array().map(Vec::len), Some(2));
        let listed = store.inventory_classes().expect("list");
        assert_eq!(
            listed
                .iter()
                .map(|r| r.property.property.as_str())
                .collect::<Vec<_>>(),
            ["region", "tier"]
        );
        assert_eq!(listed[1].property, prop("app", "tier", "LEVEL"));

        assert!(matches!(
            store.delete_inventory_class("app", Some("nope"), &entry("delete")),
            Err(StoreError::NotFound(_))
        ));
        assert_eq!(
            store
                .delete_inventory_class("app", Some("tier"), &entry("delete"))
                .expect("delete one"),
            1
        );
        assert_eq!(
            store
                .delete_inventory_class("app", None, &entry("delete"))
                .expect("delete class"),
            1
        );
        let (v5, body) = store.machine_policy().expect("read").expect("policy");
        assert_eq!(v5, v3 + 2);
        assert!(body.get("inventory_classes").is_none(), "{body}");
        assert!(matches!(
            store.delete_inventory_class("app", None, &entry("delete")),
            Err(StoreError::NotFound(_))
        ));
        let audit = store.audit_log(0, 100).expect("audit");
        assert_eq!(audit.iter().filter(|e| e.action == "set").count(), 3);
        assert_eq!(audit.iter().filter(|e| e.action == "delete").count(), 2);
    }
}
