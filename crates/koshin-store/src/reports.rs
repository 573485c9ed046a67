//! Reports run as read-only SQL over the site database, three times guarded: the
//! connection is opened read-only, SQLite must call the statement read-only before it runs,
//! and an authorizer lets a report do nothing but select — and not read secrets
//! (administrator token and password hashes, client credential hashes, enrollment token
//! hashes) even though they sit in tables.
//!
//! An administrator scoped to collections runs reports over the same names, narrowed: the
//! tables that hold clients' data are copied into the connection's TEMP schema with only
//! the scope's clients (counters recomputed from them), the documented views are created
//! again in TEMP over those copies, and an authorizer lets the report read the site's own
//! tables only where they hold no client's data. SQLite looks a name up in TEMP first, so
//! a report reads the same `v_clients` either way; a main-schema view binds to main tables
//! at creation, so naming `main.v_clients` or `main.clients` is refused, not a way around.

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;

use koshin_domain::Scope;

use crate::sqlite::{SqliteStore, lock};
use crate::traits::{ReportPage, ReportRows, ReportStore};
use crate::{Result, StoreError};

/// What a report may not read, even though it is in the database.
fn secret(table: &str, column: &str) -> bool {
    let t = |n: &str| table.eq_ignore_ascii_case(n);
    let c = |n: &str| column.eq_ignore_ascii_case(n);
    t("admin_tokens")
        || (t("clients") && c("credential_sha256"))
        || (t("admins") && c("password_hash"))
        || (t("enrollment_tokens") && c("token_sha256"))
        || (t("distribution_points") && c("push_token"))
        || (t("site_links") && c("our_token"))
        || (t("update_points") && c("push_token"))
        || (t("site_join_tokens") && c("token_sha256"))
}

/// The site's tables a scoped administrator's report may read from main: none holds a
/// client's data. Everything else of main is refused; client data comes from TEMP copies.
const UNSCOPED_TABLES: &[&str] = &[
    "updates",
    "update_binaries",
    "update_sources",
    "content_versions",
    "sync_runs",
    "sync_status",
    "synced_indices",
    "collections",
    "schedules",
    "machine_policy",
    "content_files",
    "content_packages",
    "package_files",
    "package_updates",
    "distribution_points",
    "dp_groups",
    "dp_group_members",
    "package_targets",
    "site_kv",
    "update_groups",
    "update_group_members",
    "deployments",
    "deployment_updates",
    "maintenance_windows",
    "global_changes",
];

fn authorize_scoped(ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Read {
            table_name,
            column_name,
        } => {
            let named = |list: &[&str]| list.iter().any(|t| t.eq_ignore_ascii_case(table_name));
            let allowed = match ctx.database_name {
                Some("temp") => true,
                Some("main") => named(UNSCOPED_TABLES),
                // SQLite names no schema when a statement reads no column of a table
                // (`COUNT(*)`) and the report did not name one: then the name resolves
                // TEMP first, so a client table is its scoped copy.
                None => named(UNSCOPED_TABLES) || named(SCOPED_TABLES),
                Some(_) => false,
            };
            if allowed && !secret(table_name, column_name) {
                Authorization::Allow
            } else {
                Authorization::Deny
            }
        }
        _ => authorize(ctx),
    }
}

/// The tables a scoped connection holds narrowed copies of, in TEMP.
const SCOPED_TABLES: &[&str] = &[
    "scope_clients",
    "clients",
    "update_states",
    "state_history",
    "state_batches",
    "scans",
    "collection_members",
    "status_messages",
    "update_summary",
    "client_coverage",
    "deployment_status",
    "inventory",
    "inventory_packages",
];

