//! Specifications of binary packages and building them into real `.deb`
//! files with `dpkg-deb --build`.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path};
use std::process::Command;

use crate::cmd::{err, run, write};

/// How `dpkg-deb --build -Z<type>` compresses the package's members (dpkg ≥ 1.21
/// compresses `control.tar` and `data.tar` alike).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DebCompression {
    /// `control.tar.gz`, `data.tar.gz` (`-Zgzip`).
    Gzip,
    /// `control.tar.xz`, `data.tar.xz` (`-Zxz`, what [`DebSpec::build`] uses).
    Xz,
    /// `control.tar.zst`, `data.tar.zst` (`-Zzstd`, Ubuntu's default).
    Zstd,
    /// Uncompressed `control.tar`, `data.tar` (`-Znone`).
    None,
}

impl DebCompression {
    /// The `-Z` argument of `dpkg-deb`.
    pub fn dpkg_deb_arg(self) -> &'static str {
        match self {
            DebCompression::Gzip => "-Zgzip",
            DebCompression::Xz => "-Zxz",
            DebCompression::Zstd => "-Zzstd",
            DebCompression::None => "-Znone",
        }
    }

    /// The member name suffix: `".gz"`, `".xz"`, `".zst"` or `""`.
    pub fn extension(self) -> &'static str {
        match self {
            DebCompression::Gzip => ".gz",
            DebCompression::Xz => ".xz",
            DebCompression::Zstd => ".zst",
            DebCompression::None => "",
        }
    }
}

/// A binary package to build: the `DEBIAN/control` fields plus the files it
/// installs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebSpec {
    /// `Package:`
    pub name: String,
    /// `Version:` (may carry an epoch, `1:2.0-1`; the pool file name drops it).
    pub version: String,
    /// `Architecture:`, e.g. `amd64` or `all`.
    pub arch: String,
    /// `Source: name [(version)]`; `None` means the source is named like the package.
    pub source: Option<(String, Option<String>)>,
    /// `Section:`
    pub section: String,
    /// `Priority:`
    pub priority: String,
    /// `Maintainer:`
    pub maintainer: String,
    /// `Depends:`
    pub depends: Option<String>,
    /// `Description:`: the first line is the synopsis, further lines form the
    /// extended description (they are indented; empty lines become ` .`).
    pub description: String,
    /// Further control fields, emitted in order after the standard ones
    /// (e.g. `Multi-Arch`, `Provides`, `Pre-Depends`, `Built-Using`).
    pub extra_fields: Vec<(String, String)>,
    /// Files installed: path (relative to `/`) and contents.
    pub files: Vec<(String, Vec<u8>)>,
    /// Maintainer scripts (`preinst`, `postinst`, `prerm`, `postrm`): name and
    /// contents, installed as `DEBIAN/<name>` with mode 0755.
    pub scripts: Vec<(String, String)>,
}

impl DebSpec {
    /// A package with section `misc`, priority `optional`, a generated
    /// description and a file `usr/share/doc/<name>/README`.
    pub fn new(name: &str, version: &str, arch: &str) -> Self {
        DebSpec {
            name: name.to_owned(),
            version: version.to_owned(),
            arch: arch.to_owned(),
            source: None,
            section: "misc".to_owned(),
            priority: "optional".to_owned(),
            maintainer: "Koshin Test <test@koshin.invalid>".to_owned(),
            depends: None,
            description: format!("test package {name}\nBuilt by koshin-testkit."),
            extra_fields: Vec::new(),
            files: vec![(
                format!("usr/share/doc/{name}/README"),
                format!("{name} {version}\n").into_bytes(),
            )],
            scripts: Vec::new(),
        }
    }

    /// Sets `Source: name [(version)]` (a binNMU has a source version that
    /// differs from the binary version).
    pub fn source(mut self, name: &str, version: Option<&str>) -> Self {
        self.source = Some((name.to_owned(), version.map(str::to_owned)));
        self
    }

    /// Sets the description (first line = synopsis).
    pub fn description(mut self, d: &str) -> Self {
        self.description = d.to_owned();
        self
    }

    /// Sets `Depends:`.
    pub fn depends(mut self, d: &str) -> Self {
        self.depends = Some(d.to_owned());
        self
    }

