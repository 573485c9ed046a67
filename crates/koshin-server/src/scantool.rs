//! The scan tool's objects (seed 002, I2–I3): the top-level site's offline scan catalog
//! package, a pre-production collection whose only member is a chosen test client, the
//! scan tool's collection (every eligible client, limited to the pre-production collection
//! until it is broadened), and two program deployments to it: the normal program, which
//! repeats at the catalog's refresh interval, and the expedited one, which runs once and
//! sends the inventory right after its scan (I4).
//!
//! The objects are kept by id (`site_kv`), so renaming them afterwards breaks nothing. Setup
//! is resumable: an object that exists by its name already is taken as it is.

use koshin_domain::Scope;
use koshin_domain::collections::Rules;
use koshin_domain::content::Priority;
use koshin_store::AuditEntry;
use koshin_wire::{
    NewDeployment, OFFLINE_CATALOG_PACKAGE, PROGRAM_OFFLINE_SCAN, PROGRAM_OFFLINE_SCAN_EXPEDITED,
    ScanToolOut, ScanToolSetup,
};

use crate::http::AppError;
use crate::site::Site;

pub const PRE_PRODUCTION: &str = "Offline Scan Tool (pre-production)";
pub const COLLECTION: &str = "Offline Scan Tool";
pub const DEPLOYMENT: &str = "Offline Scan Tool";
pub const EXPEDITED_DEPLOYMENT: &str = "Offline Scan Tool (expedited)";
/// Where the objects' ids are kept (`site_kv`).
const KEY: &str = "offline_scan_tool";

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Kept {
    test_client_id: String,
    pre_production_id: String,
    collection_id: String,
    eligible_id: String,
    deployment_id: String,
    expedited_deployment_id: String,
    set: jiff::Timestamp,
    set_by: String,
    broadened: Option<jiff::Timestamp>,
}

fn internal(e: anyhow::Error) -> AppError {
    AppError::Internal(format!("{e:#}"))
}

fn kept(site: &Site) -> Result<Option<Kept>, AppError> {
    match site.store.site_get(KEY)? {
        None => Ok(None),
        Some(v) if v.is_empty() => Ok(None),
        Some(v) => Ok(Some(serde_json::from_str(&v).map_err(|e| {
            AppError::Internal(format!("the stored scan tool setup is unreadable: {e}"))
        })?)),
    }
}

/// The collection `key` (id or name) as (id, name), if it exists.
fn collection(site: &Site, key: &str) -> Result<Option<(String, String)>, AppError> {
    Ok(site
        .store
        .collection(key, &Scope::All)?
        .map(|(c, _)| (c.id, c.name)))
}

