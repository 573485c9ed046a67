//! Client inventory: properties and installed packages, stored whole or changed against the
//! inventory the site holds (named by its hash), in one transaction.

use koshin_wire::{InventoryAck, InventoryReport};
use rusqlite::{Connection, OptionalExtension, params};

use crate::sqlite::{SqliteStore, lock};
use crate::{Result, StoreError};

/// At most this many properties, values per property and packages in one report.
const MAX_PROPERTIES: usize = 10_000;
const MAX_VALUES: usize = 1_000;
const MAX_PACKAGES: usize = 200_000;

fn check(r: &InventoryReport) -> Result<()> {
    let bad = |m: String| Err(StoreError::Invalid(m));
    if r.hash.is_empty() || r.hash.len() > 128 {
        return bad("an inventory names itself with a hash of 1 to 128 characters".into());
    }
    if r.properties.len() + r.removed_properties.len() > MAX_PROPERTIES {
        return bad(format!("more than {MAX_PROPERTIES} properties"));
    }
    if r.packages.len() + r.removed_packages.len() > MAX_PACKAGES {
        return bad(format!("more than {MAX_PACKAGES} packages"));
    }
    for (k, v) in &r.properties {
        if k.is_empty() || k.len() > 200 {
            return bad(format!("property name '{k}' must have 1 to 200 characters"));
        }
        if v.len() > MAX_VALUES || v.iter().any(|x| x.len() > 4096) {
            return bad(format!(
                "property '{k}': at most {MAX_VALUES} values of at most 4096 characters"
            ));
        }
    }
    Ok(())
}

fn held(conn: &Connection, client: i64) -> Result<(i64, i64)> {
    Ok((
        conn.query_row(
            "SELECT COUNT(*) FROM inventory WHERE client = ?1",
            params![client],
            |r| r.get(0),
        )?,
        conn.query_row(
            "SELECT COUNT(*) FROM inventory_packages WHERE client = ?1",
            params![client],
            |r| r.get(0),
        )?,
    ))
}

pub(crate) fn store(
    conn: &mut Connection,
    client: i64,
    r: &InventoryReport,
    now_ms: i64,
) -> Result<InventoryAck> {
    check(r)?;
    let tx = conn.transaction()?;
    let have: Option<String> = tx
        .query_row(
            "SELECT inventory_hash FROM clients WHERE id = ?1",
            params![client],
            |row| row.get(0),
        )
        .optional()?
        .flatten();
    match &r.base {
        None => {
            tx.execute("DELETE FROM inventory WHERE client = ?1", params![client])?;
            tx.execute(
                "DELETE FROM inventory_packages WHERE client = ?1",
                params![client],
            )?;
        }
        Some(base) if have.as_deref() != Some(base.as_str()) => {
            return Err(StoreError::Conflict(format!(
                "the site holds inventory {}, not {base}: send the whole inventory",
                have.as_deref().unwrap_or("none")
            )));
        }
        Some(_) => {}
    }
    {
        let mut del =
            tx.prepare_cached("DELETE FROM inventory WHERE client = ?1 AND property = ?2")?;
        let mut add = tx.prepare_cached(
            "INSERT OR IGNORE INTO inventory(client, property, value) VALUES (?1, ?2, ?3)",
        )?;
        for p in &r.removed_properties {
            del.execute(params![client, p])?;
        }
        for (p, values) in &r.properties {
            del.execute(params![client, p])?;
            for v in values {
                add.execute(params![client, p, v])?;
            }
        }
        let mut del =
            tx.prepare_cached("DELETE FROM inventory_packages WHERE client = ?1 AND package = ?2")?;
        let mut add = tx.prepare_cached(
            "INSERT INTO inventory_packages(client, package, version) VALUES (?1, ?2, ?3)
             ON CONFLICT(client, package) DO UPDATE SET version = excluded.version",
        )?;
        for p in &r.removed_packages {
            del.execute(params![client, p])?;
        }
        for (p, v) in &r.packages {
            add.execute(params![client, p, v])?;
        }
    }
    tx.execute(
        "UPDATE clients SET inventory_hash = ?2, inventory_ms = ?3 WHERE id = ?1",
        params![client, r.hash, now_ms],
    )?;
    let (properties, packages) = held(&tx, client)?;
    tx.commit()?;
    Ok(InventoryAck {
        hash: r.hash.clone(),
        properties,
        packages,
    })
}

impl crate::traits::InventoryStore for SqliteStore {
    fn store_inventory(
        &self,
        client: i64,
        r: &InventoryReport,
        now_ms: i64,
    ) -> Result<InventoryAck> {
        let mut conn = lock(&self.writer);
        store(&mut conn, client, r, now_ms)
    }
}
