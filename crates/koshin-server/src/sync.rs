//! The sync manager (`SMS_WSUS_SYNC_MANAGER`, S1–S8, S11, S12): wakes on its schedule (full
//! sync), on a request recorded through the API (`SyncNow`, turned into an inbox drop as the
//! seeds' database notification monitor does), on `SELF.SYN` / `FULL.SYN` dropped into
//! `inboxes/wsyncmgr.box/`, and on the retry of a failed sync. Each sync reads the site's
//! update points, reports 6701, syncs the update point with its upstream (6704), then the
//! site database (6705), then replicas one at a time (6706, when there are any), and reports
//! 6702 — or 6703 with the reason, leaving the catalog and content version as they were.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use koshin_apt::verify::Keyring;
use koshin_apt::{AptSource, FetchOptions, Fetcher};
use koshin_domain::catalog::{self, Classification, SuiteIndex, UpdateCandidate};
use koshin_domain::status::{self as sm, SYNC_MANAGER, Severity};
use koshin_domain::sync::{SyncKind, SyncTrigger};
use koshin_store::SyncCommit;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};

use crate::site::Site;

/// Where a running sync stands, for `GET /api/v1/sync` and `koshin sync --wait`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Progress {
    pub run_id: i64,
    pub phase: String,
    pub done: u64,
    pub total: u64,
}

/// Shared between the sync manager and the HTTP layer.
#[derive(Default)]
pub struct SyncHandle {
    notify: Notify,
    progress: Mutex<Option<Progress>>,
}

