//! Clients at the site: enrollment, authentication by credential, and state message
//! ingestion — one transaction per batch, idempotent by batch id, current state per
//! (client, update) kept newest-first, every message kept in the history.

use std::collections::HashMap;

use koshin_domain::compliance::UpdateState;
use koshin_wire::{
    BatchAck, CatalogBinary, CatalogEntry, ClientCatalog, ClientDetail, ClientQuery, ClientSummary,
    ClientUpdateState, ScanRecord, StateBatch,
};
use rusqlite::{OptionalExtension, params};

use crate::sqlite::{SqliteStore, lock, ts};
use koshin_domain::Scope;

use crate::traits::{ClientIdentity, ClientStore, NewClient};
use crate::{Result, StoreError};

/// The most state messages one batch may carry.
pub const MAX_BATCH_MESSAGES: usize = 200_000;

fn parse_state(s: &str) -> Option<UpdateState> {
    match s {
        "required" => Some(UpdateState::Required),
        "installed" => Some(UpdateState::Installed),
        "not_required" => Some(UpdateState::NotRequired),
        _ => None,
    }
}

/// Checks a whole batch before anything of it is written.
fn validate(client: &ClientIdentity, batch: &StateBatch) -> Result<Vec<UpdateState>> {
    let invalid = |m: String| Err(StoreError::Invalid(m));
    if batch.client_id != client.client_id {
        return invalid(format!(
            "batch {} is for client {}, but the sender is {}: a client reports only for itself",
            batch.batch_id, batch.client_id, client.client_id
        ));
    }
    if batch.batch_id.trim().is_empty() || batch.batch_id.len() > 100 {
        return invalid("batch_id must be 1 to 100 characters".into());
    }
    if batch.messages.len() > MAX_BATCH_MESSAGES {
        return invalid(format!(
            "a batch carries at most {MAX_BATCH_MESSAGES} state messages, this one {}",
            batch.messages.len()
        ));
    }
    let mut states = Vec::with_capacity(batch.messages.len());
    for (i, m) in batch.messages.iter().enumerate() {
        if uuid::Uuid::parse_str(&m.update_id).is_err() {
            return invalid(format!(
                "message {i}: update_id '{}' is not a UUID",
                m.update_id
            ));
        }
        let Some(s) = parse_state(&m.state) else {
            return invalid(format!(
                "message {i}: state '{}' is not required, installed or not_required",
                m.state
            ));
        };
        states.push(s);
    }
    Ok(states)
}

fn summary_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, Option<i64>, ClientSummary)> {
    let opt = |v: Option<i64>| v.map(ts);
    Ok((
        r.get(0)?,
        r.get(11)?,
        ClientSummary {
            name: r.get(1)?,
            client_id: r.get(2)?,
            approval: r.get(12)?,
            os: r.get(3)?,
            os_release: r.get(4)?,
            architecture: r.get(5)?,
            site: r.get(6)?,
            enrolled: ts(r.get(7)?),
            last_contact: opt(r.get(8)?),
            last_policy: opt(r.get(9)?),
            last_scan: opt(r.get(10)?),
            required: 0,
            installed: 0,
            not_required: 0,
            unknown: 0,
        },
    ))
}

/// The one client a name or client id names: none, or an error when a name is ambiguous.
pub(crate) fn single<T>(found: Vec<T>, key: &str) -> Result<Option<T>> {
    if found.len() > 1 {
        return Err(StoreError::Invalid(format!(
            "more than one client is named '{key}'; give its client id"
        )));
    }
    Ok(found.into_iter().next())
}

const CLIENT_COLUMNS: &str = "id, name, client_id, os, os_release, architecture, site, enrolled_ms, last_contact_ms, last_policy_ms, last_scan_ms, scanned_cv, approval";

