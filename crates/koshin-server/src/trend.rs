//! The compliance trend sampler: a job that stores the site-wide counts of computer/update
//! pairs by state (`koshin_store::trend`) every [`INTERVAL_MINUTES`] minutes, so the console
//! can draw required updates over time. A sample reads catalog-sized tables only, so it
//! costs the same at 150,000 clients as at ten. A site that was down takes one at start.

use std::sync::Arc;
use std::time::Duration;

use crate::site::Site;

/// How often a sample is taken.
pub const INTERVAL_MINUTES: u32 = 60;

const INTERVAL_MS: i64 = INTERVAL_MINUTES as i64 * 60_000;

/// Takes a sample when the last one is at least an interval old; returns when the next is
/// due (in milliseconds from now).
pub async fn sample_if_due(site: &Arc<Site>) -> Result<i64, crate::http::AppError> {
    let store = site.store.clone();
    crate::http::error::blocking(move || {
        let now = jiff::Timestamp::now().as_millisecond();
        match store.last_compliance_sample_ms()? {
            Some(last) if now - last < INTERVAL_MS => Ok(last + INTERVAL_MS - now),
            _ => {
                store.sample_compliance(now)?;
                Ok(INTERVAL_MS)
            }
        }
    })
    .await
}

/// The sampler's loop, until `stop`.
pub async fn run(site: Arc<Site>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        let wait = match sample_if_due(&site).await {
            Ok(ms) => Duration::from_millis(ms.clamp(1_000, INTERVAL_MS) as u64),
            Err(e) => {
                tracing::warn!(error = ?e, "cannot sample compliance for the trend");
                Duration::from_secs(300)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}
