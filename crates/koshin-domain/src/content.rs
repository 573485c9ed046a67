//! Content distribution rules (P15–P18): package priorities, which transfer the
//! distribution manager takes next, and when a sender may send — Configuration Manager's
//! sender address schedule, where each hour of the week is open to all priorities, to
//! medium and high, to high only, or closed, and a rate limit that an emergency lifts.
//!
//! The distribution manager works one transfer at a time: it finishes what it started (a
//! medium package in progress is not interrupted by a new high one) and chooses again only
//! when a transfer ends, which is exactly the seeds' "re-evaluated after the current
//! transfer finishes".

use std::fmt;

/// A package's priority.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    High = 1,
    Medium = 2,
    Low = 3,
}

impl Priority {
    pub fn name(self) -> &'static str {
        match self {
            Priority::High => "high",
            Priority::Medium => "medium",
            Priority::Low => "low",
        }
    }

    pub fn parse(s: &str) -> Option<Priority> {
        match s.trim().to_ascii_lowercase().as_str() {
            "high" | "1" => Some(Priority::High),
            "medium" | "2" => Some(Priority::Medium),
            "low" | "3" => Some(Priority::Low),
            _ => None,
        }
    }

    pub fn code(self) -> i64 {
        self as i64
    }

    pub fn from_code(c: i64) -> Option<Priority> {
        match c {
            1 => Some(Priority::High),
            2 => Some(Priority::Medium),
            3 => Some(Priority::Low),
            _ => None,
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a sender may send during one hour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Availability {
    All,
    MediumAndHigh,
    HighOnly,
    Closed,
}

impl Availability {
    pub fn allows(self, p: Priority) -> bool {
        match self {
            Availability::All => true,
            Availability::MediumAndHigh => p <= Priority::Medium,
            Availability::HighOnly => p == Priority::High,
            Availability::Closed => false,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Availability::All => "all",
            Availability::MediumAndHigh => "medium-and-high",
            Availability::HighOnly => "high-only",
            Availability::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<Availability> {
        match s.trim().to_ascii_lowercase().as_str() {
            "all" | "open" => Some(Availability::All),
            "medium-and-high" | "medium" => Some(Availability::MediumAndHigh),
            "high-only" | "high" => Some(Availability::HighOnly),
            "closed" => Some(Availability::Closed),
            _ => None,
        }
    }
}

/// One rule of a sender's schedule: from `start_hour` to `end_hour` (0–24, end exclusive;
/// `start > end` wraps past midnight), in the sender's time, `availability` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScheduleRule {
    pub start_hour: u8,
    pub end_hour: u8,
    pub availability: Availability,
}

impl ScheduleRule {
    fn covers(&self, hour: u8) -> bool {
        if self.start_hour <= self.end_hour {
            (self.start_hour..self.end_hour).contains(&hour)
        } else {
            hour >= self.start_hour || hour < self.end_hour
        }
    }

    /// `HH-HH=availability`, e.g. `08-18=high-only`.
    pub fn parse(s: &str) -> Result<ScheduleRule, String> {
        let bad = || format!("'{s}' is not HH-HH=all|medium-and-high|high-only|closed");
        let (hours, avail) = s.split_once('=').ok_or_else(bad)?;
        let (a, b) = hours.split_once('-').ok_or_else(bad)?;
        let start_hour: u8 = a.trim().parse().map_err(|_| bad())?;
        let end_hour: u8 = b.trim().parse().map_err(|_| bad())?;
        if start_hour > 23 || end_hour > 24 || start_hour == end_hour {
            return Err(bad());
        }
        Ok(ScheduleRule {
            start_hour,
            end_hour,
            availability: Availability::parse(avail).ok_or_else(bad)?,
        })
    }
}

impl fmt::Display for ScheduleRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:02}-{:02}={}",
            self.start_hour,
            self.end_hour,
            self.availability.name()
        )
    }
}

/// A sender's settings for one destination: when it may send which priorities, at what
/// rate, and until when an emergency lifts both.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SenderSettings {
    /// Later rules win where they overlap; hours no rule covers are open to all.
    pub schedule: Vec<ScheduleRule>,
    /// Bytes per second; none for unlimited.
    pub rate_limit: Option<u64>,
    /// Until this moment (ms since 1970) the schedule and the rate limit do not apply.
    pub lifted_until_ms: Option<i64>,
}

impl SenderSettings {
    pub fn lifted(&self, now_ms: i64) -> bool {
        self.lifted_until_ms.is_some_and(|t| t > now_ms)
    }

    /// What the schedule allows at `hour` (0–23, the sender's local time).
    pub fn availability(&self, hour: u8) -> Availability {
        self.schedule
            .iter()
            .rev()
            .find(|r| r.covers(hour))
            .map_or(Availability::All, |r| r.availability)
    }

