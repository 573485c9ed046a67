//! Collections: the built-in All Systems and collections with direct members, and
//! administrators' scopes, which name collections. A scoped administrator lists only the
//! collections of their scope, sees only their clients in them, and adds only those.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use koshin_domain::Scope;
use koshin_domain::collections::{ALL_SYSTEMS_ID, Rules};
use koshin_store::{CollectionMember, CollectionRecord};
use koshin_wire::{
    AdminOut, CollectionDetail, CollectionMemberOut, CollectionOut, CollectionRollback,
    CollectionRules, CollectionVersionOut, EvaluationOut, MembersChange, MembersChanged,
    NewCollection, RulesChange, ScopesChange,
};

use super::auth::{Admin, Can, CanManageAdministrators, CanManageCollections};
use super::error::{AppError, blocking, check_name};
use crate::site::Site;

fn ts(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn rules_out(r: Rules) -> CollectionRules {
    CollectionRules {
        query: r.query,
        limiting: r.limiting,
        includes: r.includes,
        excludes: r.excludes,
    }
}

fn out(c: CollectionRecord) -> CollectionOut {
    CollectionOut {
        id: c.id,
        name: c.name,
        comment: c.comment,
        built_in: c.built_in,
        members: c.members,
        created: ts(c.created_ms),
        created_by: c.created_by,
        version: c.version,
        rules: rules_out(c.rules),
        origin: c.origin,
        evaluated: c.evaluated_ms.map(ts),
        full_evaluated: c.full_evaluated_ms.map(ts),
    }
}

fn member_out(m: CollectionMember) -> CollectionMemberOut {
    CollectionMemberOut {
        name: m.name,
        client_id: m.client_id,
        added: ts(m.added_ms),
        added_by: m.added_by,
        via: m.via,
    }
}

/// Checks rules as sent: the query parses and the lists are bounded. Returns them for the
/// store, which resolves collection names to ids.
fn check_rules(r: &CollectionRules) -> Result<Rules, AppError> {
    if let Some(q) = &r.query {
        koshin_domain::query::parse(q).map_err(|e| AppError::BadRequest(format!("query: {e}")))?;
    }
    if r.includes.len() + r.excludes.len() > 64 {
        return Err(AppError::BadRequest(
            "at most 64 included and excluded collections".into(),
        ));
    }
    Ok(Rules {
        query: r.query.clone(),
        limiting: r.limiting.clone(),
        includes: r.includes.clone(),
        excludes: r.excludes.clone(),
    })
}

/// A scoped administrator's rules must be limited to a collection of their scope, so that
/// what they build holds only clients they may see.
async fn check_limit(site: &Site, admin: &Admin, rules: &Rules) -> Result<(), AppError> {
    let Scope::Collections(ids) = &admin.scope else {
        return Ok(());
    };
    // Direct members are checked one by one against the scope when they are added.
    if rules.query.is_none() && rules.includes.is_empty() && rules.limiting.is_none() {
        return Ok(());
    }
    let Some(limit) = rules.limiting.clone() else {
        return Err(AppError::Forbidden(format!(
            "{} may build collections only from the collections of their scope: name one as the limiting collection (--limit)",
            admin.name
        )));
    };
    let store = site.store.clone();
    let resolved = blocking(move || Ok(store.resolve_collections(&[limit])?)).await?;
    if !resolved.iter().all(|r| ids.contains(r)) {
        return Err(AppError::Forbidden(format!(
            "{} may limit collections only to those of their scope",
            admin.name
        )));
    }
    Ok(())
}

pub async fn list(
    admin: Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<Vec<CollectionOut>>, AppError> {
    let store = site.store.clone();
    let list = blocking(move || Ok(store.list_collections(&admin.scope)?)).await?;
    Ok(Json(list.into_iter().map(out).collect()))
}

/// One collection; with `limit` (and `offset`) one page of its members, the number of
/// them in `X-Total-Count`.
pub async fn show(
    admin: Admin,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
    Query(page): Query<super::Page>,
) -> Result<(axum::http::HeaderMap, Json<CollectionDetail>), AppError> {
    let store = site.store.clone();
    let k = key.clone();
    let (c, members, total) =
        blocking(move || Ok(store.collection_page(&k, &admin.scope, page.paging())?))
            .await?
            .ok_or_else(|| {
                AppError::NotFound(format!("no collection '{key}' (koshin collections list)"))
            })?;
    Ok((
        super::total_header(total),
        Json(CollectionDetail {
            collection: out(c),
            member_list: members.into_iter().map(member_out).collect(),
        }),
    ))
}

pub async fn create(
    Can(admin, _): Can<CanManageCollections>,
    State(site): State<Arc<Site>>,
    Json(req): Json<NewCollection>,
) -> Result<Json<CollectionOut>, AppError> {
    check_name("collection", &req.name)?;
    if req.comment.chars().count() > 512 || req.comment.chars().any(char::is_control) {
        return Err(AppError::BadRequest(
            "a comment is at most 512 printable characters".into(),
        ));
    }
    let rules = check_rules(&req.rules)?;
    check_limit(&site, &admin, &rules).await?;
    let entry = admin.entry("create collection", &req.name, &req.comment);
    let store = site.store.clone();
    let code = site.config.site.code.clone();
    let c = blocking(move || {
        Ok(store.create_collection(&code, &req.name, &req.comment, &rules, &entry)?)
    })
    .await?;
    Ok(Json(out(c)))
}

pub async fn members(
    Can(admin, _): Can<CanManageCollections>,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
    Json(req): Json<MembersChange>,
) -> Result<Json<MembersChanged>, AppError> {
    if req.add.is_empty() && req.remove.is_empty() {
        return Err(AppError::BadRequest(
            "name at least one client to add or remove".into(),
        ));
    }
    if req.add.len() + req.remove.len() > 10_000 {
        return Err(AppError::BadRequest(
            "at most 10000 clients in one change".into(),
        ));
    }
    let mut detail = Vec::new();
    if !req.add.is_empty() {
        detail.push(format!("add {}", req.add.join(", ")));
    }
    if !req.remove.is_empty() {
        detail.push(format!("remove {}", req.remove.join(", ")));
    }
    let entry = admin.entry("change collection members", &key, &detail.join("; "));
    let store = site.store.clone();
    let (added, removed, members) = blocking(move || {
        let (added, removed) =
            store.change_members(&key, &req.add, &req.remove, &admin.scope, &entry)?;
        let members = store
            .collection(&key, &admin.scope)?
            .map_or(0, |(c, _)| c.members);
        Ok((added, removed, members))
    })
    .await?;
    Ok(Json(MembersChanged {
        added: added as u64,
        removed: removed as u64,
        members,
    }))
}

pub async fn delete(
    Can(admin, _): Can<CanManageCollections>,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
) -> Result<Json<CollectionOut>, AppError> {
    let store = site.store.clone();
    let entry = admin.entry("delete collection", &key, "");
    let scope = admin.scope.clone();
    let k = key.clone();
    // A scoped administrator deletes only a collection of their scope.
    let visible = blocking(move || Ok(store.collection(&k, &scope)?.is_some())).await?;
    if !visible {
        return Err(AppError::NotFound(format!("no collection '{key}'")));
    }
    let store = site.store.clone();
    let c = blocking(move || Ok(store.delete_collection(&key, &entry)?)).await?;
    Ok(Json(out(c)))
}

/// Sets an administrator's scopes: the collections (by id or name) whose clients they may
/// see and act on; none, or All Systems, for every client.
pub async fn set_scopes(
    Can(admin, _): Can<CanManageAdministrators>,
    State(site): State<Arc<Site>>,
    Path(name): Path<String>,
    Json(req): Json<ScopesChange>,
) -> Result<Json<AdminOut>, AppError> {
    let store = site.store.clone();
    let n = name.clone();
    let rec = blocking(move || {
        let ids = store.resolve_collections(&req.scopes)?;
        let detail = if ids.is_empty() {
            "every client".to_string()
        } else {
            ids.join(", ")
        };
        let entry = admin.entry("set administrator scopes", &n, &detail);
        store.set_admin_scopes(&n, &ids, &entry)?;
        Ok(store.admin_by_name(&n)?)
    })
    .await?
    .ok_or_else(|| AppError::NotFound(format!("administrator '{name}'")))?;
    Ok(Json(super::admins::admin_out(rec)))
}

#[derive(serde::Deserialize)]
pub struct QueryPreview {
    query: String,
}

/// `POST /api/v1/collections/preview`: the clients (in the administrator's scope) a
/// collection query matches now, and the query in its canonical form.
pub async fn preview(
    admin: Admin,
    State(site): State<Arc<Site>>,
    Json(req): Json<QueryPreview>,
) -> Result<Json<serde_json::Value>, AppError> {
    let q =
        koshin_domain::query::parse(&req.query).map_err(|e| AppError::BadRequest(e.to_string()))?;
    let store = site.store.clone();
    let text = q.text();
    let clients = blocking(move || Ok(store.query_clients(&q, &admin.scope)?)).await?;
    Ok(Json(serde_json::json!({
        "query": text,
        "clients": clients.into_iter().map(|(computer, client_id)| {
            serde_json::json!({"computer": computer, "client_id": client_id})
        }).collect::<Vec<_>>(),
    })))
}

/// `POST /api/v1/collections/{key}/rules`: saves the collection's rules, changed as asked,
/// as its next version, and evaluates its membership at once.
pub async fn set_rules(
    Can(admin, _): Can<CanManageCollections>,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
    Json(req): Json<RulesChange>,
) -> Result<Json<CollectionOut>, AppError> {
    if req.note.chars().count() > 512 || req.note.chars().any(char::is_control) {
        return Err(AppError::BadRequest(
            "a note is at most 512 printable characters".into(),
        ));
    }
    if req.no_query && req.query.is_some() {
        return Err(AppError::BadRequest(
            "give a query or drop it, not both".into(),
        ));
    }
    let store = site.store.clone();
    let (k, scope) = (key.clone(), admin.scope.clone());
    // The current rules from the saved versions (small), not the collection with its
    // members; All Systems and replicated collections have none, and the store refuses them.
    let versions = blocking(move || Ok(store.collection_history(&k, &scope)?)).await?;
    let mut rules = versions
        .into_iter()
        .find(|v| v.current)
        .map(|v| rules_out(v.rules))
        .unwrap_or_default();
    if req.no_query {
        rules.query = None;
    }
    if let Some(q) = req.query {
        rules.query = Some(q);
    }
    if let Some(l) = req.limiting {
        rules.limiting = Some(l);
    }
    if let Some(i) = req.includes {
        rules.includes = i;
    }
    if let Some(e) = req.excludes {
        rules.excludes = e;
    }
    let rules = check_rules(&rules)?;
    check_limit(&site, &admin, &rules).await?;
    let detail = format!(
        "query {}; limited to {}; include [{}]; exclude [{}]{}",
        rules.query.as_deref().unwrap_or("none"),
        rules.limiting.as_deref().unwrap_or(ALL_SYSTEMS_ID),
        rules.includes.join(", "),
        rules.excludes.join(", "),
        if req.note.is_empty() {
            String::new()
        } else {
            format!("; {}", req.note)
        }
    );
    let entry = admin.entry("set collection rules", &key, &detail);
    let store = site.store.clone();
    let c =
        blocking(move || Ok(store.set_collection_rules(&key, &rules, &req.note, &entry)?)).await?;
    Ok(Json(out(c)))
}

/// `GET /api/v1/collections/{key}/history`: every saved version of its rules.
pub async fn history(
    admin: Admin,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
) -> Result<Json<Vec<CollectionVersionOut>>, AppError> {
    let store = site.store.clone();
    let list = blocking(move || Ok(store.collection_history(&key, &admin.scope)?)).await?;
    Ok(Json(
        list.into_iter()
            .map(|v| CollectionVersionOut {
                version: v.version,
                rules: rules_out(v.rules),
                saved: ts(v.saved_ms),
                saved_by: v.saved_by,
                note: v.note,
                current: v.current,
            })
            .collect(),
    ))
}

/// `POST /api/v1/collections/{key}/rollback`: saves an earlier version's rules again, as
/// the next version, and evaluates.
pub async fn rollback(
    Can(admin, _): Can<CanManageCollections>,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
    Json(req): Json<CollectionRollback>,
) -> Result<Json<CollectionOut>, AppError> {
    let store = site.store.clone();
    let (k, scope) = (key.clone(), admin.scope.clone());
    let versions = blocking(move || Ok(store.collection_history(&k, &scope)?)).await?;
    let old = versions
        .into_iter()
        .find(|v| v.version == req.version)
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "version {} of collection '{key}' (koshin collections history {key})",
                req.version
            ))
        })?;
    check_limit(&site, &admin, &old.rules).await?;
    let entry = admin.entry(
        "roll back collection rules",
        &key,
        &format!("to version {}", req.version),
    );
    let store = site.store.clone();
    let c = blocking(move || Ok(store.rollback_collection(&key, req.version, &entry)?)).await?;
    Ok(Json(out(c)))
}

