//! Catalog export and import (S10, WSUSutil export / import) and internet-facing update
//! points. An export reads the catalog — every update with its revision and whether it is
//! expired — in one read transaction, either whole or only what changed after a content
//! version (`updates.content_version` is the version that last changed a row, set by the
//! sync's apply). An import applies it in one write transaction through the same plan a
//! sync and a replication use, then takes the exporter's revisions, content version and
//! token, so both sites hold the same catalog at the same version.

use std::collections::{HashMap, HashSet};

use koshin_domain::SyncKind;
use koshin_domain::catalog::{self, SyncPlan, UpdateCandidate, UpdateId};
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::sqlite::{SqliteStore, apply_rows, lock, stored_in};
use crate::traits::AuditEntry;
use crate::trust::write_audit;
use crate::{Result, StoreError};

/// One update as an export carries it: all its data, its revision, whether it is expired.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExportedUpdate {
    pub update: UpdateCandidate,
    pub revision: u32,
    pub expired: bool,
}

/// The catalog (or the part changed after `since`) at one content version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogSnapshot {
    pub source_id: String,
    pub content_version: i64,
    pub content_token: String,
    /// 0 for the whole catalog; else only the updates changed after this content version.
    pub since: i64,
    pub updates: Vec<ExportedUpdate>,
}

/// What an import did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImportOutcome {
    /// False when the site already held exactly this catalog: nothing was written.
    pub applied: bool,
    /// Updates inserted, revised, expired or whose supersedence changed.
    pub items: usize,
    pub previous_version: i64,
    pub content_version: i64,
}

/// Catalog export and import, and the update points that are internet-facing.
pub trait ExportStore: Send + Sync {
    /// The catalog in one read transaction; with `since`, only the updates changed after
    /// that content version (which must not be newer than the catalog's).
    fn export_catalog(&self, since: Option<i64>) -> Result<CatalogSnapshot>;
    /// Applies an export in one transaction. A whole catalog is taken when it is newer than
    /// what is held; an incremental one only onto its base version (`since`); a catalog
    /// already held (same version and token, nothing to change) writes nothing.
    fn import_catalog(
        &self,
        snapshot: &CatalogSnapshot,
        fingerprint: &str,
        now_ms: i64,
    ) -> Result<ImportOutcome>;
    /// Registers (or re-registers) an internet-facing update point: listed in policy, not
    /// synced by the site's sync manager; it reads the catalog with its pull token.
    fn register_internet_update_point(
        &self,
        name: &str,
        url: &str,
        pull_token_sha256: &str,
        audit: &AuditEntry,
    ) -> Result<()>;
    /// The names of the internet-facing update points.
    fn internet_update_points(&self) -> Result<Vec<String>>;
    /// The content version and its token.
    fn content_state(&self) -> Result<(i64, String)>;
}

impl ExportStore for SqliteStore {
    fn export_catalog(&self, since: Option<i64>) -> Result<CatalogSnapshot> {
        let conn = self.reader();
        conn.execute_batch("BEGIN")?;
        let result = snapshot(&conn, since);
        let _ = conn.execute_batch("COMMIT");
        result
    }

