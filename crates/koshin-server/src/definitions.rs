//! Deployment definitions from one site into another (P14: approvals and deployments tested
//! in a test environment, imported into production): the update groups and deployments of a
//! site, signed with its archive key (`koshin_apt::signed`), and their import — verified,
//! then applied all or nothing.
//!
//! ```text
//! KOSHIN-DEPLOYMENTS 1
//! Site: TST
//! Groups: 2
//! Deployments: 3
//! Created: 2026-11-21T13:00:00Z
//! Signed-By: 0123…ABCD
//! ```

use koshin_apt::signed::{self, SignedError};
use koshin_apt::verify::Keyring;
use koshin_domain::Scope;
use koshin_wire::{
    DEFINITIONS_FORMAT, DEFINITIONS_MAGIC, DeploymentDefinition, DeploymentDefinitions,
    NewDeployment,
};

use crate::http::AppError;
use crate::site::Site;

const WHAT: &str = "koshin deployment definitions";

/// The definitions file of the site's update groups and deployments: those named (every one
/// when none is), with the update groups they deploy. Rollback deployments are the site's
/// own history and do not travel.
pub fn export(
    site: &Site,
    deployments: &[String],
    groups: &[String],
) -> Result<(Vec<u8>, DeploymentDefinitions), AppError> {
    let all_deployments = site.store.list_deployments(&Scope::All)?;
    let all_groups = site.store.list_update_groups()?;
    let everything = deployments.is_empty() && groups.is_empty();
    let mut chosen = Vec::new();
    for d in &all_deployments {
        let named = deployments.iter().any(|n| n == &d.name || n == &d.id);
        if named && d.rollback_of.is_some() {
            return Err(AppError::BadRequest(format!(
                "{} is a rollback deployment: it rolls back this site's own history and is not exported",
                d.name
            )));
        }
        if (everything && d.rollback_of.is_none()) || named {
            chosen.push(d);
        }
    }
    for n in deployments {
        if !all_deployments.iter().any(|d| &d.name == n || &d.id == n) {
            return Err(AppError::NotFound(format!("no deployment '{n}'")));
        }
    }
    let mut group_names: Vec<&str> = Vec::new();
    for n in groups {
        if !all_groups.iter().any(|g| &g.name == n) {
            return Err(AppError::NotFound(format!("no update group '{n}'")));
        }
        group_names.push(n);
    }
    if everything {
        group_names.extend(all_groups.iter().map(|g| g.name.as_str()));
    }
    group_names.extend(
        chosen
            .iter()
            .filter(|d| d.program.is_none())
            .map(|d| d.update_group.as_str()),
    );
    let defs = DeploymentDefinitions {
        format: DEFINITIONS_FORMAT.into(),
        site: site.config.site.code.clone(),
        created: jiff::Timestamp::now(),
        signed_by: site.content.key.fingerprint(),
        content_version: site.store.content_version()?.1,
        groups: all_groups
            .iter()
            .filter(|g| group_names.contains(&g.name.as_str()))
            .cloned()
            .collect(),
        deployments: chosen
            .into_iter()
            .map(|d| DeploymentDefinition {
                spec: NewDeployment {
                    name: d.name.clone(),
                    update_group: if d.program.is_some() {
                        String::new()
                    } else {
                        d.update_group.clone()
                    },
                    collection: d.collection.clone(),
                    available: Some(d.available.clone()),
                    deadline: d.deadline.clone(),
                    utc: d.utc,
                    allow_postpone: Some(d.allow_postpone),
                    notification: d.notification.clone(),
                    suppress_restart_servers: d.suppress_restart_servers,
                    suppress_restart_workstations: d.suppress_restart_workstations,
                    install_from_dp: d.install_from_dp,
                    recurrence_days: d.recurrence_days,
                    expedited_inventory: d.expedited_inventory,
                    program: d.program.clone(),
                    priority: None,
                    distribution_points: Vec::new(),
                },
                enabled: d.enabled,
            })
            .collect(),
    };
    let fields = [
        ("Site", defs.site.clone()),
        ("Groups", defs.groups.len().to_string()),
        ("Deployments", defs.deployments.len().to_string()),
        ("Created", defs.created.to_string()),
    ];
    let bytes = signed::write(DEFINITIONS_MAGIC, &fields, &defs, &site.content.key)
        .map_err(|e| AppError::Internal(format!("cannot sign the definitions: {e:#}")))?;
    Ok((bytes, defs))
}

/// Verifies a definitions file against `keyring` and reads it; the error says why it is
/// refused (not such a file, truncated, bad signature, unknown key, damaged).
pub fn verify(bytes: &[u8], keyring: &Keyring) -> Result<DeploymentDefinitions, String> {
    let hint = format!(
        "give the exporting site's public key (DATA/pki/{}) with --key",
        crate::content::ARCHIVE_KEY_PUBLIC
    );
    let (fields, json) =
        signed::verify(DEFINITIONS_MAGIC, WHAT, bytes, keyring, &hint).map_err(|e| match e {
            SignedError::NotOurs { reason, .. } => {
                format!("not a koshin deployment definitions file: {reason}")
            }
            SignedError::Truncated(m) => format!("truncated: {m}"),
            SignedError::BadSignature(m) => format!("bad signature: {m}"),
            SignedError::UnknownKey(m) => format!("signed by a key this site does not trust: {m}"),
            SignedError::Damaged(m) => format!("damaged: {m}"),
        })?;
    let defs: DeploymentDefinitions = serde_json::from_slice(&json)
        .map_err(|e| format!("damaged: cannot read the definitions: {e}"))?;
    let field = |k: &str| fields.get(k).map(String::as_str).unwrap_or_default();
    if defs.format != DEFINITIONS_FORMAT
        || defs.site != field("Site")
        || defs.groups.len().to_string() != field("Groups")
        || defs.deployments.len().to_string() != field("Deployments")
    {
        return Err("damaged: the header does not agree with the signed definitions".into());
    }
    Ok(defs)
}
