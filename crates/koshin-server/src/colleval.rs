//! The collection evaluator: keeps collection membership true to the rules
//! (`koshin_store::membership`). Every `[collections] incremental_seconds` it judges the
//! clients whose inventory, update states or enrolment changed since the last pass; every
//! `full_hours`, and when the site starts, it evaluates every collection in full. What
//! changed goes to `colleval.log`.

use std::sync::Arc;
use std::time::Duration;

use koshin_wire::EvaluationOut;

use crate::http::AppError;
use crate::site::Site;

/// Evaluates now (on the store's writer, off the async threads) and logs what changed.
pub async fn evaluate(
    site: &Arc<Site>,
    key: Option<String>,
    full: bool,
) -> Result<EvaluationOut, AppError> {
    let store = site.store.clone();
    let k = key.clone();
    let started = std::time::Instant::now();
    let e = crate::http::error::blocking(move || {
        Ok(store.evaluate_collections(
            k.as_deref(),
            full,
            jiff::Timestamp::now().as_millisecond(),
        )?)
    })
    .await?;
    let kind = match (&key, full) {
        (Some(k), _) => format!("collection {k} in full"),
        (None, true) => "every collection in full".to_string(),
        (None, false) => "changed clients".to_string(),
    };
    if e.joined + e.left > 0 || full || key.is_some() {
        site.coll_log.line(format!(
            "Evaluated {kind}: {} collection(s), {} client(s) judged, {} joined, {} left, in {} ms.",
            e.collections,
            e.clients,
            e.joined,
            e.left,
            started.elapsed().as_millis()
        ));
    }
    Ok(EvaluationOut {
        collections: e.collections as u64,
        clients: e.clients as u64,
        joined: e.joined as u64,
        left: e.left as u64,
    })
}

/// The evaluator's loop, until `stop`.
pub async fn run(site: Arc<Site>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let every = Duration::from_secs(site.config.collections.incremental_seconds.max(1));
    let full_every = Duration::from_secs(site.config.collections.full_hours * 3600);
    let mut last_full: Option<std::time::Instant> = None;
    loop {
        let full = site.config.collections.full_hours > 0
            && last_full.is_none_or(|t| t.elapsed() >= full_every);
        match evaluate(&site, None, full).await {
            Ok(_) if full => last_full = Some(std::time::Instant::now()),
            Ok(_) => {}
            Err(e) => {
                site.coll_log
                    .line(format!("Cannot evaluate collection membership: {e:?}"));
                tracing::warn!(error = ?e, "cannot evaluate collection membership");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
