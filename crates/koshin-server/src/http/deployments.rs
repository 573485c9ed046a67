//! Update groups, deployments (create, list, show, disable/enable, remove one update,
//! re-run, roll back), maintenance windows; and the management point's side: a client's
//! deployments and its reports of how they went.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use koshin_domain::Severity;
use koshin_domain::content::Priority;
use koshin_domain::status::{Level, StatusMessage};
use koshin_wire::{
    DeploymentDetail, DeploymentOut, DeploymentPolicy, DeploymentStatusReport, DisableDeployment,
    NewDeployment, NewUpdateGroup, NewWindow, RemoveUpdate, RollbackRequest, UpdateGroupOut,
    WindowOut,
};

use super::auth::{Admin, Can, CanDeploy, CanManageCollections, Client};
use super::error::{AppError, blocking, check_name};
use crate::site::Site;

pub async fn groups(
    _admin: Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<Vec<UpdateGroupOut>>, AppError> {
    let store = site.store.clone();
    blocking(move || Ok(Json(store.list_update_groups()?))).await
}

pub async fn create_group(
    Can(admin, _): Can<CanDeploy>,
    State(site): State<Arc<Site>>,
    Json(req): Json<NewUpdateGroup>,
) -> Result<Json<UpdateGroupOut>, AppError> {
    check_name("update group", &req.name)?;
    let store = site.store.clone();
    blocking(move || {
        let mut updates = req.updates.clone();
        if let Some(product) = &req.security_rollup_for {
            let rollup = store.security_rollup_updates(product)?;
            if rollup.is_empty() {
                return Err(AppError::BadRequest(format!(
                    "no client requires a security update of '{product}'"
                )));
            }
            updates.extend(rollup);
        }
        let detail = match &req.security_rollup_for {
            Some(p) => format!("security rollup for {p}: {} updates", updates.len()),
            None => format!("{} updates", updates.len()),
        };
        let entry = admin.entry("create update group", &req.name, &detail);
        Ok(Json(store.create_update_group(
            &req.name,
            &req.description,
            &updates,
            &entry,
        )?))
    })
    .await
}

pub async fn change_group(
    Can(admin, _): Can<CanDeploy>,
    State(site): State<Arc<Site>>,
    Path(name): Path<String>,
    Json(req): Json<koshin_wire::MembersChange>,
) -> Result<Json<UpdateGroupOut>, AppError> {
    let entry = admin.entry(
        "change update group",
        &name,
        &format!("add {:?}, remove {:?}", req.add, req.remove),
    );
    let store = site.store.clone();
    blocking(move || {
        Ok(Json(store.change_update_group(
            &name,
            &req.add,
            &req.remove,
            &entry,
        )?))
    })
    .await
}

pub async fn list(
    admin: Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<Vec<DeploymentOut>>, AppError> {
    let store = site.store.clone();
    blocking(move || Ok(Json(store.list_deployments(&admin.scope)?))).await
}

/// One deployment; with `limit` (and `offset`) one page of its clients, the number of
/// them in `X-Total-Count` (its `summary` counts them all by state).
pub async fn show(
    admin: Admin,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
    Query(page): Query<super::Page>,
) -> Result<(axum::http::HeaderMap, Json<DeploymentDetail>), AppError> {
    let store = site.store.clone();
    let k = key.clone();
    let (d, total) =
        blocking(move || Ok(store.deployment_page(&k, &admin.scope, page.paging())?))
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no deployment '{key}'")))?;
    Ok((super::total_header(total), Json(d)))
}

pub async fn create(
    Can(admin, _): Can<CanDeploy>,
    State(site): State<Arc<Site>>,
    Json(req): Json<NewDeployment>,
) -> Result<Json<DeploymentOut>, AppError> {
    check_name("deployment", &req.name)?;
    if req.notification.chars().count() > 1024 {
        return Err(AppError::BadRequest(
            "the notification text is at most 1024 characters".into(),
        ));
    }
    let priority = match req.priority.as_deref() {
        None => Priority::Medium,
        Some(p) => Priority::parse(p).ok_or_else(|| {
            AppError::BadRequest(format!("priority '{p}' is not high, medium or low"))
        })?,
    };
    // A scoped administrator deploys only to a collection of their scope.
    if let koshin_domain::Scope::Collections(ids) = &admin.scope {
        let store = site.store.clone();
        let c = req.collection.clone();
        let resolved = blocking(move || Ok(store.resolve_collections(&[c])?)).await?;
        if !resolved.iter().all(|r| ids.contains(r)) {
            return Err(AppError::Forbidden(format!(
                "{} may deploy only to the collections of their scope",
                admin.name
            )));
        }
    }
    let available = match &req.available {
        Some(a) => a.clone(),
        None => {
            // Now, in the zone the times are read in.
            let tz = if req.utc {
                jiff::tz::TimeZone::UTC
            } else {
                jiff::tz::TimeZone::system()
            };
            jiff::Timestamp::now()
                .to_zoned(tz)
                .datetime()
                .strftime("%Y-%m-%dT%H:%M:%S")
                .to_string()
        }
    };
    let entry = admin.entry(
        "create deployment",
        &req.name,
        &format!(
            "{} to collection {}; available {available}{}{}",
            match &req.program {
                Some(p) => format!("program {p}"),
                None => format!("update group {}", req.update_group),
            },
            req.collection,
            req.deadline
                .as_ref()
                .map(|d| format!(", deadline {d}"))
                .unwrap_or_default(),
            if req.utc {
                " UTC"
            } else {
                " client local time"
            }
        ),
    );
    let store = site.store.clone();
    let code = site.config.site.code.clone();
    let d =
        blocking(move || Ok(store.create_deployment(&code, &req, &available, priority, &entry)?))
            .await?;
    site.content.wake.notify_one();
    Ok(Json(d))
}

pub async fn disable(
    Can(admin, _): Can<CanDeploy>,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
    Json(req): Json<DisableDeployment>,
) -> Result<Json<DeploymentOut>, AppError> {
    let detail = req
        .reenable_at
        .map(|t| format!("re-enabled at {t}"))
        .unwrap_or_default();
    let entry = admin.entry("disable deployment", &key, &detail);
    let store = site.store.clone();
    let at = req.reenable_at.map(|t| t.as_millisecond());
    blocking(move || Ok(Json(store.set_deployment_enabled(&key, false, at, &entry)?))).await
}

pub async fn enable(
    Can(admin, _): Can<CanDeploy>,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
) -> Result<Json<DeploymentOut>, AppError> {
    let entry = admin.entry("enable deployment", &key, "");
    let store = site.store.clone();
    blocking(move || {
        Ok(Json(
            store.set_deployment_enabled(&key, true, None, &entry)?,
        ))
    })
    .await
}

pub async fn remove_update(
    Can(admin, _): Can<CanDeploy>,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
    Json(req): Json<RemoveUpdate>,
) -> Result<Json<DeploymentOut>, AppError> {
    let entry = admin.entry("remove update from deployment", &key, &req.update);
    let store = site.store.clone();
    blocking(move || {
        Ok(Json(store.remove_deployment_update(
            &key,
            &req.update,
            &entry,
        )?))
    })
    .await
}

pub async fn rerun(
    Can(admin, _): Can<CanDeploy>,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
) -> Result<Json<DeploymentOut>, AppError> {
    let entry = admin.entry("re-run deployment", &key, "");
    let store = site.store.clone();
    blocking(move || Ok(Json(store.rerun_deployment(&key, &entry)?))).await
}

pub async fn rollback(
    Can(admin, _): Can<CanDeploy>,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
    Json(req): Json<RollbackRequest>,
) -> Result<Json<DeploymentOut>, AppError> {
    let name = req.name.unwrap_or_else(|| format!("{key} rollback"));
    check_name("deployment", &name)?;
    let entry = admin.entry("roll back deployment", &key, &format!("as {name}"));
    let store = site.store.clone();
    let code = site.config.site.code.clone();
    let d = blocking(move || Ok(store.rollback_deployment(&code, &key, &name, &entry)?)).await?;
    site.content.wake.notify_one();
    Ok(Json(d))
}

pub async fn windows(
    _admin: Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<Vec<WindowOut>>, AppError> {
    let store = site.store.clone();
    blocking(move || Ok(Json(store.list_windows()?))).await
}

pub async fn add_window(
    Can(admin, _): Can<CanManageCollections>,
    State(site): State<Arc<Site>>,
    Path(collection): Path<String>,
    Json(req): Json<NewWindow>,
) -> Result<Json<WindowOut>, AppError> {
    check_name("maintenance window", &req.name)?;
    let entry = admin.entry(
        "set maintenance window",
        &collection,
        &format!("{}: {}", req.name, req.schedule),
    );
    let store = site.store.clone();
    blocking(move || {
        Ok(Json(store.add_window(
            &collection,
            &req.name,
            &req.schedule,
            &entry,
        )?))
    })
    .await
}

pub async fn remove_window(
    Can(admin, _): Can<CanManageCollections>,
    State(site): State<Arc<Site>>,
    Path((collection, name)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, AppError> {
    let entry = admin.entry("remove maintenance window", &collection, &name);
    let store = site.store.clone();
    blocking(move || {
        store.remove_window(&collection, &name, &entry)?;
        Ok(Json(serde_json::json!({ "removed": name })))
    })
    .await
}

/// The management point: the deployments targeted at this client.
pub async fn client_deployments(
    Client(client): Client,
    State(site): State<Arc<Site>>,
) -> Result<Json<Vec<DeploymentPolicy>>, AppError> {
    let store = site.store.clone();
    let now = jiff::Timestamp::now().as_millisecond();
    blocking(move || Ok(Json(store.client_deployments(client.rowid, now)?))).await
}

const STATES: &[&str] = &[
    "received",
    "waiting",
    "waiting_for_window",
    "content_unavailable",
    "downloading",
    "installing",
    "succeeded",
    "failed",
    "restart_pending",
];

/// The management point: a client's state of one deployment and its install agent's
/// status messages (112xx), stored under the client's own name.
pub async fn client_status(
    Client(client): Client,
    State(site): State<Arc<Site>>,
    Json(r): Json<DeploymentStatusReport>,
) -> Result<Json<serde_json::Value>, AppError> {
    if !STATES.contains(&r.state.as_str()) {
        return Err(AppError::BadRequest(format!(
            "state '{}' is not one of {}",
            r.state,
            STATES.join(", ")
        )));
    }
    if r.detail.len() > 4096 || r.messages.len() > 100 {
        return Err(AppError::BadRequest(
            "a report carries at most 4096 characters of detail and 100 messages".into(),
        ));
    }
    let mut messages = Vec::with_capacity(r.messages.len());
    for m in &r.messages {
        if !(11250..=11270).contains(&m.message_id) {
            return Err(AppError::BadRequest(format!(
                "message {} is not an install agent message (11250-11270)",
                m.message_id
            )));
        }
        let severity = Severity::parse(&m.severity).ok_or_else(|| {
            AppError::BadRequest(format!("severity '{}' is not I, W or E", m.severity))
        })?;
        let msg = StatusMessage {
            message_id: m.message_id,
            severity,
            level: Level::Milestone,
            source: koshin_domain::status::SOURCE_CLIENT.to_string(),
            component: koshin_domain::status::INSTALL_AGENT.to_string(),
            system: client.name.clone(),
            site: site.config.site.code.clone(),
            process_id: 0,
            thread_id: 0,
            time_ms: m.time.as_millisecond(),
            insertion_strings: m.insertion_strings.iter().take(10).cloned().collect(),
            attributes: std::collections::BTreeMap::from([(
                "401".to_string(),
                r.deployment_id.clone(),
            )]),
        };
        msg.validate()
            .map_err(|e| AppError::BadRequest(e.to_string()))?;
        messages.push(msg);
    }
    let store = site.store.clone();
    blocking(move || {
        store.report_deployment_status(
            client.rowid,
            &r.deployment_id,
            r.generation,
            &r.state,
            &r.detail,
            r.time.as_millisecond(),
        )?;
        for m in &messages {
            store.insert_status(m)?;
        }
        Ok(Json(serde_json::json!({ "stored": messages.len() })))
    })
    .await
}
