//! Every route of the API, in one place, each with the authorization it states. [`app`]
//! refuses to build a router with a route missing from [`ROUTES`], and a test walks
//! [`ROUTES`] checking that each route enforces what it states.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, get, post};
use koshin_domain::Permission;

use super::{admins, clients, mp, reports, site, status, sync, updates};
use crate::site::Site as SiteState;

/// What a route requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// An administrator whose role grants the permission.
    Admin(Permission),
    /// An enrolled, approved client, with its own credential.
    Client,
    /// Anyone, for the reason given.
    Public(&'static str),
}

/// One route: method, path (axum syntax) and its authorization.
#[derive(Clone, Copy, Debug)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

const fn r(method: &'static str, path: &'static str, access: Access) -> Route {
    Route {
        method,
        path,
        access,
    }
}

use Access::{Admin, Client, Public};
use Permission::{ManageAdministrators, ManageClients, Read, Sync};

/// Every route and its authorization.
pub const ROUTES: &[Route] = &[
    r(
        "GET",
        "/api/v1/health",
        Public("a load balancer or monitor probes it; says only 'ok'"),
    ),
    r(
        "POST",
        "/api/v1/login",
        Public("how an administrator gets a token"),
    ),
    r(
        "GET",
        "/api/v1/policy/machine",
        Public("what any client may learn before enrolling: where to scan, the schedules"),
    ),
    r(
        "POST",
        "/api/v1/clients/enroll",
        Public(
            "a machine enrolls before it has a credential; without a token it waits for approval",
        ),
    ),
    r("POST", "/api/v1/logout", Admin(Read)),
    r("GET", "/api/v1/site", Admin(Read)),
    r("GET", "/api/v1/updates", Admin(Read)),
    r("GET", "/api/v1/updates/{id}", Admin(Read)),
    r("GET", "/api/v1/status-messages", Admin(Read)),
    r("GET", "/api/v1/status-messages/summary", Admin(Read)),
    r("GET", "/api/v1/sync", Admin(Read)),
    r("POST", "/api/v1/sync", Admin(Sync)),
    r("GET", "/api/v1/clients", Admin(Read)),
    r("GET", "/api/v1/clients/{key}", Admin(Read)),
    r(
        "POST",
        "/api/v1/clients/{key}/approve",
        Admin(ManageClients),
    ),
    r("POST", "/api/v1/clients/{key}/revoke", Admin(ManageClients)),
    r("GET", "/api/v1/enrollment-tokens", Admin(ManageClients)),
    r("POST", "/api/v1/enrollment-tokens", Admin(ManageClients)),
    r("GET", "/api/v1/admins", Admin(ManageAdministrators)),
    r("POST", "/api/v1/admins", Admin(ManageAdministrators)),
    r(
        "POST",
        "/api/v1/admins/{name}/disable",
        Admin(ManageAdministrators),
    ),
    r("GET", "/api/v1/audit", Admin(Read)),
    r("GET", "/api/v1/reports", Admin(Read)),
    r("GET", "/api/v1/reports/{name}", Admin(Read)),
    r("GET", "/api/v1/mp/policy", Client),
    r("GET", "/api/v1/mp/catalog", Client),
    r("POST", "/api/v1/mp/state-messages", Client),
];

/// Adds a route, refusing one whose authorization is not stated in [`ROUTES`].
fn add(
    router: Router<Arc<SiteState>>,
    method: &'static str,
    path: &'static str,
    handler: MethodRouter<Arc<SiteState>>,
) -> Router<Arc<SiteState>> {
    assert!(
        ROUTES.iter().any(|r| r.method == method && r.path == path),
        "{method} {path} states no authorization: add it to router::ROUTES"
    );
    router.route(path, handler)
}

pub fn app(state: Arc<SiteState>) -> Router {
    let mut a = Router::new();
    a = add(a, "GET", "/api/v1/health", get(site::health));
    a = add(a, "POST", "/api/v1/login", post(admins::login));
    a = add(a, "POST", "/api/v1/logout", post(admins::logout));
    a = add(a, "GET", "/api/v1/site", get(site::info));
    a = add(a, "GET", "/api/v1/updates", get(updates::list));
    a = add(a, "GET", "/api/v1/updates/{id}", get(updates::show));
    a = add(a, "GET", "/api/v1/status-messages", get(status::list));
    a = add(
        a,
        "GET",
        "/api/v1/status-messages/summary",
        get(status::summary),
    );
    a = add(a, "GET", "/api/v1/sync", get(sync::status));
    a = add(a, "POST", "/api/v1/sync", post(sync::request));
    a = add(
        a,
        "GET",
        "/api/v1/policy/machine",
        get(site::machine_policy),
    );
    a = add(a, "GET", "/api/v1/clients", get(clients::list));
    a = add(a, "POST", "/api/v1/clients/enroll", post(clients::enroll));
    a = add(a, "GET", "/api/v1/clients/{key}", get(clients::show));
    a = add(
        a,
        "POST",
        "/api/v1/clients/{key}/approve",
        post(clients::approve),
    );
    a = add(
        a,
        "POST",
        "/api/v1/clients/{key}/revoke",
        post(clients::revoke),
    );
    a = add(
        a,
        "GET",
        "/api/v1/enrollment-tokens",
        get(clients::list_enrollment_tokens),
    );
    a = add(
        a,
        "POST",
        "/api/v1/enrollment-tokens",
        post(clients::create_enrollment_token),
    );
    a = add(a, "GET", "/api/v1/admins", get(admins::list));
    a = add(a, "POST", "/api/v1/admins", post(admins::create));
    a = add(
        a,
        "POST",
        "/api/v1/admins/{name}/disable",
        post(admins::disable),
    );
    a = add(a, "GET", "/api/v1/audit", get(admins::audit));
    a = add(a, "GET", "/api/v1/mp/policy", get(mp::policy));
    a = add(a, "GET", "/api/v1/mp/catalog", get(mp::catalog));
    a = add(
        a,
        "POST",
        "/api/v1/mp/state-messages",
        post(mp::state_messages).layer(DefaultBodyLimit::max(64 << 20)),
    );
    a = add(a, "GET", "/api/v1/reports", get(reports::list));
    a = add(a, "GET", "/api/v1/reports/{name}", get(reports::run));
    a.with_state(state)
}
