//! The embedded SQLite backend: one writer connection and a small pool of readers, WAL
//! journal, `synchronous=FULL` (a committed write survives a crash of the process and of the
//! machine), foreign data only through bound parameters.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use jiff::Timestamp;
use koshin_domain::Scope;
use koshin_domain::catalog::{StoredUpdate, SyncPlan, UpdateCandidate, UpdateId};
use koshin_domain::status::{StatusMessage, description};
use koshin_domain::sync::SyncKind;
use koshin_wire::{
    CatalogCount, ComputerRef, StatusMessageOut, StatusQuery, SyncRun, UpdateBinary, UpdateDetail,
    UpdateQuery, UpdateSummary,
};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};

use crate::migrations::MIGRATIONS;
use crate::traits::*;
use crate::{Result, StoreError};

/// WAL pages after which the writer copies the WAL into the database itself (SQLite's own
/// default is 1,000): only when the background checkpointer has fallen that far behind.
const WRITER_CHECKPOINT_PAGES: i64 = 16_384;

/// How often the background checkpointer copies committed WAL pages into the database.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Copies the WAL into the database file on a thread and connection of its own, so the
/// writer does not: with SQLite's automatic checkpoint every commit that crosses the WAL
/// threshold also writes those pages into the database file and `fsync`s it, on the
/// writer's time — a third of it on a large site under load. Passive checkpoints never
/// block the writer or readers; the writer still checkpoints the rest itself when the WAL
/// reaches `WRITER_CHECKPOINT_PAGES`, which lets the WAL start over from its beginning.
/// Durability is unchanged: a commit is durable once its WAL frames are synced.
struct Checkpointer {
    stop: std::sync::Arc<(Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer> {
        let conn = open_conn(path)?;
        let stop = std::sync::Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let signal = stop.clone();
        let thread = std::thread::Builder::new()
            .name("site-db-checkpoint".into())
            .spawn(move || {
                let (stopped, wake) = &*signal;
                let mut guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
                while !*guard {
                    guard = wake
                        .wait_timeout(guard, CHECKPOINT_EVERY)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                    if *guard {
                        break;
                    }
                    drop(guard);
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::warn!(error = %e, "cannot copy the site database's WAL into it");
                    }
                    guard = stopped.lock().unwrap_or_else(|p| p.into_inner());
                }
            })
            .map_err(|e| StoreError::Invalid(format!("cannot start the WAL checkpointer: {e}")))?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (stopped, wake) = &*self.stop;
        *stopped.lock().unwrap_or_else(|p| p.into_inner()) = true;
        wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub struct SqliteStore {
    pub(crate) path: std::path::PathBuf,
    pub(crate) writer: Mutex<Connection>,
    pub(crate) readers: Vec<Mutex<Connection>>,
    /// Reports run here: opened read-only, so no report can write.
    pub(crate) report: Mutex<Connection>,
    next_reader: AtomicUsize,
    /// State-message batches waiting for the writer (group commit) and the update keys
    /// ingestion has looked up.
    pub(crate) ingest: crate::ingest::IngestQueue,
    _checkpointer: Checkpointer,
}

pub(crate) fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub(crate) fn lock(m: &Mutex<Connection>) -> std::sync::MutexGuard<'_, Connection> {
    // A panic while holding the lock leaves the connection usable: SQLite rolls back
    // an unfinished transaction when the Transaction guard drops.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A connection to the SQLite file at `path` with the site database's settings: WAL,
/// `synchronous=FULL`, foreign keys, the page cache size. `koshin bench ingest` opens its
/// raw-insert ceiling with the same settings, so the two figures compare like with like.
pub fn open_conn(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "cache_size", -65536)?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the site database at `path` and brings its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        let mut writer = open_conn(path)?;
        migrate(&mut writer)?;
        writer.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        // Every write transaction takes the write lock when it begins, where SQLite waits
        // for it (busy timeout). A deferred one that has read first gets "database is
        // locked" at once if another connection holds the lock for a moment then — as a
        // reader or the checkpointer does while it re-reads a WAL header being rewritten.
        writer.set_transaction_behavior(rusqlite::TransactionBehavior::Immediate);
        let readers = (0..3)
            .map(|_| open_conn(path).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        let mut report = crate::reports::open_read_only(path)?;
        crate::reports::guard(&mut report)?;
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers,
            report: Mutex::new(report),
            next_reader: AtomicUsize::new(0),
            ingest: crate::ingest::IngestQueue::default(),
            _checkpointer: Checkpointer::start(path)?,
        })
    }

    /// Sets up the site's first rows: its code and its update source.
    pub fn initialize_site(&self, site_code: &str, update_source_id: &str) -> Result<()> {
        let conn = lock(&self.writer);
        conn.execute(
            "INSERT OR IGNORE INTO site_kv(key, value) VALUES ('site_code', ?1)",
            params![site_code],
        )?;
        conn.execute(
            "INSERT OR IGNORE INTO update_sources(id, content_version) SELECT ?1, 0 WHERE NOT EXISTS (SELECT 1 FROM update_sources)",
            params![update_source_id],
        )?;
        conn.execute(
            "INSERT OR IGNORE INTO sync_status(site) VALUES (?1)",
            params![site_code],
        )?;
        Ok(())
    }

    pub(crate) fn reader(&self) -> std::sync::MutexGuard<'_, Connection> {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        lock(&self.readers[i])
    }

    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .reader()
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let supported = MIGRATIONS.len() as i64;
    if current > supported {
        return Err(StoreError::TooNew {
            found: current,
            supported,
        });
    }
    if current < supported {
        // The documented views are made again below; dropping them first lets a migration
        // rebuild a table they read without the old views in its way.
        let tx = conn.transaction()?;
        for v in crate::views::VIEW_NAMES.iter().rev() {
            tx.execute_batch(&format!("DROP VIEW IF EXISTS {v};"))?;
        }
        tx.commit()?;
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "applied site database migration");
    }
    let tx = conn.transaction()?;
    for v in crate::views::VIEW_NAMES.iter().rev() {
        tx.execute_batch(&format!("DROP VIEW IF EXISTS {v};"))?;
    }
    tx.execute_batch(crate::views::VIEWS)?;
    tx.commit()?;
    Ok(())
}

