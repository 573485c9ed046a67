//! Authentication and authorization. Administrators: `Authorization: Bearer <token>`,
//! checked against the SHA-256 of tokens stored in the site database (the token itself is
//! never stored); the token's administrator has a role, and a handler that changes anything
//! calls [`Admin::require`] with the permission it needs. Clients: their own credential, and
//! only while approved.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use koshin_domain::{Permission, Role, Scope};

use super::error::{AppError, blocking};
use crate::site::Site;

/// An authenticated administrator (one whose role grants at least `Read`).
#[derive(Clone, Debug)]
pub struct Admin {
    pub name: String,
    pub role: Role,
    /// The clients the administrator may see and act on.
    pub scope: Scope,
    /// The peer address the request came from, for the audit log.
    pub source: String,
}

impl Admin {
    /// Refuses the request unless the administrator's role grants `p`.
    pub fn require(&self, p: Permission) -> Result<(), AppError> {
        if self.role.grants(p) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "{} ({}) may not {}",
                self.name,
                self.role,
                p.name()
            )))
        }
    }

    /// An audit entry for an action of this administrator, now — for a store method that
    /// writes it in the transaction of the change.
    pub fn entry(&self, action: &str, target: &str, detail: &str) -> koshin_store::AuditEntry {
        koshin_store::AuditEntry {
            time_ms: jiff::Timestamp::now().as_millisecond(),
            actor: self.name.clone(),
            role: self.role.name().to_string(),
            action: action.to_string(),
            target: target.to_string(),
            detail: detail.to_string(),
            source: self.source.clone(),
        }
    }

    /// Writes who did what, when and from where to the audit log.
    pub async fn audit(
        &self,
        site: &Arc<Site>,
        action: &str,
        target: &str,
        detail: &str,
    ) -> Result<(), AppError> {
        let entry = self.entry(action, target, detail);
        let store = site.store.clone();
        blocking(move || Ok(store.audit(&entry)?)).await
    }
}

/// The peer address of a request, when the server records it.
pub fn source(parts: &Parts) -> String {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default()
}

fn bearer(parts: &Parts, what: &str) -> Result<String, AppError> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            AppError::Unauthorized(format!(
                "this route needs {what} (Authorization: Bearer ...)"
            ))
        })?;
    Ok(header
        .strip_prefix("Bearer ")
        .ok_or_else(|| {
            AppError::Unauthorized("the Authorization header must be 'Bearer <token>'".into())
        })?
        .trim()
        .to_string())
}

/// An enrolled client, authenticated by its own credential.
#[derive(Clone, Debug)]
pub struct Client(pub koshin_store::ClientIdentity);

impl FromRequestParts<Arc<Site>> for Client {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        site: &Arc<Site>,
    ) -> Result<Self, Self::Rejection> {
        let hash = crate::init::hash_token(&bearer(parts, "a client credential")?);
        let store = site.store.clone();
        match blocking(move || Ok(store.client_by_credential(&hash)?)).await? {
            Some(c) if c.approval == "approved" => Ok(Client(c)),
            Some(c) if c.approval == "pending" => Err(AppError::Forbidden(format!(
                "client {} is pending approval: an administrator approves it with `koshin clients approve {}`",
                c.name, c.name
            ))),
            Some(c) => Err(AppError::Forbidden(format!(
                "client {} has been revoked at this site",
                c.name
            ))),
            None => Err(AppError::Unauthorized(
                "the client credential is not valid for this site: enroll again".into(),
            )),
        }
    }
}

