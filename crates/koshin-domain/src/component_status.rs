//! Component status: how healthy a component is, judged from how many status messages of
//! each severity it reported in a window, as Configuration Manager's Monitoring > System
//! Status > Component Status node judges it.
//!
//! A component is `OK`, `Warning` or `Critical` for each severity on its own (errors,
//! warnings, informational messages, each against its [`Threshold`]); the worst of the
//! three is its status. The window is the caller's: by default the console counts since
//! 00:00 UTC today ([`start_of_utc_day`]).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The status of a component, from best to worst (so `max` is the worst).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ComponentHealth {
    #[serde(rename = "OK")]
    Ok,
    Warning,
    Critical,
}

impl ComponentHealth {
    /// The name the console and the API show: `OK`, `Warning` or `Critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            ComponentHealth::Ok => "OK",
            ComponentHealth::Warning => "Warning",
            ComponentHealth::Critical => "Critical",
        }
    }

    /// The status of a component that reported `errors`, `warnings` and `informational`
    /// messages in the window, under Configuration Manager's default thresholds: the
    /// worst of the three severities' statuses.
    pub fn from_counts(errors: u64, warnings: u64, informational: u64) -> ComponentHealth {
        ERROR_THRESHOLD
            .judge(errors)
            .max(WARNING_THRESHOLD.judge(warnings))
            .max(INFORMATIONAL_THRESHOLD.judge(informational))
    }
}

impl fmt::Display for ComponentHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How many messages of one severity make a component `Warning`, and how many `Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Threshold {
    /// At or above this count the component is at least `Warning`.
    pub warning: u64,
    /// At or above this count the component is `Critical`.
    pub critical: u64,
}

impl Threshold {
    /// The status `count` messages of this severity give.
    pub fn judge(&self, count: u64) -> ComponentHealth {
        if count >= self.critical {
            ComponentHealth::Critical
        } else if count >= self.warning {
            ComponentHealth::Warning
        } else {
            ComponentHealth::Ok
        }
    }
}

/// Error messages: one makes a component `Warning`, five `Critical` (Configuration
/// Manager's default component status thresholds).
pub const ERROR_THRESHOLD: Threshold = Threshold {
    warning: 1,
    critical: 5,
};

/// Warning messages: ten make a component `Warning`, fifty `Critical` (Configuration
/// Manager's default component status thresholds).
pub const WARNING_THRESHOLD: Threshold = Threshold {
    warning: 10,
    critical: 50,
};

/// Informational messages: 2000 make a component `Warning`, 5000 `Critical`
/// (Configuration Manager's default component status thresholds).
pub const INFORMATIONAL_THRESHOLD: Threshold = Threshold {
    warning: 2000,
    critical: 5000,
};

const DAY_MS: i64 = 86_400_000;

/// 00:00 UTC of the day that holds `now_ms` (Unix milliseconds): the start of the console's
/// default display interval ("since 12:00 AM").
pub fn start_of_utc_day(now_ms: i64) -> i64 {
    now_ms.div_euclid(DAY_MS) * DAY_MS
}

#[cfg(test)]
mod tests {
    use super::ComponentHealth::{Critical, Ok, Warning};
    use super::*;

    #[test]
    fn errors_warn_at_one_and_are_critical_at_five() {
        assert_eq!(ComponentHealth::from_counts(0, 0, 0), Ok);
        assert_eq!(ComponentHealth::from_counts(1, 0, 0), Warning);
        assert_eq!(ComponentHealth::from_counts(4, 0, 0), Warning);
        assert_eq!(ComponentHealth::from_counts(5, 0, 0), Critical);
    }

    #[test]
    fn warnings_warn_at_ten_and_are_critical_at_fifty() {
        assert_eq!(ComponentHealth::from_counts(0, 9, 0), Ok);
        assert_eq!(ComponentHealth::from_counts(0, 10, 0), Warning);
        assert_eq!(ComponentHealth::from_counts(0, 49, 0), Warning);
        assert_eq!(ComponentHealth::from_counts(0, 50, 0), Critical);
    }

    #[test]
    fn informational_warns_at_2000_and_is_critical_at_5000() {
        assert_eq!(ComponentHealth::from_counts(0, 0, 1999), Ok);
        assert_eq!(ComponentHealth::from_counts(0, 0, 2000), Warning);
        assert_eq!(ComponentHealth::from_counts(0, 0, 4999), Warning);
        assert_eq!(ComponentHealth::from_counts(0, 0, 5000), Critical);
    }

    #[test]
    fn the_worst_severity_wins() {
        assert_eq!(ComponentHealth::from_counts(1, 9, 1999), Warning);
        assert_eq!(ComponentHealth::from_counts(1, 50, 0), Critical);
        assert_eq!(ComponentHealth::from_counts(0, 10, 5000), Critical);
        assert_eq!(ComponentHealth::from_counts(5, 0, 0), Critical);
    }

    #[test]
    fn names_as_the_console_does() {
        assert_eq!(Ok.to_string(), "OK");
        assert_eq!(Warning.as_str(), "Warning");
        assert_eq!(Critical.as_str(), "Critical");
        assert_eq!(serde_json::to_string(&Ok).unwrap(), "\"OK\"");
    }

    #[test]
    fn the_day_starts_at_midnight_utc() {
        // 2014-01-16T18:53:52.608Z
        assert_eq!(start_of_utc_day(1_389_898_432_608), 1_389_830_400_000);
        assert_eq!(start_of_utc_day(1_389_830_400_000), 1_389_830_400_000);
        assert_eq!(start_of_utc_day(1_389_830_399_999), 1_389_744_000_000);
        assert_eq!(start_of_utc_day(-1), -DAY_MS);
    }
}
