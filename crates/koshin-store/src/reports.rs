//! Reports run as read-only SQL over the site database: the statement must be read-only
//! (SQLite says so before it runs) and runs on a connection opened read-only.

use rusqlite::types::ValueRef;

use crate::sqlite::{SqliteStore, lock};
use crate::traits::{ReportRows, ReportStore};
use crate::{Result, StoreError};

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
    fn run_report(&self, sql: &str, params: &[(String, String)]) -> Result<ReportRows> {
        let conn = lock(&self.report);
        let mut stmt = conn.prepare(sql)?;
        if !stmt.readonly() {
            return Err(StoreError::Invalid(
                "a report may only read: this statement writes".into(),
            ));
        }
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