impl FromRequestParts<Arc<Site>> for Admin {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        site: &Arc<Site>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts, "an administrator token")?;
        let hash = crate::init::hash_token(&token);
        let store = site.store.clone();
        let info = blocking(move || Ok(store.find_token(&hash)?)).await?;
        let Some(t) = info else {
            return Err(AppError::Unauthorized(
                "the token is not valid for this site (revoked, expired or unknown): koshin login"
                    .into(),
            ));
        };
        let Some(role) = Role::parse(&t.role) else {
            return Err(AppError::Forbidden(format!(
                "{} has the unknown role '{}'",
                t.name, t.role
            )));
        };
        let admin = Admin {
            name: t.name,
            role,
            scope: Scope::of(&t.scopes),
            source: source(parts),
        };
        admin.require(Permission::Read)?;
        Ok(admin)
    }
}

/// A linked site — the parent or a child — authenticated by the token it was given when the
/// child joined and, over HTTPS, by its link certificate ([`crate::links::check_peer`]).
#[derive(Clone, Debug)]
pub struct LinkedSite(pub koshin_store::SiteLink);

impl FromRequestParts<Arc<Site>> for LinkedSite {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        site: &Arc<Site>,
    ) -> Result<Self, Self::Rejection> {
        let hash = crate::init::hash_token(&bearer(parts, "a linked site's token")?);
        let store = site.store.clone();
        let link = blocking(move || Ok(store.link_by_token(&hash)?))
            .await?
            .ok_or_else(|| {
                AppError::Unauthorized("the token is not a linked site's of this site".into())
            })?;
        // Over HTTPS the client certificate, when there is one, must be the same site's
        // link certificate; a certificate-bound link must present it.
        if let Some(peer) = parts.extensions.get::<crate::tls::TlsPeer>() {
            let bound = crate::links::is_bound(site.pki.dir(), &link.code);
            crate::links::check_peer(peer, &link.code, bound).map_err(AppError::Forbidden)?;
        }
        Ok(LinkedSite(link))
    }
}

/// A replica update point of this site, by the token it was given at registration.
#[derive(Clone, Debug)]
pub struct ReplicaPoint(pub String);

impl FromRequestParts<Arc<Site>> for ReplicaPoint {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        site: &Arc<Site>,
    ) -> Result<Self, Self::Rejection> {
        let hash = crate::init::hash_token(&bearer(parts, "a replica update point's token")?);
        let store = site.store.clone();
        blocking(move || Ok(store.update_point_by_pull(&hash)?))
            .await?
            .map(ReplicaPoint)
            .ok_or_else(|| {
                AppError::Unauthorized(
                    "the token is not a replica update point's of this site".into(),
                )
            })
    }
}

/// The peer address of a request (for routes without an administrator, e.g. login).
pub struct Source(pub String);

impl FromRequestParts<Arc<Site>> for Source {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &Arc<Site>) -> Result<Self, AppError> {
        Ok(Source(source(parts)))
    }
}

/// A permission as a type, so a route's extractor checks it before the body is read.
pub trait Perm: Send + Sync + 'static {
    const P: Permission;
}

macro_rules! perm {
    ($($t:ident => $p:ident),* $(,)?) => {
        $(
            #[doc = concat!("The `", stringify!($p), "` permission.")]
            pub struct $t;
            impl Perm for $t {
                const P: Permission = Permission::$p;
            }
        )*
    };
}

perm! {
    CanSync => Sync,
    CanManageClients => ManageClients,
    CanManageCollections => ManageCollections,
    CanManageContent => ManageContent,
    CanDeploy => Deploy,
    CanManageSite => ManageSite,
    CanManageAdministrators => ManageAdministrators,
}

/// An administrator whose role grants `P`, checked before anything else of the request.
pub struct Can<P: Perm>(pub Admin, pub std::marker::PhantomData<P>);

impl<P: Perm> std::ops::Deref for Can<P> {
    type Target = Admin;
    fn deref(&self) -> &Admin {
        &self.0
    }
}

impl<P: Perm> FromRequestParts<Arc<Site>> for Can<P> {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, site: &Arc<Site>) -> Result<Self, AppError> {
        let admin = Admin::from_request_parts(parts, site).await?;
        admin.require(P::P)?;
        Ok(Can(admin, std::marker::PhantomData))
    }
}
