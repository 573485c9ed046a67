//! The long-running agent: one loop that polls machine policy, schedules the first scan at a
//! random time within the window the policy gives (C2), scans on the schedule (C5), scans
//! after a restart that completed an installation, and sends queued state messages every
//! send interval (C4). A site that cannot be reached is a normal state: the agent retries
//! with a growing, jittered delay and says so once, not at every attempt.

use std::path::Path;
use std::time::Duration;

use koshin_domain::scan::{ScanTrigger, first_scan_at};

use crate::db::AgentDb;
use crate::mp::Mp;
use crate::{DEFAULT_SEND_INTERVAL_MINUTES, now_ms, scan, send};

/// How long to wait after the `failures`-th failure in a row: 30 s doubling, at most `cap`.
pub fn backoff_ms(failures: u32, cap_ms: i64, random: f64) -> i64 {
    let base = 30_000i64
        .saturating_mul(1i64 << failures.min(16))
        .min(cap_ms);
    // ±20% jitter so a fleet coming back does not arrive at once.
    (base as f64 * (0.8 + 0.4 * random.clamp(0.0, 1.0))) as i64
}

/// Polls the machine policy; on the first policy, schedules the first scan (C2).
pub async fn poll_policy(db: &AgentDb, mp: &Mp) -> Result<(), crate::mp::MpError> {
    let p = mp.policy().await?;
    let now = now_ms();
    let store = |db: &AgentDb| -> anyhow::Result<()> {
        let had_policy = db.get("policy")?.is_some();
        let classes_before = crate::inventory_classes::held(db);
        db.set("policy", &serde_json::to_string(&p)?)?;
        // New or changed custom inventory classes: collect and send the inventory now,
        // not at the next daily one.
        if had_policy && classes_before != p.inventory_classes {
            db.set_i64("next_inventory_ms", now)?;
        }
        db.set_i64("policy_version", p.policy_version)?;
        db.set_i64("metadata_ttl_minutes", p.metadata_ttl_minutes as i64)?;
        db.set_i64("scan_interval_minutes", p.scan_interval_minutes as i64)?;
        db.set_i64("policy_poll_minutes", p.policy_poll_minutes as i64)?;
        if db.get("first_policy_ms")?.is_none() {
            db.set_i64("first_policy_ms", now)?;
            if db.get("next_scan_ms")?.is_none() {
                let window = p.first_scan_window_minutes as i64 * 60_000;
                db.set_i64(
                    "next_scan_ms",
                    first_scan_at(now, window, rand::random::<f64>()),
                )?;
            }
        }
        db.set_i64(
            "next_policy_poll_ms",
            now + p.policy_poll_minutes.max(1) as i64 * 60_000,
        )?;
        Ok(())
    };
    store(db).map_err(|e| crate::mp::MpError::Refused(0, format!("cannot store the policy: {e:#}")))
}

/// How often deployments are evaluated.
pub const DEPLOYMENT_EVALUATION_MS: i64 = 5 * 60_000;

