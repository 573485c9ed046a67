//! The site hierarchy: join tokens, links to the parent and to children, and the catalog as
//! a parent replicates it. A link holds the token this site presents to the other one
//! (a secret, hidden from reports) and the SHA-256 of the token the other one presents here.

use std::collections::HashMap;

use koshin_domain::catalog::{Classification, UpdateBinary, UpdateCandidate, UpdateId};
use rusqlite::{Connection, OptionalExtension, params};

use crate::sqlite::{SqliteStore, lock};
use crate::traits::{
    AuditEntry, ClientIdentity, HierarchyStore, NewClient, ReplicaUpdate, SiteLink,
    UpdatePointRecord, UpwardRow,
};
use crate::trust::write_audit;
use crate::{Result, StoreError};

const LINK_COLUMNS: &str = "code, relation, kind, url, joined_ms, last_seen_ms, last_error, notify_pending, replicated_cv,
     global_seq, link_down, CASE relation WHEN 'parent' THEN (SELECT COUNT(*) FROM upward_queue) ELSE 0 END";

fn link_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SiteLink> {
    Ok(SiteLink {
        code: r.get(0)?,
        relation: r.get(1)?,
        kind: r.get(2)?,
        url: r.get(3)?,
        joined_ms: r.get(4)?,
        last_seen_ms: r.get(5)?,
        last_error: r.get(6)?,
        notify_pending: r.get::<_, i64>(7)? != 0,
        replicated_cv: r.get(8)?,
        global_seq: r.get(9)?,
        down: r.get::<_, i64>(10)? != 0,
        queued_up: r.get(11)?,
    })
}