/// What a client's counts are made of: the unexpired catalog by the version that added
/// each update, and per client its Required and Installed rows over unexpired updates.
struct Counts {
    /// (added content version, unexpired updates added then), ascending.
    added: Vec<(i64, u64)>,
    rows: HashMap<i64, [u64; 2]>,
}

impl SqliteStore {
    /// The counts of every client (`only: None`) or of one.
    fn compliance_counts(&self, conn: &rusqlite::Connection, only: Option<i64>) -> Result<Counts> {
        let added = conn
            .prepare_cached(
                "SELECT added_cv, COUNT(*) FROM updates WHERE expired = 0 GROUP BY added_cv ORDER BY added_cv",
            )?
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)? as u64)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        // One client: its rows by the primary key, not a scan of every client's.
        let sql = format!(
            "SELECT s.client, SUM(s.state = 1), SUM(s.state = 3) FROM update_states s JOIN updates u ON u.ukey = s.ukey AND u.expired = 0
             WHERE s.state IN (1, 3){} GROUP BY s.client",
            if only.is_some() { " AND s.client = ?1" } else { "" }
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let rows = stmt
            .query_map(rusqlite::params_from_iter(only), |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    [r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64],
                ))
            })?
            .collect::<rusqlite::Result<HashMap<_, _>>>()?;
        Ok(Counts { added, rows })
    }
}

/// The counts of a page of clients: their own rows by the primary key, never a scan of
/// every client's.
fn page_counts(conn: &rusqlite::Connection, store: &SqliteStore, keys: &[i64]) -> Result<Counts> {
    // The catalog part: no client has the key -1, so no state rows are read here.
    let mut counts = store.compliance_counts(conn, Some(-1))?;
    let json = serde_json::to_string(keys).map_err(|e| StoreError::Invalid(e.to_string()))?;
    let mut stmt = conn.prepare_cached(
        "SELECT s.client, SUM(s.state = 1), SUM(s.state = 3) FROM update_states s JOIN updates u ON u.ukey = s.ukey AND u.expired = 0
         WHERE s.state IN (1, 3) AND s.client IN (SELECT value FROM json_each(?1)) GROUP BY s.client",
    )?;
    counts.rows = stmt
        .query_map(params![json], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                [r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64],
            ))
        })?
        .collect::<rusqlite::Result<HashMap<_, _>>>()?;
    Ok(counts)
}