/// Runs until `shutdown` resolves.
pub async fn run(
    state: &Path,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let mut db = AgentDb::open(state)?;
    let id = db.identity()?;
    let mp = Mp::for_identity(&id)?;
    let root = std::path::PathBuf::from(&id.root);
    tracing::info!(client = %id.name, site = %id.site_url, "agent started");
    let mut policy_failures = 0u32;
    let mut send_failures = 0u32;
    let mut offline_said = false;
    tokio::pin!(shutdown);
    // After a restart that completed an installation, scan offline (C5).
    if db.get("restart_pending")?.as_deref() == Some("1")
        && !root.join("run/reboot-required").exists()
    {
        match scan::scan(&mut db, Some(&mp), &root, ScanTrigger::AfterRestart).await {
            Ok(o) => tracing::info!(queued = o.state_messages, "after-restart scan done"),
            Err(e) => tracing::warn!(error = %e, "after-restart scan failed"),
        }
    }
    loop {
        let now = now_ms();
        // Deployment policy comes with machine policy.
        let mut fetch_deployments = false;
        // Machine policy.
        if db.get_i64("next_policy_poll_ms")?.is_none_or(|t| t <= now) {
            match poll_policy(&db, &mp).await {
                Ok(()) => {
                    policy_failures = 0;
                    fetch_deployments = true;
                    if offline_said {
                        tracing::info!("the site is reachable again");
                        offline_said = false;
                    }
                }
                Err(e) => {
                    policy_failures += 1;
                    if !offline_said {
                        tracing::info!(error = %e, "cannot get machine policy; will retry");
                        offline_said = true;
                    }
                    let poll = db.get_i64("policy_poll_minutes")?.unwrap_or(60) * 60_000;
                    db.set_i64(
                        "next_policy_poll_ms",
                        now + backoff_ms(policy_failures, poll, rand::random()),
                    )?;
                }
            }
        }
        // The scan schedule (the first one is C2's random time).
        if let Some(at) = db.get_i64("next_scan_ms")?
            && at <= now
        {
            let interval = db.get_i64("scan_interval_minutes")?.unwrap_or(7 * 24 * 60) * 60_000;
            match scan::scan(&mut db, Some(&mp), &root, ScanTrigger::Schedule).await {
                Ok(o) => {
                    tracing::info!(
                        queued = o.state_messages,
                        online = o.online,
                        "scheduled scan done"
                    );
                    db.set_i64("next_scan_ms", now + interval)?;
                    if crate::deploy::wants_expedited_inventory(&db) {
                        crate::deploy::expedite_inventory(&db)?;
                    }
                }
                Err(e) => {
                    tracing::info!(error = %e, "scheduled scan failed; will retry");
                    db.set_i64(
                        "next_scan_ms",
                        now + backoff_ms(policy_failures + 1, interval, rand::random()),
                    )?;
                }
            }
        }
        // Deployments: fetched with machine policy, and the ones held evaluated again every
        // few minutes, so that an available time, a deadline or a window opening is kept to
        // within minutes without asking the site.
        if fetch_deployments
            || db
                .get_i64("next_deployment_eval_ms")?
                .is_none_or(|t| t <= now)
        {
            match crate::deploy::evaluate(&mut db, &mp, &root, state, fetch_deployments).await {
                Ok(list) => {
                    for e in list
                        .iter()
                        .filter(|e| e.state != "succeeded" || !e.messages.is_empty())
                    {
                        tracing::info!(deployment = %e.deployment, state = %e.state, detail = %e.detail, "deployment evaluated");
                    }
                }
                Err(e) => tracing::info!(error = %e, "cannot evaluate deployments; will retry"),
            }
            db.set_i64(
                "next_deployment_eval_ms",
                now_ms() + DEPLOYMENT_EVALUATION_MS,
            )?;
        }
        // The offline scan catalog's sync host (I1): its policy says so, with how often.
        let refresh_days = db
            .get("policy")?
            .and_then(|p| serde_json::from_str::<koshin_wire::MachinePolicy>(&p).ok())
            .and_then(|p| p.offline_catalog_refresh_days);
        if let Some(days) = refresh_days
            && db
                .get_i64("next_offline_catalog_ms")?
                .is_none_or(|t| t <= now)
        {
            match crate::offline::refresh(state, &mp).await {
                Ok(cv) => {
                    tracing::info!(content_version = cv, "offline scan catalog refreshed");
                    db.set_i64(
                        "next_offline_catalog_ms",
                        now + i64::from(days) * 86_400_000,
                    )?;
                }
                Err(e) => {
                    tracing::info!(error = %e, "cannot refresh the offline scan catalog; will retry");
                    db.set_i64(
                        "next_offline_catalog_ms",
                        now + backoff_ms(policy_failures + 1, 3_600_000, rand::random()),
                    )?;
                }
            }
        }
        // Inventory: what changed, daily (the default hardware and software inventory
        // schedule), retried within the hour when the site is away.
        if db.get_i64("next_inventory_ms")?.is_none_or(|t| t <= now) {
            let every = db.get_i64("inventory_interval_minutes")?.unwrap_or(24 * 60) * 60_000;
            match crate::inventory::send(&db, &mp, &root).await {
                Ok(s) => {
                    tracing::info!(
                        whole = s.whole,
                        properties = s.properties_sent,
                        packages = s.packages_sent,
                        "inventory sent"
                    );
                    db.set_i64("next_inventory_ms", now + every)?;
                }
                Err(e) => {
                    tracing::info!(error = %e, "cannot send the inventory; will retry");
                    db.set_i64(
                        "next_inventory_ms",
                        now + backoff_ms(policy_failures + 1, 3_600_000, rand::random()),
                    )?;
                }
            }
        }
        // State messages, in batches every send interval.
        let send_every = db
            .get_i64("send_interval_minutes")?
            .unwrap_or(DEFAULT_SEND_INTERVAL_MINUTES as i64)
            .max(0)
            * 60_000;
        let has_work = db.queue_length()? > 0 || db.unsent_scans()? > 0;
        if db.get_i64("next_send_ms")?.is_none_or(|t| t <= now) {
            if has_work {
                match send::send_all(&mut db, &id, &mp).await {
                    Ok(s) => {
                        send_failures = 0;
                        tracing::info!(
                            batches = s.batches,
                            messages = s.messages,
                            "state messages sent"
                        );
                        db.set_i64("next_send_ms", now + send_every)?;
                    }
                    Err(e) => {
                        send_failures += 1;
                        tracing::info!(error = %e, "cannot send state messages; they stay queued");
                        db.set_i64(
                            "next_send_ms",
                            now + backoff_ms(send_failures, send_every.max(60_000), rand::random()),
                        )?;
                    }
                }
            } else {
                db.set_i64("next_send_ms", now + send_every)?;
            }
        }
        // Sleep until the next due action (at most 30 s, so `send-now` and new files are seen).
        let next = [
            "next_policy_poll_ms",
            "next_scan_ms",
            "next_send_ms",
            "next_deployment_eval_ms",
            "next_inventory_ms",
        ]
        .iter()
        .filter_map(|k| db.get_i64(k).ok().flatten())
        .min()
        .unwrap_or(now + 30_000);
        let wait = (next - now_ms()).clamp(100, 30_000) as u64;
        tokio::select! {
            _ = &mut shutdown => break,
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
        }
    }
    tracing::info!("agent stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let cap = 15 * 60_000;
        assert!(backoff_ms(1, cap, 0.5) < backoff_ms(3, cap, 0.5));
        assert!(backoff_ms(30, cap, 1.0) <= cap * 6 / 5);
        assert!(backoff_ms(1, cap, 0.0) >= 48_000);
    }
}
