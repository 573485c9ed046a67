//! Deployments on the client's side of the rules (P19–P29): when a deployment's time has
//! come (UTC, or the client's own local time), maintenance windows (P24), postponing until
//! the deadline (P22), and what a restart needs (C8, the 1126x messages).
//!
//! Times are civil date-times with a flag: `utc` makes a deployment run at the same moment
//! everywhere; without it each client reads the time in its own time zone (P19).

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

/// A civil date-time read in UTC or in the client's zone.
pub fn resolve(at: DateTime, utc: bool, client: &TimeZone) -> Timestamp {
    let tz = if utc { TimeZone::UTC } else { client.clone() };
    at.to_zoned(tz)
        .map(|z| z.timestamp())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// Parses `2026-11-21T18:00` (seconds optional).
pub fn parse_time(s: &str) -> Result<DateTime, String> {
    s.trim()
        .parse::<DateTime>()
        .map_err(|e| format!("'{s}' is not a date and time such as 2026-11-21T18:00: {e}"))
}

/// How a maintenance window recurs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recurrence {
    Once(Date),
    Daily,
    Weekly(Weekday),
    /// The `week`th (1–4, or 5 for the last) `weekday` of every month.
    Monthly {
        week: u8,
        weekday: Weekday,
    },
}

/// A period when a collection's clients may install (P24), in the clients' local time
/// unless `utc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaintenanceWindow {
    pub recurrence: Recurrence,
    pub start: Time,
    pub duration_minutes: u32,
    pub utc: bool,
}

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_lowercase().get(..3)? {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

fn weekday_name(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "mon",
        Weekday::Tuesday => "tue",
        Weekday::Wednesday => "wed",
        Weekday::Thursday => "thu",
        Weekday::Friday => "fri",
        Weekday::Saturday => "sat",
        Weekday::Sunday => "sun",
    }
}

/// `3h`, `90m`, `1h30m`.
fn duration_minutes(s: &str) -> Option<u32> {
    let mut total = 0u32;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            let n: u32 = num.parse().ok()?;
            num.clear();
            total += match c {
                'h' => n.checked_mul(60)?,
                'm' => n,
                _ => return None,
            };
        }
    }
    (num.is_empty() && total > 0 && total <= 24 * 60).then_some(total)
}

impl MaintenanceWindow {
    /// `daily 22:00 3h`, `weekly sat 22:00 4h`, `monthly 2 tue 22:00 3h` (5 or `last` for
    /// the last), `once 2026-12-01 22:00 2h`; a trailing `utc` reads the time in UTC
    /// instead of each client's local time. At most 24 hours long.
    pub fn parse(spec: &str) -> Result<MaintenanceWindow, String> {
        let bad = |why: &str| {
            format!(
                "maintenance window '{spec}': {why} (e.g. 'daily 22:00 3h', 'weekly sat 22:00 4h', 'monthly 2 tue 22:00 3h', 'once 2026-12-01 22:00 2h', optionally ending in 'utc')"
            )
        };
        let mut words: Vec<&str> = spec.split_whitespace().collect();
        let utc = words.last().is_some_and(|w| w.eq_ignore_ascii_case("utc"));
        if utc {
            words.pop();
        }
        let (recurrence, rest) = match words.as_slice() {
            ["daily", rest @ ..] => (Recurrence::Daily, rest),
            ["weekly", d, rest @ ..] => (
                Recurrence::Weekly(weekday(d).ok_or_else(|| bad("not a weekday"))?),
                rest,
            ),
            ["monthly", n, d, rest @ ..] => {
                let week = match *n {
                    "last" => 5,
                    n => n
                        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
                        .parse::<u8>()
                        .ok()
                        .filter(|w| (1..=5).contains(w))
                        .ok_or_else(|| bad("the week is 1 to 4, 5 or last"))?,
                };
                (
                    Recurrence::Monthly {
                        week,
                        weekday: weekday(d).ok_or_else(|| bad("not a weekday"))?,
                    },
                    rest,
                )
            }
            ["once", date, rest @ ..] => (
                Recurrence::Once(date.parse::<Date>().map_err(|_| bad("not a date"))?),
                rest,
            ),
            _ => return Err(bad("unknown recurrence")),
        };
        let [start, duration] = rest else {
            return Err(bad("give a start time and a duration"));
        };
        Ok(MaintenanceWindow {
            recurrence,
            start: start
                .parse::<Time>()
                .map_err(|_| bad("not a time such as 22:00"))?,
            duration_minutes: duration_minutes(duration)
                .ok_or_else(|| bad("not a duration such as 3h or 90m, at most 24h"))?,
            utc,
        })
    }