/// Copies of the tables that hold clients' data, narrowed to the scope's clients
/// (`temp.scope_clients`), and the counters recomputed from them.
const SCOPED_COPIES: &str = r#"
CREATE TEMP TABLE clients AS SELECT * FROM main.clients WHERE id IN (SELECT id FROM temp.scope_clients);
CREATE TEMP TABLE update_states AS SELECT * FROM main.update_states WHERE client IN (SELECT id FROM temp.scope_clients);
CREATE TEMP TABLE state_history AS SELECT * FROM main.state_history WHERE client IN (SELECT id FROM temp.scope_clients);
CREATE TEMP TABLE state_batches AS SELECT * FROM main.state_batches WHERE client IN (SELECT id FROM temp.scope_clients);
CREATE TEMP TABLE scans AS SELECT * FROM main.scans WHERE client IN (SELECT id FROM temp.scope_clients);
CREATE TEMP TABLE deployment_status AS SELECT * FROM main.deployment_status WHERE client IN (SELECT id FROM temp.scope_clients);
CREATE TEMP TABLE collection_members AS SELECT * FROM main.collection_members WHERE client IN (SELECT id FROM temp.scope_clients);
CREATE TEMP TABLE inventory AS SELECT * FROM main.inventory WHERE client IN (SELECT id FROM temp.scope_clients);
CREATE TEMP TABLE inventory_packages AS SELECT * FROM main.inventory_packages WHERE client IN (SELECT id FROM temp.scope_clients);
CREATE TEMP TABLE status_messages AS SELECT * FROM main.status_messages
    WHERE system NOT IN (SELECT name FROM main.clients) OR system IN (SELECT name FROM temp.clients);
CREATE TEMP TABLE update_summary AS
    SELECT ukey, SUM(state = 1) AS required, SUM(state = 3) AS installed, SUM(state = 2) AS not_required,
           SUM(restart_pending <> 0) AS restart_pending,
           MIN(CASE WHEN state IN (1, 3) THEN time_ms END) AS first_detected_ms, MAX(time_ms) AS last_change_ms
    FROM temp.update_states GROUP BY ukey;
CREATE TEMP TABLE client_coverage AS
    SELECT scanned_cv AS cv, COUNT(*) AS clients FROM temp.clients WHERE scanned_cv IS NOT NULL GROUP BY scanned_cv;
"#;

/// Opens the site database read-only, for reports.
pub(crate) fn open_read_only(path: &std::path::Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    Ok(conn)
}

/// A read-only connection of its own, narrowed to a scope's clients: the copies and the
/// views in its TEMP schema, then the scoped authorizer. It is closed after the one report,
/// so nothing of one administrator's scope outlives the run.
fn scoped(path: &std::path::Path, collection_ids: &[String]) -> Result<Connection> {
    let mut conn = open_read_only(path)?;
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    let ids =
        serde_json::to_string(collection_ids).map_err(|e| StoreError::Invalid(e.to_string()))?;
    // One read transaction, so the copies agree with one another.
    conn.execute_batch("BEGIN; CREATE TEMP TABLE scope_clients(id INTEGER PRIMARY KEY);")?;
    conn.execute(
        "INSERT OR IGNORE INTO temp.scope_clients(id)
         SELECT m.client FROM main.collection_members m JOIN main.collections k ON k.id = m.collection
         WHERE k.collection_id IN (SELECT value FROM json_each(?1))",
        [ids],
    )?;
    conn.execute_batch(SCOPED_COPIES)?;
    conn.execute_batch(&crate::views::VIEWS.replace("CREATE VIEW", "CREATE TEMP VIEW"))?;
    conn.execute_batch("COMMIT")?;
    conn.authorizer(Some(authorize_scoped))?;
    Ok(conn)
}

fn authorize(ctx: AuthContext<'_>) -> Authorization {
    match ctx.action {
        AuthAction::Select | AuthAction::Recursive | AuthAction::Function { .. } => {
            Authorization::Allow
        }
        AuthAction::Read {
            table_name,
            column_name,
        } if !secret(table_name, column_name) => Authorization::Allow,
        _ => Authorization::Deny,
    }
}

