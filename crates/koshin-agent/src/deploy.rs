//! Deployments on the client: the deployment policy from the management point, evaluated
//! against the time (UTC or local), maintenance windows and postponement
//! (`koshin_domain::deployments::decide`); then a non-forced online scan, the files from
//! the chosen distribution point (verified), exactly the deployed versions installed with
//! dpkg (`install.rs`), the forced offline post-install scan and the state messages sent at
//! once (C8), and the install agent's status messages (112xx) and state reported to the site.
//!
//! Local state per deployment, in the agent's kv store: `deploy.<id>.done` (the generation
//! that succeeded), `.done_ms`, `.state` (the last state reported, so a waiting deployment
//! is reported once, not every cycle), and `.postponed`.

use std::path::Path;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use koshin_domain::deployments::{
    Decision, MachineRole, MaintenanceWindow, RestartPolicy, after_install, decide, parse_time,
    resolve,
};
use koshin_domain::scan::ScanTrigger;
use koshin_wire::{
    ClientStatusMessage, DeploymentPolicy, DeploymentStatusReport, DpChoice, MachinePolicy,
};

use crate::db::AgentDb;
use crate::install::{InstallFile, Installer};
use crate::mp::Mp;

/// How long users have between the notice of a deployment they may postpone and its
/// installation.
pub const NOTICE_MS: i64 = 15 * 60_000;

/// What happened to one deployment in one evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluated {
    pub deployment: String,
    pub state: String,
    pub detail: String,
    pub messages: Vec<u32>,
}

fn key(id: &str, what: &str) -> String {
    format!("deploy.{id}.{what}")
}

/// The machine's role: `koshin-agent enroll --role`, else a server.
pub fn role(db: &AgentDb) -> MachineRole {
    match db.get("role").ok().flatten().as_deref() {
        Some("workstation") => MachineRole::Workstation,
        _ => MachineRole::Server,
    }
}

fn times(d: &DeploymentPolicy, tz: &TimeZone) -> anyhow::Result<(Timestamp, Option<Timestamp>)> {
    let available = resolve(
        parse_time(&d.available).map_err(anyhow::Error::msg)?,
        d.utc,
        tz,
    );
    let deadline = d
        .deadline
        .as_deref()
        .map(|s| parse_time(s).map(|t| resolve(t, d.utc, tz)))
        .transpose()
        .map_err(anyhow::Error::msg)?;
    Ok((available, deadline))
}

/// The deployments as last fetched, for `koshin-agent deployments`.
pub fn cached(db: &AgentDb) -> anyhow::Result<Vec<DeploymentPolicy>> {
    Ok(db
        .get("deployments")?
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default())
}

/// Postpones a deployment until its deadline (P22): refused where it may not be postponed
/// or has no deadline.
pub fn postpone(db: &AgentDb, id: &str) -> anyhow::Result<Timestamp> {
    let d = cached(db)?
        .into_iter()
        .find(|d| d.id.eq_ignore_ascii_case(id) || d.name == id)
        .ok_or_else(|| anyhow::anyhow!("no deployment '{id}' (koshin-agent deployments)"))?;
    if !d.allow_postpone {
        anyhow::bail!("{} may not be postponed", d.name);
    }
    let (_, deadline) = times(&d, &TimeZone::system())?;
    let deadline =
        deadline.ok_or_else(|| anyhow::anyhow!("{} has no deadline to postpone to", d.name))?;
    db.set(&key(&d.id, "postponed"), "1")?;
    db.set(&key(&d.id, "postponed_report"), "1")?;
    Ok(deadline)
}

/// The status of one deployment as this client sees it, for `koshin-agent deployments`.
pub fn local_state(db: &AgentDb, d: &DeploymentPolicy) -> anyhow::Result<(String, String)> {
    let done = db.get_i64(&key(&d.id, "done"))?;
    if done == Some(d.generation) && d.recurrence_days.is_none() {
        return Ok(("succeeded".into(), String::new()));
    }
    Ok((
        db.get(&key(&d.id, "state"))?
            .unwrap_or_else(|| "received".into()),
        db.get(&key(&d.id, "detail"))?.unwrap_or_default(),
    ))
}