fn insert_binaries(tx: &rusqlite::Transaction<'_>, c: &UpdateCandidate) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO update_binaries(update_id, name, architecture, version, filename, size, sha256) VALUES (?1,?2,?3,?4,?5,?6,?7)",
    )?;
    let id = c.id.to_string();
    for b in &c.binaries {
        stmt.execute(params![
            id,
            b.name,
            b.architecture,
            b.version,
            b.filename,
            b.size as i64,
            b.sha256
        ])?;
    }
    Ok(())
}

/// One page of the clients (inside the scope) that require update `id`, in name order, and
/// how many require it. With every client in scope the count is the update's counter. A
/// widely required update is paged by walking the clients in name order and probing each
/// one's state (a page costs about its own length); a rarely required one from its state
/// rows, then sorted.
fn required_by(
    conn: &Connection,
    id: &str,
    scope: &Scope,
    page: Paging,
) -> Result<(Vec<ComputerRef>, u64)> {
    let Some(ukey) = conn
        .query_row("SELECT ukey FROM updates WHERE id = ?1", params![id], |r| {
            r.get::<_, i64>(0)
        })
        .optional()?
    else {
        return Ok((Vec::new(), 0));
    };
    let scope_sql = crate::collections::scope_sql("s.client", 2);
    let param = crate::collections::scope_param(scope)?;
    let total: i64 = if param.is_none() {
        conn.query_row(
            "SELECT COALESCE((SELECT required FROM update_summary WHERE ukey = ?1), 0)",
            params![ukey],
            |r| r.get(0),
        )?
    } else {
        conn.prepare_cached(&format!(
            "SELECT COUNT(*) FROM update_states s WHERE s.ukey = ?1 AND s.state = 1 AND {scope_sql}"
        ))?
        .query_row(params![ukey, param], |r| r.get(0))?
    };
    let (limit, offset) = page.sql();
    let sql = if total > 10_000 {
        format!(
            "SELECT c.name, c.client_id FROM clients c
             WHERE EXISTS (SELECT 1 FROM update_states s WHERE s.client = c.id AND s.ukey = ?1 AND s.state = 1 AND {scope_sql})
             ORDER BY c.name, c.client_id LIMIT ?3 OFFSET ?4"
        )
    } else {
        format!(
            "SELECT c.name, c.client_id FROM update_states s JOIN clients c ON c.id = s.client
             WHERE s.ukey = ?1 AND s.state = 1 AND {scope_sql}
             ORDER BY c.name, c.client_id LIMIT ?3 OFFSET ?4"
        )
    };
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![ukey, param, limit, offset], |r| {
            Ok(ComputerRef {
                name: r.get(0)?,
                id: r.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((rows, u64::try_from(total).unwrap_or(0)))
}

fn local_json(c: &UpdateCandidate) -> Result<Option<String>> {
    c.local
        .as_ref()
        .map(|l| serde_json::to_string(l).map_err(|e| StoreError::Invalid(e.to_string())))
        .transpose()
}

const SUMMARY_COLUMNS: &str = "id, revision, title, product, classification, article_id, bulletin_id, severity, released_ms, revised_ms, superseded_by, expired, source, version";

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<UpdateSummary> {
    Ok(UpdateSummary {
        id: r.get(0)?,
        revision: r.get(1)?,
        title: r.get(2)?,
        product: r.get(3)?,
        classification: r.get(4)?,
        article_id: r.get(5)?,
        bulletin_id: r.get(6)?,
        severity: r.get(7)?,
        released: ts(r.get(8)?),
        revised: ts(r.get(9)?),
        superseded_by: r.get(10)?,
        expired: r.get::<_, i64>(11)? != 0,
        source: r.get(12)?,
        version: r.get(13)?,
    })
}

/// The catalog as the sync plan compares it, read on `conn` (a reader, or a writer's
/// transaction).
pub(crate) fn stored_in(conn: &rusqlite::Connection) -> Result<Vec<StoredUpdate>> {
    let mut stmt = conn.prepare_cached(
            "SELECT id, revision, metadata_hash, expired, superseded_by, supersedence_group, version FROM updates",
        )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, u32>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)? != 0,
            r.get::<_, Option<String>>(4)?,
            r.get::<_, Option<String>>(5)?,
            r.get::<_, String>(6)?,
        ))
    })?;
    let parse = |s: &str| {
        uuid::Uuid::parse_str(s)
            .map(UpdateId)
            .map_err(|_| StoreError::Corrupt(format!("update id '{s}' is not a UUID")))
    };
    let mut out = Vec::new();
    for row in rows {
        let (id, revision, metadata_hash, expired, sup, group, version) = row?;
        out.push(StoredUpdate {
            id: parse(&id)?,
            revision,
            metadata_hash,
            expired,
            superseded_by: sup.as_deref().map(parse).transpose()?,
            group,
            version,
        });
    }
    Ok(out)
}