impl SyncHandle {
    /// Wakes the sync manager (after a request was recorded).
    pub fn wake(&self) {
        self.notify.notify_one();
    }
    pub fn progress(&self) -> Option<Progress> {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
    fn set_progress(&self, p: Option<Progress>) {
        *self.progress.lock().unwrap_or_else(|p| p.into_inner()) = p;
    }
}

/// Why a sync failed: the reason (ISTR0 of 6703) and where (ISTR1).
#[derive(Debug, Clone)]
pub struct SyncFailure {
    pub reason: String,
    pub source: String,
}

#[derive(Debug, Clone)]
pub struct SyncReport {
    pub run_id: i64,
    pub kind: SyncKind,
    pub items: usize,
    pub content_version: i64,
    pub updates_in_catalog: usize,
    pub elapsed: Duration,
}

const SCHEDULED: &str = "scheduled_sync";
const RETRY: &str = "retry_sync";

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The log's line for each change of a sync plan.
fn plan_lines(plan: &catalog::SyncPlan) -> Vec<String> {
    let mut lines = Vec::with_capacity(plan.changed_items());
    for c in &plan.inserts {
        lines.push(format!("Synchronized update {} - {}", c.id, c.title));
    }
    for (c, rev) in &plan.revisions {
        lines.push(format!(
            "Synchronized update {} - {} (revision {rev})",
            c.id, c.title
        ));
    }
    for id in &plan.expire {
        lines.push(format!("Expired update {id}"));
    }
    for id in &plan.unexpire {
        lines.push(format!("Update {id} is available again"));
    }
    for (id, by) in &plan.supersedence {
        match by {
            Some(by) => lines.push(format!("Update {id} is superseded by {by}")),
            None => lines.push(format!("Update {id} is no longer superseded")),
        }
    }
    lines
}

/// How often undelivered sync notifications to children are sent again.
pub const NOTIFY_RETRY: Duration = Duration::from_secs(60);

fn fail(reason: impl ToString, source: impl ToString) -> SyncFailure {
    SyncFailure {
        reason: reason.to_string(),
        source: source.to_string(),
    }
}

/// `0d00h03m53s`, as the seeds' "Sync time:" line.
pub fn sync_time(d: Duration) -> String {
    let s = d.as_secs();
    format!(
        "{}d{:02}h{:02}m{:02}s",
        s / 86400,
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60
    )
}

fn hms(secs: u64) -> String {
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// "Synchronizing updates, 122 of 130 items (93%), ETA in 00:00:03" (S5).
pub fn progress_line(what: &str, done: u64, total: u64, elapsed: Duration) -> String {
    let pct = (done * 100).checked_div(total).unwrap_or(100);
    if done >= total || done == 0 {
        format!("Synchronizing {what}, {done} of {total} items ({pct}%)")
    } else {
        let eta = elapsed.as_secs_f64() * (total - done) as f64 / done as f64;
        format!(
            "Synchronizing {what}, {done} of {total} items ({pct}%), ETA in {}",
            hms(eta.ceil() as u64)
        )
    }
}

pub struct SyncManager {
    site: Arc<Site>,
}

impl SyncManager {
    pub fn new(site: Arc<Site>) -> SyncManager {
        SyncManager { site }
    }

    fn log(&self, line: impl AsRef<str>) {
        self.site.sync_log.line(line);
    }

    /// The background job: runs until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let store = self.site.store.clone();
        match store.fail_abandoned_runs(now_ms()) {
            Ok(n) if n > 0 => {
                self.log(format!(
                    "Marked {n} sync run(s) interrupted by a stop of the site server as failed"
                ));
                // What was interrupted runs again now, not at the next schedule: a child's
                // parent notification was taken when the sync began and is not sent again.
                if store.schedule_set(RETRY, Some(now_ms())).is_ok() {
                    let _ = store.site_set("retry_kind", SyncKind::Full.name());
                    self.log("Sync interrupted by a stop of the site server. Will retry now");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "cannot check for interrupted sync runs"),
        }
        let interval_ms = self.site.config.sync.schedule_minutes as i64 * 60_000;
        if let Ok(None) = store.schedule_get(SCHEDULED)
            && let Err(e) = store.schedule_set(SCHEDULED, Some(now_ms() + interval_ms))
        {
            tracing::error!(error = %e, "cannot set the sync schedule");
        }
        self.log("Sync manager started");
        // A child site that has never synced takes its parent's catalog at once, not at the
        // parent's next sync.
        if !self.site.config.site.parent.is_empty()
            && store
                .content_version()
                .map(|(_, cv)| cv == 0)
                .unwrap_or(false)
            && let Ok((parent, _, _)) = crate::hierarchy::parent(&self.site)
        {
            self.log(format!(
                "New child site: synchronizing with parent {parent}"
            ));
            let _ = self
                .run_once(SyncTrigger::Parent(parent), SyncKind::Full)
                .await;
        }
        let poll = Duration::from_millis(self.site.config.sync.inbox_poll_ms.max(50));
        // Sync notifications a child could not take are sent again every minute.
        let mut last_retry = Instant::now();
        loop {
            if *shutdown.borrow() {
                break;
            }
            match self.next_trigger() {
                Ok(Some((trigger, kind))) => {
                    let _ = self.run_once(trigger, kind).await;
                    continue;
                }
                Ok(None) => {
                    if last_retry.elapsed() >= NOTIFY_RETRY {
                        last_retry = Instant::now();
                        self.notify_children(false).await;
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "sync manager cannot read its state");
                    self.log(format!("Cannot read sync state: {e}"));
                }
            }
            tokio::select! {
                _ = self.site.sync.notify.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => {}
            }
        }
        self.log("Sync manager stopped");
    }

    /// The database notification monitor's part: a recorded SyncNow request becomes a
    /// zero-byte `SELF.SYN` / `FULL.SYN` in the inbox, which then wakes the sync manager.
    fn drop_requests(&self) -> anyhow::Result<()> {
        if let Some(kind) = self.site.store.take_sync_request()? {
            let name = match kind {
                SyncKind::Full => "FULL.SYN",
                SyncKind::Delta => "SELF.SYN",
            };
            let path = self.site.sync_inbox().join(name);
            std::fs::write(&path, b"")?;
            self.log(format!(
                "RCV: UPDATE on sync status for SyncNotif_WSyncMgr [{}]",
                if kind == SyncKind::Full {
                    "FULL"
                } else {
                    "SELF"
                }
            ));
            self.log(format!("SND: Dropped {}", path.display()));
        }
        Ok(())
    }

    /// Decides whether to sync now, and why.
    fn next_trigger(&self) -> anyhow::Result<Option<(SyncTrigger, SyncKind)>> {
        self.drop_requests()?;
        let inbox = self.site.sync_inbox();
        let mut names: Vec<String> = std::fs::read_dir(&inbox)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_file())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        let mut found: Option<(SyncTrigger, SyncKind)> = None;
        let mut lines = Vec::new();
        for name in &names {
            let upper = name.to_ascii_uppercase();
            let t = if upper == "FULL.SYN" {
                lines.push("Found local sync request file".to_string());
                Some((SyncTrigger::FullRequest, SyncKind::Full))
            } else if upper == "SELF.SYN" {
                lines.push("Found local sync request file".to_string());
                Some((SyncTrigger::LocalRequest, SyncKind::Delta))
            } else if let Some(code) = upper.strip_suffix(".SYN")
                && code.len() == 3
            {
                lines.push(format!("Found parent sync notification file {upper}"));
                Some((SyncTrigger::Parent(code.to_string()), SyncKind::Full))
            } else {
                // Not ours: set aside so it is not read again.
                let from = inbox.join(name);
                let _ = std::fs::create_dir_all(inbox.join("bad"));
                let _ = std::fs::rename(&from, inbox.join("bad").join(name));
                self.log(format!("Ignored unknown inbox file {name}; moved to bad/"));
                None
            };
            if let Some(t) = t {
                if let Err(e) = std::fs::remove_file(inbox.join(name)) {
                    self.log(format!("Cannot remove inbox file {name}: {e}"));
                }
                // A full request wins over a delta one in the same wake-up.
                found = match found {
                    Some(prev) if prev.1 == SyncKind::Full => Some(prev),
                    _ => Some(t),
                };
            }
        }
        if let Some(t) = found {
            self.log("Wakeup by inbox drop");
            self.site.sync_log.lines(lines);
            return Ok(Some(t));
        }
        let now = now_ms();
        let store = &self.site.store;
        if let Some(at) = store.schedule_get(SCHEDULED)?
            && at <= now
        {
            self.log("Wakeup for scheduled regular sync");
            return Ok(Some((SyncTrigger::Schedule, SyncKind::Full)));
        }
        if let Some(at) = store.schedule_get(RETRY)?
            && at <= now
        {
            let kind = match store.site_get("retry_kind")?.as_deref() {
                Some("delta") => SyncKind::Delta,
                _ => SyncKind::Full,
            };
            self.log("Wakeup for retry of a failed sync");
            return Ok(Some((SyncTrigger::Retry, kind)));
        }
        Ok(None)
    }

    /// Runs one sync of the given kind. Reports and logs everything; never panics on bad
    /// upstream data.
    pub async fn run_once(
        &self,
        trigger: SyncTrigger,
        kind: SyncKind,
    ) -> Result<SyncReport, SyncFailure> {
        let started = Instant::now();
        let site = &self.site;
        let store = site.store.clone();
        let cfg = &site.config;
        let system = cfg.system_name();
        self.log("Starting Sync");
        self.log(trigger.performing_line());
        self.log(format!("Reading SUPs from SCF for {system}"));
        self.log("Found 1 SUPs");
        self.log(format!("Found active SUP {system} from SCF File."));
        let trigger_name = match &trigger {
            SyncTrigger::Schedule => "schedule".to_string(),
            SyncTrigger::LocalRequest => "local request".to_string(),
            SyncTrigger::FullRequest => "local full request".to_string(),
            SyncTrigger::Retry => "retry".to_string(),
            SyncTrigger::Parent(c) => format!("parent {c}"),
        };
        let run_id = match store.start_run(kind, &trigger_name, now_ms()) {
            Ok(id) => id,
            Err(e) => {
                let f = fail(format!("cannot record the sync run: {e}"), "site database");
                self.report_failure(&f, kind);
                return Err(f);
            }
        };
        site.sync.set_progress(Some(Progress {
            run_id,
            phase: "starting".into(),
            done: 0,
            total: 0,
        }));
        self.report(sm::SYNC_STARTED, Severity::Informational, vec![]);
        let result = if cfg.site.parent.is_empty() {
            self.sync_phases(run_id, kind, started).await
        } else {
            self.child_phases(run_id, started).await
        };
        site.sync.set_progress(None);
        if matches!(trigger, SyncTrigger::Schedule) {
            let next = now_ms() + cfg.sync.schedule_minutes as i64 * 60_000;
            if let Err(e) = store.schedule_set(SCHEDULED, Some(next)) {
                tracing::error!(error = %e, "cannot set the next scheduled sync");
            }
        }
        match result {
            Ok(report) => {
                let _ = store.finish_run(
                    run_id,
                    now_ms(),
                    None,
                    Some(report.items as u64),
                    Some(report.content_version),
                );
                let _ = store.schedule_set(RETRY, None);
                self.notify_children(true).await;
                Ok(report)
            }
            Err(f) => {
                let _ = store.finish_run(
                    run_id,
                    now_ms(),
                    Some(&format!("{} (source: {})", f.reason, f.source)),
                    None,
                    None,
                );
                self.report_failure(&f, kind);
                Err(f)
            }
        }
    }

    fn report(&self, id: u32, severity: Severity, istr: Vec<String>) {
        self.site.status.report(
            &self.site.sync_log,
            SYNC_MANAGER,
            id,
            severity,
            istr,
            BTreeMap::new(),
        );
    }

    fn report_failure(&self, f: &SyncFailure, kind: SyncKind) {
        self.log(format!("Sync failed: {}. Source: {}", f.reason, f.source));
        self.report(
            sm::SYNC_FAILED,
            Severity::Error,
            vec![f.reason.clone(), f.source.clone()],
        );
        let minutes = self.site.config.sync.retry_minutes;
        let at = now_ms() + minutes as i64 * 60_000;
        let store = &self.site.store;
        if store.schedule_set(RETRY, Some(at)).is_ok() {
            let _ = store.site_set("retry_kind", kind.name());
            self.log(format!("Sync failed. Will retry in {minutes} minutes"));
        }
    }

    fn set_phase(&self, run_id: i64, phase: &str, done: u64, total: u64) {
        self.site.sync.set_progress(Some(Progress {
            run_id,
            phase: phase.to_string(),
            done,
            total,
        }));
        let _ = self.site.store.progress_run(run_id, phase, done, total);
    }

    async fn sync_phases(
        &self,
        run_id: i64,
        kind: SyncKind,
        started: Instant,
    ) -> Result<SyncReport, SyncFailure> {
        let site = self.site.clone();
        let cfg = &site.config;
        let system = cfg.system_name();
        let store = site.store.clone();
        let criteria = cfg.criteria();

        // Phase 1: the update point syncs with its upstream.
        self.report(sm::SYNC_PHASE_UPSTREAM, Severity::Informational, vec![]);
        self.log(format!(
            "Synchronizing update point {system} with its upstream ..."
        ));
        self.log("sync: Starting upstream synchronization");
        self.set_phase(run_id, "upstream", 0, 0);
        let sources = self
            .sources()
            .map_err(|e| fail(e, "upstream configuration"))?;
        let criteria_hash = {
            let mut h = Sha256::new();
            h.update(serde_json::to_vec(&criteria).unwrap_or_default());
            for s in &sources {
                h.update(s.to_line().as_bytes());
                h.update(b"\n");
            }
            h.update(cfg.upstream.architectures.join(",").as_bytes());
            hex::encode(h.finalize())
        };
        let (synced, last_hash) = store
            .synced_indices()
            .map_err(|e| fail(e, "site database"))?;
        // A delta sync only needs what is new: an index synced before under the same criteria
        // cannot hold anything new, so it is not fetched again.
        let skip: HashSet<String> =
            if kind == SyncKind::Delta && last_hash.as_deref() == Some(criteria_hash.as_str()) {
                synced.iter().map(|(_, _, sha)| sha.clone()).collect()
            } else {
                HashSet::new()
            };
        self.log("sync: upstream synchronizing categories");
        let fetcher = Fetcher::new(FetchOptions {
            connect_timeout: Duration::from_secs(cfg.upstream.connect_timeout_seconds.max(1)),
            read_timeout: Duration::from_secs(cfg.upstream.read_timeout_seconds.max(1)),
            compression_order: cfg.upstream.compression_order.clone(),
            default_architecture: cfg
                .upstream
                .architectures
                .first()
                .cloned()
                .unwrap_or_else(koshin_apt::sources::host_architecture),
            max_release_size: 64 << 20,
        })
        .map_err(|e| fail(e, "upstream"))?;
        let now_s = jiff::Timestamp::now().as_second();
        let mut system_keyring: Option<Arc<Keyring>> = None;
        let mut set = tokio::task::JoinSet::new();
        let total_sources = sources.len() as u64;
        for (i, src) in sources.iter().cloned().enumerate() {
            let keyring = if src.signed_by.is_empty() {
                match &system_keyring {
                    Some(k) => k.clone(),
                    None => {
                        let k = Arc::new(Keyring::system().map_err(|e| fail(e, src.label()))?);
                        system_keyring = Some(k.clone());
                        k
                    }
                }
            } else {
                Arc::new(Keyring::load(&src.signed_by).map_err(|e| fail(e, src.label()))?)
            };
            let fetcher = fetcher.clone();
            let skip = skip.clone();
            set.spawn(async move {
                let r = fetcher.fetch_suite(&src, &keyring, now_s, &skip).await;
                (i, src, r)
            });
        }
        self.log("sync: upstream synchronizing updates");
        let mut suites: Vec<(usize, koshin_apt::FetchedSuite)> = Vec::new();
        let phase_start = Instant::now();
        let mut done = 0;
        while let Some(joined) = set.join_next().await {
            let (i, src, r) =
                joined.map_err(|e| fail(format!("fetch task failed: {e}"), "upstream"))?;
            match r {
                Ok(s) => {
                    done += 1;
                    let n: usize = s
                        .indices
                        .iter()
                        .map(|x| x.packages.as_ref().map_or(0, Vec::len))
                        .sum();
                    self.log(format!(
                        "Synchronized {} ({} packages read, {} bytes fetched)",
                        src.label(),
                        n,
                        s.bytes_fetched
                    ));
                    self.log(progress_line(
                        "updates",
                        done,
                        total_sources,
                        phase_start.elapsed(),
                    ));
                    self.set_phase(run_id, "upstream", done, total_sources);
                    suites.push((i, s));
                }
                Err(e) => {
                    set.abort_all();
                    return Err(fail(e, src.label()));
                }
            }
        }
        suites.sort_by_key(|(i, _)| *i);
        let mut indices_consumed = Vec::new();
        let mut any_index_read = false;
        let mut suite_indexes = Vec::new();
        for (_, s) in suites {
            let product =
                catalog::product_name(&s.release.origin, &s.release.version, &s.release.codename);
            let date = s.release.date.unwrap_or(now_s);
            let mut packages = Vec::new();
            for idx in s.indices {
                indices_consumed.push((s.source.label(), idx.path.clone(), idx.sha256.clone()));
                if let Some(p) = idx.packages {
                    any_index_read = true;
                    packages.extend(p);
                }
            }
            suite_indexes.push(SuiteIndex {
                product,
                suite: s.source.suite.clone(),
                classification: Classification::for_suite(&s.source.suite),
                date,
                packages,
            });
        }
        // S12: the local publisher is read only when its product is selected.
        let local_dir = criteria
            .selects_product(catalog::LOCAL_PUBLISHER_PRODUCT)
            .then(|| site.local_publisher_dir());
        let local_loaded = local_dir.is_some();
        let derived = tokio::task::spawn_blocking(move || {
            let mut c = catalog::derive_apt_updates(&suite_indexes);
            if let Some(dir) = local_dir {
                c.extend(crate::localpub::load(&dir, now_s)?);
            }
            Ok::<_, String>(c)
        })
        .await
        .map_err(|e| fail(format!("catalog task failed: {e}"), "upstream"))?
        .map_err(|e| fail(e, "local publisher"))?;
        // What the upstream holds now, selected or not: only what is gone from it expires.
        let mut present: HashSet<catalog::UpdateId> = derived.iter().map(|c| c.id).collect();
        let candidates: Vec<UpdateCandidate> = derived
            .into_iter()
            .filter(|c| criteria.selects(c))
            .collect();
        self.log(format!(
            "Done synchronizing update point {system} with its upstream"
        ));
        let (source_id, cv) = store
            .content_version()
            .map_err(|e| fail(e, "site database"))?;
        self.log(format!(
            "Set content version of update source {source_id} for site {} to {cv}",
            cfg.site.code
        ));

        // Phase 2: the site database.
        self.report(sm::SYNC_PHASE_DATABASE, Severity::Informational, vec![]);
        self.log(format!(
            "Synchronizing site database with update point {system} ..."
        ));
        self.log("sync: site database synchronizing categories");
        let mut categories: Vec<(String, &'static str)> = candidates
            .iter()
            .map(|c| (c.product.clone(), c.classification.name()))
            .collect();
        categories.sort();
        categories.dedup();
        let ncat = categories.len() as u64;
        self.log(format!(
            "sync: site database synchronizing categories, {ncat} of {ncat} items (100%)"
        ));
        self.log("sync: site database synchronizing updates");
        // A delta sync that read no index (every one was synced before, under the same
        // criteria) and has no local update to consider cannot find anything new: the stored
        // catalog need not be read or planned against.
        let nothing_can_be_new =
            kind == SyncKind::Delta && !any_index_read && candidates.is_empty();
        let (plan, in_catalog_before) = if nothing_can_be_new {
            let counts = store
                .catalog_counts()
                .map_err(|e| fail(e, "site database"))?;
            (
                catalog::SyncPlan::default(),
                counts.iter().map(|c| c.updates as usize).sum(),
            )
        } else {
            let stored = store
                .stored_updates()
                .map_err(|e| fail(e, "site database"))?;
            if !local_loaded {
                // Local updates were not consulted this time: they are not gone.
                present.extend(stored.iter().filter(|s| s.group.is_none()).map(|s| s.id));
            }
            let n = stored.len();
            let plan = tokio::task::spawn_blocking(move || {
                catalog::plan_sync(kind, &stored, candidates, &present)
            })
            .await
            .map_err(|e| fail(format!("planning task failed: {e}"), "site database"))?;
            (plan, n)
        };
        let total_items = plan.changed_items() as u64;
        self.set_phase(run_id, "site database", 0, total_items);
        let commit = SyncCommit {
            now_ms: now_ms(),
            indices: indices_consumed,
            fingerprint: criteria_hash,
            content_version: None,
            content_token: None,
            revisions: Vec::new(),
        };
        let handle_site = site.clone();
        let apply_started = Instant::now();
        let (outcome, plan) = tokio::task::spawn_blocking(move || {
            let mut last_log = Instant::now();
            let mut progress = |done: u64, total: u64| {
                handle_site.sync.set_progress(Some(Progress {
                    run_id,
                    phase: "site database".into(),
                    done,
                    total,
                }));
                if last_log.elapsed() >= Duration::from_secs(1) && done < total {
                    last_log = Instant::now();
                    handle_site.sync_log.line(progress_line(
                        "updates",
                        done,
                        total,
                        apply_started.elapsed(),
                    ));
                }
            };
            let r = handle_site.store.apply_sync(&plan, &commit, &mut progress);
            (r, plan)
        })
        .await
        .map_err(|e| fail(format!("database task failed: {e}"), "site database"))?;
        let outcome = outcome.map_err(|e| fail(e, "site database"))?;
        // One line per update, written once the change is committed.
        self.site.sync_log.lines(plan_lines(&plan));
        self.log(format!(
            "sync: site database synchronizing updates, {total_items} of {total_items} items (100%)"
        ));
        self.log(format!(
            "Done synchronizing site database with update point {system}"
        ));
        self.log(format!(
            "Set content version of update source {source_id} for site {} to {}",
            cfg.site.code, outcome.content_version
        ));
        let in_catalog = in_catalog_before + plan.inserts.len();

        // Phase 3 (S8): the replica update points, one at a time, after the active one.
        self.sync_replicas().await;

        // S11: the site-wide machine policy.
        let policy =
            crate::policy::publish(store.as_ref(), cfg, outcome.content_version).map_err(|e| {
                fail(
                    format!("cannot create the machine policy: {e}"),
                    "site database",
                )
            })?;
        self.report(sm::SYNC_DONE, Severity::Informational, vec![]);
        self.log(format!(
            "Sync succeeded. Setting sync alert to canceled state on site {}",
            cfg.site.code
        ));
        self.log(format!(
            "Updated {} items in site database, new update source content version is {}",
            outcome.items, outcome.content_version
        ));
        self.log(format!(
            "Created site-wide machine policy version {}",
            policy.policy_version
        ));
        let elapsed = started.elapsed();
        self.log(format!("Sync time: {}", sync_time(elapsed)));
        Ok(SyncReport {
            run_id,
            kind,
            items: outcome.items,
            content_version: outcome.content_version,
            updates_in_catalog: in_catalog,
            elapsed,
        })
    }

    fn sources(&self) -> Result<Vec<AptSource>, String> {
        configured_sources(&self.site.config)
    }

    /// S8: the replica update points sync from this site's active one, one at a time (6706).
    /// A replica that fails is logged and recorded; the site's sync still succeeds.
    async fn sync_replicas(&self) {
        let Ok(points) = self.site.store.update_points() else {
            return;
        };
        // S10: internet-facing update points poll the site themselves (crate::isup).
        let internet = self.site.store.internet_update_points().unwrap_or_default();
        let points: Vec<_> = points
            .into_iter()
            .filter(|p| !internet.contains(&p.name))
            .collect();
        if points.is_empty() {
            return;
        }
        self.log("Synchronizing replica update points");
        self.report(sm::SYNC_PHASE_REPLICAS, Severity::Informational, vec![]);
        for p in points {
            self.log(format!("Synchronizing update point {} ...", p.name));
            self.log("sync: Starting replica update point synchronization");
            let r = crate::sup::sync_replica(&self.site, &p.name, &p.url).await;
            let now = now_ms();
            match r {
                Ok((cv, items)) => {
                    self.log(format!(
                        "sync: replica update point synchronizing other items, {items} of {items} items (100%)"
                    ));
                    self.log(format!("Done synchronizing update point {}", p.name));
                    let _ = self
                        .site
                        .store
                        .update_point_synced(&p.name, now, Some(cv), None);
                }
                Err(e) => {
                    self.log(format!(
                        "Failed to synchronize update point {}: {e:#}",
                        p.name
                    ));
                    let _ = self.site.store.update_point_synced(
                        &p.name,
                        now,
                        None,
                        Some(&format!("{e:#}")),
                    );
                }
            }
        }
    }

    /// S9: after a successful sync, a sync notification to every child (file replication);
    /// one that cannot be delivered stays pending and is sent again at the next wake-up.
    pub async fn notify_children(&self, all: bool) {
        let children: Vec<String> = match self.site.store.site_links() {
            Ok(l) => l
                .into_iter()
                .filter(|l| l.relation == "child" && (all || l.notify_pending))
                .map(|l| l.code)
                .collect(),
            Err(_) => return,
        };
        if children.is_empty() {
            return;
        }
        if all {
            self.log(format!(
                "Sending sync notification to child sites: {}",
                children.join(", ")
            ));
        }
        let (delivered, pending) = crate::hierarchy::notify_children(&self.site, all).await;
        for c in &delivered {
            self.log(format!(
                "Dropped sync notification {}.SYN for child site {c}",
                self.site.config.site.code
            ));
        }
        if !pending.is_empty() {
            self.log(format!(
                "Cannot reach child sites {}: their sync notification stays pending",
                pending.join(", ")
            ));
        }
    }

    /// A child site's sync (S9): only the update point phase — its catalog replicated from
    /// the parent's, with the parent's content version (S6) — then 6702.
    async fn child_phases(&self, run_id: i64, started: Instant) -> Result<SyncReport, SyncFailure> {
        let site = self.site.clone();
        let cfg = &site.config;
        let system = cfg.system_name();
        let store = site.store.clone();
        self.report(sm::SYNC_PHASE_UPSTREAM, Severity::Informational, vec![]);
        let (parent, _, _) =
            crate::hierarchy::parent(&site).map_err(|e| fail(e.to_string(), "hierarchy"))?;
        self.log(format!(
            "Synchronizing update point {system} with parent site {parent} ..."
        ));
        self.log("sync: Starting upstream synchronization");
        self.set_phase(run_id, "upstream", 0, 0);
        self.log("sync: upstream synchronizing categories");
        let catalog = crate::hierarchy::fetch_parent_catalog(&site)
            .await
            .map_err(|e| fail(e.to_string(), format!("parent site {parent}")))?;
        self.log("sync: upstream synchronizing updates");
        let parent_cv = catalog.content_version;
        let in_catalog_before = store.stored_updates().map(|s| s.len()).unwrap_or(0);
        self.set_phase(run_id, "upstream", 0, 0);
        let (outcome, plan) = crate::hierarchy::replicate(store.clone(), catalog)
            .await
            .map_err(|e| fail(e, "site database"))?;
        let total_items = plan.changed_items() as u64;
        self.site.sync_log.lines(plan_lines(&plan));
        self.log(format!(
            "sync: upstream synchronizing updates, {total_items} of {total_items} items (100%)"
        ));
        self.log(format!(
            "Done synchronizing update point {system} with parent site {parent}"
        ));
        let source_id = store
            .content_version()
            .map(|(id, _)| id)
            .unwrap_or_default();
        self.log(format!(
            "Set content version of update source {source_id} for site {} to {}",
            cfg.site.code, outcome.content_version
        ));
        let _ = store.set_replicated_cv(&parent, parent_cv);
        // Global data (collections, deployments) replicates continuously; a sync takes what
        // changed too, so a deployment of the new updates arrives with them.
        if let Err(e) = crate::hierarchy::pull_global(&site).await {
            self.log(format!(
                "Global data from parent site {parent} waits: {e:#}"
            ));
        }
        // Phase 3 (S8): the replica update points, one at a time, after the active one.
        self.sync_replicas().await;
        let policy =
            crate::policy::publish(store.as_ref(), cfg, outcome.content_version).map_err(|e| {
                fail(
                    format!("cannot create the machine policy: {e}"),
                    "site database",
                )
            })?;
        self.report(sm::SYNC_DONE, Severity::Informational, vec![]);
        self.log(format!(
            "Sync succeeded. Setting sync alert to canceled state on site {}",
            cfg.site.code
        ));
        self.log(format!(
            "Successfully synchronized sites with parent {parent}, version {parent_cv}"
        ));
        self.log(format!(
            "Created site-wide machine policy version {}",
            policy.policy_version
        ));
        let elapsed = started.elapsed();
        self.log(format!("Sync time: {}", sync_time(elapsed)));
        Ok(SyncReport {
            run_id,
            kind: SyncKind::Full,
            items: outcome.items,
            content_version: outcome.content_version,
            updates_in_catalog: in_catalog_before + plan.inserts.len(),
            elapsed,
        })
    }
}

/// The site's upstream APT sources, as its configuration gives them (`system` expanded to
/// this machine's sources).
pub fn configured_sources(cfg: &crate::config::SiteConfig) -> Result<Vec<AptSource>, String> {
    let mut out = Vec::new();
    for s in &cfg.upstream.sources {
        if s == "system" {
            let found =
                koshin_apt::sources::system_sources(std::path::Path::new(&cfg.upstream.apt_etc))
                    .map_err(|e| e.to_string())?;
            if found.is_empty() {
                return Err(format!(
                    "no APT sources found under {}",
                    cfg.upstream.apt_etc
                ));
            }
            out.extend(found);
        } else if let Some(src) = koshin_apt::sources::parse_line(s).map_err(|e| e.to_string())? {
            out.push(src);
        }
    }
    if !cfg.upstream.architectures.is_empty() {
        for s in &mut out {
            if s.architectures.is_empty() {
                s.architectures = cfg.upstream.architectures.clone();
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_the_seeds() {
        assert_eq!(sync_time(Duration::from_secs(233)), "0d00h03m53s");
        assert_eq!(
            progress_line("updates", 122, 130, Duration::from_secs(45)),
            "Synchronizing updates, 122 of 130 items (93%), ETA in 00:00:03"
        );
        assert_eq!(
            progress_line("updates", 130, 130, Duration::from_secs(45)),
            "Synchronizing updates, 130 of 130 items (100%)"
        );
    }
}
