//! Collection membership. `collection_members` holds each collection's evaluated members,
//! with how each got there; this module keeps it true to the rules.
//!
//! A client is a member when it is in the limiting collection (All Systems when none), in
//! none of the excluded collections, and a direct member, a member of an included
//! collection, or matched by the query. Collections are evaluated after the collections
//! their rules read ([`evaluation_order`]), so one pass settles them all.
//!
//! - **Full** evaluation judges every candidate of a collection. It runs when the rules or
//!   the direct members change (for that collection and every collection that reads it, in
//!   the change's transaction), and on the site's full schedule.
//! - **Incremental** evaluation judges only the clients marked in `collection_dirty`. SQL
//!   triggers mark a client when it enrols, its inventory arrives or an update state of it
//!   changes (migration 15), so a machine that installed an update leaves "missing X" at the
//!   next incremental pass.
//!
//! Collections replicated from a parent site are not evaluated here: their members come
//! from the site that owns them.

use std::collections::{HashMap, HashSet};

use koshin_domain::collections::{
    ALL_SYSTEMS_ID, Rules, VIA_DIRECT, VIA_INCLUDE, VIA_QUERY, evaluation_order,
};
use koshin_domain::query::Query;
use rusqlite::{Connection, OptionalExtension, params};

use crate::{Result, StoreError};

/// At most this many marked clients are judged in one write transaction.
const INCREMENTAL_CHUNK: usize = 2_000;

/// What an evaluation changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Evaluated {
    /// Collections evaluated.
    pub collections: usize,
    /// Clients judged (candidates of a full evaluation, marked clients of an incremental).
    pub clients: usize,
    pub joined: usize,
    pub left: usize,
}

impl Evaluated {
    fn add(&mut self, o: &Evaluated) {
        self.collections += o.collections;
        self.clients += o.clients;
        self.joined += o.joined;
        self.left += o.left;
    }
}

/// A collection this site evaluates.
struct Def {
    key: i64,
    id: String,
    rules: Rules,
    query: Option<Query>,
}

fn json_list(text: &str, what: &str) -> Result<Vec<String>> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("collection {what} '{text}': {e}")))
}

/// The rules as stored on a collections or collection_versions row.
pub(crate) fn rules_from(
    query: Option<String>,
    limiting: Option<String>,
    includes: &str,
    excludes: &str,
) -> Result<Rules> {
    Ok(Rules {
        query,
        limiting,
        includes: json_list(includes, "includes")?,
        excludes: json_list(excludes, "excludes")?,
    })
}

/// This site's own collections (not All Systems, not replicated ones), in evaluation order.
fn definitions(conn: &Connection) -> Result<Vec<Def>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, collection_id, query, limiting, includes, excludes FROM collections
         WHERE built_in = 0 AND origin IS NULL ORDER BY id",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut defs = Vec::with_capacity(rows.len());
    for (key, id, query, limiting, includes, excludes) in rows {
        let rules = rules_from(query, limiting, &includes, &excludes)?;
        let query =
            match &rules.query {
                None => None,
                Some(q) => Some(koshin_domain::query::parse(q).map_err(|e| {
                    StoreError::Corrupt(format!("the query of collection {id}: {e}"))
                })?),
            };
        defs.push(Def {
            key,
            id,
            rules,
            query,
        });
    }
    let ids: Vec<String> = defs.iter().map(|d| d.id.clone()).collect();
    let deps: Vec<Vec<String>> = defs
        .iter()
        .map(|d| {
            d.rules
                .depends_on()
                .into_iter()
                .map(str::to_string)
                .collect()
        })
        .collect();
    let order = evaluation_order(&ids, &deps).map_err(|id| {
        StoreError::Corrupt(format!(
            "collection {id} reads itself through its rules; change them"
        ))
    })?;
    let mut slots: Vec<Option<Def>> = defs.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect())
}

/// Refuses rules that would make collections read each other in a circle, naming one.
pub(crate) fn check_no_cycle(conn: &Connection, id: &str, rules: &Rules) -> Result<()> {
    let mut stmt = conn.prepare_cached(
        "SELECT collection_id, limiting, includes, excludes FROM collections WHERE built_in = 0",
    )?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut ids = Vec::with_capacity(rows.len());
    let mut deps = Vec::with_capacity(rows.len());
    for (cid, limiting, includes, excludes) in rows {
        let r = if cid == id {
            rules.clone()
        } else {
            rules_from(None, limiting, &includes, &excludes)?
        };
        deps.push(r.depends_on().into_iter().map(str::to_string).collect());
        ids.push(cid);
    }
    evaluation_order(&ids, &deps).map(|_| ()).map_err(|on| {
        StoreError::Invalid(format!(
            "these rules would make collection {on} read itself (through limiting, included or excluded collections)"
        ))
    })
}

