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
    #[serde(default)]
    pub tls: TlsSection,
    #[serde(default)]
    pub content: ContentSection,
    #[serde(default)]
    pub collections: CollectionsSection,
}

/// `[collections]`: how often collection membership is evaluated (docs/inventory.md).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectionsSection {
    /// Clients whose inventory, update states or enrolment changed are judged again this
    /// often (the incremental pass).
    pub incremental_seconds: u64,
    /// Every collection is evaluated in full this often, and when the site starts.
    /// 0: only when its rules change or when asked (`koshin collections evaluate`).
    pub full_hours: u64,
}

impl Default for CollectionsSection {
    fn default() -> Self {
        CollectionsSection {
            incremental_seconds: 60,
            full_hours: 24,
        }
    }
}

/// `[content]`: the content library and distribution points.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContentSection {
    /// Every distribution point re-hashes its files this often; damaged ones are removed
    /// and sent again. 0: only when asked (`koshin dp validate`).
    pub validate_hours: u64,
}

impl Default for ContentSection {
    fn default() -> Self {
        ContentSection { validate_hours: 24 }
    }
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
    /// The parent site's URL; empty for the top-level site. A child syncs from its parent.
    #[serde(default)]
    pub parent: String,
    /// A secondary site (under a primary), rather than a primary.
    #[serde(default)]
    pub secondary: bool,
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

/// `[tls]`: HTTPS with the site's own certificate authority (C7, S10). The CA and the site's
/// certificate live in `DATA/pki/` ([`crate::pki`]); these settings say where HTTPS listens,
/// whether plain HTTP is served at all, and whether TLS clients must show a certificate.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// Address the HTTPS listener binds, e.g. `0.0.0.0:8531` (WSUS's SSL port); empty: no
    /// HTTPS listener.
    pub https_listen: String,
    /// When true the site serves only HTTPS: no plain HTTP listener at all.
    pub internet_facing: bool,
    /// Whether a TLS client must present a certificate signed by the site CA.
    pub client_certificates: ClientCertificates,
    /// Extra DNS names or IP addresses for the site certificate, beside `localhost`,
    /// `127.0.0.1`, `::1`, this machine's host name and the host of `public_url`.
    pub names: Vec<String>,
}

impl Default for TlsSection {
    fn default() -> Self {
        TlsSection {
            https_listen: String::new(),
            internet_facing: false,
            client_certificates: ClientCertificates::Optional,
            names: Vec::new(),
        }
    }
}

/// Mutual TLS on the HTTPS listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientCertificates {
    /// The site asks for a client certificate; a client without one is served, a client
    /// with one not signed by the site CA is refused at the handshake.
    Optional,
    /// A client without a certificate signed by the site CA is refused at the handshake.
    Required,
}

impl ClientCertificates {
    /// The value as `koshin.toml` spells it.
    pub fn name(self) -> &'static str {
        match self {
            ClientCertificates::Optional => "optional",
            ClientCertificates::Required => "required",
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
        if !self.tls.https_listen.is_empty() {
            self.tls
                .https_listen
                .parse::<std::net::SocketAddr>()
                .map_err(|_| {
                    format!(
                        "[tls] https_listen: '{}' is not an address like 0.0.0.0:8531",
                        self.tls.https_listen
                    )
                })?;
        }
        if self.tls.internet_facing && self.tls.https_listen.is_empty() {
            return Err(
                "[tls] internet_facing = true serves only HTTPS: set https_listen (e.g. \"0.0.0.0:8531\")"
                    .into(),
            );
        }
        for name in &self.tls.names {
            if !crate::pki::valid_name(name) {
                return Err(format!(
                    "[tls] names: '{name}' is not a DNS name or an IP address"
                ));
            }
        }
        Ok(())
    }

    /// Whether the site serves plain HTTP on `[site] listen` (not when internet-facing).
    pub fn serves_http(&self) -> bool {
        !self.tls.internet_facing
    }