struct Ctx<'a> {
    db: &'a mut AgentDb,
    mp: &'a Mp,
    root: &'a Path,
    state_dir: &'a Path,
    tz: TimeZone,
}

/// Acts on every deployment: with `fetch`, the deployment policy is fetched first (it comes
/// with machine policy, and at `scan --deployment-evaluation`); otherwise the one held is
/// evaluated again, for times and windows. Errors of one deployment are reported for it and
/// do not stop the others.
pub async fn evaluate(
    db: &mut AgentDb,
    mp: &Mp,
    root: &Path,
    state_dir: &Path,
    fetch: bool,
) -> anyhow::Result<Vec<Evaluated>> {
    let have = db.get("deployments")?.is_some();
    let deployments = if fetch || !have {
        match mp.deployments().await {
            Ok(d) => {
                db.set("deployments", &serde_json::to_string(&d)?)?;
                d
            }
            // The site away: the deployments already known still keep their times.
            Err(e) if have => {
                tracing::info!(error = %e, "cannot refresh the deployment policy; using the one held");
                cached(db)?
            }
            Err(e) => anyhow::bail!("cannot get the deployment policy: {e}"),
        }
    } else {
        cached(db)?
    };
    let mut ctx = Ctx {
        db,
        mp,
        root,
        state_dir,
        tz: TimeZone::system(),
    };
    let mut out = Vec::new();
    for d in &deployments {
        let before = ctx.db.get(&key(&d.id, "state"))?;
        let e = match one(&mut ctx, d).await {
            Ok(e) => e,
            Err(e) => Evaluated {
                deployment: d.id.clone(),
                state: "failed".into(),
                detail: format!("{e:#}"),
                messages: Vec::new(),
            },
        };
        report(&mut ctx, d, &e).await?;
        // An expedited inventory (I4): the scan that evaluated the deployment changed its
        // state, so the inventory goes now rather than at the next inventory cycle.
        if d.expedited_inventory && before.as_deref() != Some(e.state.as_str()) {
            expedite_inventory(ctx.db)?;
        }
        out.push(e);
    }
    Ok(out)
}

/// Makes the inventory due now (the runner sends it in the same pass).
pub fn expedite_inventory(db: &AgentDb) -> anyhow::Result<()> {
    db.set_i64("next_inventory_ms", 0)?;
    Ok(())
}

/// Whether a deployment held asks for an expedited inventory after every scan.
pub fn wants_expedited_inventory(db: &AgentDb) -> bool {
    cached(db).is_ok_and(|list| list.iter().any(|d| d.expedited_inventory))
}

/// Sends a state to the site when it changed (or carries messages).
async fn report(ctx: &mut Ctx<'_>, d: &DeploymentPolicy, e: &Evaluated) -> anyhow::Result<()> {
    let last = ctx.db.get(&key(&d.id, "state"))?;
    let last_detail = ctx.db.get(&key(&d.id, "detail"))?.unwrap_or_default();
    let last_gen = ctx.db.get_i64(&key(&d.id, "reported_generation"))?;
    if last.as_deref() == Some(e.state.as_str())
        && last_detail == e.detail
        && last_gen == Some(d.generation)
        && e.messages.is_empty()
    {
        return Ok(());
    }
    let now = Timestamp::now();
    let severity = |id: u32| if id == 11256 { "W" } else { "I" };
    let report = DeploymentStatusReport {
        deployment_id: d.id.clone(),
        generation: d.generation,
        state: e.state.clone(),
        detail: e.detail.clone(),
        time: now,
        messages: e
            .messages
            .iter()
            .map(|m| ClientStatusMessage {
                message_id: *m,
                severity: severity(*m).into(),
                time: now,
                insertion_strings: vec![d.name.clone(), e.detail.clone()],
            })
            .collect(),
    };
    ctx.mp
        .deployment_status(&report)
        .await
        .map_err(|err| anyhow::anyhow!("cannot report deployment {}: {err}", d.id))?;
    ctx.db.set(&key(&d.id, "state"), &e.state)?;
    ctx.db.set(&key(&d.id, "detail"), &e.detail)?;
    ctx.db
        .set_i64(&key(&d.id, "reported_generation"), d.generation)?;
    Ok(())
}

