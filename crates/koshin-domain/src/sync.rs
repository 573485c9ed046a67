//! Sync kinds and triggers (S2, S3): what started a sync decides whether it is full or delta,
//! and what the sync manager log says about it.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncKind {
    /// New, changed, removed (expired) — the scheduled sync.
    Full,
    /// Only new — the manual sync.
    Delta,
}

impl SyncKind {
    pub fn name(self) -> &'static str {
        match self {
            SyncKind::Full => "full",
            SyncKind::Delta => "delta",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "by", content = "detail")]
pub enum SyncTrigger {
    /// The configured schedule.
    Schedule,
    /// An administrator's request through the API (SyncNow = SELF) or `SELF.SYN`.
    LocalRequest,
    /// A full sync asked for by hand (`--full` or `FULL.SYN`).
    FullRequest,
    /// The retry of a failed sync.
    Retry,
    /// A parent site's notification `<CODE>.SYN`.
    Parent(String),
}

impl SyncTrigger {
    /// The kind of sync the seeds run for this trigger.
    pub fn kind(&self) -> SyncKind {
        match self {
            SyncTrigger::LocalRequest => SyncKind::Delta,
            _ => SyncKind::Full,
        }
    }
    /// The sync manager log line that names the reason ("Performing sync on ...").
    pub fn performing_line(&self) -> String {
        match self {
            SyncTrigger::Schedule => "Performing sync on regular schedule".into(),
            SyncTrigger::LocalRequest | SyncTrigger::FullRequest => {
                "Performing sync on local request".into()
            }
            SyncTrigger::Retry => "Performing sync on retry schedule".into(),
            SyncTrigger::Parent(_) => "Performing sync on parent request".into(),
        }
    }
}
