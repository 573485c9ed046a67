//! Catalog export and import (`koshin catalog export|import|trust-key|keys`), and the routes
//! an internet-facing update point uses at its site: registration (with a server
//! certificate from the site CA), the catalog's version (to poll cheaply), and its report.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::auth::{Can, CanDeploy, CanManageSite, CanSync, ReplicaPoint};
use super::error::{AppError, blocking};
use crate::export::{self, ExportError};
use crate::site::Site;

#[derive(Deserialize)]
pub struct ExportQuery {
    pub since: Option<i64>,
}

/// `GET /api/v1/catalog/export[?since=V]`: the signed export file.
pub async fn export_catalog(
    Can(admin, _): Can<CanSync>,
    State(site): State<Arc<Site>>,
    Query(q): Query<ExportQuery>,
) -> Result<Response, AppError> {
    let s = site.clone();
    let (bytes, cv, n) = blocking(move || {
        let snap = s.store.export_catalog(q.since)?;
        let (cv, n) = (snap.content_version, snap.updates.len());
        let bytes = export::write(&s.config.site.code, snap, &s.content.key)
            .map_err(|e| AppError::Internal(format!("cannot write the export: {e:#}")))?;
        Ok((bytes, cv, n))
    })
    .await?;
    admin
        .audit(
            &site,
            "export catalog",
            &format!("content version {cv}"),
            &format!("{n} updates, since {}", q.since.unwrap_or(0)),
        )
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// What an import answers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ImportAnswer {
    pub site: String,
    pub since: i64,
    pub applied: bool,
    pub items: usize,
    pub previous_version: i64,
    pub content_version: i64,
    pub message: String,
}

fn refusal(e: ExportError) -> AppError {
    AppError::BadRequest(format!("catalog export refused, nothing applied: {e}"))
}

/// The keys this site verifies exports with: its own archive key and those it trusts.
fn site_keyring(site: &Site) -> Result<koshin_apt::verify::Keyring, AppError> {
    export::keyring(
        &site.data.join(crate::pki::PKI_DIR),
        &[(
            "this site's archive key".into(),
            site.content.public_key.clone(),
        )],
    )
    .map_err(|e| AppError::Internal(format!("{e:#}")))
}

/// `POST /api/v1/catalog/import` (the file as the body): verified, then applied in one
/// transaction with the exporter's content version, token and revisions.
pub async fn import_catalog(
    Can(admin, _): Can<CanSync>,
    State(site): State<Arc<Site>>,
    body: Bytes,
) -> Result<Json<ImportAnswer>, AppError> {
    let s = site.clone();
    let answer = blocking(move || {
        let keyring = site_keyring(&s)?;
        let doc = export::verify(&body, &keyring).map_err(refusal)?;
        let answer = apply(s.store.as_ref(), &doc).map_err(|e| match e {
            koshin_store::StoreError::Conflict(m) => {
                AppError::Conflict(format!("catalog export refused, nothing applied: {m}"))
            }
            other => other.into(),
        })?;
        if answer.applied {
            crate::policy::publish(s.store.as_ref(), &s.config, answer.content_version)?;
        }
        s.sync_log.line(&answer.message);
        Ok(answer)
    })
    .await?;
    admin
        .audit(&site, "import catalog", &answer.site, &answer.message)
        .await?;
    Ok(Json(answer))
}

/// Applies a verified export to `store`; the answer says what happened, in words too.
pub fn apply(
    store: &dyn koshin_store::Store,
    doc: &export::ExportDocument,
) -> koshin_store::Result<ImportAnswer> {
    let now = jiff::Timestamp::now().as_millisecond();
    let fingerprint = format!(
        "catalog export of {} version {}",
        doc.site, doc.catalog.content_version
    );
    let out = store.import_catalog(&doc.catalog, &fingerprint, now)?;
    let message = if out.applied {
        format!(
            "Imported catalog export of site {} (since {}): {} items, content version {} -> {}",
            doc.site, doc.catalog.since, out.items, out.previous_version, out.content_version
        )
    } else {
        format!(
            "Catalog export of site {} version {} is already imported: nothing changed",
            doc.site, doc.catalog.content_version
        )
    };
    Ok(ImportAnswer {
        site: doc.site.clone(),
        since: doc.catalog.since,
        applied: out.applied,
        items: out.items,
        previous_version: out.previous_version,
        content_version: out.content_version,
        message,
    })
}

/// A trusted exporter's key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TrustedKey {
    pub fingerprint: String,
    pub user_ids: Vec<String>,
    pub source: String,
}

