//! The distribution manager and its sender: one distribution at a time, the next chosen by
//! priority among those whose sender may send now (`koshin_domain::content::next_transfer`),
//! so a package under way is never interrupted and priorities are evaluated again only
//! when a transfer ends (P17). For each package and distribution point: 2342 when it
//! starts; the files fetched into the library if missing; for a remote point the sender's
//! 3531 (with the % sent), 3533 or 3532, with jittered backoff after an error; 2330 when the
//! point holds it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use koshin_domain::Severity;
use koshin_domain::content::{Waiting, next_transfer, retry_delay_ms};
use koshin_store::{DpRecord, LibraryFile, TargetRecord, TransferEnd};

use super::remote::DpClient;
use super::{DISTRIBUTION_MANAGER, SENDER, library, repo};
use crate::site::Site;

fn attrs(package_id: &str) -> BTreeMap<String, String> {
    // 400: the package id, as Configuration Manager's status message attributes.
    BTreeMap::from([("400".to_string(), package_id.to_string())])
}

/// Runs until `stop` turns true.
pub async fn run(site: Arc<Site>, mut stop: tokio::sync::watch::Receiver<bool>) {
    match site.store.requeue_interrupted() {
        Ok(n) if n > 0 => site.content.log.line(format!(
            "{n} distribution(s) interrupted by a restart are queued again"
        )),
        Ok(_) => {}
        Err(e) => site
            .content
            .log
            .line(format!("Cannot requeue distributions: {e}")),
    }
    let http = match library::client() {
        Ok(c) => c,
        Err(e) => {
            site.content.log.line(format!("Cannot set up HTTP: {e}"));
            return;
        }
    };
    // Validation: each distribution point once per `validate_hours`, counted from start;
    // whether one is due is looked at once a minute, not at every wake-up.
    let mut validated: HashMap<i64, std::time::Instant> = HashMap::new();
    let mut looked: Option<std::time::Instant> = None;
    loop {
        if *stop.borrow() {
            return;
        }
        if looked.is_none_or(|t| t.elapsed() >= std::time::Duration::from_secs(60)) {
            looked = Some(std::time::Instant::now());
            validate_due(&site, &mut validated).await;
        }
        let worked = match one(&site, &http).await {
            Ok(w) => w,
            Err(e) => {
                site.content
                    .log
                    .line(format!("Distribution manager error: {e:#}"));
                false
            }
        };
        if worked {
            continue;
        }
        tokio::select! {
            _ = site.content.wake.notified() => {}
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Validates the distribution points whose validation is due.
async fn validate_due(site: &Arc<Site>, validated: &mut HashMap<i64, std::time::Instant>) {
    let hours = site.config.content.validate_hours;
    if hours == 0 {
        return;
    }
    let every = std::time::Duration::from_secs(hours * 3600);
    let store = site.store.clone();
    let Ok(Ok(dps)) = tokio::task::spawn_blocking(move || store.list_dps()).await else {
        return;
    };
    for dp in dps {
        let last = *validated
            .entry(dp.key)
            .or_insert_with(std::time::Instant::now);
        if last.elapsed() < every {
            continue;
        }
        validated.insert(dp.key, std::time::Instant::now());
        match validate(site, &dp).await {
            Ok((checked, damaged)) => site.content.log.line(format!(
                "Validated {}: {checked} file(s), {} damaged",
                dp.name,
                damaged.len()
            )),
            Err(e) => site
                .content
                .log
                .line(format!("Cannot validate {}: {e:#}", dp.name)),
        }
    }
}

/// Starts and finishes the next distribution, if one may go now.
async fn one(site: &Arc<Site>, http: &reqwest::Client) -> anyhow::Result<bool> {
    let store = site.store.clone();
    let now = jiff::Timestamp::now();
    let now_ms = now.as_millisecond();
    // The points are read only when some distribution is due: the loop wakes every second.
    let (pending, dps) = tokio::task::spawn_blocking(move || {
        let pending = store.pending_targets()?;
        let due = pending
            .iter()
            .any(|t| t.state == "waiting" && t.retry_at_ms.is_none_or(|r| r <= now_ms));
        let dps = if due { store.list_dps()? } else { Vec::new() };
        Ok::<_, anyhow::Error>((pending, dps))
    })
    .await??;
    if dps.is_empty() {
        return Ok(false);
    }
    let dps: HashMap<i64, DpRecord> = dps.into_iter().map(|d| (d.key, d)).collect();
    let hour = now.to_zoned(jiff::tz::TimeZone::system()).hour() as u8;
    let candidates: Vec<&TargetRecord> = pending
        .iter()
        .filter(|t| t.state == "waiting" && t.retry_at_ms.is_none_or(|r| r <= now_ms))
        .collect();
    let waiting: Vec<Waiting> = candidates
        .iter()
        .map(|t| Waiting {
            priority: t.priority,
            queued_ms: t.queued_ms,
            sendable: dps
                .get(&t.dp_key)
                .is_some_and(|d| d.local || d.sender.may_send(t.priority, hour, now_ms)),
        })
        .collect();
    let Some(i) = next_transfer(&waiting) else {
        return Ok(false);
    };
    let t = candidates[i].clone();
    let Some(dp) = dps.get(&t.dp_key).cloned() else {
        return Ok(false);
    };
    distribute(site, http, &t, &dp).await;
    Ok(true)
}

fn report(
    site: &Site,
    component: &str,
    id: u32,
    sev: Severity,
    strings: Vec<String>,
    package: &str,
) {
    let log = if component == SENDER {
        &site.content.sender_log
    } else {
        &site.content.log
    };
    site.status
        .report(log, component, id, sev, strings, attrs(package));
}

async fn distribute(site: &Arc<Site>, http: &reqwest::Client, t: &TargetRecord, dp: &DpRecord) {
    let c = &site.content;
    c.log.line(format!(
        "Distributing package {} ({}, priority {}) to {}",
        t.package_id, t.package_name, t.priority, dp.name
    ));
    report(
        site,
        DISTRIBUTION_MANAGER,
        2342,
        Severity::Informational,
        vec![t.package_id.clone(), dp.name.clone()],
        &t.package_id,
    );
    let result = transfer(site, http, t, dp).await;
    let now = jiff::Timestamp::now().as_millisecond();
    let end = match &result {
        Ok(()) => TransferEnd::Installed,
        Err(e) => {
            let attempts = u32::try_from(t.attempts + 1).unwrap_or(u32::MAX);
            let delay = retry_delay_ms(attempts, rand::random::<f64>());
            c.log.line(format!(
                "Failed to distribute package {} to {}: {e:#}; retrying in {} s",
                t.package_id,
                dp.name,
                delay / 1000
            ));
            TransferEnd::Retry {
                error: format!("{e:#}"),
                at_ms: now + delay,
            }
        }
    };
    let store = site.store.clone();
    let (p, d) = (t.package_key, t.dp_key);
    let e2 = end.clone();
    let stored = tokio::task::spawn_blocking(move || store.finish_target(p, d, &e2, now)).await;
    if let Err(e) = stored
        .map_err(anyhow::Error::from)
        .and_then(|r| r.map_err(Into::into))
    {
        c.log
            .line(format!("Cannot record the distribution's end: {e}"));
    }
    if result.is_ok() {
        report(
            site,
            DISTRIBUTION_MANAGER,
            2330,
            Severity::Informational,
            vec![t.package_id.clone(), dp.name.clone()],
            &t.package_id,
        );
    }
}

/// The package's files, in the library (fetched when missing).
async fn library_files(
    site: &Arc<Site>,
    http: &reqwest::Client,
    package_key: i64,
) -> anyhow::Result<Vec<LibraryFile>> {
    let store = site.store.clone();
    let files = tokio::task::spawn_blocking(move || store.package_files(package_key)).await??;
    let mut bases: Vec<library::FileSource> = Vec::new();
    // A child site takes its files from its parent's library: the parent fetched them for
    // the same deployment. The upstream, when this site has one, is tried after it.
    if !site.config.site.parent.is_empty()
        && let Ok((code, url, token)) = crate::hierarchy::parent(site)
    {
        match crate::links::client(site.pki.dir(), &code, &url, library::builder()) {
            Ok(client) => bases.push(library::FileSource::Parent { url, token, client }),
            Err(e) => {
                tracing::warn!(parent = %code, error = %format!("{e:#}"), "cannot fetch from the parent's library")
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    let sources = match crate::sync::configured_sources(&site.config) {
        Ok(s) => s,
        Err(e) if bases.is_empty() => anyhow::bail!(e),
        Err(_) => Vec::new(),
    };
    for s in sources {
        let b = s.base();
        if seen.insert(b.clone()) {
            bases.push(library::FileSource::Upstream(b));
        }
    }
    let mut out = Vec::with_capacity(files.len());
    for f in &files {
        out.push(library::ensure(&site.content.library, &site.store, http, f, &bases).await?);
    }
    Ok(out)
}

async fn transfer(
    site: &Arc<Site>,
    http: &reqwest::Client,
    t: &TargetRecord,
    dp: &DpRecord,
) -> anyhow::Result<()> {
    let files = library_files(site, http, t.package_key).await?;
    let total: i64 = files.iter().map(|f| f.size).sum();
    let store = site.store.clone();
    let (p, d) = (t.package_key, t.dp_key);
    let now = jiff::Timestamp::now().as_millisecond();
    tokio::task::spawn_blocking(move || store.start_target(p, d, total, now)).await??;
    let store = site.store.clone();
    let held = tokio::task::spawn_blocking(move || store.dp_files(d, Some(p))).await??;
    let indices = repo::indices(
        &site.config.site.code,
        &held,
        &site.config.upstream.architectures,
        &site.content.key,
    )?;
    let keep: Vec<String> = held
        .iter()
        .map(|f| repo::pool_path(&f.sha256, &f.name))
        .collect();
    if dp.local {
        let root = site.content.local_dp.clone();
        let library = site.content.library.clone();
        tokio::task::spawn_blocking(move || -> anyhow::Result<()> {
            for f in &files {
                let to = root.join(repo::pool_path(&f.sha256, &f.name));
                library::place(&super::library_path(&library, &f.sha256), &to)?;
            }
            repo::write_indices(&root, &indices)?;
            repo::prune(&root, &keep.into_iter().collect::<HashSet<_>>())?;
            Ok(())
        })
        .await??;
        return Ok(());
    }
    send(site, t, dp, &files, total, &indices, keep).await
}

/// The sender: pushes a package's files and the new indices to a remote point.
async fn send(
    site: &Arc<Site>,
    t: &TargetRecord,
    dp: &DpRecord,
    files: &[LibraryFile],
    total: i64,
    indices: &[(String, Vec<u8>)],
    keep: Vec<String>,
) -> anyhow::Result<()> {
    let version = t.source_version.to_string();
    let strings = |pct: i64| {
        vec![
            t.package_id.clone(),
            version.clone(),
            dp.name.clone(),
            pct.to_string(),
        ]
    };
    report(
        site,
        SENDER,
        3531,
        Severity::Informational,
        strings(0),
        &t.package_id,
    );
    let store = site.store.clone();
    let d = dp.key;
    let token = tokio::task::spawn_blocking(move || store.dp_push_token(d))
        .await??
        .ok_or_else(|| anyhow::anyhow!("{} has no push token: register it again", dp.name))?;
    let client = DpClient::new(&dp.url, &token)?;
    let started = std::time::Instant::now();
    let result: anyhow::Result<()> = async {
        let done_before = Arc::new(AtomicU64::new(0));
        for f in files {
            let store = site.store.clone();
            let name = dp.name.clone();
            let rate: Arc<dyn Fn() -> Option<u64> + Send + Sync> = Arc::new(move || {
                let now = jiff::Timestamp::now().as_millisecond();
                store
                    .dp(&name)
                    .ok()
                    .flatten()
                    .and_then(|d| d.sender.rate(now))
            });
            let store = site.store.clone();
            let (p, dk) = (t.package_key, dp.key);
            let before = done_before.load(Ordering::Relaxed);
            let last = Arc::new(AtomicU64::new(0));
            let sent: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |n| {
                // Progress into the database every 256 KiB.
                if n >= last.load(Ordering::Relaxed) + (256 << 10) {
                    last.store(n, Ordering::Relaxed);
                    let _ = store.progress_target(p, dk, (before + n) as i64);
                }
            });
            let path = site.content.library_path(&f.sha256);
            client
                .push(&path, &f.sha256, &f.name, f.size as u64, rate, sent)
                .await
                .map_err(|e| anyhow::anyhow!("{}: {e:#}", f.name))?;
            let after = done_before.fetch_add(f.size as u64, Ordering::Relaxed) + f.size as u64;
            let pct = if total > 0 {
                after as i64 * 100 / total
            } else {
                100
            };
            if pct < 100 {
                report(
                    site,
                    SENDER,
                    3531,
                    Severity::Informational,
                    strings(pct),
                    &t.package_id,
                );
            }
        }
        client.put_indices(indices, keep).await?;
        Ok(())
    }
    .await;
    let store = site.store.clone();
    let now = jiff::Timestamp::now().as_millisecond();
    match &result {
        Ok(()) => {
            site.content.sender_log.line(format!(
                "Sent package {} ({total} bytes) to {} in {:.1} s",
                t.package_id,
                dp.name,
                started.elapsed().as_secs_f64()
            ));
            report(
                site,
                SENDER,
                3533,
                Severity::Informational,
                strings(100),
                &t.package_id,
            );
            let _ = tokio::task::spawn_blocking(move || store.dp_seen(d, now, None)).await;
        }
        Err(e) => {
            let mut s = strings(0);
            s[3] = format!("{e:#}");
            report(site, SENDER, 3532, Severity::Error, s, &t.package_id);
            let msg = format!("{e:#}");
            let _ = tokio::task::spawn_blocking(move || store.dp_seen(d, now, Some(&msg))).await;
        }
    }
    result
}

/// Validates a distribution point's files: the site's own here, a remote one through its
/// API. Damaged files are removed there and their packages sent again. Returns (checked,
/// damaged).
pub async fn validate(site: &Arc<Site>, dp: &DpRecord) -> anyhow::Result<(usize, Vec<String>)> {
    let (checked, damaged) = if dp.local {
        let root = site.content.local_dp.clone();
        tokio::task::spawn_blocking(move || repo::validate(&root)).await??
    } else {
        let store = site.store.clone();
        let d = dp.key;
        let token = tokio::task::spawn_blocking(move || store.dp_push_token(d))
            .await??
            .ok_or_else(|| anyhow::anyhow!("{} has no push token", dp.name))?;
        let v = DpClient::new(&dp.url, &token)?.validate().await?;
        (v.checked, v.damaged)
    };
    let now = jiff::Timestamp::now().as_millisecond();
    for sha in &damaged {
        let store = site.store.clone();
        let (d, s) = (dp.key, sha.clone());
        let n = tokio::task::spawn_blocking(move || store.damaged_file(d, &s, now)).await??;
        site.content.log.line(format!(
            "{}: file {sha} is damaged; {n} package(s) holding it will be sent again",
            dp.name
        ));
    }
    if !damaged.is_empty() {
        site.content.wake.notify_one();
    }
    Ok((checked, damaged))
}
