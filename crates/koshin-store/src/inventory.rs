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

    fn query_clients(
        &self,
        q: &koshin_domain::query::Query,
        scope: &koshin_domain::Scope,
    ) -> Result<Vec<(String, String)>> {
        let mut conn = self.reader();
        matching(&mut conn, q, scope)
    }
}

/// A client as the query language sees it at the site: its stored inventory and packages,
/// and its compliance state of each update (by update id or title).
pub(crate) struct ClientFacts<'a> {
    conn: &'a Connection,
    client: i64,
}

impl<'a> ClientFacts<'a> {
    pub(crate) fn new(conn: &'a Connection, client: i64) -> Self {
        ClientFacts { conn, client }
    }
}

impl koshin_domain::query::Facts for ClientFacts<'_> {
    fn property(&self, path: &str) -> Vec<String> {
        let values: Vec<String> = self
            .conn
            .prepare_cached("SELECT value FROM inventory WHERE client = ?1 AND property = ?2")
            .and_then(|mut s| {
                s.query_map(params![self.client, path], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()
            })
            .unwrap_or_default();
        if values.is_empty() && path == "name" {
            return self
                .conn
                .prepare_cached("SELECT name FROM clients WHERE id = ?1")
                .and_then(|mut s| s.query_row(params![self.client], |r| r.get(0)))
                .map(|n| vec![n])
                .unwrap_or_default();
        }
        values
    }

    fn installed_version(&self, package: &str) -> Option<String> {
        let sql = if package.contains(':') {
            "SELECT version FROM inventory_packages WHERE client = ?1 AND package = ?2"
        } else {
            "SELECT version FROM inventory_packages WHERE client = ?1
             AND package >= ?2 || ':' AND package < ?2 || ';' LIMIT 1"
        };
        self.conn
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.query_row(params![self.client, package], |r| r.get(0))
                    .optional()
            })
            .ok()
            .flatten()
    }

    fn update_state(&self, update: &str) -> Option<koshin_domain::UpdateState> {
        self.conn
            .prepare_cached(
                "SELECT s.state FROM update_states s JOIN updates u ON u.ukey = s.ukey
                 WHERE s.client = ?1 AND (u.id = ?2 OR u.title = ?2) LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row(params![self.client, update], |r| r.get::<_, i64>(0))
                    .optional()
            })
            .ok()
            .flatten()
            .and_then(koshin_domain::UpdateState::from_code)
    }
}

/// The clients (in `scope`) a query matches: (computer, client id), by name. One read
/// transaction, so every client is judged on the same data.
pub(crate) fn matching(
    conn: &mut Connection,
    q: &koshin_domain::query::Query,
    scope: &koshin_domain::Scope,
) -> Result<Vec<(String, String)>> {
    let tx = conn.transaction()?;
    let visible = crate::collections::scope_clients(&tx, scope)?;
    let clients: Vec<(i64, String, String)> = tx
        .prepare("SELECT id, name, client_id FROM clients ORDER BY name")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::new();
    for (key, name, client_id) in clients {
        if !crate::collections::in_scope(&visible, key) {
            continue;
        }
        let facts = ClientFacts::new(&tx, key);
        if q.matches(&facts) {
            out.push((name, client_id));
        }
    }
    Ok(out)
}
