//! `koshin sync [--full] [--wait]`: records a sync request (SyncNow) at the site and, with
//! `--wait`, shows its progress until 6702 (exit 0) or 6703 (exit 1).

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use koshin_wire::{SyncRequest, SyncRequestAccepted, SyncRun, SyncStatus};

use crate::client::Api;

#[derive(Args)]
pub struct SyncArgs {
    /// A full sync (new, changed, expired) instead of a delta sync (new only).
    #[arg(long)]
    full: bool,
    /// Show progress and wait for the result.
    #[arg(long)]
    wait: bool,
    #[arg(long)]
    json: bool,
}

pub async fn run(api: &Api, args: SyncArgs) -> anyhow::Result<ExitCode> {
    if !args.wait {
        let acc: SyncRequestAccepted = api
            .post(
                "/api/v1/sync",
                &SyncRequest { full: args.full },
                "sync request",
            )
            .await?;
        if args.json {
            crate::output::json(&acc)?;
        } else {
            println!(
                "Requested a {} sync; the sync manager starts it now.",
                acc.kind
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    match request_and_wait(api, args.full).await {
        Ok(run) => {
            if args.json {
                crate::output::json(&run)?;
            } else {
                println!(
                    "Sync succeeded: {} items updated, content version {}",
                    run.items.unwrap_or(0),
                    run.content_version.unwrap_or(0)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("koshin: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// Requests a sync and follows it to its end with a progress bar. The error is the
/// sync's failure reason (6703).
pub async fn request_and_wait(api: &Api, full: bool) -> anyhow::Result<SyncRun> {
    let acc: SyncRequestAccepted = api
        .post("/api/v1/sync", &SyncRequest { full }, "sync request")
        .await?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} ({elapsed})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message("waiting for the sync manager");
    loop {
        let st: SyncStatus = api.get("/api/v1/sync", &(), "sync status").await?;
        let ours = st
            .runs
            .iter()
            .filter(|r| acc.after_run.is_none_or(|a| r.id > a))
            .min_by_key(|r| r.id);
        if let Some(run) = ours {
            match run.state.as_str() {
                "running" => {
                    bar.set_message(format!(
                        "{} sync: {}",
                        run.kind,
                        run.phase.as_deref().unwrap_or("starting")
                    ));
                    bar.set_length(run.progress_total);
                    bar.set_position(run.progress_done);
                }
                "succeeded" => {
                    bar.finish_and_clear();
                    return Ok(run.clone());
                }
                _ => {
                    bar.finish_and_clear();
                    anyhow::bail!(
                        "sync failed (6703): {}",
                        run.error.as_deref().unwrap_or("no reason recorded")
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}