    /// Whether a package of priority `p` may be sent now.
    pub fn may_send(&self, p: Priority, hour: u8, now_ms: i64) -> bool {
        self.lifted(now_ms) || self.availability(hour).allows(p)
    }

    /// The rate limit in force now.
    pub fn rate(&self, now_ms: i64) -> Option<u64> {
        if self.lifted(now_ms) {
            None
        } else {
            self.rate_limit
        }
    }
}

/// A transfer waiting for the distribution manager.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub priority: Priority,
    /// When it was queued (ms): first come, first served within a priority.
    pub queued_ms: i64,
    /// Whether its destination's sender may send it now.
    pub sendable: bool,
}

/// Which waiting transfer to start next: the highest priority among those whose sender may
/// send now, the oldest first within a priority. Called only when no transfer is running,
/// so a running one is never interrupted.
pub fn next_transfer(waiting: &[Waiting]) -> Option<usize> {
    waiting
        .iter()
        .enumerate()
        .filter(|(_, w)| w.sendable)
        .min_by_key(|(i, w)| (w.priority, w.queued_ms, *i))
        .map(|(i, _)| i)
}

/// The id of a content package: the site code and a five-digit number (`CEN00003`).
pub fn package_id(site_code: &str, number: i64) -> String {
    format!("{site_code}{number:05}")
}

/// How long to wait before retrying a transfer that failed `attempt` times (1, 2, ...):
/// doubling from 30 s up to 30 min, with `jitter` (0.0–1.0, random from the caller) taking
/// up to a quarter off so that many destinations do not retry in step.
pub fn retry_delay_ms(attempt: u32, jitter: f64) -> i64 {
    let base: i64 = 30_000;
    let max: i64 = 30 * 60_000;
    let d = base
        .saturating_mul(1i64 << attempt.saturating_sub(1).min(16))
        .min(max);
    let off = (d as f64 * 0.25 * jitter.clamp(0.0, 1.0)) as i64;
    d - off
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(p: Priority, t: i64, s: bool) -> Waiting {
        Waiting {
            priority: p,
            queued_ms: t,
            sendable: s,
        }
    }

    #[test]
    fn priority_then_age_and_only_what_may_be_sent() {
        let q = [
            w(Priority::Low, 1, true),
            w(Priority::Medium, 5, true),
            w(Priority::High, 9, true),
            w(Priority::Medium, 2, true),
        ];
        assert_eq!(next_transfer(&q), Some(2));
        let q = [
            w(Priority::Low, 1, true),
            w(Priority::Medium, 5, true),
            w(Priority::Medium, 2, true),
        ];
        assert_eq!(next_transfer(&q), Some(2));
        let q = [w(Priority::High, 1, false), w(Priority::Low, 5, true)];
        assert_eq!(next_transfer(&q), Some(1));
        assert_eq!(next_transfer(&[w(Priority::High, 1, false)]), None);
    }

    #[test]
    fn schedules_rates_and_the_emergency_lift() {
        let s = SenderSettings {
            schedule: vec![
                ScheduleRule::parse("08-18=high-only").unwrap(),
                ScheduleRule::parse("22-06=closed").unwrap(),
            ],
            rate_limit: Some(1000),
            lifted_until_ms: None,
        };
        assert!(s.may_send(Priority::High, 9, 0));
        assert!(!s.may_send(Priority::Medium, 9, 0));
        assert!(s.may_send(Priority::Low, 19, 0));
        assert!(!s.may_send(Priority::High, 23, 0));
        assert!(!s.may_send(Priority::High, 3, 0));
        assert_eq!(s.rate(0), Some(1000));
        let lifted = SenderSettings {
            lifted_until_ms: Some(100),
            ..s.clone()
        };
        assert!(lifted.may_send(Priority::Low, 3, 50));
        assert_eq!(lifted.rate(50), None);
        assert!(!lifted.may_send(Priority::Low, 3, 100));
        assert!(ScheduleRule::parse("8-8=all").is_err());
        assert!(ScheduleRule::parse("08-25=all").is_err());
        assert!(ScheduleRule::parse("08-18=sometimes").is_err());
        assert_eq!(
            ScheduleRule::parse("8-18=medium").unwrap().to_string(),
            "08-18=medium-and-high"
        );
    }

    #[test]
    fn retries_back_off_with_jitter() {
        assert_eq!(retry_delay_ms(1, 0.0), 30_000);
        assert_eq!(retry_delay_ms(2, 0.0), 60_000);
        assert_eq!(retry_delay_ms(1, 1.0), 22_500);
        assert_eq!(retry_delay_ms(40, 0.0), 1_800_000);
        assert_eq!(package_id("CS1", 3), "CS100003");
        assert_eq!(Priority::parse("HIGH"), Some(Priority::High));
    }
}
