//! Every route of the API, in one place, each with the authorization it states: one list
//! makes both [`ROUTES`] and the router, and a test walks [`ROUTES`] checking that each
//! route enforces what it states.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use koshin_domain::Permission;

use super::{
    admins, clients, collections, compliance, content, deployments, export, hierarchy, inventory,
    mp, reports, site, status, sync, updates,
};
use crate::site::Site as SiteState;

/// What a route requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// An administrator whose role grants the permission.
    Admin(Permission),
    /// An enrolled, approved client, with its own credential.
    Client,
    /// A linked site (the parent or a child), with the token it was given at the join.
    Site,
    /// A replica update point of this site, with the token it was given at registration.
    Replica,
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

use Access::{Admin, Client, Public, Replica, Site};
use Permission::{
    Deploy, ManageAdministrators, ManageClients, ManageCollections, ManageContent, ManageSite,
    Read, Sync,
};

/// One list makes both [`ROUTES`] and the router, so no route can be served without
/// stating its authorization.
macro_rules! routes {
    ($($method:literal $path:literal, $access:expr => $handler:expr;)*) => {
        /// Every route and its authorization.
        pub const ROUTES: &[Route] = &[$(r($method, $path, $access)),*];

        fn register(router: Router<Arc<SiteState>>) -> Router<Arc<SiteState>> {
            router $(.route($path, $handler))*
        }
    };
}