    fn occurs_on(&self, d: Date) -> bool {
        match self.recurrence {
            Recurrence::Once(date) => d == date,
            Recurrence::Daily => true,
            Recurrence::Weekly(w) => d.weekday() == w,
            Recurrence::Monthly { week, weekday } => {
                if d.weekday() != weekday {
                    return false;
                }
                let nth = (d.day() - 1) / 7 + 1;
                if week == 5 {
                    // The last: a week later is next month.
                    d.checked_add(7.days())
                        .is_ok_and(|n| n.month() != d.month())
                } else {
                    nth == week as i8
                }
            }
        }
    }

    fn zone(&self, client: &TimeZone) -> TimeZone {
        if self.utc {
            TimeZone::UTC
        } else {
            client.clone()
        }
    }

    /// The occurrence (start, end) that holds `now`, if any.
    pub fn open_at(&self, now: Timestamp, client: &TimeZone) -> Option<(Timestamp, Timestamp)> {
        let tz = self.zone(client);
        let today = now.to_zoned(tz.clone()).date();
        for back in [1i64, 0] {
            let Ok(d) = today.checked_sub(back.days()) else {
                continue;
            };
            if !self.occurs_on(d) {
                continue;
            }
            let Ok(start) = d.to_datetime(self.start).to_zoned(tz.clone()) else {
                continue;
            };
            let start = start.timestamp();
            let end = start + (i64::from(self.duration_minutes) * 60).seconds();
            if start <= now && now < end {
                return Some((start, end));
            }
        }
        None
    }

    /// The next start at or after `now` within about two months, if any.
    pub fn next_start(&self, now: Timestamp, client: &TimeZone) -> Option<Timestamp> {
        let tz = self.zone(client);
        let today = now.to_zoned(tz.clone()).date();
        (0..=62i64)
            .filter_map(|n| today.checked_add(n.days()).ok())
            .filter(|d| self.occurs_on(*d))
            .filter_map(|d| d.to_datetime(self.start).to_zoned(tz.clone()).ok())
            .map(|z| z.timestamp())
            .find(|t| *t >= now)
    }
}

impl std::fmt::Display for MaintenanceWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.recurrence {
            Recurrence::Once(d) => write!(f, "once {d}")?,
            Recurrence::Daily => write!(f, "daily")?,
            Recurrence::Weekly(w) => write!(f, "weekly {}", weekday_name(w))?,
            Recurrence::Monthly { week: 5, weekday } => {
                write!(f, "monthly last {}", weekday_name(weekday))?
            }
            Recurrence::Monthly { week, weekday } => {
                write!(f, "monthly {week} {}", weekday_name(weekday))?
            }
        }
        let (h, m) = (self.duration_minutes / 60, self.duration_minutes % 60);
        write!(f, " {}", self.start.strftime("%H:%M"))?;
        match (h, m) {
            (0, m) => write!(f, " {m}m")?,
            (h, 0) => write!(f, " {h}h")?,
            (h, m) => write!(f, " {h}h{m}m")?,
        }
        if self.utc {
            write!(f, " utc")?;
        }
        Ok(())
    }
}

/// What a client does about a deployment now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not available yet: wait until then.
    NotYet(Timestamp),
    /// The user postponed it: wait until the deadline (11253 was sent when postponed).
    Postponed(Timestamp),
    /// Outside every maintenance window: 11250 with the next start; 11256 when no window
    /// will open again (it has expired).
    OutsideWindow(Option<Timestamp>),
    /// Install now; `forced` past the deadline.
    Install { forced: bool },
}

/// Decides for one deployment. `windows` are those of the client's collections; none means
/// the client may install at any time.
pub fn decide(
    available: Timestamp,
    deadline: Option<Timestamp>,
    postponed: bool,
    windows: &[MaintenanceWindow],
    now: Timestamp,
    client: &TimeZone,
) -> Decision {
    if now < available {
        return Decision::NotYet(available);
    }
    let forced = deadline.is_some_and(|d| now >= d);
    if postponed
        && let Some(d) = deadline
        && now < d
    {
        return Decision::Postponed(d);
    }
    if !windows.is_empty() && !windows.iter().any(|w| w.open_at(now, client).is_some()) {
        let next = windows
            .iter()
            .filter_map(|w| w.next_start(now, client))
            .min();
        return Decision::OutsideWindow(next);
    }
    Decision::Install { forced }
}

/// A client's role, from its inventory or configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MachineRole {
    Server,
    Workstation,
}

/// What a deployment says about restarts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestartPolicy {
    pub suppress_on_servers: bool,
    pub suppress_on_workstations: bool,
}

