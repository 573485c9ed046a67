//! Scans (C2, C5, C6): what starts a scan decides whether it is online or offline and forced
//! or not; a non-forced online scan fetches metadata only when the last fetch is older than
//! the TTL; the first scan after the site-wide policy arrives is at a random time in a window.

use serde::{Deserialize, Serialize};

/// C5's table: what started the scan.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScanTrigger {
    /// The scan schedule (and the first scan after the policy arrives).
    Schedule,
    /// The user's "software updates scan cycle" action.
    ScanCycle,
    /// The user's "deployment evaluation cycle" action.
    DeploymentEvaluationCycle,
    /// The deployment re-evaluation schedule.
    Reevaluation,
    /// Before downloading the files of a new mandatory deployment.
    BeforeDownload,
    /// Right before installing.
    BeforeInstall,
    /// Right after installing.
    AfterInstall,
    /// After the restart that completes an installation.
    AfterRestart,
    /// An offline scan asked for by hand (`--offline`).
    Offline,
}

impl ScanTrigger {
    pub const ALL: [ScanTrigger; 9] = [
        ScanTrigger::Schedule,
        ScanTrigger::ScanCycle,
        ScanTrigger::DeploymentEvaluationCycle,
        ScanTrigger::Reevaluation,
        ScanTrigger::BeforeDownload,
        ScanTrigger::BeforeInstall,
        ScanTrigger::AfterInstall,
        ScanTrigger::AfterRestart,
        ScanTrigger::Offline,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScanTrigger::Schedule => "schedule",
            ScanTrigger::ScanCycle => "scan-cycle",
            ScanTrigger::DeploymentEvaluationCycle => "deployment-evaluation-cycle",
            ScanTrigger::Reevaluation => "reevaluation",
            ScanTrigger::BeforeDownload => "before-download",
            ScanTrigger::BeforeInstall => "before-install",
            ScanTrigger::AfterInstall => "after-install",
            ScanTrigger::AfterRestart => "after-restart",
            ScanTrigger::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == s)
    }

    /// The kind of scan the seeds run for this trigger (C5).
    pub fn kind(self) -> ScanKind {
        use ScanTrigger::*;
        match self {
            Schedule | Reevaluation | BeforeDownload | BeforeInstall => ScanKind::NonForcedOnline,
            ScanCycle | DeploymentEvaluationCycle => ScanKind::ForcedOnline,
            AfterInstall | AfterRestart | Offline => ScanKind::ForcedOffline,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ScanKind {
    /// Contacts the update point only if the metadata is older than the TTL.
    NonForcedOnline,
    /// Always fetches metadata; resets the TTL.
    ForcedOnline,
    /// Local metadata only.
    ForcedOffline,
}

impl ScanKind {
    pub fn name(self) -> &'static str {
        match self {
            ScanKind::NonForcedOnline => "non-forced online",
            ScanKind::ForcedOnline => "forced online",
            ScanKind::ForcedOffline => "forced offline",
        }
    }
    pub fn forced(self) -> bool {
        !matches!(self, ScanKind::NonForcedOnline)
    }

    /// Whether this scan fetches metadata from the update point: forced online always;
    /// non-forced online when there is none or it was fetched longer than `ttl_ms` ago
    /// (C5, C6); offline never.
    pub fn fetches_metadata(self, last_fetch_ms: Option<i64>, ttl_ms: i64, now_ms: i64) -> bool {
        match self {
            ScanKind::ForcedOnline => true,
            ScanKind::ForcedOffline => false,
            ScanKind::NonForcedOnline => match last_fetch_ms {
                None => true,
                Some(t) => now_ms.saturating_sub(t) >= ttl_ms,
            },
        }
    }
}

/// C2: the first scan is at a random time within `window_ms` of receiving the policy.
/// `random` is a number in [0, 1) from the caller's generator.
pub fn first_scan_at(policy_received_ms: i64, window_ms: i64, random: f64) -> i64 {
    let r = random.clamp(0.0, 1.0 - f64::EPSILON);
    policy_received_ms + (window_ms as f64 * r) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: i64 = 24 * 3600 * 1000;

    #[test]
    fn kinds_follow_c5() {
        use ScanKind::*;
        use ScanTrigger::*;
        let table = [
            (Schedule, NonForcedOnline),
            (ScanCycle, ForcedOnline),
            (DeploymentEvaluationCycle, ForcedOnline),
            (Reevaluation, NonForcedOnline),
            (BeforeDownload, NonForcedOnline),
            (BeforeInstall, NonForcedOnline),
            (AfterInstall, ForcedOffline),
            (AfterRestart, ForcedOffline),
            (Offline, ForcedOffline),
        ];
        for (t, k) in table {
            assert_eq!(t.kind(), k, "{t:?}");
            assert_eq!(ScanTrigger::parse(t.name()), Some(t));
        }
    }

    #[test]
    fn ttl_decides_non_forced_scans() {
        let now = 100 * TTL;
        assert!(ScanKind::NonForcedOnline.fetches_metadata(None, TTL, now));
        assert!(!ScanKind::NonForcedOnline.fetches_metadata(Some(now - TTL + 1), TTL, now));
        assert!(ScanKind::NonForcedOnline.fetches_metadata(Some(now - TTL), TTL, now));
        assert!(ScanKind::ForcedOnline.fetches_metadata(Some(now), TTL, now));
        assert!(!ScanKind::ForcedOffline.fetches_metadata(None, TTL, now));
    }

    #[test]
    fn first_scan_falls_within_two_hours() {
        let window = 2 * 3600 * 1000;
        for r in [0.0, 0.25, 0.5, 0.999_999, 1.0] {
            let t = first_scan_at(1000, window, r);
            assert!((1000..1000 + window).contains(&t), "{r} → {t}");
        }
    }
}
