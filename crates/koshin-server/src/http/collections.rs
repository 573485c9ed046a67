//! Collections: the built-in All Systems and collections with direct members, and
//! administrators' scopes, which name collections. A scoped administrator lists only the
//! collections of their scope, sees only their clients in them, and adds only those.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use koshin_store::{CollectionMember, CollectionRecord};
use koshin_wire::{
    AdminOut, CollectionDetail, CollectionMemberOut, CollectionOut, MembersChange, MembersChanged,
    NewCollection, ScopesChange,
};

use super::auth::{Admin, Can, CanManageAdministrators, CanManageCollections};
use super::error::{AppError, blocking, check_name};
use crate::site::Site;

fn ts(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
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
    }
}

fn member_out(m: CollectionMember) -> CollectionMemberOut {
    CollectionMemberOut {
        name: m.name,
        client_id: m.client_id,
        added: ts(m.added_ms),
        added_by: m.added_by,
    }
}

pub async fn list(
    admin: Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<Vec<CollectionOut>>, AppError> {
    let store = site.store.clone();
    let list = blocking(move || Ok(store.list_collections(&admin.scope)?)).await?;
    Ok(Json(list.into_iter().map(out).collect()))
}

pub async fn show(
    admin: Admin,
    State(site): State<Arc<Site>>,
    Path(key): Path<String>,
) -> Result<Json<CollectionDetail>, AppError> {
    let store = site.store.clone();
    let k = key.clone();
    let (c, members) = blocking(move || Ok(store.collection(&k, &admin.scope)?))
        .await?
        .ok_or_else(|| {
            AppError::NotFound(format!("no collection '{key}' (koshin collections list)"))
        })?;
    Ok(Json(CollectionDetail {
        collection: out(c),
        member_list: members.into_iter().map(member_out).collect(),
    }))
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
    let entry = admin.entry("create collection", &req.name, &req.comment);
    let store = site.store.clone();
    let code = site.config.site.code.clone();
    let c =
        blocking(move || Ok(store.create_collection(&code, &req.name, &req.comment, &entry)?))
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