    /// Sets `Section:`.
    pub fn section(mut self, s: &str) -> Self {
        self.section = s.to_owned();
        self
    }

    /// Sets `Priority:`.
    pub fn priority(mut self, p: &str) -> Self {
        self.priority = p.to_owned();
        self
    }

    /// Adds another control field. An `Installed-Size` given here replaces the
    /// one computed from the files (e.g. to make a package look huge).
    pub fn field(mut self, name: &str, value: &str) -> Self {
        self.extra_fields.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Adds an installed file (path relative to `/`; a leading `/` is ignored).
    pub fn file(mut self, path: &str, contents: &[u8]) -> Self {
        self.files.push((path.to_owned(), contents.to_vec()));
        self
    }

    /// Adds (or replaces) a maintainer script: `name` is `preinst`, `postinst`,
    /// `prerm` or `postrm`, `contents` the whole script with its `#!` line, e.g.
    /// `.script("postinst", "#!/bin/sh\nexit 1\n")`. Scripts run by
    /// `dpkg --root=R --force-script-chrootless` run on the host with
    /// `DPKG_ROOT=R`: they must write under `$DPKG_ROOT`.
    pub fn script(mut self, name: &str, contents: &str) -> Self {
        self.scripts.retain(|(n, _)| n != name);
        self.scripts.push((name.to_owned(), contents.to_owned()));
        self
    }

    /// The source package name (`Source:` or else the package name).
    pub fn source_name(&self) -> &str {
        self.source.as_ref().map_or(&self.name, |(n, _)| n)
    }

    /// The pool file name, `<name>_<version without epoch>_<arch>.deb`.
    pub fn file_name(&self) -> String {
        let version = match self.version.split_once(':') {
            Some((epoch, rest)) if epoch.bytes().all(|b| b.is_ascii_digit()) => rest,
            _ => &self.version,
        };
        format!("{}_{}_{}.deb", self.name, version, self.arch)
    }

    /// Path relative to the archive root, Debian style:
    /// `pool/<component>/<prefix>/<source>/<file name>` where the prefix is
    /// the first letter of the source, or its first four for `lib*`.
    pub fn pool_path(&self, component: &str) -> String {
        let source = self.source_name();
        let prefix: String = if source.starts_with("lib") && source.len() > 3 {
            source.chars().take(4).collect()
        } else {
            source.chars().take(1).collect()
        };
        format!("pool/{component}/{prefix}/{source}/{}", self.file_name())
    }

    /// The `DEBIAN/control` text.
    pub fn control(&self) -> String {
        let installed_kib: usize = self.files.iter().map(|(_, c)| c.len().div_ceil(1024)).sum();
        let mut c = String::new();
        c.push_str(&format!("Package: {}\n", self.name));
        if let Some((name, version)) = &self.source {
            match version {
                Some(v) => c.push_str(&format!("Source: {name} ({v})\n")),
                None => c.push_str(&format!("Source: {name}\n")),
            }
        }
        c.push_str(&format!("Version: {}\n", self.version));
        c.push_str(&format!("Architecture: {}\n", self.arch));
        c.push_str(&format!("Maintainer: {}\n", self.maintainer));
        let size_given = self
            .extra_fields
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("Installed-Size"));
        if !size_given {
            c.push_str(&format!("Installed-Size: {}\n", installed_kib.max(1)));
        }
        if let Some(d) = &self.depends {
            c.push_str(&format!("Depends: {d}\n"));
        }
        for (k, v) in &self.extra_fields {
            c.push_str(&format!("{k}: {v}\n"));
        }
        if !self.section.is_empty() {
            c.push_str(&format!("Section: {}\n", self.section));
        }
        if !self.priority.is_empty() {
            c.push_str(&format!("Priority: {}\n", self.priority));
        }
        let mut lines = self.description.lines();
        let synopsis = lines.next().unwrap_or("").trim();
        let synopsis = if synopsis.is_empty() {
            "test package"
        } else {
            synopsis
        };
        c.push_str(&format!("Description: {synopsis}\n"));
        for line in lines {
            if line.trim().is_empty() {
                c.push_str(" .\n");
            } else {
                c.push(' ');
                c.push_str(line);
                c.push('\n');
            }
        }
        c
    }

