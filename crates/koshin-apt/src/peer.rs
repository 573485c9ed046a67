//! The real apt as a peer: an APT configuration isolated from the host's (no `apt.conf.d`,
//! its own lists, cache and logs), for measuring koshin beside apt and for checking koshin's
//! answers against apt's. `APT_CONFIG` points at the generated file, because the host's
//! `apt.conf.d` (hooks, `Check-Valid-Until`) is read before any `-o` option applies.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What the isolated apt reads.
#[derive(Clone, Debug)]
pub struct PeerOptions {
    /// `sources.list` text to write; `None` uses this machine's `/etc/apt/sources.list` and
    /// `/etc/apt/sources.list.d` (with its own keyring locations).
    pub sources: Option<String>,
    /// The dpkg status to read; `None` means an empty one (a machine with nothing installed).
    pub dpkg_status: Option<PathBuf>,
    /// `APT::Architecture`; `None` keeps apt's own.
    pub architecture: Option<String>,
}

/// Writes an isolated APT configuration under `dir`; returns the file for `APT_CONFIG`.
pub fn prepare(dir: &Path, o: &PeerOptions) -> std::io::Result<PathBuf> {
    for sub in [
        "empty",
        "state/lists/partial",
        "cache/archives/partial",
        "log",
    ] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let p = |s: &str| dir.join(s).display().to_string();
    let (source_list, source_parts, trusted) = match &o.sources {
        Some(text) => {
            std::fs::write(dir.join("sources.list"), text)?;
            (
                p("sources.list"),
                p("empty"),
                format!(
                    "Dir::Etc::Trusted \"{e}/none.gpg\";\nDir::Etc::TrustedParts \"{e}\";\n",
                    e = p("empty")
                ),
            )
        }
        None => (
            "/etc/apt/sources.list".to_string(),
            "/etc/apt/sources.list.d".to_string(),
            String::new(),
        ),
    };
    let status = match &o.dpkg_status {
        Some(s) => s.display().to_string(),
        None => {
            std::fs::write(dir.join("status"), "")?;
            p("status")
        }
    };
    let arch = o
        .architecture
        .as_ref()
        .map(|a| format!("APT::Architecture \"{a}\";\nAPT::Architectures {{ \"{a}\"; }};\n"))
        .unwrap_or_default();
    let config = format!(
        "Dir::Etc::Main \"/dev/null\";\nDir::Etc::Parts \"{empty}\";\nDir::Etc::SourceList \"{source_list}\";\nDir::Etc::SourceParts \"{source_parts}\";\n{trusted}Dir::Etc::Preferences \"{empty}/none.pref\";\nDir::Etc::PreferencesParts \"{empty}\";\nDir::State \"{state}\";\nDir::State::Lists \"{lists}\";\nDir::State::status \"{status}\";\nDir::Cache \"{cache}\";\nDir::Log \"{log}\";\nDebug::NoLocking \"true\";\nAPT::Sandbox::User \"root\";\n{arch}APT::Get::List-Cleanup \"false\";\nAPT::Update::Error-Mode \"any\";\nAcquire::Languages \"none\";\nAcquire::Retries \"0\";\nAcquire::http::Timeout \"30\";\n",
        empty = p("empty"),
        state = p("state"),
        lists = p("state/lists"),
        cache = p("cache"),
        log = p("log"),
    );
    let path = dir.join("apt.conf");
    std::fs::write(&path, config)?;
    Ok(path)
}

/// `program args…` under the isolated configuration, without proxy variables.
pub fn command(config: &Path, program: &str, args: &[&str]) -> Command {
    let mut c = Command::new(program);
    c.args(args)
        .env("APT_CONFIG", config)
        .env_remove("http_proxy")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("HTTPS_PROXY");
    c
}

/// `apt list --upgradable` output as (name, architecture) → candidate version.
pub fn parse_upgradable(out: &str) -> std::collections::BTreeMap<(String, String), String> {
    let mut m = std::collections::BTreeMap::new();
    for line in out.lines() {
        // name/suite version arch [upgradable from: old]
        let mut w = line.split_whitespace();
        if let (Some(ns), Some(v), Some(a)) = (w.next(), w.next(), w.next())
            && let Some((n, _)) = ns.split_once('/')
        {
            m.insert((n.to_string(), a.to_string()), v.to_string());
        }
    }
    m
}