/// `%text%` for LIKE, with the pattern characters of `text` taken literally.
fn like_pattern(text: &str) -> String {
    let mut p = String::from("%");
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Required and Installed come from the client's rows; Unknown is every unexpired update
/// its last successful scan did not cover (all of them before its first); the rest is Not
/// required.
fn fill_counts(s: &mut ClientSummary, scanned_cv: Option<i64>, counts: &Counts, rowid: i64) {
    let total: u64 = counts.added.iter().map(|(_, n)| n).sum();
    let unknown: u64 = match scanned_cv {
        None => total,
        Some(cv) => counts
            .added
            .iter()
            .filter(|(added, _)| *added > cv)
            .map(|(_, n)| n)
            .sum(),
    };
    let [req, inst] = counts.rows.get(&rowid).copied().unwrap_or([0, 0]);
    s.required = req;
    s.installed = inst;
    s.unknown = unknown;
    s.not_required = total.saturating_sub(req + inst + unknown);
}

impl ClientStore for SqliteStore {
    fn enroll_client(
        &self,
        c: &NewClient,
        credential_sha256: &str,
        approved: bool,
        spend_enrollment_token: Option<&str>,
        now_ms: i64,
    ) -> Result<ClientIdentity> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        if let Some(token) = spend_enrollment_token {
            crate::trust::spend_enrollment_token(&tx, token, now_ms)?;
        }
        let existing: Option<String> = tx
            .query_row(
                "SELECT approval FROM clients WHERE client_id = ?1",
                params![c.client_id],
                |r| r.get(0),
            )
            .optional()?;
        match existing.as_deref() {
            None => {
                tx.execute(
                    "INSERT INTO clients(client_id, name, os, os_release, architecture, site, agent_version, credential_sha256, enrolled_ms, last_contact_ms, approval)
                     VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?9,?10)",
                    params![
                        c.client_id,
                        c.name,
                        c.os,
                        c.os_release,
                        c.architecture,
                        c.site,
                        c.agent_version,
                        credential_sha256,
                        now_ms,
                        if approved { "approved" } else { "pending" }
                    ],
                )?;
            }
            // A new credential for a known client id only with an enrollment the site
            // trusts: otherwise anyone who learns a client id could take over its identity.
            Some(_) if !approved => {
                return Err(StoreError::Conflict(format!(
                    "client {} is enrolled already: enrolling it again needs an enrollment token",
                    c.client_id
                )));
            }
            Some(approval) => {
                // Revoked stays revoked (an administrator approves it again); pending
                // becomes approved by the token.
                let approval = if approval == "revoked" {
                    "revoked"
                } else {
                    "approved"
                };
                tx.execute(
                    "UPDATE clients SET name=?2, os=?3, os_release=?4, architecture=?5, agent_version=?6,
                       credential_sha256=?7, last_contact_ms=?8, approval=?9 WHERE client_id=?1",
                    params![
                        c.client_id,
                        c.name,
                        c.os,
                        c.os_release,
                        c.architecture,
                        c.agent_version,
                        credential_sha256,
                        now_ms,
                        approval
                    ],
                )?;
            }
        }
        let id = tx.query_row(
            "SELECT id, approval FROM clients WHERE client_id=?1",
            params![c.client_id],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
        )?;
        tx.commit()?;
        Ok(ClientIdentity {
            rowid: id.0,
            client_id: c.client_id.clone(),
            name: c.name.clone(),
            approval: id.1,
        })
    }

    fn client_by_credential(&self, credential_sha256: &str) -> Result<Option<ClientIdentity>> {
        identity_where(&self.reader(), "credential_sha256", credential_sha256)
    }

    fn client_by_id(&self, client_id: &str) -> Result<Option<ClientIdentity>> {
        identity_where(&self.reader(), "client_id", client_id)
    }

    fn touch_client(&self, rowid: i64, policy: bool, now_ms: i64) -> Result<()> {
        let conn = lock(&self.writer);
        if policy {
            conn.execute(
                "UPDATE clients SET last_contact_ms=?2, last_policy_ms=?2 WHERE id=?1",
                params![rowid, now_ms],
            )?;
        } else {
            conn.execute(
                "UPDATE clients SET last_contact_ms=?2 WHERE id=?1",
                params![rowid, now_ms],
            )?;
        }
        Ok(())
    }

    fn ingest_states(
        &self,
        client: &ClientIdentity,
        batch: &StateBatch,
        now_ms: i64,
    ) -> Result<BatchAck> {
        let states = validate(client, batch)?;
        crate::ingest::submit(self, client, batch, states, now_ms)
    }

    fn list_clients(&self, scope: &Scope) -> Result<Vec<ClientSummary>> {
        let conn = self.reader();
        let visible = crate::collections::scope_clients(&conn, scope)?;
        let counts = self.compliance_counts(&conn, None)?;
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {CLIENT_COLUMNS} FROM clients ORDER BY name, client_id"
        ))?;
        let rows = stmt.query_map([], summary_from_row)?;
        let mut out = Vec::new();
        for row in rows {
            let (rowid, scanned_cv, mut s) = row?;
            if !crate::collections::in_scope(&visible, rowid) {
                continue;
            }
            fill_counts(&mut s, scanned_cv, &counts, rowid);
            out.push(s);
        }
        Ok(out)
    }

    fn list_clients_page(
        &self,
        q: &ClientQuery,
        now_ms: i64,
        scope: &Scope,
    ) -> Result<(u64, Vec<ClientSummary>)> {
        let conn = self.reader();
        let mut filter = String::from(" WHERE 1=1");
        let mut args: Vec<rusqlite::types::Value> = Vec::new();
        if let Some(text) = q.search.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
            args.push(like_pattern(text).into());
            let n = args.len();
            filter.push_str(&format!(
                " AND (name LIKE ?{n} ESCAPE '\\' OR client_id LIKE ?{n} ESCAPE '\\')"
            ));
        }
        if let Some(days) = q.not_reporting_days {
            args.push(now_ms.saturating_sub(i64::from(days) * 86_400_000).into());
            filter.push_str(&format!(
                " AND (last_contact_ms IS NULL OR last_contact_ms < ?{})",
                args.len()
            ));
        }
        if let Scope::Collections(ids) = scope {
            args.push(
                serde_json::to_string(ids)
                    .map_err(|e| StoreError::Invalid(e.to_string()))?
                    .into(),
            );
            filter.push_str(&format!(
                " AND id IN (SELECT m.client FROM collection_members m JOIN collections k ON k.id = m.collection
                   WHERE k.collection_id IN (SELECT value FROM json_each(?{})))",
                args.len()
            ));
        }
        let total: i64 = conn.query_row(
            &format!("SELECT COUNT(*) FROM clients{filter}"),
            rusqlite::params_from_iter(args.iter()),
            |r| r.get(0),
        )?;
        let limit = q.limit.map_or(-1, i64::from);
        let offset = q.offset.map_or(0, i64::from);
        args.push(limit.into());
        args.push(offset.into());
        let sql = format!(
            "SELECT {CLIENT_COLUMNS} FROM clients{filter} ORDER BY name, client_id LIMIT ?{} OFFSET ?{}",
            args.len() - 1,
            args.len()
        );
        let mut stmt = conn.prepare(&sql)?;
        let found = stmt
            .query_map(rusqlite::params_from_iter(args.iter()), summary_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let keys: Vec<i64> = found.iter().map(|(k, _, _)| *k).collect();
        let counts = page_counts(&conn, self, &keys)?;
        let out = found
            .into_iter()
            .map(|(rowid, scanned_cv, mut s)| {
                fill_counts(&mut s, scanned_cv, &counts, rowid);
                s
            })
            .collect();
        Ok((total.max(0) as u64, out))
    }

    fn get_client(&self, key: &str, scope: &Scope) -> Result<Option<ClientDetail>> {
        let conn = self.reader();
        let found: Vec<(i64, Option<i64>, ClientSummary)> = {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {CLIENT_COLUMNS} FROM clients WHERE name = ?1 COLLATE NOCASE OR client_id = ?1 LIMIT 2"
            ))?;
            stmt.query_map(params![key], summary_from_row)?
                .collect::<rusqlite::Result<_>>()?
        };
        let Some((rowid, scanned_cv, mut summary)) = single(found, key)? else {
            return Ok(None);
        };
        if !crate::collections::in_scope(&crate::collections::scope_clients(&conn, scope)?, rowid) {
            return Ok(None);
        }
        let counts = self.compliance_counts(&conn, Some(rowid))?;
        fill_counts(&mut summary, scanned_cv, &counts, rowid);
        let last_scan_record: Option<ScanRecord> = conn
            .query_row(
                "SELECT last_scan_json FROM clients WHERE id=?1",
                params![rowid],
                |r| r.get::<_, Option<String>>(0),
            )?
            .map(|j| {
                serde_json::from_str(&j)
                    .map_err(|e| StoreError::Corrupt(format!("last scan of {key}: {e}")))
            })
            .transpose()?;
        let mut stmt = conn.prepare_cached(
            "SELECT u.id, u.title, u.classification, s.state, s.restart_pending, s.time_ms FROM update_states s JOIN updates u ON u.ukey = s.ukey
             WHERE s.client = ?1 AND s.state IN (1, 3) AND u.expired = 0 ORDER BY s.state, u.title",
        )?;
        let updates = stmt
            .query_map(params![rowid], |r| {
                Ok(ClientUpdateState {
                    update_id: r.get(0)?,
                    title: r.get(1)?,
                    classification: r.get(2)?,
                    state: UpdateState::from_code(r.get(3)?)
                        .unwrap_or(UpdateState::Unknown)
                        .name()
                        .to_string(),
                    restart_pending: r.get::<_, i64>(4)? != 0,
                    time: ts(r.get(5)?),
                })
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(Some(ClientDetail {
            summary,
            last_scan_record,
            updates,
        }))
    }

    fn client_catalog(&self, since: i64, token: &str) -> Result<ClientCatalog> {
        let mut guard = self.reader();
        // One read transaction: a sync finishing meanwhile cannot split an update from its
        // binaries or from the version the answer names.
        let tx = guard.transaction()?;
        let conn = &tx;
        let cv: i64 = conn.query_row(
            "SELECT content_version FROM update_sources LIMIT 1",
            [],
            |r| r.get(0),
        )?;
        let token_of = |v: i64| -> Result<String> {
            Ok(conn
                .query_row(
                    "SELECT token FROM content_versions WHERE version=?1",
                    params![v],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or_default())
        };
        let since = if since > 0 && (since > cv || token_of(since)? != token) {
            0
        } else {
            since
        };
        let current_token = token_of(cv)?;
        let filter = "content_version > ?1 AND (?1 > 0 OR expired = 0)";
        let mut bins: HashMap<String, Vec<CatalogBinary>> = HashMap::new();
        {
            let mut stmt = conn.prepare(&format!(
                "SELECT b.update_id, b.name, b.architecture, b.version FROM update_binaries b JOIN updates u ON u.id = b.update_id WHERE u.{filter}"
            ))?;
            let mut rows = stmt.query(params![since])?;
            while let Some(r) = rows.next()? {
                bins.entry(r.get(0)?).or_default().push(CatalogBinary {
                    name: r.get(1)?,
                    architecture: r.get(2)?,
                    version: r.get(3)?,
                });
            }
        }
        let mut stmt = conn.prepare(&format!(
            "SELECT id, revision, title, product, classification, superseded_by, expired, local_json FROM updates WHERE {filter} ORDER BY id"
        ))?;
        let mut rows = stmt.query(params![since])?;
        let mut updates = Vec::new();
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            let local: Option<String> = r.get(7)?;
            updates.push(CatalogEntry {
                binaries: bins.remove(&id).unwrap_or_default(),
                revision: r.get(1)?,
                title: r.get(2)?,
                product: r.get(3)?,
                classification: r.get(4)?,
                superseded_by: r.get(5)?,
                expired: r.get::<_, i64>(6)? != 0,
                local: local
                    .map(|s| {
                        serde_json::from_str(&s)
                            .map_err(|e| StoreError::Corrupt(format!("local_json of {id}: {e}")))
                    })
                    .transpose()?,
                id,
            });
        }
        drop(rows);
        drop(stmt);
        tx.finish()?;
        Ok(ClientCatalog {
            content_version: cv,
            token: current_token,
            since,
            updates,
        })
    }
}

/// The client whose `column` (a unique one: client id or credential hash) is `value`.
fn identity_where(
    conn: &rusqlite::Connection,
    column: &str,
    value: &str,
) -> Result<Option<ClientIdentity>> {
    Ok(conn
        .query_row(
            &format!("SELECT id, client_id, name, approval FROM clients WHERE {column}=?1"),
            params![value],
            |r| {
                Ok(ClientIdentity {
                    rowid: r.get(0)?,
                    client_id: r.get(1)?,
                    name: r.get(2)?,
                    approval: r.get(3)?,
                })
            },
        )
        .optional()?)
}
