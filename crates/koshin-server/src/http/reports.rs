//! Reports: the list, the SQL behind each, and running one with its parameters.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use koshin_wire::{ReportInfo, ReportResult};

use super::auth::Admin;
use super::error::{AppError, blocking};
use crate::reports::{REPORTS, find};
use crate::site::Site;

pub async fn list(_admin: Admin) -> Json<Vec<ReportInfo>> {
    Json(REPORTS.iter().map(|r| r.info()).collect())
}

pub async fn run(
    _admin: Admin,
    State(site): State<Arc<Site>>,
    Path(name): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> Result<Json<ReportResult>, AppError> {
    let report = find(&name).ok_or_else(|| {
        AppError::NotFound(format!("no report named '{name}' (koshin report list)"))
    })?;
    for p in report.parameters {
        if !params.contains_key(*p) {
            return Err(AppError::BadRequest(format!(
                "report {name} needs the parameter '{p}' (--param {p}=VALUE)"
            )));
        }
    }
    let store = site.store.clone();
    let params: Vec<(String, String)> = params.into_iter().collect();
    let (columns, rows) = blocking(move || Ok(store.run_report(report.sql, &params)?)).await?;
    let rows = rows
        .into_iter()
        .map(|r| columns.iter().cloned().zip(r).collect())
        .collect();
    Ok(Json(ReportResult {
        name,
        columns,
        rows,
    }))
}
