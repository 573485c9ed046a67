//! The site-wide machine policy (S11): created after each successful sync, it tells clients
//! where their update points are and lets them start compliance scans.

use koshin_store::Store;
use koshin_wire::{MachinePolicy, UpdatePoint};

use crate::config::SiteConfig;

/// Builds and stores a new machine policy; returns it.
pub fn publish(
    store: &dyn Store,
    cfg: &SiteConfig,
    content_version: i64,
) -> koshin_store::Result<MachinePolicy> {
    let now = jiff::Timestamp::now();
    let mut policy = MachinePolicy {
        policy_version: 0,
        site: cfg.site.code.clone(),
        // The active update point first, then its replicas (S8): clients fail over in order.
        update_points: std::iter::once(UpdatePoint {
            url: cfg.public_url(),
            role: "active".into(),
        })
        .chain({
            // Internet-facing ones (S10) are listed after the replicas, marked so.
            let internet = store.internet_update_points()?;
            let (web, replicas): (Vec<_>, Vec<_>) = store
                .update_points()?
                .into_iter()
                .partition(|p| internet.contains(&p.name));
            replicas
                .into_iter()
                .map(|p| UpdatePoint {
                    url: p.url,
                    role: "replica".into(),
                })
                .chain(web.into_iter().map(|p| UpdatePoint {
                    url: p.url,
                    role: "internet".into(),
                }))
        })
        .collect(),
        content_version,
        scan_interval_minutes: cfg.policy.scan_interval_minutes,
        metadata_ttl_minutes: cfg.policy.metadata_ttl_minutes,
        first_scan_window_minutes: cfg.policy.first_scan_window_minutes,
        policy_poll_minutes: cfg.policy.policy_poll_minutes,
        created: now,
        distribution_points: Vec::new(),
        archive_key: None,
        // The store writes the classes it holds into the policy it stores; these are for
        // the policy returned.
        inventory_classes: store
            .inventory_classes()?
            .into_iter()
            .map(|c| c.property)
            .collect(),
        offline_catalog_refresh_days: None,
    };
    let body = serde_json::to_value(&policy)
        .map_err(|e| koshin_store::StoreError::Invalid(e.to_string()))?;
    policy.policy_version = store.put_machine_policy(&body, now.as_millisecond())?;
    Ok(policy)
}