#[derive(serde::Deserialize, Default)]
pub struct EvaluateAsk {
    #[serde(default)]
    full: bool,
}

/// `POST /api/v1/collections/evaluate` and `/api/v1/collections/{key}/evaluate`: evaluates
/// membership now — the clients changed since the last pass, then in full the collection
/// named (and what reads it), or every collection with `full`.
pub async fn evaluate_all(
    Can(admin, _): Can<CanManageCollections>,
    State(site): State<Arc<Site>>,
    Json(req): Json<EvaluateAsk>,
) -> Result<Json<EvaluationOut>, AppError> {
    evaluate(&site, &admin, None, req.full).await
}

pub async fn evaluate_one(
    Can(admin, _): Can<CanManageCollections>,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
) -> Result<Json<EvaluationOut>, AppError> {
    // Visible to this administrator (read without its members).
    let store = site.store.clone();
    let (k, scope) = (key.clone(), admin.scope.clone());
    blocking(move || Ok(store.collection_history(&k, &scope)?)).await?;
    evaluate(&site, &admin, Some(key), true).await
}

async fn evaluate(
    site: &Arc<Site>,
    admin: &Admin,
    key: Option<String>,
    full: bool,
) -> Result<Json<EvaluationOut>, AppError> {
    let e = crate::colleval::evaluate(site, key.clone(), full).await?;
    tracing::info!(admin = %admin.name, collection = ?key, full, "collection membership evaluated on request");
    Ok(Json(e))
}