    /// Whether the site serves HTTPS (`[tls] https_listen` is set).
    pub fn serves_https(&self) -> bool {
        !self.tls.https_listen.is_empty()
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

    /// The URL clients use to reach this site: `public_url`, or else `https://<https_listen>`
    /// for an internet-facing site and `http://<listen>` for any other.
    pub fn public_url(&self) -> String {
        if self.site.public_url.is_empty() {
            if self.tls.internet_facing {
                format!("https://{}", self.tls.https_listen)
            } else {
                format!("http://{}", self.site.listen)
            }
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
# The parent site (a child site syncs from it and reports to it). Empty: the top-level site.
parent = {parent}
# A secondary site under a primary (true), or a primary (false).
secondary = {secondary}

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

[tls]
# HTTPS with the site's own certificate authority, DATA/pki/ (see docs/security.md):
# ca.crt is what clients, curl and apt trust; site.crt is this site's certificate.
# Address the HTTPS listener binds, e.g. "0.0.0.0:8531" (WSUS's SSL port). Empty: no HTTPS.
https_listen = {https_listen}
# true: serve ONLY HTTPS (an internet-facing site). There is then no plain HTTP listener at
# all: a plain request is refused at the TCP level and nothing crosses the network in clear.
internet_facing = {internet_facing}
# Mutual TLS on the HTTPS listener: "optional" (a client may present a certificate; one not
# signed by the site CA is refused) or "required" (a client without a certificate signed by
# the site CA is refused at the handshake).
client_certificates = {client_certs}
# Extra DNS names or IP addresses in the site certificate, besides localhost, 127.0.0.1,
# ::1, this machine's host name and the host of public_url; e.g. ["koshin.example.org"].
# The certificate is re-issued at the next start when this list changes.
names = {tls_names}

[content]
# Every distribution point re-hashes its files this often (hours); damaged files are
# removed and sent again. 0: only when asked (koshin dp validate NAME).
validate_hours = {validate_hours}

[collections]
# Clients whose inventory, update states or enrolment changed are judged against every
# collection's rules this often (seconds).
incremental_seconds = {incremental_seconds}
# Every collection is evaluated in full this often (hours), and when the site starts.
# 0: only when its rules change or when asked (koshin collections evaluate).
full_hours = {full_hours}
"#,
            incremental_seconds = self.collections.incremental_seconds,
            full_hours = self.collections.full_hours,
            code = toml_str(&self.site.code),
            system = toml_str(&self.site.system),
            listen = toml_str(&self.site.listen),
            public_url = toml_str(&self.site.public_url),
            parent = toml_str(&self.site.parent),
            secondary = self.site.secondary,
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
            validate_hours = self.content.validate_hours,
            scan = self.policy.scan_interval_minutes,
            ttl = self.policy.metadata_ttl_minutes,
            first = self.policy.first_scan_window_minutes,
            pollp = self.policy.policy_poll_minutes,
            https_listen = toml_str(&self.tls.https_listen),
            internet_facing = self.tls.internet_facing,
            client_certs = toml_str(self.tls.client_certificates.name()),
            tls_names = list(&self.tls.names),
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
                parent: String::new(),
                secondary: false,
            },
            upstream: UpstreamSection::default(),
            sync: SyncSection::default(),
            policy: PolicySection::default(),
            tls: TlsSection::default(),
            content: Default::default(),
            collections: Default::default(),
        };
        let text = cfg.to_documented_toml();
        let back: SiteConfig = toml::from_str(&text).unwrap();
        assert_eq!(back.site.code, "CS1");
        assert_eq!(back.sync.retry_minutes, 60);
        assert_eq!(back.policy.metadata_ttl_minutes, 1440);
        back.validate().unwrap();
        assert!(validate_site_code("cs1").is_err());
        assert_eq!(back.tls.https_listen, "");
        assert!(!back.tls.internet_facing);
        assert_eq!(back.tls.client_certificates, ClientCertificates::Optional);
    }

    fn with_tls(tls: TlsSection) -> SiteConfig {
        SiteConfig {
            site: SiteSection {
                code: "CS1".into(),
                system: String::new(),
                listen: default_listen(),
                public_url: String::new(),
                parent: String::new(),
                secondary: false,
            },
            upstream: UpstreamSection::default(),
            sync: SyncSection::default(),
            policy: PolicySection::default(),
            tls,
            content: ContentSection::default(),
            collections: CollectionsSection::default(),
        }
    }

    #[test]
    fn tls_section_round_trips_and_validates() {
        let cfg = with_tls(TlsSection {
            https_listen: "0.0.0.0:8531".into(),
            internet_facing: true,
            client_certificates: ClientCertificates::Required,
            names: vec!["koshin.example.org".into(), "10.0.0.5".into()],
        });
        let back: SiteConfig = toml::from_str(&cfg.to_documented_toml()).unwrap();
        back.validate().unwrap();
        assert_eq!(back.tls.https_listen, "0.0.0.0:8531");
        assert!(back.tls.internet_facing);
        assert!(!back.serves_http() && back.serves_https());
        assert_eq!(back.tls.client_certificates, ClientCertificates::Required);
        assert_eq!(back.tls.names, ["koshin.example.org", "10.0.0.5"]);
        assert_eq!(back.public_url(), "https://0.0.0.0:8531");

        let check = |tls: TlsSection| with_tls(tls).validate();
        let err = check(TlsSection {
            internet_facing: true,
            ..TlsSection::default()
        })
        .unwrap_err();
        assert!(err.contains("https_listen"), "{err}");
        let err = check(TlsSection {
            https_listen: "8531".into(),
            ..TlsSection::default()
        })
        .unwrap_err();
        assert!(err.contains("[tls] https_listen"), "{err}");
        let err = check(TlsSection {
            names: vec!["not a name".into()],
            ..TlsSection::default()
        })
        .unwrap_err();
        assert!(err.contains("[tls] names"), "{err}");
        let bad: Result<SiteConfig, _> =
            toml::from_str("[site]\ncode = \"CS1\"\n[tls]\nclient_certificates = \"sometimes\"\n");
        assert!(bad.is_err());
    }
}
