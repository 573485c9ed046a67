//! Reports run as read-only SQL over the site database, three times guarded: the
//! connection is opened read-only, SQLite must call the statement read-only before it runs,
//! and an authorizer lets a report do nothing but select — and not read secrets
//! (administrator token hashes, client credential hashes) even though they sit in tables.

use rusqlite::Connection;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;

use crate::sqlite::{SqliteStore, lock};
use crate::traits::{ReportRows, ReportStore};
use crate::{Result, StoreError};

/// What a report may not read, even though it is in the database.
fn secret(table: &str, column: &str) -> bool {
    table.eq_ignore_ascii_case("admin_tokens")
        || (table.eq_ignore_ascii_case("clients")
            && column.eq_ignore_ascii_case("credential_sha256"))
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

    fn run_report(&self, sql: &str, params: &[(String, String)]) -> Result<ReportRows> {
        let conn = lock(&self.report);
        let mut stmt = prepare(&conn, sql)?;
        for i in 1..=stmt.parameter_count() {
            let Some(name) = stmt.parameter_name(i) else {
                return Err(StoreError::Invalid(
                    "report parameters must be named (:name)".into(),
                ));
            };
            let key = name.trim_start_matches([':', '@', '$']);
            let Some((_, value)) = params.iter().find(|(k, _)| k == key) else {
                return Err(StoreError::Invalid(format!(
                    "the report needs the parameter '{key}' (--param {key}=VALUE)"
                )));
            };
            stmt.raw_bind_parameter(i, value)?;
        }
        let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
        let mut rows = stmt.raw_query();
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut row = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                row.push(to_json(r.get_ref(i)?));
            }
            out.push(row);
        }
        Ok((columns, out))
    }
}
