//! Status messages: how every component reports on itself (message ID, severity, level,
//! component, system, site, process/thread, UTC time, up to ten insertion strings,
//! attributes) and the text the seeds give each ID.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub const SYNC_MANAGER: &str = "SMS_WSUS_SYNC_MANAGER";
pub const SOURCE_SERVER: &str = "koshin Server";
/// Messages a client reports about itself.
pub const SOURCE_CLIENT: &str = "koshin Client";
/// The client component that installs deployments (the seeds' install agent, 112xx).
pub const INSTALL_AGENT: &str = "SoftwareUpdatesInstallAgent";

/// The component that keeps the links between sites: global data down, client data up.
pub const REPLICATION_MANAGER: &str = "SMS_REPLICATION_MANAGER";
pub const COLLECTION_EVALUATOR: &str = "SMS_COLLECTION_EVALUATOR";
/// A link to another site went down; what is for it waits.
pub const LINK_DOWN: u32 = 4800;
/// A link to another site works again.
pub const LINK_UP: u32 = 4801;
/// Global data (collections, deployments) replicated from the parent.
pub const GLOBAL_REPLICATED: u32 = 4802;

pub const SYNC_STARTED: u32 = 6701;
pub const SYNC_DONE: u32 = 6702;
pub const SYNC_FAILED: u32 = 6703;
pub const SYNC_PHASE_UPSTREAM: u32 = 6704;
pub const SYNC_PHASE_DATABASE: u32 = 6705;
pub const SYNC_PHASE_REPLICAS: u32 = 6706;
pub const LEGACY_CATALOG_SYNC_DONE: u32 = 6710;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Severity {
    #[serde(rename = "I")]
    Informational,
    #[serde(rename = "W")]
    Warning,
    #[serde(rename = "E")]
    Error,
}