/// The status message after an installation: 11268 (no restart needed), 11267/11266
/// (needed, suppressed for a server/workstation), or 11270 (the restart is mandatory and
/// the agent restarts the machine: 11265 past the deadline, else 11264).
pub fn after_install(
    restart_required: bool,
    role: MachineRole,
    policy: RestartPolicy,
    forced: bool,
) -> Vec<u32> {
    if !restart_required {
        return vec![11268];
    }
    match role {
        MachineRole::Server if policy.suppress_on_servers => vec![11267],
        MachineRole::Workstation if policy.suppress_on_workstations => vec![11266],
        _ => vec![11270, if forced { 11265 } else { 11264 }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn windows_parse_and_print() {
        for s in [
            "daily 22:00 3h",
            "weekly sat 22:00 4h",
            "monthly 2 tue 22:00 3h",
            "monthly last sun 01:00 2h30m",
            "once 2026-12-01 22:00 90m utc",
        ] {
            let w = MaintenanceWindow::parse(s).unwrap();
            let again = MaintenanceWindow::parse(&w.to_string()).unwrap();
            assert_eq!(w, again, "{s} -> {w}");
        }
        for bad in [
            "hourly 22:00 3h",
            "daily 25:00 3h",
            "daily 22:00 25h",
            "weekly xyz 1:00 1h",
            "daily 22:00",
        ] {
            assert!(MaintenanceWindow::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn windows_open_and_next() {
        let utc = TimeZone::UTC;
        let w = MaintenanceWindow::parse("daily 22:00 3h utc").unwrap();
        assert!(w.open_at(ts("2026-11-21T23:30:00Z"), &utc).is_some());
        // Across midnight: the window of the day before.
        assert!(w.open_at(ts("2026-11-22T00:30:00Z"), &utc).is_some());
        assert!(w.open_at(ts("2026-11-22T01:00:00Z"), &utc).is_none());
        assert_eq!(
            w.next_start(ts("2026-11-22T01:00:00Z"), &utc),
            Some(ts("2026-11-22T22:00:00Z"))
        );
        // Patch Tuesday style: the second Tuesday of December 2026 is the 8th.
        let m = MaintenanceWindow::parse("monthly 2 tue 22:00 3h utc").unwrap();
        assert_eq!(
            m.next_start(ts("2026-12-01T00:00:00Z"), &utc),
            Some(ts("2026-12-08T22:00:00Z"))
        );
        let last = MaintenanceWindow::parse("monthly last sun 01:00 2h utc").unwrap();
        assert_eq!(
            last.next_start(ts("2026-11-01T02:00:00Z"), &utc),
            Some(ts("2026-11-29T01:00:00Z"))
        );
        let once = MaintenanceWindow::parse("once 2026-01-01 22:00 1h utc").unwrap();
        assert_eq!(once.next_start(ts("2026-11-01T00:00:00Z"), &utc), None);
        // Client local time: 22:00 in Tokyo is 13:00 UTC.
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        let local = MaintenanceWindow::parse("daily 22:00 1h").unwrap();
        assert!(local.open_at(ts("2026-11-21T13:30:00Z"), &tokyo).is_some());
        assert!(local.open_at(ts("2026-11-21T22:30:00Z"), &tokyo).is_none());
    }

    #[test]
    fn decisions() {
        let utc = TimeZone::UTC;
        let avail = ts("2026-11-21T10:00:00Z");
        let due = ts("2026-11-22T10:00:00Z");
        let deadline = Some(due);
        assert_eq!(
            decide(
                avail,
                deadline,
                false,
                &[],
                ts("2026-11-21T09:00:00Z"),
                &utc
            ),
            Decision::NotYet(avail)
        );
        assert_eq!(
            decide(
                avail,
                deadline,
                false,
                &[],
                ts("2026-11-21T11:00:00Z"),
                &utc
            ),
            Decision::Install { forced: false }
        );
        assert_eq!(
            decide(avail, deadline, true, &[], ts("2026-11-21T11:00:00Z"), &utc),
            Decision::Postponed(due)
        );
        assert_eq!(
            decide(avail, deadline, true, &[], ts("2026-11-22T11:00:00Z"), &utc),
            Decision::Install { forced: true }
        );
        let w = [MaintenanceWindow::parse("daily 22:00 3h utc").unwrap()];
        assert_eq!(
            decide(avail, deadline, false, &w, ts("2026-11-21T11:00:00Z"), &utc),
            Decision::OutsideWindow(Some(ts("2026-11-21T22:00:00Z")))
        );
        assert_eq!(
            decide(avail, deadline, false, &w, ts("2026-11-21T22:30:00Z"), &utc),
            Decision::Install { forced: false }
        );
        // UTC versus client local time.
        let at = parse_time("2026-11-21T18:00").unwrap();
        let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
        assert_eq!(resolve(at, true, &tokyo), ts("2026-11-21T18:00:00Z"));
        assert_eq!(resolve(at, false, &tokyo), ts("2026-11-21T09:00:00Z"));
    }

    #[test]
    fn restarts() {
        let p = RestartPolicy {
            suppress_on_servers: true,
            suppress_on_workstations: false,
        };
        assert_eq!(after_install(false, MachineRole::Server, p, false), [11268]);
        assert_eq!(after_install(true, MachineRole::Server, p, false), [11267]);
        assert_eq!(
            after_install(true, MachineRole::Workstation, p, false),
            [11270, 11264]
        );
        assert_eq!(
            after_install(true, MachineRole::Workstation, p, true),
            [11270, 11265]
        );
    }
}