fn own_code(conn: &Connection) -> Result<String> {
    Ok(conn
        .query_row(
            "SELECT value FROM site_kv WHERE key = 'site_code'",
            [],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or_default())
}

impl HierarchyStore for SqliteStore {
    fn add_join_token(
        &self,
        token_sha256: &str,
        expires_ms: i64,
        audit: &AuditEntry,
    ) -> Result<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO site_join_tokens(token_sha256, created_by, created_ms, expires_ms) VALUES (?1,?2,?3,?4)",
            params![token_sha256, audit.actor, audit.time_ms, expires_ms],
        )?;
        write_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn join_child(
        &self,
        token_sha256: &str,
        code: &str,
        kind: &str,
        url: &str,
        our_token: &str,
        their_token_sha256: &str,
        now_ms: i64,
    ) -> Result<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        if own_code(&tx)?.eq_ignore_ascii_case(code) {
            return Err(StoreError::Conflict(format!(
                "{code} is this site's own code: every site in a hierarchy has its own"
            )));
        }
        let spent = tx.execute(
            "UPDATE site_join_tokens SET used_ms = ?2, used_by = ?3
             WHERE token_sha256 = ?1 AND used_ms IS NULL AND expires_ms > ?2",
            params![token_sha256, now_ms, code],
        )?;
        if spent == 0 {
            return Err(StoreError::Unauthorized(
                "the join token is not valid (unknown, expired or used)".into(),
            ));
        }
        let n = tx.execute(
            "INSERT INTO site_links(code, relation, kind, url, our_token, their_token_sha256, joined_ms)
             VALUES (?1, 'child', ?2, ?3, ?4, ?5, ?6) ON CONFLICT(code) DO NOTHING",
            params![code, kind, url, our_token, their_token_sha256, now_ms],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "a site {code} is linked here already"
            )));
        }
        tx.execute(
            "INSERT INTO audit_log(time_ms, actor, role, action, target, detail, source) VALUES (?1, ?2, 'site', 'join child site', ?2, ?3, ?4)",
            params![now_ms, code, format!("{kind} site at {url}"), url],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn set_parent(
        &self,
        code: &str,
        url: &str,
        our_token: &str,
        their_token_sha256: &str,
        now_ms: i64,
    ) -> Result<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM site_links WHERE relation = 'parent'", [])?;
        tx.execute(
            "INSERT INTO site_links(code, relation, url, our_token, their_token_sha256, joined_ms)
             VALUES (?1, 'parent', ?2, ?3, ?4, ?5)",
            params![code, url, our_token, their_token_sha256, now_ms],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn site_links(&self) -> Result<Vec<SiteLink>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {LINK_COLUMNS} FROM site_links ORDER BY relation DESC, code"
        ))?;
        Ok(stmt
            .query_map([], link_row)?
            .collect::<rusqlite::Result<_>>()?)
    }

    fn link_by_token(&self, their_token_sha256: &str) -> Result<Option<SiteLink>> {
        Ok(self
            .reader()
            .query_row(
                &format!("SELECT {LINK_COLUMNS} FROM site_links WHERE their_token_sha256 = ?1"),
                params![their_token_sha256],
                link_row,
            )
            .optional()?)
    }

    fn link_token(&self, code: &str) -> Result<Option<String>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT our_token FROM site_links WHERE code = ?1",
                params![code],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn set_link_url(&self, code: &str, url: &str) -> Result<()> {
        lock(&self.writer).execute(
            "UPDATE site_links SET url = ?2 WHERE code = ?1",
            params![code, url],
        )?;
        Ok(())
    }

    fn link_contact(&self, code: &str, now_ms: i64, error: Option<&str>) -> Result<()> {
        lock(&self.writer).execute(
            "UPDATE site_links SET last_seen_ms = CASE WHEN ?3 IS NULL THEN ?2 ELSE last_seen_ms END,
                 last_error = ?3 WHERE code = ?1",
            params![code, now_ms, error],
        )?;
        Ok(())
    }

    fn set_notify_pending(&self, code: &str, pending: bool) -> Result<()> {
        lock(&self.writer).execute(
            "UPDATE site_links SET notify_pending = ?2 WHERE code = ?1",
            params![code, i64::from(pending)],
        )?;
        Ok(())
    }

    fn set_replicated_cv(&self, code: &str, cv: i64) -> Result<()> {
        lock(&self.writer).execute(
            "UPDATE site_links SET replicated_cv = ?2 WHERE code = ?1",
            params![code, cv],
        )?;
        Ok(())
    }

    fn upward_batches(&self, limit: u32) -> Result<Vec<UpwardRow>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT id, kind, client_json, batch_json FROM upward_queue ORDER BY id LIMIT ?1",
        )?;
        Ok(stmt
            .query_map(params![limit], |r| {
                Ok(UpwardRow {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    client_json: r.get(2)?,
                    payload_json: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    fn upward_done(&self, ids: &[i64]) -> Result<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        for id in ids {
            tx.execute("DELETE FROM upward_queue WHERE id = ?1", params![id])?;
        }
        tx.commit()?;
        Ok(())
    }

    fn remote_client(&self, c: &NewClient, now_ms: i64) -> Result<ClientIdentity> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let existing: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, site FROM clients WHERE client_id = ?1",
                params![c.client_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let rowid = match existing {
            Some((id, site)) if site == c.site => {
                tx.execute(
                    "UPDATE clients SET name = ?2, os = ?3, os_release = ?4, architecture = ?5, agent_version = ?6 WHERE id = ?1",
                    params![id, c.name, c.os, c.os_release, c.architecture, c.agent_version],
                )?;
                id
            }
            Some((_, site)) => {
                return Err(StoreError::Conflict(format!(
                    "client {} is a client of site {site}, not of {}",
                    c.client_id, c.site
                )));
            }
            None => {
                // A remote client has no credential here: a value no token hashes to.
                tx.execute(
                    "INSERT INTO clients(client_id, name, os, os_release, architecture, site, agent_version, credential_sha256, enrolled_ms, last_contact_ms, approval)
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?9,'approved')",
                    params![
                        c.client_id,
                        c.name,
                        c.os,
                        c.os_release,
                        c.architecture,
                        c.site,
                        c.agent_version,
                        format!("remote:{}", c.client_id),
                        now_ms
                    ],
                )?;
                tx.last_insert_rowid()
            }
        };
        tx.commit()?;
        Ok(ClientIdentity {
            rowid,
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            approval: "approved".into(),
        })
    }

    fn register_update_point(
        &self,
        name: &str,
        url: &str,
        push_token: &str,
        pull_token_sha256: &str,
        audit: &AuditEntry,
    ) -> Result<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO update_points(name, url, push_token, pull_token_sha256, registered_ms, registered_by)
             VALUES (?1,?2,?3,?4,?5,?6)
             ON CONFLICT(name) DO UPDATE SET url = excluded.url, push_token = excluded.push_token,
                 pull_token_sha256 = excluded.pull_token_sha256, last_error = NULL",
            params![name, url, push_token, pull_token_sha256, audit.time_ms, audit.actor],
        )?;
        write_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn update_points(&self) -> Result<Vec<UpdatePointRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare_cached(
            "SELECT name, url, registered_ms, last_sync_ms, content_version, last_error FROM update_points ORDER BY id",
        )?;
        Ok(stmt
            .query_map([], |r| {
                Ok(UpdatePointRecord {
                    name: r.get(0)?,
                    url: r.get(1)?,
                    registered_ms: r.get(2)?,
                    last_sync_ms: r.get(3)?,
                    content_version: r.get(4)?,
                    last_error: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    fn update_point_by_pull(&self, pull_token_sha256: &str) -> Result<Option<String>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT name FROM update_points WHERE pull_token_sha256 = ?1",
                params![pull_token_sha256],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn update_point_push_token(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .reader()
            .query_row(
                "SELECT push_token FROM update_points WHERE name = ?1",
                params![name],
                |r| r.get(0),
            )
            .optional()?)
    }

    fn update_point_synced(
        &self,
        name: &str,
        now_ms: i64,
        content_version: Option<i64>,
        error: Option<&str>,
    ) -> Result<()> {
        lock(&self.writer).execute(
            "UPDATE update_points SET last_sync_ms = CASE WHEN ?4 IS NULL THEN ?2 ELSE last_sync_ms END,
                 content_version = COALESCE(?3, content_version), last_error = ?4 WHERE name = ?1",
            params![name, now_ms, content_version, error],
        )?;
        Ok(())
    }

    fn replica_catalog(&self) -> Result<(String, i64, String, Vec<ReplicaUpdate>)> {
        let conn = self.reader();
        // One read transaction: the catalog and its content version agree.
        conn.execute_batch("BEGIN")?;
        let result = replica(&conn);
        let _ = conn.execute_batch("COMMIT");
        result
    }
}

fn replica(conn: &Connection) -> Result<(String, i64, String, Vec<ReplicaUpdate>)> {
    let (source_id, cv, token) = catalog_head(conn)?;
    Ok((source_id, cv, token, read_updates(conn, None)?))
}

/// The catalog's update source, content version and that version's token.
pub(crate) fn catalog_head(conn: &Connection) -> Result<(String, i64, String)> {
    let (source_id, cv): (String, i64) = conn.query_row(
        "SELECT id, content_version FROM update_sources LIMIT 1",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let token: String = conn
        .query_row(
            "SELECT token FROM content_versions WHERE version = ?1",
            params![cv],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or_default();
    Ok((source_id, cv, token))
}

/// Every stored update with its binaries, revision and whether it expired — or, with
/// `changed_after`, only those a content version after it changed — ordered by id.
pub(crate) fn read_updates(
    conn: &Connection,
    changed_after: Option<i64>,
) -> Result<Vec<ReplicaUpdate>> {
    let mut binaries: HashMap<String, Vec<UpdateBinary>> = HashMap::new();
    let mut stmt = conn.prepare(
        "SELECT b.update_id, b.name, b.architecture, b.version, b.filename, b.size, b.sha256
         FROM update_binaries b JOIN updates u ON u.id = b.update_id
         WHERE ?1 IS NULL OR u.content_version > ?1
         ORDER BY b.update_id, b.name, b.architecture",
    )?;
    let rows = stmt.query_map(params![changed_after], |r| {
        Ok((
            r.get::<_, String>(0)?,
            UpdateBinary {
                name: r.get(1)?,
                architecture: r.get(2)?,
                version: r.get(3)?,
                filename: r.get(4)?,
                size: r.get::<_, i64>(5)? as u64,
                sha256: r.get(6)?,
            },
        ))
    })?;
    for row in rows {
        let (id, b) = row?;
        binaries.entry(id).or_default().push(b);
    }
    let mut stmt = conn.prepare(
        "SELECT id, product, classification, title, description, vendor, article_id, bulletin_id,
                severity, source, version, released_ms, local_json, expired, revision
         FROM updates WHERE ?1 IS NULL OR content_version > ?1 ORDER BY id",
    )?;
    let mut rows = stmt.query(params![changed_after])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let id: String = r.get(0)?;
        let uid = uuid::Uuid::parse_str(&id)
            .map(UpdateId)
            .map_err(|_| StoreError::Corrupt(format!("update id '{id}'")))?;
        let class: String = r.get(2)?;
        let classification = Classification::parse(&class)
            .ok_or_else(|| StoreError::Corrupt(format!("classification '{class}' of {id}")))?;
        let local = r
            .get::<_, Option<String>>(12)?
            .map(|j| {
                serde_json::from_str(&j)
                    .map_err(|e| StoreError::Corrupt(format!("local_json of {id}: {e}")))
            })
            .transpose()?;
        out.push(ReplicaUpdate {
            update: UpdateCandidate {
                id: uid,
                product: r.get(1)?,
                classification,
                title: r.get(3)?,
                description: r.get(4)?,
                vendor: r.get(5)?,
                article_id: r.get(6)?,
                bulletin_id: r.get(7)?,
                severity: r.get(8)?,
                source: r.get(9)?,
                version: r.get(10)?,
                released: r.get::<_, i64>(11)? / 1000,
                binaries: binaries.remove(&id).unwrap_or_default(),
                local,
            },
            expired: r.get::<_, i64>(13)? != 0,
            revision: r.get(14)?,
        });
    }
    Ok(out)
}
