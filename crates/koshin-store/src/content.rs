//! Content: the library (files by SHA-256 with their control stanza), packages with
//! priority, distribution points and groups, and each package's distribution to each point.

use koshin_domain::content::{Priority, ScheduleRule, SenderSettings, package_id};
use rusqlite::{Connection, OptionalExtension, params};

use crate::sqlite::{SqliteStore, lock};
use crate::traits::{
    AuditEntry, ContentStore, DpRecord, LibraryFile, PackageFile, PackageRecord, PackageView,
    TargetRecord, TransferEnd,
};
use crate::trust::write_audit;
use crate::{Result, StoreError};

fn sender_json(s: &SenderSettings) -> String {
    serde_json::json!({
        "schedule": s.schedule.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "rate_limit": s.rate_limit,
        "lifted_until_ms": s.lifted_until_ms,
    })
    .to_string()
}

fn sender_from(json: &str) -> Result<SenderSettings> {
    let v: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("sender settings: {e}")))?;
    let mut schedule = Vec::new();
    for r in v["schedule"].as_array().into_iter().flatten() {
        let text = r.as_str().unwrap_or_default();
        schedule.push(ScheduleRule::parse(text).map_err(StoreError::Corrupt)?);
    }
    Ok(SenderSettings {
        schedule,
        rate_limit: v["rate_limit"].as_u64(),
        lifted_until_ms: v["lifted_until_ms"].as_i64(),
    })
}

fn priority(code: i64) -> rusqlite::Result<Priority> {
    Priority::from_code(code).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Integer,
            format!("priority {code}").into(),
        )
    })
}

fn package_key(conn: &Connection, key: &str) -> Result<i64> {
    conn.query_row(
        "SELECT id FROM content_packages WHERE package_id = ?1 COLLATE NOCASE OR name = ?1",
        params![key],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("content package '{key}'")))
}

fn dp_key(conn: &Connection, key: &str) -> Result<i64> {
    conn.query_row(
        "SELECT id FROM distribution_points WHERE name = ?1",
        params![key],
        |r| r.get(0),
    )
    .optional()?
    .ok_or_else(|| StoreError::NotFound(format!("distribution point '{key}'")))
}