fn evaluated(d: &DeploymentPolicy, state: &str, detail: String, messages: Vec<u32>) -> Evaluated {
    Evaluated {
        deployment: d.id.clone(),
        state: state.into(),
        detail,
        messages,
    }
}

async fn one(ctx: &mut Ctx<'_>, d: &DeploymentPolicy) -> anyhow::Result<Evaluated> {
    let now = Timestamp::now();
    let done = ctx.db.get_i64(&key(&d.id, "done"))?;
    let done_ms = ctx.db.get_i64(&key(&d.id, "done_ms"))?;
    let recurring_due = match (d.recurrence_days, done_ms) {
        (Some(days), Some(t)) => now.as_millisecond() - t >= i64::from(days) * 86_400_000,
        _ => false,
    };
    if done == Some(d.generation) && !recurring_due {
        return Ok(evaluated(d, "succeeded", String::new(), Vec::new()));
    }
    let (available, deadline) = times(d, &ctx.tz)?;
    let postponed = d.allow_postpone && ctx.db.get(&key(&d.id, "postponed"))?.is_some();
    let mut messages = Vec::new();
    if ctx.db.get(&key(&d.id, "postponed_report"))?.is_some() {
        ctx.db.delete(&key(&d.id, "postponed_report"))?;
        messages.push(11253);
    }
    // Users are notified before an installation they may postpone: it starts no sooner than
    // NOTICE after the agent first saw the deployment available (P22).
    if d.allow_postpone
        && !postponed
        && let Some(dl) = deadline
        && now >= available
        && now < dl
    {
        let notified = match ctx.db.get_i64(&key(&d.id, "notified_ms"))? {
            Some(t) => t,
            None => {
                let t = now.as_millisecond();
                ctx.db.set_i64(&key(&d.id, "notified_ms"), t)?;
                t
            }
        };
        let at = notified + NOTICE_MS;
        if now.as_millisecond() < at {
            let when = Timestamp::from_millisecond(at).unwrap_or(now);
            return Ok(evaluated(
                d,
                "waiting",
                format!(
                    "{}: installs at {when} unless postponed (koshin-agent postpone {}) until the deadline {dl}",
                    if d.notification.is_empty() {
                        &d.name
                    } else {
                        &d.notification
                    },
                    d.id
                ),
                messages,
            ));
        }
    }
    let windows: Vec<MaintenanceWindow> = d
        .windows
        .iter()
        .filter_map(|w| MaintenanceWindow::parse(w).ok())
        .collect();
    match decide(available, deadline, postponed, &windows, now, &ctx.tz) {
        Decision::NotYet(at) => Ok(evaluated(
            d,
            "waiting",
            format!("available at {at}"),
            messages,
        )),
        Decision::Postponed(until) => Ok(evaluated(
            d,
            "waiting",
            format!("postponed by the user until the deadline {until}"),
            messages,
        )),
        Decision::OutsideWindow(next) => {
            let (id, detail) = match next {
                Some(t) => (
                    11250,
                    format!("outside every maintenance window; the next opens at {t}"),
                ),
                None => (
                    11256,
                    "outside every maintenance window, and none will open again".to_string(),
                ),
            };
            // The message once per wait, not at every evaluation.
            if ctx.db.get(&key(&d.id, "state"))?.as_deref() != Some("waiting_for_window") {
                messages.push(id);
            }
            Ok(evaluated(d, "waiting_for_window", detail, messages))
        }
        Decision::Install { forced } => install(ctx, d, forced, messages).await,
    }
}

