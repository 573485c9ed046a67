//! The machine as a scan sees it: installed packages from dpkg's status file, the restart
//! signal, files and commands for local publisher rules — all under a root folder (`/`, or
//! another root for tests and images).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use koshin_domain::compliance::Probe;
use sha2::{Digest, Sha256};

pub struct Machine {
    pub root: PathBuf,
    /// (name, architecture) → installed version.
    pub installed: HashMap<(String, String), String>,
    /// `/run/reboot-required` exists.
    pub restart_required: bool,
    /// Packages listed in `/run/reboot-required.pkgs`.
    pub restart_packages: Vec<String>,
}

/// Reads `<root>/var/lib/dpkg/status`: every package dpkg counts as installed (not
/// `not-installed` or `config-files`).
pub fn read_status(root: &Path) -> anyhow::Result<HashMap<(String, String), String>> {
    let path = root.join("var/lib/dpkg/status");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut out = HashMap::with_capacity(4096);
    for stanza in text.split("\n\n") {
        let (mut name, mut arch, mut version, mut status) = (None, None, None, None);
        for line in stanza.lines() {
            if let Some(v) = line.strip_prefix("Package: ") {
                name = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Architecture: ") {
                arch = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Version: ") {
                version = Some(v.trim());
            } else if let Some(v) = line.strip_prefix("Status: ") {
                status = Some(v.trim());
            }
        }
        let (Some(name), Some(version), Some(status)) = (name, version, status) else {
            continue;
        };
        let state = status.split_whitespace().nth(2).unwrap_or("");
        if matches!(state, "not-installed" | "config-files" | "") {
            continue;
        }
        out.insert(
            (name.to_string(), arch.unwrap_or("all").to_string()),
            version.to_string(),
        );
    }
    Ok(out)
}

impl Machine {
    pub fn read(root: &Path) -> anyhow::Result<Machine> {
        let installed = read_status(root)?;
        let flag = root.join("run/reboot-required");
        let restart_required = flag.exists();
        let restart_packages = std::fs::read_to_string(root.join("run/reboot-required.pkgs"))
            .map(|t| {
                t.lines()
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Machine {
            root: root.to_path_buf(),
            installed,
            restart_required,
            restart_packages,
        })
    }

    fn under_root(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }
}

impl Probe for Machine {
    fn installed_version(&self, name: &str, arch: Option<&str>) -> Option<String> {
        match arch {
            Some(a) => self
                .installed
                .get(&(name.to_string(), a.to_string()))
                .cloned(),
            None => self
                .installed
                .iter()
                .find(|((n, _), _)| n == name)
                .map(|(_, v)| v.clone()),
        }
    }
    fn file_exists(&self, path: &str) -> bool {
        self.under_root(path).exists()
    }
    fn file_sha256(&self, path: &str) -> Option<String> {
        std::fs::read(self.under_root(path))
            .ok()
            .map(|b| hex::encode(Sha256::digest(&b)))
    }
    fn command_exit_code(&self, command: &str) -> Option<i32> {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .env("KOSHIN_ROOT", &self.root)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()
            .and_then(|s| s.code())
    }
}

/// `(os, release)` from `<root>/etc/os-release`: ("Debian GNU/Linux", "12").
pub fn os_release(root: &Path) -> (String, String) {
    let text = std::fs::read_to_string(root.join("etc/os-release"))
        .or_else(|_| std::fs::read_to_string(root.join("usr/lib/os-release")))
        .unwrap_or_default();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let os = get("NAME");
    (
        if os.is_empty() { "Linux".into() } else { os },
        get("VERSION_ID"),
    )
}

/// The dpkg architecture of the root: `<root>/var/lib/dpkg/arch` (first line), else dpkg's own.
pub fn architecture(root: &Path) -> String {
    if let Ok(t) = std::fs::read_to_string(root.join("var/lib/dpkg/arch"))
        && let Some(a) = t.lines().next().map(str::trim).filter(|a| !a.is_empty())
    {
        return a.to_string();
    }
    std::process::Command::new("dpkg")
        .arg("--print-architecture")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "amd64".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_installed_packages_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("var/lib/dpkg")).unwrap();
        std::fs::write(
            dir.path().join("var/lib/dpkg/status"),
            "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\n\nPackage: b\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 2\n\nPackage: c\nStatus: install ok installed\nArchitecture: all\nVersion: 3\nDescription: x\n more\n",
        )
        .unwrap();
        let m = Machine::read(dir.path()).unwrap();
        assert_eq!(m.installed.len(), 2);
        assert_eq!(
            m.installed_version("a", Some("amd64")).as_deref(),
            Some("1.0")
        );
        assert_eq!(m.installed_version("c", Some("all")).as_deref(), Some("3"));
        assert!(m.installed_version("b", None).is_none());
        assert!(!m.restart_required);
    }
}