impl Severity {
    pub fn letter(self) -> char {
        match self {
            Severity::Informational => 'I',
            Severity::Warning => 'W',
            Severity::Error => 'E',
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "I" | "INFORMATIONAL" | "INFO" => Some(Severity::Informational),
            "W" | "WARNING" => Some(Severity::Warning),
            "E" | "ERROR" => Some(Severity::Error),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Level {
    #[serde(rename = "M")]
    Milestone,
    #[serde(rename = "D")]
    Detail,
}

impl Level {
    pub fn letter(self) -> char {
        match self {
            Level::Milestone => 'M',
            Level::Detail => 'D',
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusMessage {
    pub message_id: u32,
    pub severity: Severity,
    pub level: Level,
    pub source: String,
    pub component: String,
    pub system: String,
    pub site: String,
    pub process_id: u32,
    pub thread_id: u64,
    /// Unix time in milliseconds, UTC.
    pub time_ms: i64,
    pub insertion_strings: Vec<String>,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusMessageError {
    #[error("a status message carries at most ten insertion strings, not {0}")]
    TooManyInsertionStrings(usize),
    #[error("a status message needs a component")]
    NoComponent,
}

impl StatusMessage {
    pub fn validate(&self) -> Result<(), StatusMessageError> {
        if self.insertion_strings.len() > 10 {
            return Err(StatusMessageError::TooManyInsertionStrings(
                self.insertion_strings.len(),
            ));
        }
        if self.component.trim().is_empty() {
            return Err(StatusMessageError::NoComponent);
        }
        Ok(())
    }

    /// The message text, as the status message viewer shows it.
    pub fn description(&self) -> String {
        description(self.message_id, &self.insertion_strings)
    }
}

/// The text of message `id` with its insertion strings filled in (`%1` is the first).
pub fn description(id: u32, insertion_strings: &[String]) -> String {
    let mut out = describe(id).unwrap_or("Status message %0.").to_string();
    for (i, s) in insertion_strings.iter().enumerate().rev() {
        out = out.replace(&format!("%{}", i + 1), s);
    }
    out.replace("%0", &id.to_string())
}

/// The text of the status message IDs the seeds name.
pub fn describe(id: u32) -> Option<&'static str> {
    Some(match id {
        6701 => "Software update synchronization started.",
        6702 => "Software update synchronization done.",
        6703 => "Software update synchronization failed. Message: %1. Source: %2.",
        6704 => {
            "Software update synchronization in progress. Current phase: Synchronizing the update point with its upstream."
        }
        6705 => {
            "Software update synchronization in progress. Current phase: Synchronizing the site database."
        }
        6706 => {
            "Software update synchronization in progress. Current phase: Synchronizing replica and internet-facing update points."
        }
        6710 => "Legacy update catalog synchronization completed.",
        4800 => {
            "The link to site %1 is down: %2. What is for that site waits here and is sent when the link is back."
        }
        4801 => "The link to site %1 is active again.",
        4802 => {
            "Replicated global data from parent site %1 up to change %2: %3 collections and %4 deployments changed, %5 deleted."
        }
        3531 => "Sending package %1 to site %2.",
        3532 => "Error sending package %1 to site %2.",
        3533 => "Package %1 sent to site %2.",
        2342 => "Starting to distribute package %1 to distribution point %2.",
        2330 => "Package %1 distributed to distribution point %2.",
        11250 => {
            "The program is outside the scheduled install window (earliest start). Waiting to retry."
        }
        11251 => {
            "The program is outside the scheduled install window (latest start). Waiting to retry."
        }
        11252 => "The installation was rescheduled by the user.",
        11253 => "The installation was postponed by the user.",
        11254 => "The installation was postponed automatically.",
        11256 => "The program is outside the scheduled install window (expired). Waiting to retry.",
        11257 => "The required restart was rescheduled by the user.",
        11258 => "The required restart was postponed by the user.",
        11259 => "The required restart was postponed automatically.",
        11261 => "Installed; the restart was rescheduled by the user.",
        11262 => "Installed; the restart was postponed by the user.",
        11263 => "Installed; the restart was postponed automatically.",
        11264 => "The required restart started.",
        11265 => "The required forced restart started.",
        11266 => "Installed; the restart was suppressed (workstation role).",
        11267 => "Installed; the restart was suppressed (server role).",
        11268 => "Installed; no restart is needed.",
        11269 => "A restart is needed to continue the installation.",
        11270 => "A computer restart is mandatory.",
        _ => return None,
    })
}

/// Formats a Unix-millisecond time the way the seeds' STATMSG lines do:
/// `Thu Jan 16 18:53:52.608 2014`.
pub fn gmtdate(time_ms: i64) -> String {
    let ts = jiff::Timestamp::from_millisecond(time_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.strftime("%a %b %d %H:%M:%S%.3f %Y").to_string()
}

/// The seeds' `STATMSG:` log line for a status message.
pub fn statmsg_line(m: &StatusMessage) -> String {
    let mut line = format!(
        "STATMSG: ID={} SEV={} LEV={} SOURCE=\"{}\" COMP=\"{}\" SYS={} SITE={} PID={} TID={} GMTDATE={}",
        m.message_id,
        m.severity.letter(),
        m.level.letter(),
        m.source,
        m.component,
        m.system,
        m.site,
        m.process_id,
        m.thread_id,
        gmtdate(m.time_ms)
    );
    for i in 0..10 {
        let s = m.insertion_strings.get(i).map(String::as_str).unwrap_or("");
        line.push_str(&format!(" ISTR{i}=\"{}\"", s.replace('"', "'")));
    }
    line.push_str(&format!(" NUMATTRS={}", m.attributes.len()));
    for (k, v) in &m.attributes {
        line.push_str(&format!(" AID={k} AVAL={v}"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_statmsg_like_the_seeds() {
        let m = StatusMessage {
            message_id: 6701,
            severity: Severity::Informational,
            level: Level::Milestone,
            source: SOURCE_SERVER.into(),
            component: SYNC_MANAGER.into(),
            system: "cs1site.contoso.com".into(),
            site: "CS1".into(),
            process_id: 432,
            thread_id: 3404,
            time_ms: 1_389_898_432_608,
            insertion_strings: vec![],
            attributes: BTreeMap::new(),
        };
        let line = statmsg_line(&m);
        assert!(line.starts_with("STATMSG: ID=6701 SEV=I LEV=M SOURCE=\"koshin Server\" COMP=\"SMS_WSUS_SYNC_MANAGER\" SYS=cs1site.contoso.com SITE=CS1 PID=432 TID=3404 GMTDATE=Thu Jan 16 18:53:52.608 2014 ISTR0=\"\""), "{line}");
        assert!(line.ends_with("ISTR9=\"\" NUMATTRS=0"));
    }

    #[test]
    fn fills_insertion_strings() {
        let mut m = StatusMessage {
            message_id: 6703,
            severity: Severity::Error,
            level: Level::Milestone,
            source: SOURCE_SERVER.into(),
            component: SYNC_MANAGER.into(),
            system: "h".into(),
            site: "CS1".into(),
            process_id: 1,
            thread_id: 1,
            time_ms: 0,
            insertion_strings: vec!["bad signature".into(), "http://x/".into()],
            attributes: BTreeMap::new(),
        };
        assert_eq!(
            m.description(),
            "Software update synchronization failed. Message: bad signature. Source: http://x/."
        );
        m.insertion_strings = vec![String::new(); 11];
        assert!(m.validate().is_err());
    }
}