/// The row changes of a sync plan, inside the caller's transaction: every changed row takes
/// `new_cv` as the content version that changed it (a catalog export `--since` reads it).
pub(crate) fn apply_rows(
    tx: &rusqlite::Transaction<'_>,
    plan: &SyncPlan,
    new_cv: i64,
    now: i64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let total = (plan.inserts.len()
        + plan.revisions.len()
        + plan.expire.len()
        + plan.unexpire.len()
        + plan.supersedence.len()) as u64;
    let mut done = 0u64;
    let mut tick = |n: &mut u64| {
        *n += 1;
        if n.is_multiple_of(1024) {
            progress(*n, total);
        }
    };
    {
        // A new update's integer key (state rows and counters refer to it) follows the
        // largest one given; `added_cv` is the catalog version that first holds it.
        let mut ukey: i64 = if plan.inserts.is_empty() {
            0
        } else {
            tx.query_row("SELECT COALESCE(MAX(ukey), 0) FROM updates", [], |r| {
                r.get(0)
            })?
        };
        let mut ins = tx.prepare_cached(
                "INSERT INTO updates(id, revision, metadata_hash, product, classification, title, description, vendor, article_id, bulletin_id, severity, source, version, supersedence_group, released_ms, revised_ms, first_synced_ms, expired, local_json, content_version, ukey, added_cv) VALUES (?1,1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?15,0,?16,?17,?18,?17)",
            )?;
        for c in &plan.inserts {
            ukey += 1;
            ins.execute(params![
                c.id.to_string(),
                c.metadata_hash(),
                c.product,
                c.classification.name(),
                c.title,
                c.description,
                c.vendor,
                c.article_id,
                c.bulletin_id,
                c.severity,
                c.source,
                c.version,
                c.supersedence_group(),
                c.released * 1000,
                now,
                local_json(c)?,
                new_cv,
                ukey
            ])?;
            insert_binaries(tx, c)?;
            tick(&mut done);
        }
        let mut upd = tx.prepare_cached(
                "UPDATE updates SET revision=?2, metadata_hash=?3, product=?4, classification=?5, title=?6, description=?7, vendor=?8, article_id=?9, bulletin_id=?10, severity=?11, revised_ms=?12, local_json=?13, content_version=?14 WHERE id=?1",
            )?;
        let mut del = tx.prepare_cached("DELETE FROM update_binaries WHERE update_id=?1")?;
        for (c, rev) in &plan.revisions {
            let id = c.id.to_string();
            upd.execute(params![
                id,
                rev,
                c.metadata_hash(),
                c.product,
                c.classification.name(),
                c.title,
                c.description,
                c.vendor,
                c.article_id,
                c.bulletin_id,
                c.severity,
                now,
                local_json(c)?,
                new_cv
            ])?;
            del.execute(params![id])?;
            insert_binaries(tx, c)?;
            tick(&mut done);
        }
        let mut exp = tx.prepare_cached(
            "UPDATE updates SET expired=1, expired_ms=?2, content_version=?3 WHERE id=?1",
        )?;
        for id in &plan.expire {
            exp.execute(params![id.to_string(), now, new_cv])?;
            tick(&mut done);
        }
        let mut unexp = tx.prepare_cached(
            "UPDATE updates SET expired=0, expired_ms=NULL, content_version=?2 WHERE id=?1",
        )?;
        for id in &plan.unexpire {
            unexp.execute(params![id.to_string(), new_cv])?;
            tick(&mut done);
        }
        let mut sup = tx.prepare_cached(
            "UPDATE updates SET superseded_by=?2, content_version=?3 WHERE id=?1",
        )?;
        for (id, by) in &plan.supersedence {
            sup.execute(params![id.to_string(), by.map(|b| b.to_string()), new_cv])?;
            tick(&mut done);
        }
    }
    progress(total, total);
    Ok(())
}

