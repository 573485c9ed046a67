//! Local publisher (S12): custom updates an organisation defines itself, with their own
//! detection rules, content files and install command — the seeds' Updates Publisher.

use serde::{Deserialize, Serialize};

/// A custom update as written in a local publisher definition file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalUpdateDef {
    pub title: String,
    pub vendor: String,
    pub article_id: String,
    #[serde(default)]
    pub bulletin_id: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    /// One of the classification names ("Security Updates", "Critical Updates", "Updates", ...).
    pub classification: String,
    #[serde(default)]
    pub description: String,
    /// Release date, `YYYY-MM-DD`.
    #[serde(default)]
    pub released: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub detection: Detection,
    #[serde(default)]
    pub content: Vec<ContentFileDef>,
    #[serde(default)]
    pub install_command: Option<String>,
    #[serde(default)]
    pub uninstall_command: Option<String>,
}

/// Detection rules: the update is Required where every given rule says it is needed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detection {
    /// A dpkg package and version bound: Required when installed below `version_below`.
    #[serde(default)]
    pub package: Option<PackageRule>,
    /// Applicable only where this file exists.
    #[serde(default)]
    pub file_exists: Option<String>,
    /// Installed when this file has this SHA-256.
    #[serde(default)]
    pub file_sha256: Option<FileHashRule>,
    /// A command whose exit code decides: `installed_exit_code` means Installed.
    #[serde(default)]
    pub command: Option<CommandRule>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageRule {
    pub name: String,
    #[serde(default)]
    pub architecture: Option<String>,
    pub version_below: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHashRule {
    pub path: String,
    pub sha256: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRule {
    pub run: String,
    #[serde(default)]
    pub installed_exit_code: i32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContentFileDef {
    /// Relative to the local publisher folder.
    pub path: String,
    #[serde(default)]
    pub sha256: Option<String>,
}

/// The part of a local update a client needs beyond the common metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalUpdate {
    pub detection: Detection,
    pub content: Vec<LocalContent>,
    pub install_command: Option<String>,
    pub uninstall_command: Option<String>,
    pub language: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalContent {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("local update '{title}': {reason}")]
pub struct LocalDefError {
    pub title: String,
    pub reason: String,
}

impl LocalUpdateDef {
    /// Checks what can be checked without touching files.
    pub fn validate(&self) -> Result<(), LocalDefError> {
        let fail = |reason: String| {
            Err(LocalDefError {
                title: self.title.clone(),
                reason,
            })
        };
        if self.title.trim().is_empty()
            || self.vendor.trim().is_empty()
            || self.article_id.trim().is_empty()
        {
            return fail("title, vendor and article_id must not be empty".into());
        }
        if crate::Classification::parse(&self.classification).is_none() {
            return fail(format!("unknown classification '{}'", self.classification));
        }
        if let Some(p) = &self.detection.package
            && let Err(e) = crate::version::Version::parse(&p.version_below)
        {
            return fail(e.to_string());
        }
        if let Some(r) = &self.released
            && (r.len() != 10 || r.as_bytes()[4] != b'-' || r.as_bytes()[7] != b'-')
        {
            return fail(format!("released '{r}' is not YYYY-MM-DD"));
        }
        let d = &self.detection;
        if d.package.is_none()
            && d.file_exists.is_none()
            && d.file_sha256.is_none()
            && d.command.is_none()
        {
            return fail(
                "no detection rule: give package, file_exists, file_sha256 or command".into(),
            );
        }
        for c in &self.content {
            if c.path.starts_with('/') || c.path.split('/').any(|p| p == "..") {
                return fail(format!(
                    "content path '{}' must stay inside the local publisher folder",
                    c.path
                ));
            }
        }
        Ok(())
    }
}
