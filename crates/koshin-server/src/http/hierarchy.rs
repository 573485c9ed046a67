//! The site hierarchy's routes: join tokens, a child's join, the links; and between linked
//! sites (each with the token it was given at the join): the catalog a child replicates,
//! the parent's sync notification, and a child's hello with its address.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use koshin_store::{ReplicaUpdate, SiteLink};
use koshin_wire::{
    JoinRequest, JoinResponse, JoinTokenOut, NewJoinToken, SiteLinkOut, SiteMessage,
};

use super::auth::{Can, CanManageSite, LinkedSite, ReplicaPoint};
use super::error::{AppError, blocking};
use crate::site::Site;

fn ts(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

pub(crate) fn link_out(l: SiteLink) -> SiteLinkOut {
    SiteLinkOut {
        code: l.code,
        relation: l.relation,
        kind: l.kind,
        url: l.url,
        joined: ts(l.joined_ms),
        last_seen: l.last_seen_ms.map(ts),
        last_error: l.last_error,
        notify_pending: l.notify_pending,
        replicated_content_version: l.replicated_cv,
        global_seq: l.global_seq,
        down: l.down,
        queued_up: l.queued_up,
    }
}

pub async fn create_join_token(
    Can(admin, _): Can<CanManageSite>,
    State(site): State<Arc<Site>>,
    Json(req): Json<NewJoinToken>,
) -> Result<Json<JoinTokenOut>, AppError> {
    let hours = req.hours.unwrap_or(24);
    if !(1..=24 * 30).contains(&hours) {
        return Err(AppError::BadRequest("hours must be from 1 to 720".into()));
    }
    let token = format!("kst_{}", hex::encode(rand::random::<[u8; 32]>()));
    let expires = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(i64::from(hours));
    let entry = admin.entry(
        "create site join token",
        "",
        &format!("valid {hours} hours"),
    );
    let store = site.store.clone();
    let hash = crate::init::hash_token(&token);
    blocking(move || Ok(store.add_join_token(&hash, expires.as_millisecond(), &entry)?)).await?;
    Ok(Json(JoinTokenOut { token, expires }))
}

/// Public by design: a child site has no token of this site before it joins; the join
/// token an administrator made is its proof, spent in the same transaction as the link.
///
/// Over HTTPS, a child that sends a certificate request and its CA certificate gets a link
/// certificate for "site CODE" signed by this site's CA, and this site's CA certificate;
/// the link is certificate-bound from then on ([`crate::links`]).
pub async fn join(
    State(site): State<Arc<Site>>,
    tls: Option<axum::Extension<crate::tls::TlsPeer>>,
    Json(req): Json<JoinRequest>,
) -> Result<Json<JoinResponse>, AppError> {
    crate::config::validate_site_code(&req.code).map_err(AppError::BadRequest)?;
    if !matches!(req.kind.as_str(), "primary" | "secondary") {
        return Err(AppError::BadRequest("kind is primary or secondary".into()));
    }
    super::error::check_peer(&req.url, &req.parent_to_child_token, "child site")?;
    if req.kind == "secondary" && !site.config.site.parent.is_empty() && site.config.site.secondary
    {
        return Err(AppError::BadRequest(
            "a secondary site has no children".into(),
        ));
    }
    // Signed before the join token is spent: a request the CA refuses leaves it usable.
    let issued = match (&req.csr, tls.is_some()) {
        (Some(csr), true) => {
            let ca = req.site_ca_certificate.clone().ok_or_else(|| {
                AppError::BadRequest(
                    "a join with a certificate request carries the child's site CA certificate"
                        .into(),
                )
            })?;
            crate::pki::first_certificate(&ca).map_err(|e| {
                AppError::BadRequest(format!("the child's site CA certificate: {e}"))
            })?;
            let cert = site
                .pki
                .ca()
                .sign_site_csr(csr, &req.code)
                .map_err(|e| AppError::BadRequest(e.to_string()))?;
            Some((cert, ca))
        }
        _ => None,
    };
    let child_to_parent = format!("ksl_{}", hex::encode(rand::random::<[u8; 32]>()));
    let store = site.store.clone();
    let hash = crate::init::hash_token(&req.join_token);
    let their = crate::init::hash_token(&child_to_parent);
    let now = jiff::Timestamp::now().as_millisecond();
    let r = req.clone();
    blocking(move || {
        Ok(store.join_child(
            &hash,
            &r.code,
            &r.kind,
            &r.url,
            &r.parent_to_child_token,
            &their,
            now,
        )?)
    })
    .await?;
    if let Some((cert, ca)) = &issued {
        crate::links::save_child_link(site.pki.dir(), &req.code, ca, cert)
            .map_err(|e| AppError::Internal(format!("{e:#}")))?;
    }
    tracing::info!(child = %req.code, kind = %req.kind, url = %req.url, certificate = issued.is_some(), "child site joined");
    let ca_certificate = issued
        .is_some()
        .then(|| site.pki.ca_certificate_pem().to_string());
    Ok(Json(JoinResponse {
        parent_code: site.config.site.code.clone(),
        child_to_parent_token: child_to_parent,
        client_certificate: issued.map(|(cert, _)| cert),
        ca_certificate,
    }))
}

pub async fn links(
    _admin: super::auth::Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<Vec<SiteLinkOut>>, AppError> {
    let store = site.store.clone();
    blocking(move || {
        Ok(Json(
            store.site_links()?.into_iter().map(link_out).collect(),
        ))
    })
    .await
}

/// The catalog a child replicates (only a child may ask).
#[derive(serde::Serialize)]
pub struct ReplicaCatalog {
    pub site: String,
    pub source_id: String,
    pub content_version: i64,
    pub content_token: String,
    pub updates: Vec<ReplicaUpdate>,
}

pub async fn catalog(
    LinkedSite(link): LinkedSite,
    State(site): State<Arc<Site>>,
) -> Result<Json<ReplicaCatalog>, AppError> {
    if link.relation != "child" {
        return Err(AppError::Forbidden(format!(
            "{} is this site's parent, not a child: it does not replicate from here",
            link.code
        )));
    }
    contact(&site, &link.code).await;
    let store = site.store.clone();
    let (source_id, content_version, content_token, updates) =
        blocking(move || Ok(store.replica_catalog()?)).await?;
    Ok(Json(ReplicaCatalog {
        site: site.config.site.code.clone(),
        source_id,
        content_version,
        content_token,
        updates,
    }))
}

/// The parent's sync notification: `<PARENT>.SYN` is dropped into the sync manager's inbox
/// (file replication), which wakes it.
pub async fn notify(
    LinkedSite(link): LinkedSite,
    State(site): State<Arc<Site>>,
) -> Result<Json<serde_json::Value>, AppError> {
    if link.relation != "parent" {
        return Err(AppError::Forbidden(format!(
            "{} is not this site's parent",
            link.code
        )));
    }
    let path = site.sync_inbox().join(format!("{}.SYN", link.code));
    std::fs::write(&path, b"")
        .map_err(|e| AppError::Internal(format!("{}: {e}", path.display())))?;
    site.sync.wake();
    Ok(Json(
        serde_json::json!({ "dropped": format!("{}.SYN", link.code) }),
    ))
}

/// A child's hello at its start: the address the parent reaches it at.
pub async fn hello(
    LinkedSite(link): LinkedSite,
    State(site): State<Arc<Site>>,
    Json(m): Json<SiteMessage>,
) -> Result<Json<serde_json::Value>, AppError> {
    if link.relation != "child" {
        return Err(AppError::Forbidden(format!(
            "{} is not a child site",
            link.code
        )));
    }
    contact(&site, &link.code).await;
    let store = site.store.clone();
    blocking(move || {
        if let Some(url) = m
            .url
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        {
            store.set_link_url(&link.code, &url)?;
        }
        Ok(Json(serde_json::json!({ "ok": true })))
    })
    .await
}

/// A status message as a child sends it up: its origin (`SITE:id`, unique in the
/// hierarchy) and the message.
#[derive(serde::Deserialize)]
struct ForwardedStatus {
    origin: String,
    #[serde(flatten)]
    message: koshin_domain::status::StatusMessage,
}

/// What a child sends up (S9: client data flows up): its clients' state messages, their
/// states of replicated deployments, and status messages. Each client is recorded as a
/// client of the site it belongs to, and its data stored as if it came directly — once,
/// whatever the number of deliveries (a batch by its id, a deployment state by its time, a
/// status message by its origin). A child may not report for this site or for another of
/// its children.
pub async fn client_batches(
    LinkedSite(link): LinkedSite,
    State(site): State<Arc<Site>>,
    Json(items): Json<Vec<koshin_wire::UpwardItem>>,
) -> Result<Json<serde_json::Value>, AppError> {
    if link.relation != "child" {
        return Err(AppError::Forbidden(format!(
            "{} is not a child site",
            link.code
        )));
    }
    if items.len() > 1000 {
        return Err(AppError::BadRequest(
            "at most 1000 batches at a time".into(),
        ));
    }
    contact(&site, &link.code).await;
    let store = site.store.clone();
    let own = site.config.site.code.clone();
    let now = jiff::Timestamp::now().as_millisecond();
    blocking(move || {
        let siblings: Vec<String> = store
            .site_links()?
            .into_iter()
            .filter(|l| l.relation == "child" && l.code != link.code)
            .map(|l| l.code)
            .collect();
        let foreign = |site_code: &str| {
            site_code.eq_ignore_ascii_case(&own)
                || siblings.iter().any(|s| s.eq_ignore_ascii_case(site_code))
        };
        let mut stored = 0u64;
        let mut refused = Vec::new();
        let mut statuses = Vec::new();
        for item in &items {
            if item.kind == "status" {
                // A message that does not read is named and acknowledged, like any item
                // this site can never take, so it does not hold up the queue behind it.
                let read = item
                    .status
                    .clone()
                    .ok_or_else(|| "a status item without its message".to_string())
                    .and_then(|v| {
                        serde_json::from_value::<ForwardedStatus>(v)
                            .map_err(|e| format!("a status message sent up does not read: {e}"))
                    })
                    .and_then(|f| {
                        f.message
                            .validate()
                            .map(|()| f)
                            .map_err(|e| format!("a status message sent up: {e}"))
                    });
                let f = match read {
                    Ok(f) => f,
                    Err(reason) => {
                        tracing::warn!(child = %link.code, %reason, "item from a child refused");
                        refused.push(serde_json::json!({"item": "status message", "reason": reason}));
                        continue;
                    }
                };
                if foreign(&f.message.site) {
                    return Err(AppError::Forbidden(format!(
                        "{} may send up only its own subtree's status messages, not those of {}",
                        link.code, f.message.site
                    )));
                }
                statuses.push((f.origin, f.message));
                continue;
            }
            let Some(c) = &item.client else {
                return Err(AppError::BadRequest(format!(
                    "a '{}' item without its client",
                    item.kind
                )));
            };
            if foreign(&c.site) {
                return Err(AppError::Forbidden(format!(
                    "{} may report only for its own clients, not for a client of {}",
                    link.code, c.site
                )));
            }
            let identity = || {
                store.remote_client(
                    &koshin_store::NewClient {
                        client_id: c.client_id.clone(),
                        name: c.name.clone(),
                        os: c.os.clone(),
                        os_release: c.os_release.clone(),
                        architecture: c.architecture.clone(),
                        site: c.site.clone(),
                        agent_version: c.agent_version.clone(),
                    },
                    now,
                )
            };
            let (what, r) = match (item.kind.as_str(), &item.batch, &item.deployment_status) {
                ("states", Some(batch), _) => {
                    if batch.client_id != c.client_id {
                        return Err(AppError::BadRequest(format!(
                            "batch {} names client {}, not {}",
                            batch.batch_id, batch.client_id, c.client_id
                        )));
                    }
                    (
                        batch.batch_id.clone(),
                        identity()
                            .and_then(|id| store.ingest_states(&id, batch, now))
                            .map(|ack| ack.stored),
                    )
                }
                ("deployment-status", _, Some(d)) => (
                    format!("state of deployment {}", d.deployment_id),
                    identity()
                        .and_then(|id| {
                            store.report_deployment_status(
                                id.rowid,
                                &d.deployment_id,
                                d.generation,
                                &d.state,
                                &d.detail,
                                d.time_ms,
                            )
                        })
                        .map(|()| 1),
                ),
                (kind, _, _) => {
                    return Err(AppError::BadRequest(format!(
                        "an item of kind '{kind}' without what that kind carries"
                    )));
                }
            };
            // An item this site can never take (its client id is another site's client,
            // it does not validate, its deployment is not known here) is named and
            // acknowledged, so that it does not hold up the child's queue behind it for
            // ever; the child still holds it.
            match r {
                Ok(n) => stored += n,
                Err(e @ (koshin_store::StoreError::Conflict(_)
                | koshin_store::StoreError::Invalid(_)
                | koshin_store::StoreError::NotFound(_))) => {
                    tracing::warn!(child = %link.code, item = %what, error = %e, "item from a child refused");
                    refused.push(serde_json::json!({
                        "item": what, "client_id": c.client_id, "reason": e.to_string(),
                    }));
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !statuses.is_empty() {
            stored += store.store_forwarded_status(&statuses)?;
        }
        Ok(Json(serde_json::json!({
            "batches": items.len(), "stored": stored, "refused": refused,
        })))
    })
    .await
}

/// `GET /api/v1/sites/global?since=SEQ`: the collections and deployments that changed
/// here after a child's last applied change (global data, S9).
pub async fn global(
    LinkedSite(link): LinkedSite,
    State(site): State<Arc<Site>>,
    axum::extract::Query(q): axum::extract::Query<GlobalQuery>,
) -> Result<Json<koshin_wire::GlobalData>, AppError> {
    if link.relation != "child" {
        return Err(AppError::Forbidden(format!(
            "{} is this site's parent, not a child: it does not replicate from here",
            link.code
        )));
    }
    contact(&site, &link.code).await;
    let store = site.store.clone();
    blocking(move || Ok(Json(store.global_changes(q.since)?))).await
}

/// A linked site reached this one: its link is up (4801 when it was down).
async fn contact(site: &Arc<Site>, code: &str) {
    let (site, code) = (site.clone(), code.to_string());
    let _ = tokio::task::spawn_blocking(move || crate::hierarchy::record_link(&site, &code, None))
        .await;
}

#[derive(serde::Deserialize)]
pub struct GlobalQuery {
    #[serde(default)]
    since: i64,
}

/// `GET /api/v1/sites/library/{sha256}`: a file of this site's content library, for a
/// child distributing a replicated deployment's package (Range requests resume).
pub async fn library_file(
    LinkedSite(link): LinkedSite,
    State(site): State<Arc<Site>>,
    axum::extract::Path(sha256): axum::extract::Path<String>,
    request: axum::extract::Request,
) -> Result<axum::response::Response, AppError> {
    use tower::ServiceExt;
    if link.relation != "child" {
        return Err(AppError::Forbidden(format!(
            "{} is not a child site",
            link.code
        )));
    }
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::BadRequest(
            "a library file is named by its SHA-256 (64 hex digits)".into(),
        ));
    }
    let path = crate::content::library_path(&site.content.library, &sha256.to_ascii_lowercase());
    if !path.is_file() {
        return Err(AppError::NotFound(format!(
            "{sha256} is not in this site's content library"
        )));
    }
    tower_http::services::ServeFile::new(path)
        .oneshot(request)
        .await
        .map(axum::response::IntoResponse::into_response)
        .map_err(|e| AppError::Internal(e.to_string()))
}

/// `POST /api/v1/sups/register`: a replica update point (`koshin sup serve`) registers.
#[derive(serde::Deserialize)]
pub struct SupRegister {
    pub name: String,
    pub url: String,
    pub push_token: String,
}

pub async fn register_sup(
    Can(admin, _): Can<CanManageSite>,
    State(site): State<Arc<Site>>,
    Json(req): Json<SupRegister>,
) -> Result<Json<serde_json::Value>, AppError> {
    super::error::check_name("update point", &req.name)?;
    super::error::check_peer(&req.url, &req.push_token, "update point")?;
    let pull = format!("ksu_{}", hex::encode(rand::random::<[u8; 32]>()));
    let entry = admin.entry("register update point", &req.name, &req.url);
    let store = site.store.clone();
    let hash = crate::init::hash_token(&pull);
    blocking(move || {
        Ok(store.register_update_point(&req.name, &req.url, &req.push_token, &hash, &entry)?)
    })
    .await?;
    Ok(Json(serde_json::json!({
        "site_code": site.config.site.code,
        "pull_token": pull,
    })))
}

pub async fn sups(
    _admin: super::auth::Admin,
    State(site): State<Arc<Site>>,
) -> Result<Json<Vec<serde_json::Value>>, AppError> {
    let store = site.store.clone();
    let (list, internet) =
        blocking(move || Ok((store.update_points()?, store.internet_update_points()?))).await?;
    Ok(Json(
        list.into_iter()
            .map(|p| {
                let role = if internet.contains(&p.name) {
                    "internet"
                } else {
                    "replica"
                };
                serde_json::json!({
                    "name": p.name, "url": p.url, "role": role,
                    "registered": ts(p.registered_ms), "last_sync": p.last_sync_ms.map(ts),
                    "content_version": p.content_version, "last_error": p.last_error,
                })
            })
            .collect(),
    ))
}

pub async fn sup_catalog(
    ReplicaPoint(_name): ReplicaPoint,
    State(site): State<Arc<Site>>,
) -> Result<Json<ReplicaCatalog>, AppError> {
    let store = site.store.clone();
    let (source_id, content_version, content_token, updates) =
        blocking(move || Ok(store.replica_catalog()?)).await?;
    Ok(Json(ReplicaCatalog {
        site: site.config.site.code.clone(),
        source_id,
        content_version,
        content_token,
        updates,
    }))
}
