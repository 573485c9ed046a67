//! Compliance over time: `GET /api/v1/compliance/trend`, the samples the trend job stored
//! (`crate::trend`) and the counts now.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use koshin_store::ComplianceSampleRecord;
use koshin_wire::{ComplianceSample, ComplianceTrend, TrendQuery};

use super::auth::Admin;
use super::error::{AppError, blocking};
use crate::site::Site;

fn sample(r: ComplianceSampleRecord) -> ComplianceSample {
    ComplianceSample {
        time: jiff::Timestamp::from_millisecond(r.time_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        clients: r.clients,
        required: r.required,
        installed: r.installed,
        not_required: r.not_required,
        unknown: r.unknown,
        updates_required: r.updates_required,
    }
}

/// Read access; the samples count every client of the site, so an administrator with a
/// scope is refused (their compliance is in the reports, which run in their scope).
pub async fn trend(
    admin: Admin,
    State(site): State<Arc<Site>>,
    Query(q): Query<TrendQuery>,
) -> Result<Json<ComplianceTrend>, AppError> {
    if !matches!(admin.scope, koshin_domain::Scope::All) {
        return Err(AppError::Forbidden(format!(
            "the compliance trend counts every client of the site, and {} sees only the clients of a scope: the reports show that scope's compliance",
            admin.name
        )));
    }
    let days = q.days.unwrap_or(30);
    if !(1..=400).contains(&days) {
        return Err(AppError::BadRequest(format!(
            "days must be from 1 to 400, not {days}"
        )));
    }
    let max_points = q.max_points.unwrap_or(500);
    if !(1..=5000).contains(&max_points) {
        return Err(AppError::BadRequest(format!(
            "max_points must be from 1 to 5000, not {max_points}"
        )));
    }
    let store = site.store.clone();
    let (points, current) = blocking(move || {
        let now = jiff::Timestamp::now().as_millisecond();
        let since = now - i64::from(days) * 86_400_000;
        Ok((
            store.compliance_samples(since, now, max_points)?,
            store.current_compliance(now)?,
        ))
    })
    .await?;
    Ok(Json(ComplianceTrend {
        days,
        interval_minutes: crate::trend::INTERVAL_MINUTES,
        points: points.into_iter().map(sample).collect(),
        current: sample(current),
    }))
}
