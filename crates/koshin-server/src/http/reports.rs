//! Reports: the list, the SQL behind each, and running one with its parameters (an optional
//! one left out, or given empty, is NULL). A console polls
//! `GET /api/v1/reports/NAME?refresh_minutes=N` (N from 1 to 60, P9); the answer says when
//! it was generated and when to ask again, and carries a `Refresh` header. With `limit` (and
//! `offset`) the answer holds one page of the rows and `total`, the number of all of them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::http::header::{CACHE_CONTROL, HeaderValue};
use koshin_wire::{ReportInfo, ReportResult};

use super::auth::Admin;
use super::error::{AppError, blocking};
use crate::reports;
use crate::site::Site;

/// The query key that asks for a refresh interval rather than passing a report parameter.
const REFRESH: &str = "refresh_minutes";
/// The query keys that ask for one page of the rows (a console's table) rather than
/// passing report parameters.
const LIMIT: &str = "limit";
const OFFSET: &str = "offset";
/// `count=0`: the page without counting the rest (no `total`); it stops once full.
const COUNT: &str = "count";

/// The most rows one page may ask for.
const MAX_PAGE: u64 = 10_000;

fn number(
    params: &mut BTreeMap<String, String>,
    key: &str,
    max: u64,
) -> Result<Option<u64>, AppError> {
    match params.remove(key) {
        None => Ok(None),
        Some(v) => match v.trim().parse::<u64>() {
            Ok(n) if n <= max => Ok(Some(n)),
            _ => Err(AppError::BadRequest(format!(
                "{key} must be a whole number from 0 to {max}, not '{v}'"
            ))),
        },
    }
}

pub async fn list(
    _admin: Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<Vec<ReportInfo>>, AppError> {
    let store = site.store.clone();
    let data = site.data.clone();
    blocking(move || {
        let mut out = Vec::new();
        for mut r in reports::all(&data) {
            // The site's own files are checked as they are listed: one that writes, or
            // does not prepare, shows why instead of failing only when run.
            if r.error.is_none()
                && r.source != reports::Source::BuiltIn
                && let Err(e) = store.check_report(&r.sql)
            {
                r.error = Some(e.to_string());
            }
            out.push(r.info());
        }
        Ok(Json(out))
    })
    .await
}

pub async fn run(
    admin: Admin,
    State(site): State<Arc<Site>>,
    Path(name): Path<String>,
    Query(mut params): Query<BTreeMap<String, String>>,
) -> Result<(HeaderMap, Json<ReportResult>), AppError> {
    let refresh = match params.remove(REFRESH) {
        None => None,
        Some(v) => match v.trim().parse::<u32>() {
            Ok(m @ 1..=60) => Some(m),
            _ => {
                return Err(AppError::BadRequest(format!(
                    "{REFRESH} must be a whole number of minutes from 1 to 60, not '{v}'"
                )));
            }
        },
    };
    let limit = number(&mut params, LIMIT, MAX_PAGE)?;
    let offset = number(&mut params, OFFSET, u64::MAX)?;
    let count = number(&mut params, COUNT, 1)?.is_none_or(|c| c == 1);
    let page = match (limit, offset) {
        (None, None) => None,
        (limit, offset) => Some(koshin_store::ReportPage {
            offset: offset.unwrap_or(0),
            limit: limit.unwrap_or(MAX_PAGE),
            count,
        }),
    };
    let store = site.store.clone();
    let data = site.data.clone();
    let scope = admin.scope;
    let (report, columns, rows, total, duration_ms) = blocking(move || {
        let report = reports::find(&data, &name).ok_or_else(|| {
            AppError::NotFound(format!("no report named '{name}' (koshin report list)"))
        })?;
        if let Some(e) = &report.error {
            return Err(AppError::BadRequest(format!("report {name}: {e}")));
        }
        for p in &report.parameters {
            if !params.contains_key(p) {
                return Err(AppError::BadRequest(format!(
                    "report {name} needs the parameter '{p}' (--param {p}=VALUE)"
                )));
            }
        }
        if let Some(extra) = params
            .keys()
            .find(|k| !report.parameters.contains(k) && !report.optional.contains(k))
        {
            let takes: Vec<String> = report
                .parameters
                .iter()
                .cloned()
                .chain(report.optional.iter().map(|o| format!("{o} (optional)")))
                .collect();
            return Err(AppError::BadRequest(format!(
                "report {name} has no parameter '{extra}'{}",
                if takes.is_empty() {
                    String::new()
                } else {
                    format!(" (it takes: {})", takes.join(", "))
                }
            )));
        }
        // An optional parameter given empty is left out, as a blank form field would be.
        let params: Vec<(String, String)> = params
            .into_iter()
            .filter(|(k, v)| !(report.optional.contains(k) && v.trim().is_empty()))
            .collect();
        let t = Instant::now();
        let ((columns, rows), total) = match page {
            None => (
                store.run_report_optional(&report.sql, &params, &report.optional, &scope)?,
                None,
            ),
            Some(page) => {
                store.run_report_page(&report.sql, &params, &report.optional, &scope, page)?
            }
        };
        Ok((report, columns, rows, total, t.elapsed().as_millis() as u64))
    })
    .await?;
    let generated = jiff::Timestamp::now();
    let next_refresh =
        refresh.map(|m| generated + jiff::SignedDuration::from_secs(i64::from(m) * 60));
    let mut headers = HeaderMap::new();
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(m) = refresh
        && let Ok(v) = HeaderValue::from_str(&(u64::from(m) * 60).to_string())
    {
        headers.insert("refresh", v);
    }
    let rows = rows
        .into_iter()
        .map(|r| columns.iter().cloned().zip(r).collect())
        .collect();
    Ok((
        headers,
        Json(ReportResult {
            name: report.name,
            columns,
            rows,
            generated,
            duration_ms,
            next_refresh,
            total,
        }),
    ))
}