/// `POST /api/v1/catalog/keys` (an armored public key as the body): trusts another site's
/// archive key for imports.
pub async fn trust_key(
    Can(admin, _): Can<CanManageSite>,
    State(site): State<Arc<Site>>,
    body: String,
) -> Result<Json<TrustedKey>, AppError> {
    let dir = site.data.join(crate::pki::PKI_DIR);
    let (fingerprint, user_ids) = blocking(move || {
        export::trust_key(&dir, &body).map_err(|e| AppError::BadRequest(format!("{e:#}")))
    })
    .await?;
    admin
        .audit(
            &site,
            "trust catalog export key",
            &fingerprint,
            &user_ids.join(", "),
        )
        .await?;
    Ok(Json(TrustedKey {
        fingerprint,
        user_ids,
        source: "trusted".into(),
    }))
}

/// `GET /api/v1/catalog/keys`: the keys imports are verified with.
pub async fn keys(
    _admin: super::auth::Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<Vec<TrustedKey>>, AppError> {
    let ring = site_keyring(&site)?;
    let own = site.content.key.fingerprint();
    Ok(Json(
        ring.key_summaries()
            .into_iter()
            .map(|(fingerprint, user_ids)| TrustedKey {
                source: if fingerprint == own {
                    "this site".into()
                } else {
                    "trusted".into()
                },
                fingerprint,
                user_ids,
            })
            .collect(),
    ))
}

/// `POST /api/v1/sups/register-internet`.
#[derive(Deserialize)]
pub struct InternetSupRegister {
    pub name: String,
    /// Its https:// address as internet clients reach it.
    pub url: String,
    /// The names its server certificate is issued for (default: the URL's host); empty
    /// with `certificate: false` when it brings its own.
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default = "yes")]
    pub certificate: bool,
}

fn yes() -> bool {
    true
}

/// What an internet-facing update point gets at registration.
#[derive(Serialize, Deserialize)]
pub struct InternetSupRegistered {
    pub site_code: String,
    pub pull_token: String,
    /// The site's archive public key: exports it imports offline are verified with it.
    pub archive_key: String,
    pub ca_certificate: String,
    pub certificate: Option<String>,
    pub private_key: Option<String>,
}

pub async fn register_internet_sup(
    Can(admin, _): Can<CanManageSite>,
    State(site): State<Arc<Site>>,
    Json(req): Json<InternetSupRegister>,
) -> Result<Json<InternetSupRegistered>, AppError> {
    super::error::check_name("update point", &req.name)?;
    let Some(rest) = req.url.strip_prefix("https://") else {
        return Err(AppError::BadRequest(
            "an internet-facing update point serves only HTTPS: its URL starts with https://"
                .into(),
        ));
    };
    let mut names = req.names.clone();
    if names.is_empty() {
        let host = rest.split(['/', '?']).next().unwrap_or_default();
        let host = if let Some(v6) = host.strip_prefix('[') {
            v6.split(']').next().unwrap_or_default()
        } else {
            host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
        };
        names.push(host.to_string());
    }
    let issued = if req.certificate {
        let s = site.clone();
        let n = names.clone();
        Some(
            blocking(move || {
                s.pki
                    .ca()
                    .issue_server(&n)
                    .map_err(|e| AppError::BadRequest(e.to_string()))
            })
            .await?,
        )
    } else {
        None
    };
    let pull = format!("ksu_{}", hex::encode(rand::random::<[u8; 32]>()));
    let hash = crate::init::hash_token(&pull);
    let entry = admin.entry(
        "register internet-facing update point",
        &req.name,
        &format!("{} ({})", req.url, names.join(", ")),
    );
    let store = site.store.clone();
    let (name, url) = (req.name.clone(), req.url.clone());
    blocking(move || Ok(store.register_internet_update_point(&name, &url, &hash, &entry)?)).await?;
    Ok(Json(InternetSupRegistered {
        site_code: site.config.site.code.clone(),
        pull_token: pull,
        archive_key: site.content.public_key.clone(),
        ca_certificate: site.pki.ca_certificate_pem().to_string(),
        certificate: issued.as_ref().map(|i| i.certificate_pem.clone()),
        private_key: issued.map(|i| i.private_key.expose().to_string()),
    }))
}

/// `GET /api/v1/sups/version`: the catalog's content version and token, for an update
/// point that polls.
pub async fn sup_version(
    ReplicaPoint(_name): ReplicaPoint,
    State(site): State<Arc<Site>>,
) -> Result<Json<serde_json::Value>, AppError> {
    let store = site.store.clone();
    let (cv, token) = blocking(move || Ok(store.content_state()?)).await?;
    Ok(Json(
        serde_json::json!({ "content_version": cv, "content_token": token }),
    ))
}