/// Installs the report authorizer on the report connection.
pub(crate) fn guard(conn: &mut Connection) -> Result<()> {
    conn.authorizer(Some(authorize))?;
    Ok(())
}

const REFUSED: &str = "a report may only read: it selects from the site's tables and views, and may not write, change the connection, or read administrator tokens or client credentials";

fn prepare<'c>(conn: &'c Connection, sql: &str) -> Result<rusqlite::Statement<'c>> {
    let stmt = conn.prepare(sql).map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::AuthorizationForStatementDenied) => {
            StoreError::Invalid(REFUSED.into())
        }
        _ => StoreError::Invalid(format!("the report's SQL does not prepare: {e}")),
    })?;
    if !stmt.readonly() {
        return Err(StoreError::Invalid(REFUSED.into()));
    }
    Ok(stmt)
}

fn to_json(v: ValueRef<'_>) -> serde_json::Value {
    match v {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => serde_json::Number::from_f64(f)
            .map(Into::into)
            .unwrap_or(serde_json::Value::Null),
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
        ValueRef::Blob(b) => format!("<{} bytes>", b.len()).into(),
    }
}

impl ReportStore for SqliteStore {
    fn check_report(&self, sql: &str) -> Result<()> {
        let conn = lock(&self.report);
        prepare(&conn, sql).map(drop)
    }

    fn run_report_optional(
        &self,
        sql: &str,
        params: &[(String, String)],
        optional: &[String],
        scope: &Scope,
    ) -> Result<ReportRows> {
        let page = None;
        let (rows, _) = match scope {
            Scope::All => run(&lock(&self.report), sql, params, optional, page),
            Scope::Collections(ids) => run(&scoped(&self.path, ids)?, sql, params, optional, page),
        }?;
        Ok(rows)
    }

    fn run_report_page(
        &self,
        sql: &str,
        params: &[(String, String)],
        optional: &[String],
        scope: &Scope,
        page: ReportPage,
    ) -> Result<(ReportRows, Option<u64>)> {
        let page = Some(page);
        match scope {
            Scope::All => run(&lock(&self.report), sql, params, optional, page),
            Scope::Collections(ids) => run(&scoped(&self.path, ids)?, sql, params, optional, page),
        }
    }
}

fn run(
    conn: &Connection,
    sql: &str,
    params: &[(String, String)],
    optional: &[String],
    page: Option<ReportPage>,
) -> Result<(ReportRows, Option<u64>)> {
    let mut stmt = prepare(conn, sql)?;
    for i in 1..=stmt.parameter_count() {
        let Some(name) = stmt.parameter_name(i) else {
            return Err(StoreError::Invalid(
                "report parameters must be named (:name)".into(),
            ));
        };
        let key = name.trim_start_matches([':', '@', '$']);
        match params.iter().find(|(k, _)| k == key) {
            Some((_, value)) => stmt.raw_bind_parameter(i, value)?,
            None if optional.iter().any(|o| o == key) => {
                stmt.raw_bind_parameter(i, rusqlite::types::Null)?
            }
            None => {
                return Err(StoreError::Invalid(format!(
                    "the report needs the parameter '{key}' (--param {key}=VALUE)"
                )));
            }
        }
    }
    let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    // Rows outside the page are stepped over and counted, never converted.
    let (from, to) = page.map_or((0, u64::MAX), |p| {
        (p.offset, p.offset.saturating_add(p.limit))
    });
    let count = page.is_none_or(|p| p.count);
    let mut total: u64 = 0;
    while let Some(r) = rows.next()? {
        if !count && total >= to {
            return Ok(((columns, out), None));
        }
        if total >= from && total < to {
            let mut row = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                row.push(to_json(r.get_ref(i)?));
            }
            out.push(row);
        }
        total += 1;
    }
    Ok(((columns, out), Some(total)))
}
