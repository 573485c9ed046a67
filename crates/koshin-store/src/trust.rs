//! Administrators, their tokens, the audit log, enrollment tokens and client approval.
//! Secrets are stored only as hashes (SHA-256 of random tokens, argon2 of passwords).

use koshin_domain::Scope;
use rusqlite::{OptionalExtension, params};

use crate::sqlite::{SqliteStore, lock};
use crate::traits::{AdminRecord, AuditEntry, ClientIdentity, EnrollmentTokenRecord, TrustStore};
use crate::{Result, StoreError};

fn admin_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(AdminRecord, String)> {
    Ok((
        AdminRecord {
            id: r.get(0)?,
            name: r.get(1)?,
            role: r.get(2)?,
            password_hash: r.get(3)?,
            scopes: Vec::new(),
            created_ms: r.get(5)?,
            created_by: r.get(6)?,
            disabled_ms: r.get(7)?,
        },
        r.get(4)?,
    ))
}

fn with_scopes((mut a, scopes): (AdminRecord, String)) -> Result<AdminRecord> {
    a.scopes = serde_json::from_str(&scopes)
        .map_err(|e| StoreError::Corrupt(format!("scopes of administrator {}: {e}", a.name)))?;
    Ok(a)
}

const ADMIN_COLUMNS: &str =
    "id, name, role, password_hash, scopes, created_ms, created_by, disabled_ms";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EnrollmentTokenRecord> {
    Ok(EnrollmentTokenRecord {
        id: r.get(0)?,
        description: r.get(1)?,
        created_by: r.get(2)?,
        created_ms: r.get(3)?,
        expires_ms: r.get(4)?,
        uses_left: r.get(5)?,
        used: r.get(6)?,
        revoked_ms: r.get(7)?,
    })
}

/// Writes an audit entry on `conn`: inside the transaction of the change it records, so
/// the change and its entry are kept or lost together.
pub(crate) fn write_audit(conn: &rusqlite::Connection, e: &AuditEntry) -> Result<()> {
    conn.execute(
        "INSERT INTO audit_log(time_ms, actor, role, action, target, detail, source) VALUES (?1,?2,?3,?4,?5,?6,?7)",
        params![e.time_ms, e.actor, e.role, e.action, e.target, e.detail, e.source],
    )?;
    Ok(())
}

impl TrustStore for SqliteStore {
    fn add_admin(&self, a: &AdminRecord) -> Result<i64> {
        let conn = lock(&self.writer);
        let scopes =
            serde_json::to_string(&a.scopes).map_err(|e| StoreError::Invalid(e.to_string()))?;
        let n = conn.execute(
            "INSERT INTO admins(name, role, password_hash, scopes, created_ms, created_by) VALUES (?1,?2,?3,?4,?5,?6) ON CONFLICT(name) DO NOTHING",
            params![a.name, a.role, a.password_hash, scopes, a.created_ms, a.created_by],
        )?;
        if n == 0 {
            return Err(StoreError::Conflict(format!(
                "an administrator named '{}' exists already",
                a.name
            )));
        }
        Ok(conn.last_insert_rowid())
    }

    fn admin_by_name(&self, name: &str) -> Result<Option<AdminRecord>> {
        self.reader()
            .query_row(
                &format!("SELECT {ADMIN_COLUMNS} FROM admins WHERE name = ?1"),
                params![name],
                admin_row,
            )
            .optional()?
            .map(with_scopes)
            .transpose()
    }

    fn list_admins(&self) -> Result<Vec<AdminRecord>> {
        let conn = self.reader();
        let mut stmt =
            conn.prepare(&format!("SELECT {ADMIN_COLUMNS} FROM admins ORDER BY name"))?;
        let rows = stmt.query_map([], admin_row)?;
        let mut out = Vec::new();
        for r in rows {
            out.push(with_scopes(r?)?);
        }
        Ok(out)
    }

    fn disable_admin(&self, name: &str, now_ms: i64) -> Result<bool> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let id: Option<i64> = tx
            .query_row(
                "SELECT id FROM admins WHERE name = ?1 AND disabled_ms IS NULL",
                params![name],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else {
            return Ok(false);
        };
        tx.execute(
            "UPDATE admins SET disabled_ms = ?2 WHERE id = ?1",
            params![id, now_ms],
        )?;
        tx.execute(
            "UPDATE admin_tokens SET revoked_ms = ?2 WHERE admin_id = ?1 AND revoked_ms IS NULL",
            params![id, now_ms],
        )?;
        tx.commit()?;
        Ok(true)
    }