#[derive(Deserialize)]
pub struct SupReport {
    pub content_version: Option<i64>,
    pub error: Option<String>,
}

/// `POST /api/v1/sups/report`: an update point that syncs itself reports how it went.
pub async fn sup_report(
    ReplicaPoint(name): ReplicaPoint,
    State(site): State<Arc<Site>>,
    Json(r): Json<SupReport>,
) -> Result<Json<serde_json::Value>, AppError> {
    let store = site.store.clone();
    let now = jiff::Timestamp::now().as_millisecond();
    blocking(move || {
        Ok(store.update_point_synced(&name, now, r.content_version, r.error.as_deref())?)
    })
    .await?;
    Ok(Json(serde_json::json!({ "ok": true })))
}

/// `GET /api/v1/catalog/offline`: makes the offline scan catalog now (and keeps it as the
/// site's newest, reporting 6710), and answers with the signed file.
pub async fn offline_catalog(
    Can(admin, _): Can<CanSync>,
    State(site): State<Arc<Site>>,
) -> Result<Response, AppError> {
    let s = site.clone();
    let (bytes, out) = blocking(move || {
        crate::offline::build(&s)
            .map_err(|e| AppError::Internal(format!("cannot make the offline catalog: {e:#}")))
    })
    .await?;
    admin
        .audit(
            &site,
            "make offline scan catalog",
            &format!("content version {}", out.content_version),
            &format!("{} updates, {} bytes", out.updates, out.bytes),
        )
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

/// `POST /api/v1/import/scan-results`: the results an offline scan wrote, stored for the
/// client they name as one idempotent batch.
pub async fn import_scan_results(
    Can(admin, _): Can<CanSync>,
    State(site): State<Arc<Site>>,
    Json(results): Json<koshin_wire::OfflineScanResults>,
) -> Result<Json<koshin_wire::ScanResultsImported>, AppError> {
    let s = site.clone();
    let out = blocking(move || crate::offline::import_results(&s, &results)).await?;
    admin
        .audit(
            &site,
            "import scan results",
            &out.computer,
            &format!(
                "{} state messages stored{}{}",
                out.stored,
                if out.duplicate {
                    ", already imported"
                } else {
                    ""
                },
                if out.registered {
                    ", client registered"
                } else {
                    ""
                }
            ),
        )
        .await?;
    Ok(Json(out))
}

#[derive(Deserialize)]
pub struct SyncHostAsk {
    /// `site`, or a client by name or client id.
    pub host: String,
    #[serde(default)]
    pub refresh_days: Option<u32>,
}

/// `GET /api/v1/catalog/sync-host`: the offline catalog's sync host, if one is designated.
pub async fn sync_host(
    _admin: super::auth::Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<Option<crate::offline::SyncHost>>, AppError> {
    Ok(Json(
        crate::offline::sync_host(&site).map_err(|e| AppError::Internal(format!("{e:#}")))?,
    ))
}

/// `POST /api/v1/catalog/sync-host`: designates the one sync host of the hierarchy (I1).
pub async fn set_sync_host(
    Can(admin, _): Can<CanManageSite>,
    State(site): State<Arc<Site>>,
    Json(ask): Json<SyncHostAsk>,
) -> Result<Json<crate::offline::SyncHost>, AppError> {
    let s = site.clone();
    let actor = admin.name.clone();
    let h = blocking(move || {
        crate::offline::set_sync_host(
            &s,
            &ask.host,
            ask.refresh_days
                .unwrap_or(crate::offline::DEFAULT_REFRESH_DAYS),
            &actor,
        )
    })
    .await?;
    admin
        .audit(
            &site,
            "designate offline catalog sync host",
            &h.host,
            &format!("every {} days", h.refresh_days),
        )
        .await?;
    Ok(Json(h))
}

/// `POST /api/v1/catalog/sync-host/remove`.
pub async fn remove_sync_host(
    Can(admin, _): Can<CanManageSite>,
    State(site): State<Arc<Site>>,
) -> Result<Json<Option<crate::offline::SyncHost>>, AppError> {
    let s = site.clone();
    let had = blocking(move || {
        crate::offline::remove_sync_host(&s).map_err(|e| AppError::Internal(format!("{e:#}")))
    })
    .await?;
    if let Some(h) = &had {
        admin
            .audit(&site, "remove offline catalog sync host", &h.host, "")
            .await?;
    }
    Ok(Json(had))
}

/// `GET /api/v1/catalog/scan-tool`: the scan tool's objects and rollout, if set up.
pub async fn scan_tool(
    _admin: super::auth::Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<Option<koshin_wire::ScanToolOut>>, AppError> {
    let s = site.clone();
    Ok(Json(blocking(move || crate::scantool::show(&s)).await?))
}

/// `POST /api/v1/catalog/scan-tool`: sets up the scan tool's objects (I2) for a test client.
/// It creates collections and deployments, so it takes a role that manages the site.
pub async fn setup_scan_tool(
    Can(admin, _): Can<CanManageSite>,
    State(site): State<Arc<Site>>,
    Json(ask): Json<koshin_wire::ScanToolSetup>,
) -> Result<Json<koshin_wire::ScanToolOut>, AppError> {
    let s = site.clone();
    let a = admin.clone();
    Ok(Json(
        blocking(move || {
            crate::scantool::setup(&s, &ask, &a.name, &|action, target, detail| {
                a.entry(action, target, detail)
            })
        })
        .await?,
    ))
}

/// `POST /api/v1/catalog/scan-tool/broaden`: every eligible client gets the scan tool (I3).
pub async fn broaden_scan_tool(
    Can(admin, _): Can<CanManageSite>,
    State(site): State<Arc<Site>>,
    Json(ask): Json<koshin_wire::ScanToolBroaden>,
) -> Result<Json<koshin_wire::ScanToolOut>, AppError> {
    let s = site.clone();
    let a = admin.clone();
    Ok(Json(
        blocking(move || {
            crate::scantool::broaden(&s, ask.force, &|action, target, detail| {
                a.entry(action, target, detail)
            })
        })
        .await?,
    ))
}

#[derive(Debug, Default, Deserialize)]
pub struct DefinitionsQuery {
    /// Deployments to export (names or ids, comma-separated); none: every one.
    #[serde(default)]
    pub deployments: Option<String>,
    /// Update groups to export besides those the deployments deploy (comma-separated).
    #[serde(default)]
    pub groups: Option<String>,
}

fn list(v: &Option<String>) -> Vec<String> {
    v.as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `GET /api/v1/deployment-definitions`: the site's update groups and deployment definitions,
/// signed (P14).
pub async fn export_definitions(
    Can(admin, _): Can<CanDeploy>,
    State(site): State<Arc<Site>>,
    Query(q): Query<DefinitionsQuery>,
) -> Result<Response, AppError> {
    let s = site.clone();
    let (bytes, defs) =
        blocking(move || crate::definitions::export(&s, &list(&q.deployments), &list(&q.groups)))
            .await?;
    admin
        .audit(
            &site,
            "export deployment definitions",
            &defs.site,
            &format!(
                "{} update group(s), {} deployment(s)",
                defs.groups.len(),
                defs.deployments.len()
            ),
        )
        .await?;
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], bytes).into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct DefinitionsImportQuery {
    /// Create the new deployments enabled (as they were at the exporting site); otherwise
    /// they are created disabled, to be reviewed and enabled here.
    #[serde(default)]
    pub enable: bool,
}

/// `POST /api/v1/deployment-definitions` (the file as the body): verified, then applied all or
/// nothing (P14).
pub async fn import_definitions(
    Can(admin, _): Can<CanDeploy>,
    State(site): State<Arc<Site>>,
    Query(q): Query<DefinitionsImportQuery>,
    body: Bytes,
) -> Result<Json<koshin_wire::DefinitionsImported>, AppError> {
    let s = site.clone();
    let entry_admin = admin.clone();
    let out = blocking(move || {
        let keyring = site_keyring(&s)?;
        let defs = crate::definitions::verify(&body, &keyring).map_err(|e| {
            AppError::BadRequest(format!(
                "deployment definitions refused, nothing applied: {e}"
            ))
        })?;
        let entry = entry_admin.entry(
            "import deployment definitions",
            &defs.site,
            &format!(
                "{} update group(s), {} deployment(s){}",
                defs.groups.len(),
                defs.deployments.len(),
                if q.enable { ", enabled" } else { ", disabled" }
            ),
        );
        let now = jiff::Timestamp::now()
            .to_zoned(jiff::tz::TimeZone::UTC)
            .datetime()
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string();
        s.store
            .import_definitions(&s.config.site.code, &defs, &now, q.enable, &entry)
            .map_err(|e| match e {
                koshin_store::StoreError::Conflict(m) | koshin_store::StoreError::Invalid(m) => {
                    AppError::Conflict(format!(
                        "deployment definitions refused, nothing applied: {m}"
                    ))
                }
                other => other.into(),
            })
    })
    .await?;
    site.content.wake.notify_one();
    Ok(Json(out))
}