/// Sets the scan tool up (I2). `entry` makes the audit entry of each step.
pub fn setup(
    site: &Site,
    ask: &ScanToolSetup,
    actor: &str,
    entry: &dyn Fn(&str, &str, &str) -> AuditEntry,
) -> Result<ScanToolOut, AppError> {
    if !site.config.site.parent.is_empty() {
        return Err(AppError::Conflict(
            "the scan tool is set up once, at the top-level site of the hierarchy (setting it up at several sites gives wrong results)".into(),
        ));
    }
    if let Some(k) = kept(site)? {
        return Err(AppError::Conflict(format!(
            "the scan tool is set up already, since {} by {} (koshin catalog scan-tool show)",
            k.set, k.set_by
        )));
    }
    let client = site
        .store
        .get_client(&ask.test_client, &Scope::All)?
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "no client '{}' to be the test client (koshin clients list)",
                ask.test_client
            ))
        })?;
    let eligible_key = ask.eligible.as_deref().unwrap_or("SMS00001");
    let (eligible_id, _) = collection(site, eligible_key)?.ok_or_else(|| {
        AppError::NotFound(format!(
            "no collection '{eligible_key}' (koshin collections list)"
        ))
    })?;
    // The package: the catalog is made now when the site has none yet.
    if site.store.package(OFFLINE_CATALOG_PACKAGE)?.is_none() {
        crate::offline::build(site).map_err(internal)?;
    }
    let code = site.config.site.code.clone();
    let pre_production_id = match collection(site, PRE_PRODUCTION)? {
        Some((id, _)) => id,
        None => {
            let e = entry(
                "create collection",
                PRE_PRODUCTION,
                "the scan tool's pre-production collection",
            );
            site.store
                .create_collection(
                    &code,
                    PRE_PRODUCTION,
                    "The scan tool's test client (I2)",
                    &Rules::default(),
                    &e,
                )?
                .id
        }
    };
    let e = entry(
        "change collection members",
        PRE_PRODUCTION,
        &format!("the test client {}", client.summary.name),
    );
    site.store.change_members(
        &pre_production_id,
        std::slice::from_ref(&client.summary.client_id),
        &[],
        &Scope::All,
        &e,
    )?;
    let collection_id = match collection(site, COLLECTION)? {
        Some((id, _)) => id,
        None => {
            let rules = Rules {
                query: None,
                limiting: Some(pre_production_id.clone()),
                includes: vec![eligible_id.clone()],
                excludes: Vec::new(),
            };
            let e = entry(
                "create collection",
                COLLECTION,
                "the scan tool's clients, limited to pre-production",
            );
            site.store
                .create_collection(
                    &code,
                    COLLECTION,
                    "The clients the scan tool goes to (I2, I3)",
                    &rules,
                    &e,
                )?
                .id
        }
    };
    let refresh = crate::offline::sync_host(site)
        .map_err(internal)?
        .map_or(crate::offline::DEFAULT_REFRESH_DAYS, |h| h.refresh_days);
    let now = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .datetime()
        .strftime("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let mut deployments = Vec::new();
    for (name, program, recurrence) in [
        (DEPLOYMENT, PROGRAM_OFFLINE_SCAN, Some(refresh)),
        (EXPEDITED_DEPLOYMENT, PROGRAM_OFFLINE_SCAN_EXPEDITED, None),
    ] {
        let existing = site
            .store
            .list_deployments(&Scope::All)?
            .into_iter()
            .find(|d| d.name == name);
        let id = match existing {
            Some(d) => d.id,
            None => {
                let d = NewDeployment {
                    name: name.into(),
                    update_group: String::new(),
                    collection: collection_id.clone(),
                    available: None,
                    deadline: None,
                    utc: true,
                    allow_postpone: Some(false),
                    notification: String::new(),
                    suppress_restart_servers: true,
                    suppress_restart_workstations: true,
                    install_from_dp: false,
                    recurrence_days: recurrence,
                    expedited_inventory: program == PROGRAM_OFFLINE_SCAN_EXPEDITED,
                    program: Some(program.into()),
                    priority: None,
                    distribution_points: Vec::new(),
                };
                let e = entry(
                    "create deployment",
                    name,
                    &format!("program {program} to collection {COLLECTION}"),
                );
                site.store
                    .create_deployment(&code, &d, &now, Priority::Medium, &e)?
                    .id
            }
        };
        deployments.push(id);
    }
    let k = Kept {
        test_client_id: client.summary.client_id.clone(),
        pre_production_id,
        collection_id,
        eligible_id,
        deployment_id: deployments[0].clone(),
        expedited_deployment_id: deployments[1].clone(),
        set: jiff::Timestamp::now(),
        set_by: actor.to_string(),
        broadened: None,
    };
    save(site, &k)?;
    site.content.wake.notify_one();
    show(site)?.ok_or_else(|| AppError::Internal("the scan tool setup was not kept".into()))
}

fn save(site: &Site, k: &Kept) -> Result<(), AppError> {
    let json = serde_json::to_string(k).map_err(|e| AppError::Internal(e.to_string()))?;
    site.store.site_set(KEY, &json)?;
    Ok(())
}