async fn install(
    ctx: &mut Ctx<'_>,
    d: &DeploymentPolicy,
    forced: bool,
    mut messages: Vec<u32>,
) -> anyhow::Result<Evaluated> {
    if let Some(catalog) = &d.scan_catalog {
        return scan_tool(ctx, d, catalog, messages).await;
    }
    // A non-forced online scan before download (C5): the site learns the current state.
    crate::scan::scan(ctx.db, Some(ctx.mp), ctx.root, ScanTrigger::BeforeDownload).await?;
    let installed = crate::dpkg::read_status(ctx.root)?;
    let mut wanted: Vec<&koshin_wire::DeployedFile> = Vec::new();
    for u in &d.updates {
        for f in &u.files {
            let Some(have) = installed.get(&(f.package.clone(), f.architecture.clone())) else {
                continue; // not installed here: the update does not apply to this binary
            };
            let order = koshin_domain::version::compare_lenient(have, &f.version);
            let needed = if d.rollback {
                order != std::cmp::Ordering::Equal
            } else {
                order == std::cmp::Ordering::Less
            };
            if needed {
                wanted.push(f);
            }
        }
    }
    if wanted.is_empty() {
        // P21: nothing to do where every update is installed (or does not apply).
        mark_done(ctx, d)?;
        return Ok(evaluated(
            d,
            "succeeded",
            "every deployed update is installed or does not apply".into(),
            messages,
        ));
    }
    // The distribution point: chosen by boundary, and it must hold the content (P16).
    let dp = match content_dp(ctx, d)? {
        Ok(dp) => dp,
        Err(why) => return Ok(evaluated(d, "content_unavailable", why, messages)),
    };
    let installer = Installer::new(ctx.root, &ctx.state_dir.join("cache"));
    report(
        ctx,
        d,
        &evaluated(d, "downloading", format!("from {}", dp.name), Vec::new()),
    )
    .await?;
    let mut debs = Vec::with_capacity(wanted.len());
    for f in &wanted {
        match installer
            .download(ctx.mp.http(), &from_dp(&dp.url, f))
            .await
        {
            Ok(p) => debs.push(p),
            Err(e) => return Ok(evaluated(d, "failed", e.to_string(), messages)),
        }
    }
    if let Err(e) = installer.check_space(&debs) {
        return Ok(evaluated(d, "failed", e.to_string(), messages));
    }
    // And a non-forced online scan right before installing.
    crate::scan::scan(ctx.db, Some(ctx.mp), ctx.root, ScanTrigger::BeforeInstall).await?;
    report(
        ctx,
        d,
        &evaluated(d, "installing", String::new(), Vec::new()),
    )
    .await?;
    let root = ctx.root.to_path_buf();
    let cache = ctx.state_dir.join("cache");
    let outcome =
        tokio::task::spawn_blocking(move || Installer::new(&root, &cache).install(&debs)).await?;
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            // The site hears the state at once, and the machine is scanned as it now is.
            let _ = crate::scan::scan(ctx.db, None, ctx.root, ScanTrigger::AfterInstall).await;
            send_now(ctx).await;
            return Ok(evaluated(d, "failed", e.to_string(), messages));
        }
    };
    // The forced offline scan after installing (C8), and the state messages go now.
    crate::scan::scan(ctx.db, None, ctx.root, ScanTrigger::AfterInstall).await?;
    send_now(ctx).await;
    let policy = RestartPolicy {
        suppress_on_servers: d.suppress_restart_servers,
        suppress_on_workstations: d.suppress_restart_workstations,
    };
    let after = after_install(outcome.restart_required, role(ctx.db), policy, forced);
    messages.extend(&after);
    let installed: Vec<String> = outcome
        .installed
        .iter()
        .map(|(p, a, v)| format!("{p}:{a} {v}"))
        .collect();
    let detail = format!("installed {}", installed.join(", "));
    mark_done(ctx, d)?;
    if outcome.restart_required {
        if let Some(cmd) = ctx.db.get("restart_command")?
            && (after.contains(&11264) || after.contains(&11265))
        {
            run_restart(&cmd);
        }
        return Ok(evaluated(d, "restart_pending", detail, messages));
    }
    Ok(evaluated(d, "succeeded", detail, messages))
}