    /// Builds the package with `dpkg-deb --build` (xz-compressed) into `out`
    /// (whose parent directory must exist). Timestamps are fixed via
    /// `SOURCE_DATE_EPOCH`, so building the same spec twice gives the same bytes.
    pub fn build(&self, out: &Path) -> io::Result<()> {
        self.build_compressed(out, DebCompression::Xz)
    }

    /// Like [`DebSpec::build`] with the members compressed as `compression` says.
    pub fn build_compressed(&self, out: &Path, compression: DebCompression) -> io::Result<()> {
        let stage = tempfile::Builder::new().prefix("kdeb").tempdir()?;
        let root = stage.path();
        set_mode(root, 0o755)?;
        let debian = root.join("DEBIAN");
        fs::create_dir(&debian)?;
        set_mode(&debian, 0o755)?;
        let control = debian.join("control");
        write(&control, self.control())?;
        set_mode(&control, 0o644)?;
        for (name, contents) in &self.scripts {
            if !matches!(name.as_str(), "preinst" | "postinst" | "prerm" | "postrm") {
                return Err(err(format!(
                    "invalid maintainer script {name:?} in package {}",
                    self.name
                )));
            }
            let script = debian.join(name);
            write(&script, contents)?;
            set_mode(&script, 0o755)?;
        }
        for (path, contents) in &self.files {
            let rel = Path::new(path.trim_start_matches('/'));
            let ok = !rel.as_os_str().is_empty()
                && rel.components().all(|c| matches!(c, Component::Normal(_)))
                && !rel.starts_with("DEBIAN");
            if !ok {
                return Err(err(format!(
                    "invalid file path {path:?} in package {}",
                    self.name
                )));
            }
            let dest = root.join(rel);
            let mut dir = dest.parent();
            let mut to_fix = Vec::new();
            while let Some(d) = dir {
                if d == root || d.exists() {
                    break;
                }
                to_fix.push(d.to_path_buf());
                dir = d.parent();
            }
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)?;
            }
            for d in to_fix {
                set_mode(&d, 0o755)?;
            }
            write(&dest, contents)?;
            let executable = rel
                .parent()
                .and_then(Path::file_name)
                .is_some_and(|d| d == "bin" || d == "sbin");
            set_mode(&dest, if executable { 0o755 } else { 0o644 })?;
        }
        run(Command::new("dpkg-deb")
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args([
                "--root-owner-group",
                "--uniform-compression",
                compression.dpkg_deb_arg(),
                "--build",
            ])
            .arg(root)
            .arg(out))?;
        Ok(())
    }
}

fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| err(format!("cannot chmod {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dpkg_deb(args: &[&str], deb: &Path) -> String {
        let out = run(Command::new("dpkg-deb").args(args).arg(deb)).expect("dpkg-deb");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn scripts_and_installed_size_reach_the_package() {
        let dir = tempfile::tempdir().expect("tempdir");
        let deb = dir.path().join("s.deb");
        DebSpec::new("s", "1", "all")
            .script("postinst", "#!/bin/sh\nexit 0\n")
            .script("preinst", "#!/bin/sh\nexit 1\n")
            .script("preinst", "#!/bin/sh\nexit 3\n")
            .field("Installed-Size", "123456")
            .build(&deb)
            .expect("build");
        assert_eq!(
            dpkg_deb(&["--field"], &deb)
                .matches("Installed-Size:")
                .count(),
            1
        );
        assert_eq!(
            dpkg_deb(&["--field"], &deb)
                .lines()
                .find(|l| l.starts_with("Installed-Size:")),
            Some("Installed-Size: 123456")
        );
        let info = dpkg_deb(&["--info"], &deb);
        assert!(info.contains("postinst"), "{info}");
        let preinst = run(Command::new("dpkg-deb")
            .args(["--info"])
            .arg(&deb)
            .arg("preinst"))
        .expect("preinst");
        assert_eq!(
            String::from_utf8_lossy(&preinst.stdout),
            "#!/bin/sh\nexit 3\n"
        );
        let bad = DebSpec::new("s", "1", "all").script("../x", "#!/bin/sh\n");
        assert!(bad.build(&dir.path().join("b.deb")).is_err());
    }
}
