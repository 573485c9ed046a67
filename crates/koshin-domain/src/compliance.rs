//! Compliance (C1): the state of one update on one client, and how a scan decides it —
//! product.md's applicability rules for APT updates, and the local publisher's detection
//! rules. The facts of the machine come in through [`Probe`]; this module reads nothing.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use crate::localpub::Detection;
use crate::version;

/// C1: Required, Not required, Installed — and Unknown where no state message arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpdateState {
    Unknown,
    Required,
    NotRequired,
    Installed,
}

impl UpdateState {
    pub fn code(self) -> i64 {
        match self {
            UpdateState::Unknown => 0,
            UpdateState::Required => 1,
            UpdateState::NotRequired => 2,
            UpdateState::Installed => 3,
        }
    }
    pub fn from_code(c: i64) -> Option<Self> {
        Some(match c {
            0 => UpdateState::Unknown,
            1 => UpdateState::Required,
            2 => UpdateState::NotRequired,
            3 => UpdateState::Installed,
            _ => return None,
        })
    }
    pub fn name(self) -> &'static str {
        match self {
            UpdateState::Unknown => "unknown",
            UpdateState::Required => "required",
            UpdateState::NotRequired => "not_required",
            UpdateState::Installed => "installed",
        }
    }
}

/// What a scan can ask of the machine.
pub trait Probe {
    /// The installed version of a binary package (`None`: not installed). `arch` `None`
    /// means any architecture.
    fn installed_version(&self, name: &str, arch: Option<&str>) -> Option<String>;
    fn file_exists(&self, path: &str) -> bool;
    fn file_sha256(&self, path: &str) -> Option<String>;
    /// The exit code of a command, `None` if it could not run.
    fn command_exit_code(&self, command: &str) -> Option<i32>;
}

/// A binary of an update as the client's catalog has it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetBinary {
    pub name: String,
    pub architecture: String,
    pub version: String,
}

/// One binary's part in a scan result: what is installed and what the update brings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageResult {
    pub name: String,
    pub arch: String,
    pub installed: Option<String>,
    pub target: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    pub state: UpdateState,
    /// For Required: the installed binaries that are older than the update's. For
    /// Installed: the installed binaries of the update.
    pub packages: Vec<PackageResult>,
}

/// product.md: compare each installed binary (same name and architecture) with that
/// binary's version in the update. Required if any is older; Installed if every installed
/// one is at or above; Not required if none of its binaries is installed.
pub fn evaluate_apt(binaries: &[TargetBinary], probe: &dyn Probe) -> Evaluation {
    let mut older = Vec::new();
    let mut current = Vec::new();
    for b in binaries {
        let Some(installed) = probe.installed_version(&b.name, Some(&b.architecture)) else {
            continue;
        };
        let r = PackageResult {
            name: b.name.clone(),
            arch: b.architecture.clone(),
            installed: Some(installed.clone()),
            target: b.version.clone(),
        };
        if version::compare_lenient(&installed, &b.version) == Ordering::Less {
            older.push(r);
        } else {
            current.push(r);
        }
    }
    if !older.is_empty() {
        Evaluation {
            state: UpdateState::Required,
            packages: older,
        }
    } else if !current.is_empty() {
        Evaluation {
            state: UpdateState::Installed,
            packages: current,
        }
    } else {
        Evaluation {
            state: UpdateState::NotRequired,
            packages: Vec::new(),
        }
    }
}

