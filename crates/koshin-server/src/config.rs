//! `koshin.toml`: the site's configuration, every default written out by `koshin site init`.

use std::path::Path;

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteConfig {
    pub site: SiteSection,
    #[serde(default)]
    pub upstream: UpstreamSection,
    #[serde(default)]
    pub sync: SyncSection,
    #[serde(default)]
    pub policy: PolicySection,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSection {
    /// Three-character site code (the seeds' CS1, PS1...).
    pub code: String,
    /// How status messages name this server (SYS=); empty means the host name.
    #[serde(default)]
    pub system: String,
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The URL clients use to reach this site's update point; empty means http://<listen>.
    #[serde(default)]
    pub public_url: String,
}

fn default_listen() -> String {
    "127.0.0.1:8530".into()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamSection {
    /// "system" (this machine's APT sources) or APT one-line entries.
    pub sources: Vec<String>,
    /// Folder of local publisher definitions (`*.toml`), relative to the data folder.
    pub local_publisher_dir: String,
    /// Where "system" reads APT's configuration.
    pub apt_etc: String,
    /// Architectures for sources that name none; empty means this machine's.
    pub architectures: Vec<String>,
    pub connect_timeout_seconds: u64,
    pub read_timeout_seconds: u64,
    /// Preferred index compressions, first listed in the Release wins ("" = uncompressed).
    pub compression_order: Vec<String>,
}

impl Default for UpstreamSection {
    fn default() -> Self {
        UpstreamSection {
            sources: vec!["system".into()],
            local_publisher_dir: "local-publisher".into(),
            apt_etc: "/etc/apt".into(),
            architectures: Vec::new(),
            connect_timeout_seconds: 15,
            read_timeout_seconds: 60,
            compression_order: vec!["gz".into(), "xz".into(), String::new()],
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncSection {
    /// Products to sync ("*" = every product the upstreams provide, and the local publisher).
    pub products: Vec<String>,
    pub classifications: Vec<String>,
    pub languages: Vec<String>,
    /// The scheduled (full) sync runs this often.
    pub schedule_minutes: u64,
    /// A failed sync is retried after this long (S7).
    pub retry_minutes: u64,
    /// How often the sync manager looks into its inbox for `.SYN` files.
    pub inbox_poll_ms: u64,
}

impl Default for SyncSection {
    fn default() -> Self {
        SyncSection {
            products: vec!["*".into()],
            classifications: koshin_domain::Classification::ALL
                .iter()
                .map(|c| c.name().to_string())
                .collect(),
            languages: vec!["English".into()],
            schedule_minutes: 24 * 60,
            retry_minutes: 60,
            inbox_poll_ms: 1000,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicySection {
    /// Clients scan on this schedule (default 7 days).
    pub scan_interval_minutes: u64,
    /// Client metadata stays valid this long (C6, default 24 hours).
    pub metadata_ttl_minutes: u64,
    /// First scan at a random time within this window after the policy arrives (C2).
    pub first_scan_window_minutes: u64,
    /// Clients poll machine policy this often.
    pub policy_poll_minutes: u64,
}

impl Default for PolicySection {
    fn default() -> Self {
        PolicySection {
            scan_interval_minutes: 7 * 24 * 60,
            metadata_ttl_minutes: 24 * 60,
            first_scan_window_minutes: 120,
            policy_poll_minutes: 60,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

impl SiteConfig {
    pub fn load(path: &Path) -> Result<SiteConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let cfg: SiteConfig = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        cfg.validate().map_err(|reason| ConfigError::Invalid {
            path: path.display().to_string(),
            reason,
        })?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), String> {
        validate_site_code(&self.site.code)?;
        for c in &self.sync.classifications {
            if koshin_domain::Classification::parse(c).is_none() {
                return Err(format!(
                    "[sync] classifications: unknown classification '{c}'"
                ));
            }
        }
        if self.sync.schedule_minutes == 0 || self.sync.retry_minutes == 0 {
            return Err("[sync] schedule_minutes and retry_minutes must be at least 1".into());
        }
        if self.upstream.sources.is_empty() {
            return Err(
                "[upstream] sources: give at least one source (\"system\" or an APT line)".into(),
            );
        }
        for s in &self.upstream.sources {
            if s != "system" {
                koshin_apt::sources::parse_line(s)
                    .map_err(|e| format!("[upstream] sources: {e}"))?;
            }
        }
        self.site
            .listen
            .parse::<std::net::SocketAddr>()
            .map_err(|_| {
                format!(
                    "[site] listen: '{}' is not an address like 127.0.0.1:8530",
                    self.site.listen
                )
            })?;
        Ok(())
    }

    pub fn criteria(&self) -> koshin_domain::catalog::Criteria {
        koshin_domain::catalog::Criteria {
            products: self.sync.products.clone(),
            classifications: self
                .sync
                .classifications
                .iter()
                .filter_map(|c| koshin_domain::Classification::parse(c))
                .collect(),
            languages: self.sync.languages.clone(),
        }
    }

    pub fn system_name(&self) -> String {
        if self.site.system.is_empty() {
            hostname()
        } else {
            self.site.system.clone()
        }
    }

    pub fn public_url(&self) -> String {
        if self.site.public_url.is_empty() {
            format!("http://{}", self.site.listen)
        } else {
            self.site.public_url.trim_end_matches('/').to_string()
        }
    }

    /// The documented `koshin.toml`, with every default written out.
    pub fn to_documented_toml(&self) -> String {
        let list = |v: &[String]| {
            let items: Vec<String> = v.iter().map(|s| toml_str(s)).collect();
            format!("[{}]", items.join(", "))
        };
        format!(
            r#"# koshin site configuration. Every setting is written out with its value; edit and
# restart `koshin site serve` to apply. See docs/configuration.md.

[site]
# Three-character site code, unique in the hierarchy (the seeds' CS1, PS1, ...).
code = {code}
# How status messages and logs name this server (SYS=). Empty: the host name.
system = {system}
# Address the API, the management point and the update point listen on.
listen = {listen}
# URL clients use to reach this site's update point. Empty: http://<listen>.
public_url = {public_url}

[upstream]
# Where the top-level site syncs from: "system" reads this machine's APT sources
# (/etc/apt/sources.list, sources.list.d/*.list and *.sources); or APT one-line entries:
#   "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg arch=amd64] http://deb.debian.org/debian bookworm main"
sources = {sources}
# Folder (relative to the data folder) of local publisher definitions, *.toml (S12).
local_publisher_dir = {lp}
# Where "system" reads APT's configuration.
apt_etc = {apt_etc}
# Architectures for sources that name none ([] = this machine's architecture).
architectures = {archs}
# Seconds to wait for a connection, and for the next bytes of an answer.
connect_timeout_seconds = {cto}
read_timeout_seconds = {rto}
# Preferred index compression, the first the Release lists wins ("" = uncompressed).
compression_order = {comp}

[sync]
# Criteria (S1): only updates of these products and classifications enter the catalog.
# "*" selects every product the upstreams provide, and the "Local publisher" product.
products = {products}
classifications = {classes}
languages = {langs}
# The scheduled sync is a full sync (S2) and runs this often (minutes; 1440 = daily).
schedule_minutes = {sched}
# A failed sync is retried after this many minutes (S7).
retry_minutes = {retry}
# How often (milliseconds) the sync manager looks for SELF.SYN / FULL.SYN in its inbox.
inbox_poll_ms = {poll}

[policy]
# Site-wide machine policy (S11) sent to clients after each successful sync.
# Scan schedule (minutes; 10080 = 7 days).
scan_interval_minutes = {scan}
# Client metadata TTL (minutes; 1440 = 24 hours, C6).
metadata_ttl_minutes = {ttl}
# First scan at a random time within this many minutes of receiving the policy (C2).
first_scan_window_minutes = {first}
# Clients poll machine policy this often (minutes).
policy_poll_minutes = {pollp}
"#,
            code = toml_str(&self.site.code),
            system = toml_str(&self.site.system),
            listen = toml_str(&self.site.listen),
            public_url = toml_str(&self.site.public_url),
            sources = list(&self.upstream.sources),
            lp = toml_str(&self.upstream.local_publisher_dir),
            apt_etc = toml_str(&self.upstream.apt_etc),
            archs = list(&self.upstream.architectures),
            cto = self.upstream.connect_timeout_seconds,
            rto = self.upstream.read_timeout_seconds,
            comp = list(&self.upstream.compression_order),
            products = list(&self.sync.products),
            classes = list(&self.sync.classifications),
            langs = list(&self.sync.languages),
            sched = self.sync.schedule_minutes,
            retry = self.sync.retry_minutes,
            poll = self.sync.inbox_poll_ms,
            scan = self.policy.scan_interval_minutes,
            ttl = self.policy.metadata_ttl_minutes,
            first = self.policy.first_scan_window_minutes,
            pollp = self.policy.policy_poll_minutes,
        )
    }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

pub fn validate_site_code(code: &str) -> Result<(), String> {
    if code.len() == 3
        && code
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    {
        Ok(())
    } else {
        Err(format!(
            "site code '{code}' must be three characters, capital letters or digits (e.g. CS1)"
        ))
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_toml_round_trips() {
        let cfg = SiteConfig {
            site: SiteSection {
                code: "CS1".into(),
                system: String::new(),
                listen: default_listen(),
                public_url: String::new(),
            },
            upstream: UpstreamSection::default(),
            sync: SyncSection::default(),
            policy: PolicySection::default(),
        };
        let text = cfg.to_documented_toml();
        let back: SiteConfig = toml::from_str(&text).unwrap();
        assert_eq!(back.site.code, "CS1");
        assert_eq!(back.sync.retry_minutes, 60);
        assert_eq!(back.policy.metadata_ttl_minutes, 1440);
        back.validate().unwrap();
        assert!(validate_site_code("cs1").is_err());
    }
}
