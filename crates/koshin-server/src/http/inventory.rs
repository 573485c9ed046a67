//! Custom inventory classes: properties read on every client from a file, a command or a
//! sysctl, delivered in machine policy and collected as `custom.CLASS.PROPERTY`. Anyone
//! who reads may list them; changing them is managing the site, since a class runs
//! commands on every client.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use koshin_domain::inventory_classes::{self as classes, FileFormat};
use koshin_store::InventoryClassRecord;
use koshin_wire::{
    InventoryClassDelete, InventoryClassOut, InventoryClassProperty, InventoryClassesDeleted,
    InventorySource,
};

use super::auth::{Admin, Can, CanManageSite};
use super::error::{AppError, blocking};
use crate::site::Site;

fn out(r: InventoryClassRecord) -> InventoryClassOut {
    let p = r.property;
    InventoryClassOut {
        path: classes::property_path(&p.class, &p.property),
        class: p.class,
        property: p.property,
        source: p.source,
        changed: jiff::Timestamp::from_millisecond(r.changed_ms)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH),
        changed_by: r.changed_by,
    }
}

fn invalid(e: classes::ClassError) -> AppError {
    AppError::BadRequest(e.0)
}

/// Refuses a class property whose names or source a client could not use.
pub fn check(p: &InventoryClassProperty) -> Result<(), AppError> {
    classes::check_name("class", &p.class).map_err(invalid)?;
    classes::check_name("property", &p.property).map_err(invalid)?;
    match &p.source {
        InventorySource::File { path, format, key } => {
            let f = FileFormat::parse(format).ok_or_else(|| {
                AppError::BadRequest(format!(
                    "a file's format is one of {}, not '{format}'",
                    FileFormat::ALL.map(FileFormat::name).join(", ")
                ))
            })?;
            classes::check_file(path, f, key).map_err(invalid)
        }
        InventorySource::Command { argv } => classes::check_command(argv).map_err(invalid),
        InventorySource::Sysctl { key } => classes::check_sysctl(key).map_err(invalid),
        InventorySource::Unknown => Err(AppError::BadRequest(
            "a source's kind is file, command or sysctl".into(),
        )),
    }
}

/// `GET /api/v1/inventory/classes`: every class property, by class and property.
pub async fn list(
    _admin: Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<Vec<InventoryClassOut>>, AppError> {
    let store = site.store.clone();
    let list = blocking(move || Ok(store.inventory_classes()?)).await?;
    Ok(Json(list.into_iter().map(out).collect()))
}

/// `POST /api/v1/inventory/classes`: adds a class property or replaces its source; clients
/// get it with their next machine policy.
pub async fn set(
    Can(admin, _): Can<CanManageSite>,
    State(site): State<Arc<Site>>,
    Json(req): Json<InventoryClassProperty>,
) -> Result<Json<InventoryClassOut>, AppError> {
    check(&req)?;
    let entry = admin.entry(
        "set inventory class property",
        &format!("{}.{}", req.class, req.property),
        &req.source.to_string(),
    );
    let store = site.store.clone();
    let rec = blocking(move || Ok(store.set_inventory_class(&req, &entry)?)).await?;
    Ok(Json(out(rec)))
}

/// `POST /api/v1/inventory/classes/{name}/delete`: one property of the class, or the whole
/// class.
pub async fn delete(
    Can(admin, _): Can<CanManageSite>,
    State(site): State<Arc<Site>>,
    Path(name): Path<String>,
    Json(req): Json<InventoryClassDelete>,
) -> Result<Json<InventoryClassesDeleted>, AppError> {
    classes::check_name("class", &name).map_err(invalid)?;
    if let Some(p) = &req.property {
        classes::check_name("property", p).map_err(invalid)?;
    }
    let target = match &req.property {
        Some(p) => format!("{name}.{p}"),
        None => name.clone(),
    };
    let entry = admin.entry("delete inventory class", &target, "");
    let store = site.store.clone();
    let deleted = blocking(move || {
        Ok(store.delete_inventory_class(&name, req.property.as_deref(), &entry)?)
    })
    .await?;
    Ok(Json(InventoryClassesDeleted {
        deleted: deleted as u64,
    }))
}