fn load_package(conn: &Connection, id: i64) -> Result<PackageRecord> {
    let mut p = conn.query_row(
        "SELECT package_id, name, priority, source_version, created_ms, created_by,
                (SELECT COUNT(*) FROM package_files WHERE package = p.id),
                (SELECT COALESCE(SUM(size), 0) FROM package_files WHERE package = p.id)
         FROM content_packages p WHERE id = ?1",
        params![id],
        |r| {
            Ok(PackageRecord {
                id: r.get(0)?,
                name: r.get(1)?,
                priority: priority(r.get(2)?)?,
                source_version: r.get(3)?,
                created_ms: r.get(4)?,
                created_by: r.get(5)?,
                updates: Vec::new(),
                files: r.get(6)?,
                bytes: r.get(7)?,
            })
        },
    )?;
    let mut stmt =
        conn.prepare_cached("SELECT update_id FROM package_updates WHERE package = ?1 ORDER BY 1")?;
    p.updates = stmt
        .query_map(params![id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(p)
}

const TARGET_COLUMNS: &str = "t.package, p.package_id, p.name, p.priority, t.dp, d.name, t.state, t.source_version,
    t.queued_ms, t.started_ms, t.finished_ms, t.bytes_total, t.bytes_sent, t.attempts, t.retry_at_ms, t.error, t.via_group
    FROM package_targets t JOIN content_packages p ON p.id = t.package JOIN distribution_points d ON d.id = t.dp";

fn target_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TargetRecord> {
    Ok(TargetRecord {
        package_key: r.get(0)?,
        package_id: r.get(1)?,
        package_name: r.get(2)?,
        priority: priority(r.get(3)?)?,
        dp_key: r.get(4)?,
        dp_name: r.get(5)?,
        state: r.get(6)?,
        source_version: r.get(7)?,
        queued_ms: r.get(8)?,
        started_ms: r.get(9)?,
        finished_ms: r.get(10)?,
        bytes_total: r.get(11)?,
        bytes_sent: r.get(12)?,
        attempts: r.get(13)?,
        retry_at_ms: r.get(14)?,
        error: r.get(15)?,
        via_group: r.get(16)?,
    })
}

fn load_dp(conn: &Connection, id: i64) -> Result<DpRecord> {
    let (mut d, boundaries, sender) = conn.query_row(
        "SELECT id, name, url, local, protected, boundaries, sender, registered_ms, registered_by, last_seen_ms, last_error,
                (SELECT COUNT(*) FROM package_targets WHERE dp = d.id AND state = 'installed'),
                (SELECT COUNT(*) FROM package_targets WHERE dp = d.id AND state IN ('waiting', 'distributing')),
                (SELECT COUNT(*) FROM package_targets WHERE dp = d.id AND state = 'failed')
         FROM distribution_points d WHERE id = ?1",
        params![id],
        |r| {
            Ok((
                DpRecord {
                    key: r.get(0)?,
                    name: r.get(1)?,
                    url: r.get(2)?,
                    local: r.get::<_, i64>(3)? != 0,
                    protected: r.get::<_, i64>(4)? != 0,
                    boundaries: Vec::new(),
                    sender: SenderSettings::default(),
                    registered_ms: r.get(7)?,
                    registered_by: r.get(8)?,
                    last_seen_ms: r.get(9)?,
                    last_error: r.get(10)?,
                    groups: Vec::new(),
                    installed: r.get(11)?,
                    pending: r.get(12)?,
                    failed: r.get(13)?,
                },
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        },
    )?;
    d.boundaries = serde_json::from_str(&boundaries)
        .map_err(|e| StoreError::Corrupt(format!("boundaries of {}: {e}", d.name)))?;
    d.sender = sender_from(&sender)?;
    let mut stmt = conn.prepare_cached(
        "SELECT g.name FROM dp_group_members m JOIN dp_groups g ON g.id = m.grp WHERE m.dp = ?1 ORDER BY 1",
    )?;
    d.groups = stmt
        .query_map(params![id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(d)
}

/// The update ids named by id, unique id prefix, article id or title.
fn resolve_update(conn: &Connection, key: &str) -> Result<String> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM updates WHERE id = ?1 OR article_id = ?1 OR title = ?1
         UNION SELECT id FROM updates WHERE length(?1) >= 8 AND id LIKE ?1 || '%' LIMIT 2",
    )?;
    let found: Vec<String> = stmt
        .query_map(params![key], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(StoreError::NotFound(format!("update '{key}'"))),
        _ => Err(StoreError::Invalid(format!(
            "'{key}' names more than one update; give its id"
        ))),
    }
}

impl ContentStore for SqliteStore {
    fn create_package(
        &self,
        site_code: &str,
        name: &str,
        priority: Priority,
        updates: &[String],
        audit: &AuditEntry,
    ) -> Result<PackageRecord> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let id = create_package_tx(&tx, site_code, name, priority, updates, audit)?;
        write_audit(&tx, audit)?;
        let p = load_package(&tx, id)?;
        tx.commit()?;
        Ok(p)
    }

    fn list_packages(&self) -> Result<Vec<PackageRecord>> {
        let conn = self.reader();
        let ids: Vec<i64> = conn
            .prepare_cached("SELECT id FROM content_packages ORDER BY id")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        ids.into_iter().map(|id| load_package(&conn, id)).collect()
    }

    fn package(&self, key: &str) -> Result<Option<PackageView>> {
        let conn = self.reader();
        let id = match package_key(&conn, key) {
            Ok(id) => id,
            Err(StoreError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        let p = load_package(&conn, id)?;
        let files = files_of(&conn, id)?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {TARGET_COLUMNS} WHERE t.package = ?1 ORDER BY d.name"
        ))?;
        let targets = stmt
            .query_map(params![id], target_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Some((p, files, targets)))
    }

    fn set_package_priority(&self, key: &str, p: Priority, audit: &AuditEntry) -> Result<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let id = package_key(&tx, key)?;
        tx.execute(
            "UPDATE content_packages SET priority = ?2 WHERE id = ?1",
            params![id, p.code()],
        )?;
        write_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn distribute(
        &self,
        key: &str,
        dps: &[String],
        groups: &[String],
        now_ms: i64,
        audit: &AuditEntry,
    ) -> Result<usize> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let package = package_key(&tx, key)?;
        let added = distribute_tx(&tx, package, dps, groups, now_ms)?;
        write_audit(&tx, audit)?;
        tx.commit()?;
        Ok(added)
    }

    fn library_file(&self, sha256: &str) -> Result<Option<LibraryFile>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT sha256, size, name, control FROM content_files WHERE sha256 = ?1",
                params![sha256],
                |r| {
                    Ok(LibraryFile {
                        sha256: r.get(0)?,
                        size: r.get(1)?,
                        name: r.get(2)?,
                        control: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    fn add_library_file(&self, f: &LibraryFile, now_ms: i64) -> Result<()> {
        lock(&self.writer).execute(
            "INSERT INTO content_files(sha256, size, name, control, stored_ms) VALUES (?1,?2,?3,?4,?5)
             ON CONFLICT(sha256) DO UPDATE SET stored_ms = excluded.stored_ms",
            params![f.sha256, f.size, f.name, f.control, now_ms],
        )?;
        Ok(())
    }

    fn put_site_package(
        &self,
        site_code: &str,
        name: &str,
        file: &LibraryFile,
        filename: &str,
        audit: &AuditEntry,
    ) -> Result<PackageRecord> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO content_files(sha256, size, name, control, stored_ms) VALUES (?1,?2,?3,?4,?5)
             ON CONFLICT(sha256) DO UPDATE SET stored_ms = excluded.stored_ms",
            params![file.sha256, file.size, file.name, file.control, audit.time_ms],
        )?;
        let existing: Option<i64> = tx
            .query_row(
                "SELECT id FROM content_packages WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?;
        let id = match existing {
            Some(id) => {
                let files = files_of(&tx, id)?;
                if files.len() == 1 && files[0].sha256 == file.sha256 {
                    let p = load_package(&tx, id)?;
                    return Ok(p);
                }
                tx.execute(
                    "UPDATE content_packages SET source_version = source_version + 1 WHERE id = ?1",
                    params![id],
                )?;
                tx.execute("DELETE FROM package_files WHERE package = ?1", params![id])?;
                tx.execute(
                    "UPDATE package_targets SET state = 'waiting',
                         source_version = (SELECT source_version FROM content_packages WHERE id = ?1),
                         queued_ms = ?2, attempts = 0, retry_at_ms = NULL, error = NULL, bytes_sent = 0
                     WHERE package = ?1",
                    params![id, audit.time_ms],
                )?;
                id
            }
            None => {
                let id: i64 = tx.query_row(
                    "SELECT COALESCE(MAX(id), 0) + 1 FROM content_packages",
                    [],
                    |r| r.get(0),
                )?;
                tx.execute(
                    "INSERT INTO content_packages(id, package_id, name, priority, created_ms, created_by) VALUES (?1,?2,?3,?4,?5,?6)",
                    params![id, package_id(site_code, id), name, Priority::Medium.code(), audit.time_ms, audit.actor],
                )?;
                id
            }
        };
        tx.execute(
            "INSERT INTO package_files(package, sha256, name, size, filename) VALUES (?1,?2,?3,?4,?5)",
            params![id, file.sha256, file.name, file.size, filename],
        )?;
        if existing.is_none() {
            let dps = all_dps(&tx)?;
            distribute_tx(&tx, id, &dps, &[], audit.time_ms)?;
        }
        write_audit(&tx, audit)?;
        let p = load_package(&tx, id)?;
        tx.commit()?;
        Ok(p)
    }

    fn register_dp(
        &self,
        name: &str,
        url: &str,
        push_token: &str,
        audit: &AuditEntry,
    ) -> Result<DpRecord> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let existing: Option<(i64, bool)> = tx
            .query_row(
                "SELECT id, local FROM distribution_points WHERE name = ?1",
                params![name],
                |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)),
            )
            .optional()?;
        let id = match existing {
            Some((_, true)) => {
                return Err(StoreError::Conflict(format!(
                    "{name} is the site's own distribution point"
                )));
            }
            // Registering again (a reinstalled point): new address and token; what it held
            // is sent again, since its files may be gone.
            Some((id, false)) => {
                tx.execute(
                    "UPDATE distribution_points SET url = ?2, push_token = ?3, last_error = NULL WHERE id = ?1",
                    params![id, url, push_token],
                )?;
                tx.execute(
                    "UPDATE package_targets SET state = 'waiting', queued_ms = ?2, attempts = 0, retry_at_ms = NULL
                     WHERE dp = ?1 AND state <> 'distributing'",
                    params![id, audit.time_ms],
                )?;
                id
            }
            None => {
                tx.execute(
                    "INSERT INTO distribution_points(name, url, local, push_token, registered_ms, registered_by) VALUES (?1,?2,0,?3,?4,?5)",
                    params![name, url, push_token, audit.time_ms, audit.actor],
                )?;
                tx.last_insert_rowid()
            }
        };
        write_audit(&tx, audit)?;
        let d = load_dp(&tx, id)?;
        tx.commit()?;
        Ok(d)
    }

    fn ensure_local_dp(&self, name: &str, url: &str, now_ms: i64) -> Result<()> {
        let conn = lock(&self.writer);
        let local: Option<i64> = conn
            .query_row(
                "SELECT id FROM distribution_points WHERE local = 1",
                [],
                |r| r.get(0),
            )
            .optional()?;
        match local {
            Some(id) => {
                conn.execute(
                    "UPDATE distribution_points SET url = ?2 WHERE id = ?1",
                    params![id, url],
                )?;
            }
            None => {
                conn.execute(
                    "INSERT INTO distribution_points(name, url, local, registered_ms, registered_by) VALUES (?1,?2,1,?3,'koshin')",
                    params![name, url, now_ms],
                )?;
            }
        }
        Ok(())
    }

    fn list_dps(&self) -> Result<Vec<DpRecord>> {
        let conn = self.reader();
        let ids: Vec<i64> = conn
            .prepare_cached("SELECT id FROM distribution_points ORDER BY local DESC, name")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        ids.into_iter().map(|id| load_dp(&conn, id)).collect()
    }

    fn dp(&self, key: &str) -> Result<Option<DpRecord>> {
        let conn = self.reader();
        match dp_key(&conn, key) {
            Ok(id) => load_dp(&conn, id).map(Some),
            Err(StoreError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn dp_push_token(&self, dp_key: i64) -> Result<Option<String>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT push_token FROM distribution_points WHERE id = ?1",
                params![dp_key],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    fn set_dp(
        &self,
        key: &str,
        protected: Option<bool>,
        boundaries: Option<&[String]>,
        sender: Option<&SenderSettings>,
        audit: &AuditEntry,
    ) -> Result<DpRecord> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let id = dp_key(&tx, key)?;
        if let Some(p) = protected {
            tx.execute(
                "UPDATE distribution_points SET protected = ?2 WHERE id = ?1",
                params![id, i64::from(p)],
            )?;
        }
        if let Some(b) = boundaries {
            let json = serde_json::to_string(b).map_err(|e| StoreError::Invalid(e.to_string()))?;
            tx.execute(
                "UPDATE distribution_points SET boundaries = ?2 WHERE id = ?1",
                params![id, json],
            )?;
        }
        if let Some(s) = sender {
            tx.execute(
                "UPDATE distribution_points SET sender = ?2 WHERE id = ?1",
                params![id, sender_json(s)],
            )?;
        }
        write_audit(&tx, audit)?;
        let d = load_dp(&tx, id)?;
        tx.commit()?;
        Ok(d)
    }

    fn create_dp_group(&self, name: &str, audit: &AuditEntry) -> Result<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let n = tx.execute(
            "INSERT INTO dp_groups(name, created_ms, created_by) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            params![name, audit.time_ms, audit.actor],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "a distribution point group named '{name}' exists already"
            )));
        }
        write_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn change_dp_group(
        &self,
        name: &str,
        add: &[String],
        remove: &[String],
        audit: &AuditEntry,
    ) -> Result<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let gid: i64 = tx
            .query_row(
                "SELECT id FROM dp_groups WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("distribution point group '{name}'")))?;
        for d in add {
            let id = dp_key(&tx, d)?;
            tx.execute(
                "INSERT OR IGNORE INTO dp_group_members(grp, dp) VALUES (?1, ?2)",
                params![gid, id],
            )?;
        }
        for d in remove {
            let id = dp_key(&tx, d)?;
            tx.execute(
                "DELETE FROM dp_group_members WHERE grp = ?1 AND dp = ?2",
                params![gid, id],
            )?;
        }
        write_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn list_dp_groups(&self) -> Result<Vec<(String, Vec<String>)>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT g.name, d.name FROM dp_groups g LEFT JOIN dp_group_members m ON m.grp = g.id
             LEFT JOIN distribution_points d ON d.id = m.dp ORDER BY g.name, d.name",
        )?;
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for row in stmt.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
        })? {
            let (g, d) = row?;
            if out.last().is_none_or(|(name, _)| name != &g) {
                out.push((g, Vec::new()));
            }
            if let (Some(d), Some((_, members))) = (d, out.last_mut()) {
                members.push(d);
            }
        }
        Ok(out)
    }

    fn pending_targets(&self) -> Result<Vec<TargetRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {TARGET_COLUMNS} WHERE t.state IN ('waiting', 'distributing') ORDER BY t.queued_ms, t.package, t.dp"
        ))?;
        Ok(stmt
            .query_map([], target_row)?
            .collect::<rusqlite::Result<_>>()?)
    }

    fn start_target(
        &self,
        package_key: i64,
        dp_key: i64,
        bytes_total: i64,
        now_ms: i64,
    ) -> Result<()> {
        lock(&self.writer).execute(
            "UPDATE package_targets SET state = 'distributing', started_ms = ?3, bytes_total = ?4, bytes_sent = 0,
                 attempts = attempts + 1, error = NULL
             WHERE package = ?1 AND dp = ?2",
            params![package_key, dp_key, now_ms, bytes_total],
        )?;
        Ok(())
    }

    fn progress_target(&self, package_key: i64, dp_key: i64, bytes_sent: i64) -> Result<()> {
        lock(&self.writer).execute(
            "UPDATE package_targets SET bytes_sent = ?3 WHERE package = ?1 AND dp = ?2",
            params![package_key, dp_key, bytes_sent],
        )?;
        Ok(())
    }

    fn finish_target(
        &self,
        package_key: i64,
        dp_key: i64,
        end: &TransferEnd,
        now_ms: i64,
    ) -> Result<()> {
        let conn = lock(&self.writer);
        match end {
            TransferEnd::Installed => conn.execute(
                "UPDATE package_targets SET state = 'installed', finished_ms = ?3, bytes_sent = bytes_total,
                     retry_at_ms = NULL, error = NULL,
                     source_version = (SELECT source_version FROM content_packages WHERE id = ?1)
                 WHERE package = ?1 AND dp = ?2",
                params![package_key, dp_key, now_ms],
            )?,
            TransferEnd::Retry { error, at_ms } => conn.execute(
                "UPDATE package_targets SET state = 'waiting', retry_at_ms = ?3, error = ?4
                 WHERE package = ?1 AND dp = ?2",
                params![package_key, dp_key, at_ms, error],
            )?,
            TransferEnd::Failed { error } => conn.execute(
                "UPDATE package_targets SET state = 'failed', finished_ms = ?3, error = ?4
                 WHERE package = ?1 AND dp = ?2",
                params![package_key, dp_key, now_ms, error],
            )?,
        };
        Ok(())
    }

    fn dp_files(&self, dp_key: i64, also: Option<i64>) -> Result<Vec<LibraryFile>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT DISTINCT c.sha256, c.size, c.name, c.control FROM package_files f
             JOIN content_files c ON c.sha256 = f.sha256
             WHERE f.package IN (SELECT package FROM package_targets WHERE dp = ?1 AND state = 'installed')
                OR f.package = ?2
             ORDER BY c.name",
        )?;
        Ok(stmt
            .query_map(params![dp_key, also.unwrap_or(-1)], |r| {
                Ok(LibraryFile {
                    sha256: r.get(0)?,
                    size: r.get(1)?,
                    name: r.get(2)?,
                    control: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    fn package_files(&self, package_key: i64) -> Result<Vec<PackageFile>> {
        files_of(&self.reader(), package_key)
    }

    fn damaged_file(&self, dp_key: i64, sha256: &str, now_ms: i64) -> Result<usize> {
        Ok(lock(&self.writer).execute(
            "UPDATE package_targets SET state = 'waiting', queued_ms = ?3, attempts = 0, retry_at_ms = NULL,
                 error = 'a file was found damaged on the distribution point'
             WHERE dp = ?1 AND state = 'installed'
               AND package IN (SELECT package FROM package_files WHERE sha256 = ?2)",
            params![dp_key, sha256, now_ms],
        )?)
    }

    fn dp_seen(&self, dp_key: i64, now_ms: i64, error: Option<&str>) -> Result<()> {
        lock(&self.writer).execute(
            "UPDATE distribution_points SET last_seen_ms = CASE WHEN ?3 IS NULL THEN ?2 ELSE last_seen_ms END,
                 last_error = ?3 WHERE id = ?1",
            params![dp_key, now_ms, error],
        )?;
        Ok(())
    }

    fn requeue_interrupted(&self) -> Result<usize> {
        Ok(lock(&self.writer).execute(
            "UPDATE package_targets SET state = 'waiting' WHERE state = 'distributing'",
            [],
        )?)
    }
}

fn files_of(conn: &Connection, package: i64) -> Result<Vec<PackageFile>> {
    let mut stmt = conn.prepare_cached(
        "SELECT sha256, name, size, filename FROM package_files WHERE package = ?1 ORDER BY name",
    )?;
    Ok(stmt
        .query_map(params![package], |r| {
            Ok(PackageFile {
                sha256: r.get(0)?,
                name: r.get(1)?,
                size: r.get(2)?,
                filename: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?)
}

/// Creates a package of the files of `updates` in `tx`; its key.
pub(crate) fn create_package_tx(
    tx: &Connection,
    site_code: &str,
    name: &str,
    priority: Priority,
    updates: &[String],
    audit: &AuditEntry,
) -> Result<i64> {
    if updates.is_empty() {
        return Err(StoreError::Invalid(
            "a package holds the files of at least one update".into(),
        ));
    }
    let taken: Option<i64> = tx
        .query_row(
            "SELECT id FROM content_packages WHERE name = ?1",
            params![name],
            |r| r.get(0),
        )
        .optional()?;
    if taken.is_some() {
        return Err(StoreError::Conflict(format!(
            "a content package named '{name}' exists already"
        )));
    }
    let next: i64 = tx.query_row(
        "SELECT COALESCE(MAX(id), 0) + 1 FROM content_packages",
        [],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO content_packages(id, package_id, name, priority, created_ms, created_by) VALUES (?1,?2,?3,?4,?5,?6)",
        params![next, package_id(site_code, next), name, priority.code(), audit.time_ms, audit.actor],
    )?;
    for key in updates {
        let id = resolve_update(tx, key)?;
        tx.execute(
            "INSERT OR IGNORE INTO package_updates(package, update_id) VALUES (?1, ?2)",
            params![next, id],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO package_files(package, sha256, name, size, filename)
             SELECT ?1, sha256, replace(filename, rtrim(filename, replace(filename, '/', '')), ''), size, filename
             FROM update_binaries WHERE update_id = ?2",
            params![next, id],
        )?;
        let any: i64 = tx.query_row(
            "SELECT COUNT(*) FROM update_binaries WHERE update_id = ?1",
            params![id],
            |r| r.get(0),
        )?;
        if any == 0 {
            return Err(StoreError::Invalid(format!(
                "update {key} has no files in the catalog"
            )));
        }
    }
    Ok(next)
}

/// Targets a package at points and at the current members of groups (every point when both
/// are empty and `all_when_empty`); how many targets were added or requeued.
pub(crate) fn distribute_tx(
    tx: &Connection,
    package: i64,
    dps: &[String],
    groups: &[String],
    now_ms: i64,
) -> Result<usize> {
    let version: i64 = tx.query_row(
        "SELECT source_version FROM content_packages WHERE id = ?1",
        params![package],
        |r| r.get(0),
    )?;
    let mut targets: Vec<(i64, Option<String>)> = Vec::new();
    for d in dps {
        targets.push((dp_key(tx, d)?, None));
    }
    for g in groups {
        let gid: i64 = tx
            .query_row(
                "SELECT id FROM dp_groups WHERE name = ?1",
                params![g],
                |r| r.get(0),
            )
            .optional()?
            .ok_or_else(|| StoreError::NotFound(format!("distribution point group '{g}'")))?;
        let mut stmt = tx.prepare_cached("SELECT dp FROM dp_group_members WHERE grp = ?1")?;
        let members: Vec<i64> = stmt
            .query_map(params![gid], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        targets.extend(members.into_iter().map(|m| (m, Some(g.clone()))));
    }
    let mut added = 0;
    for (dp, group) in targets {
        // New, or failed before: (re)queued. Installed or in progress: left alone.
        added += tx.execute(
            "INSERT INTO package_targets(package, dp, state, source_version, queued_ms, via_group)
             VALUES (?1, ?2, 'waiting', ?3, ?4, ?5)
             ON CONFLICT(package, dp) DO UPDATE SET state = 'waiting', queued_ms = excluded.queued_ms,
                 attempts = 0, retry_at_ms = NULL, error = NULL
             WHERE package_targets.state = 'failed'",
            params![package, dp, version, now_ms, group],
        )?;
    }
    Ok(added)
}

/// Every distribution point's name.
pub(crate) fn all_dps(tx: &Connection) -> Result<Vec<String>> {
    let mut stmt = tx.prepare_cached("SELECT name FROM distribution_points ORDER BY id")?;
    Ok(stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

pub(crate) fn resolve_update_key(tx: &Connection, key: &str) -> Result<String> {
    resolve_update(tx, key)
}