impl CatalogStore for SqliteStore {
    fn stored_updates(&self) -> Result<Vec<StoredUpdate>> {
        stored_in(&self.reader())
    }

    fn apply_sync(
        &self,
        plan: &SyncPlan,
        commit: &SyncCommit,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<ApplyOutcome> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let (source_id, cv): (String, i64) = tx.query_row(
            "SELECT id, content_version FROM update_sources LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let items = plan.changed_items();
        let new_cv = match commit.content_version {
            Some(v) if v > cv => v,
            _ if items > 0 => cv + 1,
            _ => cv,
        };
        apply_rows(&tx, plan, new_cv, commit.now_ms, progress)?;
        if !commit.revisions.is_empty() {
            let mut rev = tx.prepare_cached(
                "UPDATE updates SET revision = ?2 WHERE id = ?1 AND revision <> ?2",
            )?;
            for (id, r) in &commit.revisions {
                rev.execute(params![id, r])?;
            }
        }
        let now = commit.now_ms;
        if new_cv != cv {
            tx.execute(
                "UPDATE update_sources SET content_version=?2, updated_ms=?3 WHERE id=?1",
                params![source_id, new_cv, now],
            )?;
            tx.execute(
                "INSERT OR REPLACE INTO content_versions(version, token, created_ms) VALUES (?1, COALESCE(?3, lower(hex(randomblob(16)))), ?2)",
                params![new_cv, now, commit.content_token],
            )?;
        }
        tx.execute("DELETE FROM synced_indices", [])?;
        {
            let mut si = tx.prepare_cached(
                "INSERT OR REPLACE INTO synced_indices(source, path, sha256) VALUES (?1,?2,?3)",
            )?;
            for (s, p, h) in &commit.indices {
                si.execute(params![s, p, h])?;
            }
        }
        tx.execute(
            "INSERT INTO site_kv(key, value) VALUES ('sync_fingerprint', ?1) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            params![commit.fingerprint],
        )?;
        tx.commit()?;
        Ok(ApplyOutcome {
            items,
            content_version: new_cv,
            changed: items > 0,
        })
    }

    fn list_updates(&self, q: &UpdateQuery) -> Result<Vec<UpdateSummary>> {
        let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM updates WHERE 1=1");
        let mut args: Vec<String> = Vec::new();
        if let Some(c) = &q.classification {
            args.push(c.clone());
            sql.push_str(&format!(
                " AND classification = ?{} COLLATE NOCASE",
                args.len()
            ));
        }
        if let Some(p) = &q.product {
            args.push(p.clone());
            sql.push_str(&format!(" AND product = ?{} COLLATE NOCASE", args.len()));
        }
        if q.superseded {
            sql.push_str(" AND superseded_by IS NOT NULL");
        }
        if q.expired {
            sql.push_str(" AND expired = 1");
        }
        if let Some(s) = &q.search {
            args.push(format!("%{s}%"));
            let n = args.len();
            sql.push_str(&format!(
                " AND (title LIKE ?{n} OR source LIKE ?{n} OR article_id LIKE ?{n})"
            ));
        }
        sql.push_str(" ORDER BY product, source, released_ms, id");
        sql.push_str(&format!(
            " LIMIT {} OFFSET {}",
            q.limit.map(i64::from).unwrap_or(-1),
            q.offset.unwrap_or(0)
        ));
        let conn = self.reader();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(args.iter()), summary_row)?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn get_update_page(
        &self,
        key: &str,
        scope: &Scope,
        page: Paging,
    ) -> Result<Option<(UpdateDetail, u64)>> {
        let conn = self.reader();
        let key = key.trim();
        let ids: Vec<String> = {
            let mut stmt = conn.prepare_cached(
                "SELECT id FROM updates WHERE id = ?1 UNION SELECT id FROM updates WHERE article_id = ?1 OR title = ?1 LIMIT 2",
            )?;
            let found: Vec<String> = stmt
                .query_map(params![key], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            if found.is_empty()
                && key.len() >= 4
                && key.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
            {
                let mut stmt =
                    conn.prepare_cached("SELECT id FROM updates WHERE id LIKE ?1 LIMIT 2")?;
                stmt.query_map(params![format!("{key}%")], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?
            } else {
                found
            }
        };
        let id = match ids.as_slice() {
            [] => return Ok(None),
            [one] => one.clone(),
            _ => {
                return Err(StoreError::Invalid(format!(
                    "'{key}' names more than one update; give the full id"
                )));
            }
        };
        let row = conn
            .query_row(
                &format!(
                    "SELECT {SUMMARY_COLUMNS}, vendor, description, first_synced_ms, content_version, local_json FROM updates WHERE id = ?1"
                ),
                params![id],
                |r| {
                    Ok((
                        summary_row(r)?,
                        r.get::<_, String>(14)?,
                        r.get::<_, String>(15)?,
                        r.get::<_, i64>(16)?,
                        r.get::<_, i64>(17)?,
                        r.get::<_, Option<String>>(18)?,
                    ))
                },
            )
            .optional()?;
        let Some((summary, vendor, description, first_synced, content_version, local)) = row else {
            return Ok(None);
        };
        let mut stmt = conn.prepare_cached(
            "SELECT name, architecture, version, filename, size, sha256 FROM update_binaries WHERE update_id = ?1 ORDER BY name, architecture",
        )?;
        let packages = stmt
            .query_map(params![id], |r| {
                Ok(UpdateBinary {
                    name: r.get(0)?,
                    architecture: r.get(1)?,
                    version: r.get(2)?,
                    filename: r.get(3)?,
                    size: r.get::<_, i64>(4)? as u64,
                    sha256: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut stmt =
            conn.prepare_cached("SELECT id FROM updates WHERE superseded_by = ?1 ORDER BY id")?;
        let supersedes = stmt
            .query_map(params![id], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<String>>>()?;
        let local = local
            .map(|s| {
                serde_json::from_str(&s)
                    .map_err(|e| StoreError::Corrupt(format!("local_json of {id}: {e}")))
            })
            .transpose()?;
        let (required_by, total) = required_by(&conn, &id, scope, page)?;
        Ok(Some((
            UpdateDetail {
                summary,
                vendor,
                description,
                first_synced: ts(first_synced),
                content_version,
                packages,
                supersedes,
                required_by,
                local,
                in_offline_catalog: None,
            },
            total,
        )))
    }

    fn content_version(&self) -> Result<(String, i64)> {
        Ok(self.reader().query_row(
            "SELECT id, content_version FROM update_sources LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?)
    }

    fn catalog_counts(&self) -> Result<Vec<CatalogCount>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT product, classification, COUNT(*), SUM(superseded_by IS NOT NULL), SUM(expired) FROM updates GROUP BY product, classification ORDER BY product, classification",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(CatalogCount {
                product: r.get(0)?,
                classification: r.get(1)?,
                updates: r.get::<_, i64>(2)? as u64,
                superseded: r.get::<_, i64>(3)? as u64,
                expired: r.get::<_, i64>(4)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn synced_indices(&self) -> Result<(Vec<SyncedIndex>, Option<String>)> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached("SELECT source, path, sha256 FROM synced_indices")?;
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let fp = conn
            .query_row(
                "SELECT value FROM site_kv WHERE key='sync_fingerprint'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        Ok((rows, fp))
    }
}

/// Stores one status message; with an origin (`SITE:id`, a message a child sent up) only
/// once: how many rows were added.
pub(crate) fn insert_status_row(
    conn: &Connection,
    m: &StatusMessage,
    origin: Option<&str>,
) -> Result<usize> {
    Ok(conn
        .prepare_cached(
            "INSERT OR IGNORE INTO status_messages(message_id, severity, level, source, component, system, site,
                 process_id, thread_id, time_ms, insertion_strings, attributes, origin)
             VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13)",
        )?
        .execute(params![
            m.message_id,
            m.severity.letter().to_string(),
            m.level.letter().to_string(),
            m.source,
            m.component,
            m.system,
            m.site,
            m.process_id,
            m.thread_id as i64,
            m.time_ms,
            serde_json::to_string(&m.insertion_strings)
                .map_err(|e| StoreError::Invalid(e.to_string()))?,
            serde_json::to_string(&m.attributes)
                .map_err(|e| StoreError::Invalid(e.to_string()))?,
            origin,
        ])?)
}

impl StatusStore for SqliteStore {
    fn insert_status(&self, m: &StatusMessage) -> Result<i64> {
        m.validate()
            .map_err(|e| StoreError::Invalid(e.to_string()))?;
        let conn = lock(&self.writer);
        insert_status_row(&conn, m, None)?;
        Ok(conn.last_insert_rowid())
    }

    fn query_status(&self, q: &StatusQuery, scope: &Scope) -> Result<Vec<StatusMessageOut>> {
        let mut sql = String::from(
            "SELECT id, message_id, severity, level, source, component, system, site, process_id, thread_id, time_ms, insertion_strings, attributes FROM status_messages WHERE 1=1",
        );
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        let mut push = |sql: &mut String, clause: &str, v: rusqlite::types::Value| {
            args.push(v);
            sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
        };
        if let Some(c) = &q.component {
            push(
                &mut sql,
                " AND component = ? COLLATE NOCASE",
                c.clone().into(),
            );
        }
        if let Some(id) = q.id {
            push(&mut sql, " AND message_id = ?", (id as i64).into());
        }
        if let Some(s) = &q.severity {
            push(
                &mut sql,
                " AND severity = ?",
                s.to_ascii_uppercase()
                    .chars()
                    .take(1)
                    .collect::<String>()
                    .into(),
            );
        }
        if let Some(s) = &q.system {
            push(&mut sql, " AND system = ? COLLATE NOCASE", s.clone().into());
        }
        if let Some(t) = q.since {
            push(&mut sql, " AND time_ms >= ?", t.as_millisecond().into());
        }
        if let Some(a) = q.after {
            push(&mut sql, " AND id > ?", a.into());
        }
        if let Some(b) = q.before {
            push(&mut sql, " AND id < ?", b.into());
        }
        if let Scope::Collections(ids) = scope {
            // A scoped administrator sees the site's own messages and those of the clients
            // of their collections, not other clients'.
            let ids = serde_json::to_string(ids).map_err(|e| StoreError::Invalid(e.to_string()))?;
            push(
                &mut sql,
                " AND (system NOT IN (SELECT name FROM clients) OR system IN (SELECT c.name FROM clients c
                   JOIN collection_members m ON m.client = c.id JOIN collections k ON k.id = m.collection
                   WHERE k.collection_id IN (SELECT value FROM json_each(?))))",
                ids.into(),
            );
        }
        // Newest last; with a limit, the newest N.
        let limit = q.limit.map(i64::from).unwrap_or(-1);
        let sql = format!("SELECT * FROM ({sql} ORDER BY id DESC LIMIT {limit}) ORDER BY id ASC");
        let conn = self.reader();
        let mut stmt = conn.prepare(&sql)?;
        let rows = stmt.query_map(params_from_iter(args.iter()), |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, u32>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, u32>(8)?,
                r.get::<_, i64>(9)?,
                r.get::<_, i64>(10)?,
                r.get::<_, String>(11)?,
                r.get::<_, String>(12)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (
                record_id,
                message_id,
                severity,
                level,
                source,
                component,
                system,
                site,
                pid,
                tid,
                time_ms,
                istr,
                attrs,
            ) = row?;
            let insertion_strings: Vec<String> = serde_json::from_str(&istr)
                .map_err(|e| StoreError::Corrupt(format!("status message {record_id}: {e}")))?;
            let attributes = serde_json::from_str(&attrs)
                .map_err(|e| StoreError::Corrupt(format!("status message {record_id}: {e}")))?;
            let description = description(message_id, &insertion_strings);
            out.push(StatusMessageOut {
                record_id,
                message_id,
                severity,
                level,
                source,
                component,
                system,
                site,
                process_id: pid,
                thread_id: tid as u64,
                time: ts(time_ms),
                insertion_strings,
                attributes,
                description,
            });
        }
        Ok(out)
    }

    fn component_summary(
        &self,
        since_ms: i64,
        component: Option<&str>,
        system: Option<&str>,
    ) -> Result<Vec<koshin_wire::ComponentStatus>> {
        // In status_summary.rs.
        self.status_summary(since_ms, component, system)
    }
}

/// `SyncNow` holds 'SELF' (a delta sync) or 'FULL', as the seeds' Update_SyncStatus table.
fn sync_now_kind(v: Option<&str>) -> Option<SyncKind> {
    match v {
        Some("FULL") => Some(SyncKind::Full),
        Some(_) => Some(SyncKind::Delta),
        None => None,
    }
}

impl SyncStore for SqliteStore {
    fn request_sync(&self, kind: SyncKind, now_ms: i64) -> Result<()> {
        let conn = lock(&self.writer);
        // SyncNow = 'SELF' (delta) or 'FULL'; a pending FULL is never downgraded.
        let value = match kind {
            SyncKind::Full => "FULL",
            SyncKind::Delta => "SELF",
        };
        conn.execute(
            "UPDATE sync_status SET sync_now = CASE WHEN sync_now = 'FULL' THEN 'FULL' ELSE ?1 END, sync_now_ms = ?2",
            params![value, now_ms],
        )?;
        Ok(())
    }

    fn take_sync_request(&self) -> Result<Option<SyncKind>> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let v: Option<String> = tx
            .query_row("SELECT sync_now FROM sync_status LIMIT 1", [], |r| r.get(0))
            .optional()?
            .flatten();
        tx.execute("UPDATE sync_status SET sync_now = NULL", [])?;
        tx.commit()?;
        Ok(sync_now_kind(v.as_deref()))
    }

    fn pending_sync_request(&self) -> Result<Option<SyncKind>> {
        let v: Option<String> = self
            .reader()
            .query_row("SELECT sync_now FROM sync_status LIMIT 1", [], |r| r.get(0))
            .optional()?
            .flatten();
        Ok(sync_now_kind(v.as_deref()))
    }

    fn start_run(&self, kind: SyncKind, trigger: &str, now_ms: i64) -> Result<i64> {
        let conn = lock(&self.writer);
        conn.execute(
            "INSERT INTO sync_runs(kind, trigger, state, started_ms) VALUES (?1, ?2, 'running', ?3)",
            params![kind.name(), trigger, now_ms],
        )?;
        Ok(conn.last_insert_rowid())
    }

    fn progress_run(&self, id: i64, phase: &str, done: u64, total: u64) -> Result<()> {
        lock(&self.writer).execute(
            "UPDATE sync_runs SET phase=?2, progress_done=?3, progress_total=?4 WHERE id=?1",
            params![id, phase, done as i64, total as i64],
        )?;
        Ok(())
    }

    fn finish_run(
        &self,
        id: i64,
        now_ms: i64,
        error: Option<&str>,
        items: Option<u64>,
        cv: Option<i64>,
    ) -> Result<()> {
        lock(&self.writer).execute(
            "UPDATE sync_runs SET state=?2, finished_ms=?3, error=?4, items=?5, content_version=?6 WHERE id=?1",
            params![
                id,
                if error.is_some() { "failed" } else { "succeeded" },
                now_ms,
                error,
                items.map(|n| n as i64),
                cv
            ],
        )?;
        Ok(())
    }

    fn runs(&self, limit: u32) -> Result<Vec<SyncRun>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT id, kind, trigger, state, started_ms, finished_ms, error, items, content_version, phase, progress_done, progress_total FROM sync_runs ORDER BY id DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit], |r| {
            Ok(SyncRun {
                id: r.get(0)?,
                kind: r.get(1)?,
                trigger: r.get(2)?,
                state: r.get(3)?,
                started: ts(r.get(4)?),
                finished: r.get::<_, Option<i64>>(5)?.map(ts),
                error: r.get(6)?,
                items: r.get::<_, Option<i64>>(7)?.map(|n| n as u64),
                content_version: r.get(8)?,
                phase: r.get(9)?,
                progress_done: r.get::<_, i64>(10)? as u64,
                progress_total: r.get::<_, i64>(11)? as u64,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    fn fail_abandoned_runs(&self, now_ms: i64) -> Result<usize> {
        Ok(lock(&self.writer).execute(
            "UPDATE sync_runs SET state='failed', finished_ms=?1, error='the site server stopped during the sync' WHERE state='running'",
            params![now_ms],
        )?)
    }

    fn schedule_get(&self, name: &str) -> Result<Option<i64>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT at_ms FROM schedules WHERE name=?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn schedule_set(&self, name: &str, at_ms: Option<i64>) -> Result<()> {
        let conn = lock(&self.writer);
        match at_ms {
            Some(at) => conn.execute(
                "INSERT INTO schedules(name, at_ms) VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET at_ms=excluded.at_ms",
                params![name, at],
            )?,
            None => conn.execute("DELETE FROM schedules WHERE name=?1", params![name])?,
        };
        Ok(())
    }
}

impl PolicyStore for SqliteStore {
    fn put_machine_policy(&self, body: &serde_json::Value, now_ms: i64) -> Result<i64> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let v: i64 = tx
            .query_row("SELECT version FROM machine_policy WHERE id=1", [], |r| {
                r.get(0)
            })
            .optional()?
            .unwrap_or(0)
            + 1;
        let mut body = body.clone();
        crate::inventory_classes::overlay(&tx, &mut body)?;
        if let Some(o) = body.as_object_mut() {
            o.insert("policy_version".into(), v.into());
        }
        tx.execute(
            "INSERT INTO machine_policy(id, version, body, created_ms) VALUES (1, ?1, ?2, ?3) ON CONFLICT(id) DO UPDATE SET version=excluded.version, body=excluded.body, created_ms=excluded.created_ms",
            params![v, body.to_string(), now_ms],
        )?;
        tx.commit()?;
        Ok(v)
    }

    fn machine_policy(&self) -> Result<Option<(i64, serde_json::Value)>> {
        let row: Option<(i64, String)> = self
            .reader()
            .query_row(
                "SELECT version, body FROM machine_policy WHERE id=1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(v, b)| {
            serde_json::from_str(&b)
                .map(|j| (v, j))
                .map_err(|e| StoreError::Corrupt(format!("machine policy: {e}")))
        })
        .transpose()
    }
}

impl AuthStore for SqliteStore {
    fn add_token(&self, name: &str, token_sha256: &str, role: &str, now_ms: i64) -> Result<i64> {
        let conn = lock(&self.writer);
        conn.execute(
            "INSERT INTO admin_tokens(name, token_sha256, role, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![name, token_sha256, role, now_ms],
        )?;
        Ok(conn.last_insert_rowid())
    }

    fn find_token(&self, token_sha256: &str) -> Result<Option<TokenInfo>> {
        self.reader()
            .query_row(
                "SELECT t.id, t.name, COALESCE(a.role, t.role), COALESCE(a.scopes, '[]') FROM admin_tokens t LEFT JOIN admins a ON a.id = t.admin_id
                 WHERE t.token_sha256 = ?1 AND t.revoked_ms IS NULL
                   AND (t.expires_ms IS NULL OR t.expires_ms > CAST(unixepoch('subsec') * 1000 AS INTEGER))
                   AND (a.id IS NULL OR a.disabled_ms IS NULL)",
                params![token_sha256],
                |r| {
                    Ok((
                        TokenInfo {
                            id: r.get(0)?,
                            name: r.get(1)?,
                            role: r.get(2)?,
                            scopes: Vec::new(),
                        },
                        r.get::<_, String>(3)?,
                    ))
                },
            )
            .optional()?
            .map(|(mut t, scopes)| {
                t.scopes = serde_json::from_str(&scopes).map_err(|e| {
                    StoreError::Corrupt(format!("scopes of administrator {}: {e}", t.name))
                })?;
                Ok::<_, StoreError>(t)
            })
            .transpose()
    }
}

impl SiteStore for SqliteStore {
    fn site_get(&self, key: &str) -> Result<Option<String>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT value FROM site_kv WHERE key=?1",
                params![key],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn site_set(&self, key: &str, value: &str) -> Result<()> {
        lock(&self.writer).execute(
            "INSERT INTO site_kv(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            params![key, value],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A plan where the upstream holds exactly the candidates given.
    fn plan_of(kind: SyncKind, stored: &[StoredUpdate], up: Vec<UpdateCandidate>) -> SyncPlan {
        let ids = up.iter().map(|c| c.id).collect();
        plan_sync(kind, stored, up, &ids)
    }
    use koshin_domain::catalog::{Classification, StoredUpdate, SyncPlan, UpdateBinary, plan_sync};

    fn candidate(source: &str, version: &str) -> UpdateCandidate {
        UpdateCandidate {
            id: UpdateId::for_apt("Debian 12 (bookworm)", source, version),
            product: "Debian 12 (bookworm)".into(),
            classification: Classification::Updates,
            title: format!("{source} {version}"),
            description: "d".into(),
            vendor: "Debian".into(),
            article_id: format!("{source}/{version}"),
            bulletin_id: None,
            severity: None,
            source: source.into(),
            version: version.into(),
            released: 1_700_000_000,
            binaries: vec![UpdateBinary {
                name: source.into(),
                architecture: "amd64".into(),
                version: version.into(),
                filename: format!("pool/{source}.deb"),
                size: 10,
                sha256: "00".repeat(32),
            }],
            local: None,
        }
    }

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("site.db")).unwrap();
        s.initialize_site("CS1", "{SOURCE}").unwrap();
        (dir, s)
    }

    fn commit() -> SyncCommit {
        SyncCommit {
            now_ms: 1,
            indices: vec![(
                "src".into(),
                "main/binary-amd64/Packages.gz".into(),
                "ab".into(),
            )],
            fingerprint: "fp".into(),
            revisions: Vec::new(),
            content_version: None,
            content_token: None,
        }
    }

    #[test]
    fn content_version_moves_only_on_change() {
        let (_d, s) = store();
        let plan = plan_of(
            SyncKind::Full,
            &[],
            vec![candidate("a", "1"), candidate("b", "1")],
        );
        let out = s.apply_sync(&plan, &commit(), &mut |_, _| {}).unwrap();
        assert_eq!((out.items, out.content_version), (2, 1));
        let stored = s.stored_updates().unwrap();
        let plan = plan_of(
            SyncKind::Full,
            &stored,
            vec![candidate("a", "1"), candidate("b", "1")],
        );
        let out = s.apply_sync(&plan, &commit(), &mut |_, _| {}).unwrap();
        assert_eq!((out.items, out.content_version, out.changed), (0, 1, false));
        assert_eq!(s.content_version().unwrap().1, 1);
        let detail = s.get_update("a/1", &Scope::All).unwrap().unwrap();
        assert_eq!(detail.packages.len(), 1);
        assert!(
            s.get_update(&detail.summary.id[..8], &Scope::All)
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn a_full_database_fails_the_sync_and_keeps_the_catalog() {
        let (_d, s) = store();
        let plan = plan_of(SyncKind::Full, &[], vec![candidate("a", "1")]);
        s.apply_sync(&plan, &commit(), &mut |_, _| {}).unwrap();
        let before = s.list_updates(&UpdateQuery::default()).unwrap();
        // The database may not grow: SQLite answers SQLITE_FULL, as on a full disk.
        let pages: i64 = lock(&s.writer)
            .query_row("PRAGMA page_count", [], |r| r.get(0))
            .unwrap();
        lock(&s.writer)
            .pragma_update(None, "max_page_count", pages)
            .unwrap();
        let many: Vec<_> = (0..2000)
            .map(|i| candidate(&format!("pkg{i}"), "1"))
            .collect();
        let stored = s.stored_updates().unwrap();
        let plan = plan_of(SyncKind::Full, &stored, many);
        let err = s.apply_sync(&plan, &commit(), &mut |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("full"), "{err}");
        assert_eq!(s.list_updates(&UpdateQuery::default()).unwrap(), before);
        assert_eq!(s.content_version().unwrap().1, 1);
    }

    #[test]
    fn a_full_sync_request_is_never_downgraded() {
        let (_d, s) = store();
        s.request_sync(SyncKind::Full, 1).unwrap();
        s.request_sync(SyncKind::Delta, 2).unwrap();
        assert_eq!(s.take_sync_request().unwrap(), Some(SyncKind::Full));
        assert_eq!(s.take_sync_request().unwrap(), None);
    }

    #[test]
    fn refuses_a_newer_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("site.db");
        {
            let c = Connection::open(&path).unwrap();
            c.pragma_update(None, "user_version", 99).unwrap();
        }
        assert!(matches!(
            SqliteStore::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
    }
}