    fn import_catalog(
        &self,
        snap: &CatalogSnapshot,
        fingerprint: &str,
        now_ms: i64,
    ) -> Result<ImportOutcome> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let (source_id, cv): (String, i64) = tx.query_row(
            "SELECT id, content_version FROM update_sources LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let token: String = tx
            .query_row(
                "SELECT token FROM content_versions WHERE version = ?1",
                params![cv],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or_default();
        let held = cv == snap.content_version && token == snap.content_token;
        if !held {
            if snap.since > 0 && cv != snap.since {
                return Err(StoreError::Conflict(format!(
                    "wrong base version: this export holds the changes after content version {} (up to {}), and this site is at content version {cv}; import the exports in order, or a full export",
                    snap.since, snap.content_version
                )));
            }
            if snap.since == 0 && snap.content_version <= cv {
                return Err(StoreError::Conflict(format!(
                    "this site is at content version {cv}, the export at {}: an export is imported only onto an older catalog",
                    snap.content_version
                )));
            }
        }
        let stored = stored_in(&tx)?;
        let stored_ids: HashSet<UpdateId> = stored.iter().map(|s| s.id).collect();
        // Expired updates this site has never held are inserted first, then expired by
        // the plan below, so the catalog has every update the exporter's has.
        let missing_expired: Vec<UpdateCandidate> = snap
            .updates
            .iter()
            .filter(|u| u.expired && !stored_ids.contains(&u.update.id))
            .map(|u| u.update.clone())
            .collect();
        let first = SyncPlan {
            inserts: missing_expired,
            ..SyncPlan::default()
        };
        let plan = {
            let mut after: Vec<catalog::StoredUpdate> = stored;
            after.extend(first.inserts.iter().map(|c| catalog::StoredUpdate {
                id: c.id,
                revision: 1,
                metadata_hash: c.metadata_hash(),
                expired: false,
                superseded_by: None,
                group: c.supersedence_group(),
                version: c.version.clone(),
            }));
            let expired: HashSet<UpdateId> = snap
                .updates
                .iter()
                .filter(|u| u.expired)
                .map(|u| u.update.id)
                .collect();
            let present: HashSet<UpdateId> = if snap.since > 0 {
                // Incremental: what is not in the export stays as it is.
                after
                    .iter()
                    .map(|s| s.id)
                    .chain(snap.updates.iter().map(|u| u.update.id))
                    .filter(|id| !expired.contains(id))
                    .collect()
            } else {
                snap.updates
                    .iter()
                    .filter(|u| !u.expired)
                    .map(|u| u.update.id)
                    .collect()
            };
            let candidates: Vec<UpdateCandidate> = snap
                .updates
                .iter()
                .filter(|u| !u.expired)
                .map(|u| u.update.clone())
                .collect();
            catalog::plan_sync(SyncKind::Full, &after, candidates, &present)
        };
        let revisions_differ = {
            let have: HashMap<String, u32> = {
                let mut stmt = tx.prepare("SELECT id, revision FROM updates")?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<_>>()?
            };
            snap.updates
                .iter()
                .any(|u| have.get(&u.update.id.to_string()) != Some(&u.revision))
        };
        let items = plan.changed_items() + first.changed_items();
        if held && items == 0 && !revisions_differ {
            return Ok(ImportOutcome {
                applied: false,
                items: 0,
                previous_version: cv,
                content_version: cv,
            });
        }
        let new_cv = snap.content_version;
        apply_rows(&tx, &first, new_cv, now_ms, &mut |_, _| {})?;
        apply_rows(&tx, &plan, new_cv, now_ms, &mut |_, _| {})?;
        {
            let mut rev =
                tx.prepare("UPDATE updates SET revision = ?2 WHERE id = ?1 AND revision <> ?2")?;
            for u in &snap.updates {
                rev.execute(params![u.update.id.to_string(), u.revision])?;
            }
        }
        tx.execute(
            "UPDATE update_sources SET content_version = ?2, updated_ms = ?3 WHERE id = ?1",
            params![source_id, new_cv, now_ms],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO content_versions(version, token, created_ms) VALUES (?1, ?2, ?3)",
            params![new_cv, snap.content_token, now_ms],
        )?;
        tx.execute("DELETE FROM synced_indices", [])?;
        tx.execute(
            "INSERT INTO site_kv(key, value) VALUES ('sync_fingerprint', ?1) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            params![fingerprint],
        )?;
        tx.commit()?;
        Ok(ImportOutcome {
            applied: true,
            items,
            previous_version: cv,
            content_version: new_cv,
        })
    }

    fn register_internet_update_point(
        &self,
        name: &str,
        url: &str,
        pull_token_sha256: &str,
        audit: &AuditEntry,
    ) -> Result<()> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        // An internet-facing point is never pushed to: a push token no one holds.
        let push = format!("none:{pull_token_sha256}");
        tx.execute(
            "INSERT INTO update_points(name, url, push_token, pull_token_sha256, registered_ms, registered_by, internet)
             VALUES (?1,?2,?3,?4,?5,?6,1)
             ON CONFLICT(name) DO UPDATE SET url = excluded.url, push_token = excluded.push_token,
                 pull_token_sha256 = excluded.pull_token_sha256, last_error = NULL, internet = 1",
            params![name, url, push, pull_token_sha256, audit.time_ms, audit.actor],
        )?;
        write_audit(&tx, audit)?;
        tx.commit()?;
        Ok(())
    }

    fn internet_update_points(&self) -> Result<Vec<String>> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare_cached("SELECT name FROM update_points WHERE internet = 1 ORDER BY id")?;
        Ok(stmt
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    fn content_state(&self) -> Result<(i64, String)> {
        let conn = self.reader();
        let cv: i64 = conn.query_row(
            "SELECT content_version FROM update_sources LIMIT 1",
            [],
            |r| r.get(0),
        )?;
        let token: String = conn
            .query_row(
                "SELECT token FROM content_versions WHERE version = ?1",
                params![cv],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or_default();
        Ok((cv, token))
    }
}

fn snapshot(conn: &Connection, since: Option<i64>) -> Result<CatalogSnapshot> {
    let (source_id, cv, content_token) = crate::hierarchy::catalog_head(conn)?;
    let since = since.unwrap_or(0);
    if since < 0 || since > cv {
        return Err(StoreError::Invalid(format!(
            "--since {since}: the catalog is at content version {cv}"
        )));
    }
    let updates = crate::hierarchy::read_updates(conn, Some(since))?
        .into_iter()
        .map(|u| ExportedUpdate {
            update: u.update,
            revision: u.revision,
            expired: u.expired,
        })
        .collect();
    Ok(CatalogSnapshot {
        source_id,
        content_version: cv,
        content_token,
        since,
        updates,
    })
}