    fn add_admin_token(
        &self,
        admin_id: i64,
        token_sha256: &str,
        expires_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<i64> {
        let conn = lock(&self.writer);
        conn.execute(
            "INSERT INTO admin_tokens(name, token_sha256, role, created_ms, admin_id, expires_ms)
             SELECT name, ?2, role, ?3, id, ?4 FROM admins WHERE id = ?1 AND disabled_ms IS NULL",
            params![admin_id, token_sha256, now_ms, expires_ms],
        )?;
        Ok(conn.last_insert_rowid())
    }

    fn revoke_token(&self, token_sha256: &str, now_ms: i64) -> Result<bool> {
        let conn = lock(&self.writer);
        Ok(conn.execute(
            "UPDATE admin_tokens SET revoked_ms = ?2 WHERE token_sha256 = ?1 AND revoked_ms IS NULL",
            params![token_sha256, now_ms],
        )? > 0)
    }

    fn audit(&self, e: &AuditEntry) -> Result<()> {
        write_audit(&lock(&self.writer), e)
    }

    fn audit_log(&self, since_ms: i64, limit: u32) -> Result<Vec<AuditEntry>> {
        let conn = self.reader();
        let mut stmt = conn.prepare(
            "SELECT * FROM (SELECT time_ms, actor, role, action, target, detail, source, id FROM audit_log
             WHERE time_ms >= ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
        )?;
        let rows = stmt.query_map(params![since_ms, limit], |r| {
            Ok(AuditEntry {
                time_ms: r.get(0)?,
                actor: r.get(1)?,
                role: r.get(2)?,
                action: r.get(3)?,
                target: r.get(4)?,
                detail: r.get(5)?,
                source: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn add_enrollment_token(&self, token_sha256: &str, rec: &EnrollmentTokenRecord) -> Result<i64> {
        let conn = lock(&self.writer);
        conn.execute(
            "INSERT INTO enrollment_tokens(token_sha256, description, created_by, created_ms, expires_ms, uses_left) VALUES (?1,?2,?3,?4,?5,?6)",
            params![
                token_sha256,
                rec.description,
                rec.created_by,
                rec.created_ms,
                rec.expires_ms,
                rec.uses_left
            ],
        )?;
        Ok(conn.last_insert_rowid())
    }

    fn enrollment_token_usable(&self, token_sha256: &str, now_ms: i64) -> Result<bool> {
        Ok(self
            .reader()
            .query_row(
                "SELECT 1 FROM enrollment_tokens WHERE token_sha256 = ?1 AND revoked_ms IS NULL
                   AND (expires_ms IS NULL OR expires_ms > ?2) AND (uses_left IS NULL OR uses_left > 0)",
                params![token_sha256, now_ms],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
    }

    fn list_enrollment_tokens(&self) -> Result<Vec<EnrollmentTokenRecord>> {
        let conn = self.reader();
        let mut stmt = conn.prepare(
            "SELECT id, description, created_by, created_ms, expires_ms, uses_left, used, revoked_ms FROM enrollment_tokens ORDER BY id",
        )?;
        let rows = stmt.query_map([], token_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn set_client_approval(
        &self,
        key: &str,
        approval: &str,
        scope: &Scope,
        audit: &AuditEntry,
    ) -> Result<ClientIdentity> {
        if !matches!(approval, "approved" | "revoked") {
            return Err(StoreError::Invalid(format!(
                "approval must be approved or revoked, not '{approval}'"
            )));
        }
        let mut conn = lock(&self.writer);
        let tx = conn.transaction()?;
        let found: Vec<ClientIdentity> = {
            let mut stmt = tx.prepare(
                "SELECT id, client_id, name, approval FROM clients WHERE name = ?1 COLLATE NOCASE OR client_id = ?1 LIMIT 2",
            )?;
            stmt.query_map(params![key], |r| {
                Ok(ClientIdentity {
                    rowid: r.get(0)?,
                    client_id: r.get(1)?,
                    name: r.get(2)?,
                    approval: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        let mut c = crate::clients::single(found, key)?
            .filter(|c| {
                crate::collections::scope_clients(&tx, scope)
                    .map(|set| crate::collections::in_scope(&set, c.rowid))
                    .unwrap_or(false)
            })
            .ok_or_else(|| StoreError::NotFound(format!("client '{key}'")))?;
        tx.execute(
            "UPDATE clients SET approval = ?2, approval_by = ?3, approval_ms = ?4 WHERE id = ?1",
            params![c.rowid, approval, audit.actor, audit.time_ms],
        )?;
        write_audit(
            &tx,
            &AuditEntry {
                target: c.name.clone(),
                detail: format!("client id {}", c.client_id),
                ..audit.clone()
            },
        )?;
        tx.commit()?;
        c.approval = approval.to_string();
        Ok(c)
    }
}

/// Spends one use of an enrollment token inside the transaction that stores the client:
/// refused when it is unknown, expired, revoked or used up (by a concurrent enrollment).
pub(crate) fn spend_enrollment_token(
    tx: &rusqlite::Connection,
    token_sha256: &str,
    now_ms: i64,
) -> Result<()> {
    let n = tx.execute(
        "UPDATE enrollment_tokens SET used = used + 1,
             uses_left = CASE WHEN uses_left IS NULL THEN NULL ELSE uses_left - 1 END
         WHERE token_sha256 = ?1 AND revoked_ms IS NULL
           AND (expires_ms IS NULL OR expires_ms > ?2)
           AND (uses_left IS NULL OR uses_left > 0)",
        params![token_sha256, now_ms],
    )?;
    if n == 0 {
        return Err(StoreError::Unauthorized(
            "the enrollment token is not valid (unknown, expired, revoked or used up)".into(),
        ));
    }
    Ok(())
}