/// Reads memberships, with collection ids resolved once.
struct Members<'a> {
    conn: &'a Connection,
    keys: HashMap<String, i64>,
}

impl<'a> Members<'a> {
    fn new(conn: &'a Connection) -> Result<Self> {
        let mut stmt = conn.prepare_cached("SELECT collection_id, id FROM collections")?;
        let keys = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
            .collect::<rusqlite::Result<HashMap<_, _>>>()?;
        Ok(Members { conn, keys })
    }

    /// Whether `client` is a member of collection `id` as it stands (a collection that no
    /// longer exists has none).
    fn has(&self, id: &str, client: i64) -> Result<bool> {
        if id == ALL_SYSTEMS_ID {
            return Ok(true);
        }
        let Some(key) = self.keys.get(id) else {
            return Ok(false);
        };
        Ok(self
            .conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM collection_members WHERE collection = ?1 AND client = ?2)",
            )?
            .query_row(params![key, client], |r| r.get(0))?)
    }

    /// Every member of collection `id` (every client for All Systems).
    fn all(&self, id: Option<&str>) -> Result<HashSet<i64>> {
        let key = match id {
            None => None,
            Some(ALL_SYSTEMS_ID) => None,
            Some(id) => match self.keys.get(id) {
                Some(k) => Some(*k),
                None => return Ok(HashSet::new()),
            },
        };
        let set = match key {
            None => self
                .conn
                .prepare_cached("SELECT id FROM clients")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<HashSet<i64>>>()?,
            Some(k) => self
                .conn
                .prepare_cached("SELECT client FROM collection_members WHERE collection = ?1")?
                .query_map(params![k], |r| r.get(0))?
                .collect::<rusqlite::Result<HashSet<i64>>>()?,
        };
        Ok(set)
    }
}

/// How `client` is a member of `def`, or `None`.
fn judge(m: &Members, def: &Def, client: i64) -> Result<Option<&'static str>> {
    if let Some(l) = &def.rules.limiting
        && !m.has(l, client)?
    {
        return Ok(None);
    }
    for e in &def.rules.excludes {
        if m.has(e, client)? {
            return Ok(None);
        }
    }
    let direct: bool = m
        .conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM collection_direct WHERE collection = ?1 AND client = ?2)",
        )?
        .query_row(params![def.key, client], |r| r.get(0))?;
    if direct {
        return Ok(Some(VIA_DIRECT));
    }
    for i in &def.rules.includes {
        if m.has(i, client)? {
            return Ok(Some(VIA_INCLUDE));
        }
    }
    if let Some(q) = &def.query {
        let facts = crate::inventory::ClientFacts::new(m.conn, client);
        if q.matches(&facts) {
            return Ok(Some(VIA_QUERY));
        }
    }
    Ok(None)
}

/// Makes `client`'s row in `def` say `via` (or go); counts a join or a leave.
fn settle(
    conn: &Connection,
    def: &Def,
    client: i64,
    via: Option<&str>,
    now_ms: i64,
    out: &mut Evaluated,
) -> Result<()> {
    let have: Option<String> = conn
        .prepare_cached("SELECT via FROM collection_members WHERE collection = ?1 AND client = ?2")?
        .query_row(params![def.key, client], |r| r.get(0))
        .optional()?;
    match (have.as_deref(), via) {
        (None, Some(v)) => {
            let by: String = if v == VIA_DIRECT {
                conn.prepare_cached(
                    "SELECT added_by FROM collection_direct WHERE collection = ?1 AND client = ?2",
                )?
                .query_row(params![def.key, client], |r| r.get(0))
                .optional()?
                .unwrap_or_else(|| v.to_string())
            } else {
                v.to_string()
            };
            conn.prepare_cached(
                "INSERT INTO collection_members(collection, client, added_ms, added_by, via)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![def.key, client, now_ms, by, v])?;
            out.joined += 1;
        }
        (Some(_), None) => {
            conn.prepare_cached(
                "DELETE FROM collection_members WHERE collection = ?1 AND client = ?2",
            )?
            .execute(params![def.key, client])?;
            out.left += 1;
        }
        (Some(old), Some(v)) if old != v => {
            conn.prepare_cached(
                "UPDATE collection_members SET via = ?3 WHERE collection = ?1 AND client = ?2",
            )?
            .execute(params![def.key, client, v])?;
        }
        _ => {}
    }
    Ok(())
}

fn record(conn: &Connection, key: i64, full: bool, e: &Evaluated, now_ms: i64) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO collection_evaluations(collection, evaluated_ms, full_ms, joined, left_)
         VALUES (?1, ?2, ?2, ?3, ?4)
         ON CONFLICT(collection) DO UPDATE SET evaluated_ms = ?2,
             full_ms = CASE WHEN ?5 THEN ?2 ELSE full_ms END,
             joined = joined + ?3, left_ = left_ + ?4",
    )?
    .execute(params![key, now_ms, e.joined as i64, e.left as i64, full])?;
    Ok(())
}