routes! {
    "GET" "/", Public("the site's address opens the console, whose own files are public")
        => get(console_home);
    "GET" "/api/v1/health", Public("a load balancer or monitor probes it; says only 'ok'")
        => get(site::health);
    "POST" "/api/v1/login", Public("how an administrator gets a token")
        => post(admins::login);
    "GET" "/api/v1/policy/machine",
        Public("what any client may learn before enrolling: where to scan, the schedules")
        => get(site::machine_policy);
    "POST" "/api/v1/clients/enroll",
        Public("a machine enrolls before it has a credential; without a token it waits for approval")
        => post(clients::enroll);
    "POST" "/api/v1/logout", Admin(Read) => post(admins::logout);
    "GET" "/api/v1/site", Admin(Read) => get(site::info);
    "GET" "/api/v1/updates", Admin(Read) => get(updates::list);
    "GET" "/api/v1/updates/{id}", Admin(Read) => get(updates::show);
    "GET" "/api/v1/status-messages", Admin(Read) => get(status::list);
    "GET" "/api/v1/status-messages/summary", Admin(Read) => get(status::summary);
    "GET" "/api/v1/sync", Admin(Read) => get(sync::status);
    "POST" "/api/v1/sync", Admin(Sync) => post(sync::request);
    "GET" "/api/v1/clients", Admin(Read) => get(clients::list);
    "GET" "/api/v1/clients/{key}", Admin(Read) => get(clients::show);
    "POST" "/api/v1/clients/{key}/approve", Admin(ManageClients) => post(clients::approve);
    "POST" "/api/v1/clients/{key}/revoke", Admin(ManageClients) => post(clients::revoke);
    "GET" "/api/v1/enrollment-tokens", Admin(ManageClients)
        => get(clients::list_enrollment_tokens);
    "POST" "/api/v1/enrollment-tokens", Admin(ManageClients)
        => post(clients::create_enrollment_token);
    "GET" "/api/v1/admins", Admin(ManageAdministrators) => get(admins::list);
    "POST" "/api/v1/admins", Admin(ManageAdministrators) => post(admins::create);
    "POST" "/api/v1/admins/{name}/disable", Admin(ManageAdministrators)
        => post(admins::disable);
    "POST" "/api/v1/admins/{name}/scopes", Admin(ManageAdministrators)
        => post(collections::set_scopes);
    "GET" "/api/v1/audit", Admin(Read) => get(admins::audit);
    "GET" "/api/v1/collections", Admin(Read) => get(collections::list);
    "POST" "/api/v1/collections", Admin(ManageCollections) => post(collections::create);
    "POST" "/api/v1/collections/preview", Admin(Read) => post(collections::preview);
    "POST" "/api/v1/collections/evaluate", Admin(ManageCollections)
        => post(collections::evaluate_all);
    "POST" "/api/v1/collections/{key}/rules", Admin(ManageCollections)
        => post(collections::set_rules);
    "GET" "/api/v1/collections/{key}/history", Admin(Read) => get(collections::history);
    "POST" "/api/v1/collections/{key}/rollback", Admin(ManageCollections)
        => post(collections::rollback);
    "POST" "/api/v1/collections/{key}/evaluate", Admin(ManageCollections)
        => post(collections::evaluate_one);
    "GET" "/api/v1/collections/{key}", Admin(Read) => get(collections::show);
    "POST" "/api/v1/collections/{key}/members", Admin(ManageCollections)
        => post(collections::members);
    "POST" "/api/v1/collections/{key}/delete", Admin(ManageCollections)
        => post(collections::delete);
    "GET" "/api/v1/inventory/classes", Admin(Read) => get(inventory::list);
    "POST" "/api/v1/inventory/classes", Admin(ManageSite) => post(inventory::set);
    "POST" "/api/v1/inventory/classes/{name}/delete", Admin(ManageSite)
        => post(inventory::delete);
    "GET" "/api/v1/content", Admin(Read) => get(content::list);
    "POST" "/api/v1/content", Admin(ManageContent) => post(content::create);
    "GET" "/api/v1/content/{key}", Admin(Read) => get(content::show);
    "POST" "/api/v1/content/{key}/distribute", Admin(ManageContent) => post(content::distribute);
    "POST" "/api/v1/content/{key}/priority", Admin(ManageContent) => post(content::priority);
    "GET" "/api/v1/dps", Admin(Read) => get(content::dps);
    "POST" "/api/v1/dps/register", Admin(ManageContent) => post(content::register);
    "GET" "/api/v1/dps/{name}", Admin(Read) => get(content::dp);
    "POST" "/api/v1/dps/{name}/settings", Admin(ManageContent) => post(content::settings);
    "POST" "/api/v1/dps/{name}/validate", Admin(ManageContent) => post(content::validate);
    "GET" "/api/v1/dp-groups", Admin(Read) => get(content::groups);
    "POST" "/api/v1/dp-groups", Admin(ManageContent) => post(content::create_group);
    "POST" "/api/v1/dp-groups/{name}/members", Admin(ManageContent)
        => post(content::group_members);
    "GET" "/api/v1/update-groups", Admin(Read) => get(deployments::groups);
    "POST" "/api/v1/update-groups", Admin(Deploy) => post(deployments::create_group);
    "POST" "/api/v1/update-groups/{name}/members", Admin(Deploy) => post(deployments::change_group);
    "GET" "/api/v1/deployments", Admin(Read) => get(deployments::list);
    "POST" "/api/v1/deployments", Admin(Deploy) => post(deployments::create);
    "GET" "/api/v1/deployments/{key}", Admin(Read) => get(deployments::show);
    "POST" "/api/v1/deployments/{key}/disable", Admin(Deploy) => post(deployments::disable);
    "POST" "/api/v1/deployments/{key}/enable", Admin(Deploy) => post(deployments::enable);
    "POST" "/api/v1/deployments/{key}/remove-update", Admin(Deploy)
        => post(deployments::remove_update);
    "POST" "/api/v1/deployments/{key}/rerun", Admin(Deploy) => post(deployments::rerun);
    "POST" "/api/v1/deployments/{key}/rollback", Admin(Deploy) => post(deployments::rollback);
    "GET" "/api/v1/deployment-definitions", Admin(Deploy) => get(export::export_definitions);
    "POST" "/api/v1/deployment-definitions", Admin(Deploy)
        => post(export::import_definitions).layer(DefaultBodyLimit::max(64 << 20));
    "GET" "/api/v1/maintenance-windows", Admin(Read) => get(deployments::windows);
    "POST" "/api/v1/collections/{key}/windows", Admin(ManageCollections)
        => post(deployments::add_window);
    "POST" "/api/v1/collections/{key}/windows/{name}/delete", Admin(ManageCollections)
        => post(deployments::remove_window);
    "GET" "/api/v1/mp/deployments", Client => get(deployments::client_deployments);
    "POST" "/api/v1/mp/deployment-status", Client => post(deployments::client_status);
    "POST" "/api/v1/sites/join",
        Public("a child site joins with a join token an administrator of this site made")
        => post(hierarchy::join);
    "POST" "/api/v1/sites/join-tokens", Admin(ManageSite) => post(hierarchy::create_join_token);
    "GET" "/api/v1/sites/links", Admin(Read) => get(hierarchy::links);
    "GET" "/api/v1/sites/catalog", Site => get(hierarchy::catalog);
    "POST" "/api/v1/sites/notify", Site => post(hierarchy::notify);
    "POST" "/api/v1/sites/hello", Site => post(hierarchy::hello);
    "POST" "/api/v1/sites/client-batches", Site
        => post(hierarchy::client_batches).layer(DefaultBodyLimit::max(256 << 20));
    "GET" "/api/v1/sites/global", Site => get(hierarchy::global);
    "GET" "/api/v1/sites/library/{sha256}", Site => get(hierarchy::library_file);
    "POST" "/api/v1/sups/register", Admin(ManageSite) => post(hierarchy::register_sup);
    "GET" "/api/v1/sups", Admin(Read) => get(hierarchy::sups);
    "GET" "/api/v1/sups/catalog", Replica => get(hierarchy::sup_catalog);
    "GET" "/api/v1/catalog/export", Admin(Sync) => get(export::export_catalog);
    "POST" "/api/v1/catalog/import", Admin(Sync)
        => post(export::import_catalog).layer(DefaultBodyLimit::max(1 << 30));
    "GET" "/api/v1/catalog/offline", Admin(Sync) => get(export::offline_catalog);
    "GET" "/api/v1/catalog/sync-host", Admin(Read) => get(export::sync_host);
    "POST" "/api/v1/catalog/sync-host", Admin(ManageSite) => post(export::set_sync_host);
    "POST" "/api/v1/catalog/sync-host/remove", Admin(ManageSite)
        => post(export::remove_sync_host);
    "GET" "/api/v1/catalog/scan-tool", Admin(Read) => get(export::scan_tool);
    "POST" "/api/v1/catalog/scan-tool", Admin(ManageSite) => post(export::setup_scan_tool);
    "POST" "/api/v1/catalog/scan-tool/broaden", Admin(ManageSite)
        => post(export::broaden_scan_tool);
    "POST" "/api/v1/import/scan-results", Admin(Sync)
        => post(export::import_scan_results).layer(DefaultBodyLimit::max(256 << 20));
    "GET" "/api/v1/catalog/keys", Admin(Read) => get(export::keys);
    "POST" "/api/v1/catalog/keys", Admin(ManageSite) => post(export::trust_key);
    "POST" "/api/v1/sups/register-internet", Admin(ManageSite)
        => post(export::register_internet_sup);
    "GET" "/api/v1/sups/version", Replica => get(export::sup_version);
    "POST" "/api/v1/sups/report", Replica => post(export::sup_report);
    "GET" "/api/v1/compliance/trend", Admin(Read) => get(compliance::trend);
    "GET" "/api/v1/reports", Admin(Read) => get(reports::list);
    "GET" "/api/v1/reports/{name}", Admin(Read) => get(reports::run);
    "GET" "/api/v1/mp/policy", Client => get(mp::policy);
    "POST" "/api/v1/mp/inventory", Client
        => post(mp::inventory).layer(DefaultBodyLimit::max(64 << 20));
    "GET" "/api/v1/mp/catalog", Client => get(mp::catalog);
    "GET" "/api/v1/mp/offline-catalog", Client => get(mp::offline_catalog);
    "POST" "/api/v1/mp/state-messages", Client
        => post(mp::state_messages).layer(DefaultBodyLimit::max(64 << 20));
}

/// Trees served as files, outside [`ROUTES`], each public for the reason given.
pub const PUBLIC_TREES: &[(&str, &str)] = &[
    (
        "/dp/",
        "the site's own distribution point: a signed APT repository, public like any mirror",
    ),
    (
        "/console/",
        "the web console's own HTML, CSS and scripts, compiled into the binary: no data; every datum it shows comes from /api/v1 with the administrator's token",
    ),
];

/// `/` opens the console.
async fn console_home() -> axum::response::Redirect {
    axum::response::Redirect::to("/console/")
}

pub fn app(state: Arc<SiteState>) -> Router {
    let dp = tower_http::services::ServeDir::new(state.content.local_dp.clone());
    register(Router::new())
        .nest_service("/dp", dp)
        .nest_service("/console", koshin_console::router::<()>())
        .with_state(state)
}