/// The distribution point this client uses, if it holds the deployment's content; else why
/// not, as the deployment's detail.
/// A deployed file as downloaded from the distribution point at `dp_url`.
fn from_dp(dp_url: &str, f: &koshin_wire::DeployedFile) -> InstallFile {
    InstallFile {
        package: f.package.clone(),
        version: f.version.clone(),
        architecture: f.architecture.clone(),
        url: format!("{}/{}", dp_url.trim_end_matches('/'), f.pool_path),
        sha256: f.sha256.clone(),
        size: f.size,
    }
}

fn content_dp(ctx: &Ctx<'_>, d: &DeploymentPolicy) -> anyhow::Result<Result<DpChoice, String>> {
    let policy: Option<MachinePolicy> = ctx
        .db
        .get("policy")?
        .and_then(|p| serde_json::from_str(&p).ok());
    let choice = policy
        .as_ref()
        .and_then(|p| crate::dp::chosen(p, &crate::dp::local_addresses()));
    let Some(dp) = choice else {
        return Ok(Err("no distribution point may serve this client".into()));
    };
    if !d.content_on.contains(&dp.name) {
        return Ok(Err(format!(
            "the content is not yet on distribution point {}",
            dp.name
        )));
    }
    Ok(Ok(dp))
}

/// The scan tool (I2, I4): fetches the offline scan catalog package from the distribution
/// point, scans against it, and sends the state messages now. Nothing is installed; with
/// the expedited program the inventory follows at once (`evaluate` sees the new state).
async fn scan_tool(
    ctx: &mut Ctx<'_>,
    d: &DeploymentPolicy,
    f: &koshin_wire::DeployedFile,
    messages: Vec<u32>,
) -> anyhow::Result<Evaluated> {
    let dp = match content_dp(ctx, d)? {
        Ok(dp) => dp,
        Err(why) => return Ok(evaluated(d, "content_unavailable", why, messages)),
    };
    let installer = Installer::new(ctx.root, &ctx.state_dir.join("cache"));
    let deb = match installer
        .download(ctx.mp.http(), &from_dp(&dp.url, f))
        .await
    {
        Ok(p) => p,
        Err(e) => return Ok(evaluated(d, "failed", e.to_string(), messages)),
    };
    let (doc, out) =
        match crate::offline::scan_with_package(ctx.db, ctx.state_dir, ctx.root, &deb).await {
            Ok(r) => r,
            Err(e) => return Ok(evaluated(d, "failed", format!("{e:#}"), messages)),
        };
    send_now(ctx).await;
    mark_done(ctx, d)?;
    let required = out.required;
    Ok(evaluated(
        d,
        "succeeded",
        format!(
            "scanned against the offline catalog of site {} at content version {} ({} {} from {}): {required} required",
            doc.site, doc.catalog.content_version, f.package, f.version, dp.name
        ),
        messages,
    ))
}

fn mark_done(ctx: &mut Ctx<'_>, d: &DeploymentPolicy) -> anyhow::Result<()> {
    ctx.db.set_i64(&key(&d.id, "done"), d.generation)?;
    ctx.db
        .set_i64(&key(&d.id, "done_ms"), Timestamp::now().as_millisecond())?;
    ctx.db.delete(&key(&d.id, "postponed"))?;
    Ok(())
}

async fn send_now(ctx: &mut Ctx<'_>) {
    let Ok(id) = ctx.db.identity() else {
        return;
    };
    if let Err(e) = crate::send::send_all(ctx.db, &id, ctx.mp).await {
        tracing::warn!(error = %e, "state messages stay queued");
    }
}

/// Runs the configured restart command (`koshin-agent` does not restart a machine unless
/// one is configured).
fn run_restart(cmd: &str) {
    tracing::warn!(
        command = cmd,
        "restarting the computer to complete an installation"
    );
    if let Err(e) = std::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .status()
    {
        tracing::error!(error = %e, "the restart command did not run");
    }
}