/// Broadens the scan tool to every eligible client (I3): the limiting rule goes, as the
/// next version of the collection's rules. Refused until the test client has reported a
/// scan with the tool, unless `force`.
pub fn broaden(
    site: &Site,
    force: bool,
    entry: &dyn Fn(&str, &str, &str) -> AuditEntry,
) -> Result<ScanToolOut, AppError> {
    let Some(mut k) = kept(site)? else {
        return Err(AppError::NotFound(
            "the scan tool is not set up (koshin catalog scan-tool setup --test-client NAME)"
                .into(),
        ));
    };
    let now =
        show(site)?.ok_or_else(|| AppError::Internal("the scan tool setup is gone".into()))?;
    if now.broadened.is_some() {
        return Ok(now);
    }
    if !force && now.test_client_state.as_deref() != Some("succeeded") {
        return Err(AppError::Conflict(format!(
            "the test client {} has not reported a scan with the scan tool yet ({}); check its results (koshin report run compliance-for-computer --param computer={}) and broaden then, or with --force",
            now.test_client,
            now.test_client_state.as_deref().unwrap_or("no state"),
            now.test_client
        )));
    }
    let (record, _) = site
        .store
        .collection(&k.collection_id, &Scope::All)?
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "the scan tool's collection {} is gone",
                k.collection_id
            ))
        })?;
    let mut rules = record.rules.clone();
    rules.limiting = None;
    let e = entry(
        "broaden scan tool",
        &record.name,
        "the limiting rule removed: every eligible client gets the scan tool",
    );
    site.store.set_collection_rules(
        &k.collection_id,
        &rules,
        "broadened to every eligible client: the limiting rule removed",
        &e,
    )?;
    k.broadened = Some(jiff::Timestamp::now());
    save(site, &k)?;
    show(site)?.ok_or_else(|| AppError::Internal("the scan tool setup is gone".into()))
}

/// The scan tool's objects as they are now.
pub fn show(site: &Site) -> Result<Option<ScanToolOut>, AppError> {
    let Some(k) = kept(site)? else {
        return Ok(None);
    };
    let name_of = |id: &str| -> Result<String, AppError> {
        Ok(collection(site, id)?.map_or_else(|| format!("{id} (deleted)"), |(_, n)| n))
    };
    let (collection_name, members) = match site.store.collection(&k.collection_id, &Scope::All)? {
        Some((c, _)) => (c.name, c.members),
        None => (format!("{} (deleted)", k.collection_id), 0),
    };
    let test = site.store.get_client(&k.test_client_id, &Scope::All)?;
    let test_name = test
        .as_ref()
        .map_or_else(|| k.test_client_id.clone(), |c| c.summary.name.clone());
    let mut names = [String::new(), String::new()];
    let mut state: Option<(String, String)> = None;
    for (i, id) in [&k.deployment_id, &k.expedited_deployment_id]
        .into_iter()
        .enumerate()
    {
        if let Some(d) = site.store.deployment(id, &Scope::All)? {
            names[i] = d.deployment.name.clone();
            if let Some(c) = d.clients.iter().find(|c| c.client_id == k.test_client_id) {
                // Succeeded on either is what counts; otherwise the latest state seen.
                if state.as_ref().is_none_or(|(s, _)| s != "succeeded") {
                    state = Some((c.state.clone(), c.detail.clone()));
                }
            }
        } else {
            names[i] = format!("{id} (deleted)");
        }
    }
    let package_id = site
        .store
        .package(OFFLINE_CATALOG_PACKAGE)?
        .map(|(p, _, _)| p.id)
        .unwrap_or_default();
    let [deployment, expedited_deployment] = names;
    Ok(Some(ScanToolOut {
        test_client: test_name,
        test_client_id: k.test_client_id.clone(),
        package_id,
        pre_production: name_of(&k.pre_production_id)?,
        pre_production_id: k.pre_production_id.clone(),
        collection: collection_name,
        collection_id: k.collection_id.clone(),
        eligible: name_of(&k.eligible_id)?,
        eligible_id: k.eligible_id.clone(),
        deployment_id: k.deployment_id.clone(),
        deployment,
        expedited_deployment_id: k.expedited_deployment_id.clone(),
        expedited_deployment,
        set: k.set,
        set_by: k.set_by.clone(),
        broadened: k.broadened,
        members,
        test_client_state: state.as_ref().map(|(s, _)| s.clone()),
        test_client_detail: state.map(|(_, d)| d),
    }))
}