/// The local publisher's detection rules: applicable where `file_exists` holds and the
/// package of a package rule is installed; then Required if the package is below its bound,
/// the file's hash differs, or the command does not answer `installed_exit_code`.
pub fn evaluate_local(d: &Detection, probe: &dyn Probe) -> Evaluation {
    let not_required = Evaluation {
        state: UpdateState::NotRequired,
        packages: Vec::new(),
    };
    if let Some(path) = &d.file_exists
        && !probe.file_exists(path)
    {
        return not_required;
    }
    let mut needed = false;
    let mut packages = Vec::new();
    if let Some(rule) = &d.package {
        let Some(installed) = probe.installed_version(&rule.name, rule.architecture.as_deref())
        else {
            return not_required;
        };
        if version::compare_lenient(&installed, &rule.version_below) == Ordering::Less {
            needed = true;
        }
        packages.push(PackageResult {
            name: rule.name.clone(),
            arch: rule.architecture.clone().unwrap_or_default(),
            installed: Some(installed),
            target: rule.version_below.clone(),
        });
    }
    if let Some(rule) = &d.file_sha256
        && probe
            .file_sha256(&rule.path)
            .map(|h| h.to_ascii_lowercase())
            != Some(rule.sha256.to_ascii_lowercase())
    {
        needed = true;
    }
    if let Some(rule) = &d.command
        && probe.command_exit_code(&rule.run) != Some(rule.installed_exit_code)
    {
        needed = true;
    }
    Evaluation {
        state: if needed {
            UpdateState::Required
        } else {
            UpdateState::Installed
        },
        packages,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::localpub::{CommandRule, PackageRule};

    #[derive(Default)]
    struct Fake {
        pkgs: HashMap<(String, String), String>,
        files: HashMap<String, String>,
        exit: HashMap<String, i32>,
    }
    impl Probe for Fake {
        fn installed_version(&self, name: &str, arch: Option<&str>) -> Option<String> {
            self.pkgs
                .iter()
                .find(|((n, a), _)| n == name && arch.is_none_or(|x| x == a))
                .map(|(_, v)| v.clone())
        }
        fn file_exists(&self, path: &str) -> bool {
            self.files.contains_key(path)
        }
        fn file_sha256(&self, path: &str) -> Option<String> {
            self.files.get(path).cloned()
        }
        fn command_exit_code(&self, command: &str) -> Option<i32> {
            self.exit.get(command).copied()
        }
    }

    fn bin(name: &str, arch: &str, v: &str) -> TargetBinary {
        TargetBinary {
            name: name.into(),
            architecture: arch.into(),
            version: v.into(),
        }
    }

    fn check(installed: &[(&str, &str, &str)], binaries: &[TargetBinary], expected: UpdateState) {
        let mut f = Fake::default();
        for (n, a, v) in installed {
            f.pkgs.insert((n.to_string(), a.to_string()), v.to_string());
        }
        assert_eq!(evaluate_apt(binaries, &f).state, expected, "{installed:?}");
    }

    #[test]
    fn applies_product_md_rules() {
        let u = [
            bin("libssl3", "amd64", "3.0.17-1~deb12u3"),
            bin("openssl", "amd64", "3.0.17-1~deb12u3"),
        ];
        check(&[], &u, UpdateState::NotRequired);
        check(
            &[("libssl3", "amd64", "3.0.17-1~deb12u2")],
            &u,
            UpdateState::Required,
        );
        check(
            &[("libssl3", "amd64", "3.0.17-1~deb12u3")],
            &u,
            UpdateState::Installed,
        );
        check(
            &[("libssl3", "amd64", "3.0.18-1")],
            &u,
            UpdateState::Installed,
        );
        check(
            &[
                ("libssl3", "amd64", "3.0.17-1~deb12u3"),
                ("openssl", "amd64", "3.0.11-1"),
            ],
            &u,
            UpdateState::Required,
        );
        // Another architecture is another package.
        check(&[("libssl3", "i386", "1.0")], &u, UpdateState::NotRequired);
        // binNMU: the binary's own version counts, not the source's.
        check(
            &[("hello", "amd64", "2.10-3")],
            &[bin("hello", "amd64", "2.10-3+b1")],
            UpdateState::Required,
        );
    }

    #[test]
    fn applies_local_detection_rules() {
        let mut f = Fake::default();
        let d = Detection {
            package: Some(PackageRule {
                name: "contoso-agent".into(),
                architecture: None,
                version_below: "5.1".into(),
            }),
            ..Detection::default()
        };
        assert_eq!(evaluate_local(&d, &f).state, UpdateState::NotRequired);
        f.pkgs
            .insert(("contoso-agent".into(), "amd64".into()), "5.0".into());
        assert_eq!(evaluate_local(&d, &f).state, UpdateState::Required);
        f.pkgs
            .insert(("contoso-agent".into(), "amd64".into()), "5.1".into());
        assert_eq!(evaluate_local(&d, &f).state, UpdateState::Installed);
        let d = Detection {
            file_exists: Some("/opt/x".into()),
            command: Some(CommandRule {
                run: "check".into(),
                installed_exit_code: 0,
            }),
            ..Detection::default()
        };
        assert_eq!(evaluate_local(&d, &f).state, UpdateState::NotRequired);
        f.files.insert("/opt/x".into(), "ab".into());
        assert_eq!(evaluate_local(&d, &f).state, UpdateState::Required);
        f.exit.insert("check".into(), 0);
        assert_eq!(evaluate_local(&d, &f).state, UpdateState::Installed);
    }
}