/// Judges every candidate of `def`: the clients it may hold, and those it holds.
fn full(m: &Members, def: &Def, now_ms: i64) -> Result<Evaluated> {
    let mut candidates = if def.query.is_some() {
        m.all(def.rules.limiting.as_deref())?
    } else {
        let mut set: HashSet<i64> = m
            .conn
            .prepare_cached("SELECT client FROM collection_direct WHERE collection = ?1")?
            .query_map(params![def.key], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        for i in &def.rules.includes {
            set.extend(m.all(Some(i))?);
        }
        set
    };
    candidates.extend(m.all(Some(&def.id))?);
    let mut sorted: Vec<i64> = candidates.into_iter().collect();
    sorted.sort_unstable();
    let mut out = Evaluated {
        collections: 1,
        clients: sorted.len(),
        ..Evaluated::default()
    };
    for client in sorted {
        let via = judge(m, def, client)?;
        settle(m.conn, def, client, via, now_ms, &mut out)?;
    }
    record(m.conn, def.key, true, &out, now_ms)?;
    Ok(out)
}

/// Evaluates in full the collections `changed` (by id; `None` for all of this site's) and
/// every collection that reads them, on `conn` (the caller's transaction).
pub(crate) fn evaluate_full(
    conn: &Connection,
    changed: Option<&[String]>,
    now_ms: i64,
) -> Result<Evaluated> {
    let defs = definitions(conn)?;
    let m = Members::new(conn)?;
    let mut dirty: HashSet<String> = changed
        .map(|c| c.iter().cloned().collect())
        .unwrap_or_default();
    let mut out = Evaluated::default();
    for def in &defs {
        let reads_dirty = def.rules.depends_on().iter().any(|d| dirty.contains(*d));
        if changed.is_none() || dirty.contains(&def.id) || reads_dirty {
            dirty.insert(def.id.clone());
            out.add(&full(&m, def, now_ms)?);
        }
    }
    Ok(out)
}

/// Judges the clients marked since the last pass against every collection of this site,
/// a chunk of them per transaction; returns what changed.
pub(crate) fn evaluate_incremental(conn: &mut Connection, now_ms: i64) -> Result<Evaluated> {
    let mut total = Evaluated::default();
    loop {
        let tx = conn.transaction()?;
        let clients: Vec<i64> = tx
            .prepare_cached("SELECT client FROM collection_dirty ORDER BY client LIMIT ?1")?
            .query_map(params![INCREMENTAL_CHUNK as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        if clients.is_empty() {
            break;
        }
        let defs = definitions(&tx)?;
        let m = Members::new(&tx)?;
        let mut chunk = Evaluated {
            clients: clients.len(),
            ..Evaluated::default()
        };
        for def in &defs {
            let mut e = Evaluated::default();
            for &client in &clients {
                let via = judge(&m, def, client)?;
                settle(&tx, def, client, via, now_ms, &mut e)?;
            }
            record(&tx, def.key, false, &e, now_ms)?;
            chunk.joined += e.joined;
            chunk.left += e.left;
        }
        chunk.collections = defs.len();
        {
            let mut done = tx.prepare_cached("DELETE FROM collection_dirty WHERE client = ?1")?;
            for client in &clients {
                done.execute(params![client])?;
            }
        }
        tx.commit()?;
        total.clients += chunk.clients;
        total.collections = total.collections.max(chunk.collections);
        total.joined += chunk.joined;
        total.left += chunk.left;
        if clients.len() < INCREMENTAL_CHUNK {
            break;
        }
    }
    Ok(total)
}
