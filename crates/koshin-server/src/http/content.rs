//! Content packages, distribution points and their groups; and the site's own distribution
//! point, served under `/dp/` as a signed APT repository.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use koshin_domain::content::{Priority, ScheduleRule, SenderSettings};
use koshin_store::{DpRecord, PackageRecord, TargetRecord};
use koshin_wire::{
    DistributeRequest, DpGroupChange, DpGroupOut, DpOut, DpRegister, DpSettings, NewPackage,
    PackageDetail, PackageFileOut, PackageOut, PriorityChange, TargetOut, ValidationOut,
};

use super::auth::{Admin, Can, CanManageContent};
use super::error::{AppError, blocking, check_name};
use crate::site::Site;

fn ts(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn package_out(p: PackageRecord, targets: &[TargetRecord]) -> PackageOut {
    PackageOut {
        id: p.id,
        name: p.name,
        priority: p.priority.name().into(),
        source_version: p.source_version,
        updates: p.updates,
        files: p.files,
        bytes: p.bytes,
        created: ts(p.created_ms),
        created_by: p.created_by,
        installed: targets.iter().filter(|t| t.state == "installed").count() as i64,
        targeted: targets.len() as i64,
    }
}

fn target_out(t: TargetRecord) -> TargetOut {
    TargetOut {
        package: t.package_id,
        distribution_point: t.dp_name,
        state: t.state,
        priority: t.priority.name().into(),
        source_version: t.source_version,
        queued: ts(t.queued_ms),
        started: t.started_ms.map(ts),
        finished: t.finished_ms.map(ts),
        bytes_total: t.bytes_total,
        bytes_sent: t.bytes_sent,
        attempts: t.attempts,
        retry_at: t.retry_at_ms.map(ts),
        error: t.error,
        via_group: t.via_group,
    }
}

pub(crate) fn dp_out(d: DpRecord) -> DpOut {
    let status = if d.last_error.is_some() || d.failed > 0 {
        "Error"
    } else if d.pending > 0 {
        "Pending"
    } else {
        "OK"
    };
    DpOut {
        status: status.into(),
        name: d.name,
        url: d.url,
        local: d.local,
        protected: d.protected,
        boundaries: d.boundaries,
        groups: d.groups,
        schedule: d.sender.schedule.iter().map(ToString::to_string).collect(),
        rate_limit: d.sender.rate_limit,
        lifted_until: d.sender.lifted_until_ms.map(ts),
        registered: ts(d.registered_ms),
        registered_by: d.registered_by,
        last_seen: d.last_seen_ms.map(ts),
        last_error: d.last_error,
        installed: d.installed,
        pending: d.pending,
        failed: d.failed,
    }
}

pub async fn list(
    _admin: Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<Vec<PackageOut>>, AppError> {
    let store = site.store.clone();
    blocking(move || {
        let mut out = Vec::new();
        for p in store.list_packages()? {
            let targets = store.package(&p.id)?.map(|(_, _, t)| t).unwrap_or_default();
            out.push(package_out(p, &targets));
        }
        Ok(Json(out))
    })
    .await
}

pub async fn show(
    _admin: Admin,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
) -> Result<Json<PackageDetail>, AppError> {
    let store = site.store.clone();
    let k = key.clone();
    blocking(move || {
        let (p, files, targets) = store
            .package(&k)?
            .ok_or_else(|| AppError::NotFound(format!("no content package '{k}'")))?;
        let mut file_list = Vec::with_capacity(files.len());
        for f in files {
            let in_library = store.library_file(&f.sha256)?.is_some();
            file_list.push(PackageFileOut {
                name: f.name,
                sha256: f.sha256,
                size: f.size,
                in_library,
            });
        }
        Ok(Json(PackageDetail {
            package: package_out(p, &targets),
            file_list,
            targets: targets.into_iter().map(target_out).collect(),
        }))
    })
    .await
}

pub async fn create(
    Can(admin, _): Can<CanManageContent>,
    State(site): State<Arc<Site>>,
    Json(req): Json<NewPackage>,
) -> Result<Json<PackageOut>, AppError> {
    check_name("content package", &req.name)?;
    let priority = match req.priority.as_deref() {
        None => Priority::Medium,
        Some(p) => Priority::parse(p).ok_or_else(|| {
            AppError::BadRequest(format!("priority '{p}' is not high, medium or low"))
        })?,
    };
    if req.updates.len() > 10_000 {
        return Err(AppError::BadRequest(
            "at most 10000 updates in a package".into(),
        ));
    }
    let entry = admin.entry(
        "create content package",
        &req.name,
        &format!("priority {priority}; updates {}", req.updates.join(", ")),
    );
    let store = site.store.clone();
    let code = site.config.site.code.clone();
    let p = blocking(move || {
        Ok(store.create_package(&code, &req.name, priority, &req.updates, &entry)?)
    })
    .await?;
    Ok(Json(package_out(p, &[])))
}

pub async fn distribute(
    Can(admin, _): Can<CanManageContent>,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
    Json(req): Json<DistributeRequest>,
) -> Result<Json<serde_json::Value>, AppError> {
    if req.distribution_points.is_empty() && req.groups.is_empty() {
        return Err(AppError::BadRequest(
            "name at least one distribution point or group".into(),
        ));
    }
    let mut detail = req.distribution_points.clone();
    detail.extend(req.groups.iter().map(|g| format!("group {g}")));
    let entry = admin.entry("distribute content", &key, &detail.join(", "));
    let store = site.store.clone();
    let now = jiff::Timestamp::now().as_millisecond();
    let n = blocking(move || {
        Ok(store.distribute(&key, &req.distribution_points, &req.groups, now, &entry)?)
    })
    .await?;
    site.content.wake.notify_one();
    Ok(Json(serde_json::json!({ "queued": n })))
}

pub async fn priority(
    Can(admin, _): Can<CanManageContent>,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
    Json(req): Json<PriorityChange>,
) -> Result<Json<serde_json::Value>, AppError> {
    let p = Priority::parse(&req.priority).ok_or_else(|| {
        AppError::BadRequest(format!(
            "priority '{}' is not high, medium or low",
            req.priority
        ))
    })?;
    let entry = admin.entry("change content priority", &key, p.name());
    let store = site.store.clone();
    blocking(move || Ok(store.set_package_priority(&key, p, &entry)?)).await?;
    site.content.wake.notify_one();
    Ok(Json(serde_json::json!({ "priority": p.name() })))
}

pub async fn dps(
    _admin: Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<Vec<DpOut>>, AppError> {
    let store = site.store.clone();
    blocking(move || Ok(Json(store.list_dps()?.into_iter().map(dp_out).collect()))).await
}

pub async fn dp(
    _admin: Admin,
    State(site): State<Arc<Site>>,
    Path(name): Path<String>,
) -> Result<Json<DpOut>, AppError> {
    let store = site.store.clone();
    let n = name.clone();
    blocking(move || Ok(store.dp(&n)?))
        .await?
        .map(|d| Json(dp_out(d)))
        .ok_or_else(|| AppError::NotFound(format!("no distribution point '{name}'")))
}

pub async fn register(
    Can(admin, _): Can<CanManageContent>,
    State(site): State<Arc<Site>>,
    Json(req): Json<DpRegister>,
) -> Result<Json<DpOut>, AppError> {
    check_name("distribution point", &req.name)?;
    super::error::check_peer(&req.url, &req.push_token, "distribution point")?;
    let entry = admin.entry("register distribution point", &req.name, &req.url);
    let store = site.store.clone();
    let d =
        blocking(move || Ok(store.register_dp(&req.name, &req.url, &req.push_token, &entry)?))
            .await?;
    site.content.wake.notify_one();
    Ok(Json(dp_out(d)))
}

pub async fn settings(
    Can(admin, _): Can<CanManageContent>,
    State(site): State<Arc<Site>>,
    Path(name): Path<String>,
    Json(req): Json<DpSettings>,
) -> Result<Json<DpOut>, AppError> {
    if let Some(b) = &req.boundaries {
        for x in b {
            koshin_domain::boundaries::Boundary::parse(x).map_err(AppError::BadRequest)?;
        }
    }
    let store = site.store.clone();
    let n = name.clone();
    let current = blocking(move || Ok(store.dp(&n)?))
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no distribution point '{name}'")))?;
    let mut sender: SenderSettings = current.sender.clone();
    let mut changed_sender = false;
    if let Some(rules) = &req.schedule {
        sender.schedule = rules
            .iter()
            .map(|r| ScheduleRule::parse(r))
            .collect::<Result<_, _>>()
            .map_err(AppError::BadRequest)?;
        changed_sender = true;
    }
    if let Some(r) = req.rate_limit {
        sender.rate_limit = (r > 0).then_some(r);
        changed_sender = true;
    }
    if let Some(m) = req.lift_minutes {
        if m > 7 * 24 * 60 {
            return Err(AppError::BadRequest("a lift lasts at most 7 days".into()));
        }
        let now = jiff::Timestamp::now().as_millisecond();
        sender.lifted_until_ms = (m > 0).then(|| now + i64::try_from(m).unwrap_or(0) * 60_000);
        changed_sender = true;
    }
    let detail = serde_json::to_string(&req).unwrap_or_default();
    let entry = admin.entry("change distribution point", &name, &detail);
    let store = site.store.clone();
    let d = blocking(move || {
        Ok(store.set_dp(
            &name,
            req.protected,
            req.boundaries.as_deref(),
            changed_sender.then_some(&sender),
            &entry,
        )?)
    })
    .await?;
    site.content.wake.notify_one();
    Ok(Json(dp_out(d)))
}

pub async fn validate(
    Can(admin, _): Can<CanManageContent>,
    State(site): State<Arc<Site>>,
    Path(name): Path<String>,
) -> Result<Json<ValidationOut>, AppError> {
    let store = site.store.clone();
    let n = name.clone();
    let dp = blocking(move || Ok(store.dp(&n)?))
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no distribution point '{name}'")))?;
    let (checked, damaged) = crate::content::distmgr::validate(&site, &dp)
        .await
        .map_err(|e| AppError::BadGateway(format!("validating {}: {e:#}", dp.name)))?;
    admin
        .audit(
            &site,
            "validate distribution point",
            &dp.name,
            &format!("{checked} checked, {} damaged", damaged.len()),
        )
        .await?;
    Ok(Json(ValidationOut {
        distribution_point: dp.name,
        checked,
        damaged,
    }))
}

pub async fn groups(
    _admin: Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<Vec<DpGroupOut>>, AppError> {
    let store = site.store.clone();
    blocking(move || {
        Ok(Json(
            store
                .list_dp_groups()?
                .into_iter()
                .map(|(name, members)| DpGroupOut { name, members })
                .collect(),
        ))
    })
    .await
}

pub async fn create_group(
    Can(admin, _): Can<CanManageContent>,
    State(site): State<Arc<Site>>,
    Json(req): Json<DpGroupChange>,
) -> Result<Json<DpGroupOut>, AppError> {
    check_name("distribution point group", &req.name)?;
    let entry = admin.entry("create distribution point group", &req.name, "");
    let store = site.store.clone();
    let name = req.name.clone();
    blocking(move || {
        store.create_dp_group(&name, &entry)?;
        if !req.add.is_empty() {
            store.change_dp_group(&name, &req.add, &[], &entry)?;
        }
        Ok(())
    })
    .await?;
    Ok(Json(DpGroupOut {
        name: req.name,
        members: Vec::new(),
    }))
}

/// Adding a point to a group sends it none of the group's packages (P15): only assigning
/// the group to a package does.
pub async fn group_members(
    Can(admin, _): Can<CanManageContent>,
    State(site): State<Arc<Site>>,
    Path(name): Path<String>,
    Json(req): Json<DpGroupChange>,
) -> Result<Json<DpGroupOut>, AppError> {
    let detail = format!("add {:?}, remove {:?}", req.add, req.remove);
    let entry = admin.entry("change distribution point group", &name, &detail);
    let store = site.store.clone();
    let n = name.clone();
    let groups = blocking(move || {
        store.change_dp_group(&n, &req.add, &req.remove, &entry)?;
        Ok(store.list_dp_groups()?)
    })
    .await?;
    let members = groups
        .into_iter()
        .find(|(g, _)| g.eq_ignore_ascii_case(&name))
        .map(|(_, m)| m)
        .unwrap_or_default();
    Ok(Json(DpGroupOut { name, members }))
}
