//! Running the real `apt-get update` (and `apt-cache`) against test
//! archives, fully isolated from the host's APT configuration and state, and
//! the real `apt-get install` into a throwaway dpkg root ([`DpkgRoot`]), to
//! prove an archive's packages really install.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use tempfile::TempDir;

use crate::cmd::{err, write};

/// A throwaway APT configuration and state directory.
///
/// Commands get `APT_CONFIG` pointing at a generated file that disables the
/// host's `/etc/apt/apt.conf{,.d}` and redirects sources, keyrings, lists,
/// caches and the dpkg status to the temporary directory, so running as root
/// touches no system state. Architecture is `amd64`, languages `none`,
/// retries `0`, the download sandbox user `root`, and
/// `APT::Update::Error-Mode "any"` so that any failed index download (even a
/// transient one such as a 503) makes `apt-get update` exit non-zero.
pub struct AptClient {
    dir: TempDir,
}

impl std::fmt::Debug for AptClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AptClient")
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// The result of one apt command.
#[derive(Clone, Debug)]
pub struct AptRun {
    /// Whether the exit status was 0.
    pub exit_ok: bool,
    /// Captured standard output.
    pub stdout: String,
    /// Captured standard error.
    pub stderr: String,
}

impl AptRun {
    /// Lines of stdout and stderr starting with `E:` or `W:`.
    pub fn problems(&self) -> Vec<&str> {
        self.stdout
            .lines()
            .chain(self.stderr.lines())
            .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
            .collect()
    }

    /// Exit status 0 and no `E:`/`W:` lines.
    pub fn clean(&self) -> bool {
        self.exit_ok && self.problems().is_empty()
    }

    /// stdout and stderr together, for assertion messages.
    pub fn output(&self) -> String {
        format!("--- stdout\n{}--- stderr\n{}", self.stdout, self.stderr)
    }
}

impl AptClient {
    /// A client whose `sources.list` has `sources` (one-line format).
    pub fn new(sources: &str) -> io::Result<AptClient> {
        let dir = tempfile::Builder::new().prefix("kapt").tempdir()?;
        let d = dir.path();
        for sub in [
            "empty",
            "state/lists/partial",
            "cache/archives/partial",
            "log",
        ] {
            fs::create_dir_all(d.join(sub))?;
        }
        write(&d.join("status"), "")?;
        write(&d.join("sources.list"), sources)?;
        let p = |s: &str| d.join(s).display().to_string();
        let config = format!(
            r#"Dir::Etc::Main "/dev/null";
Dir::Etc::Parts "{empty}";
Dir::Etc::SourceList "{sources}";
Dir::Etc::SourceParts "{empty}";
Dir::Etc::Trusted "{empty}/none.gpg";
Dir::Etc::TrustedParts "{empty}";
Dir::Etc::Preferences "{empty}/none.pref";
Dir::Etc::PreferencesParts "{empty}";
Dir::State "{state}";
Dir::State::Lists "{lists}";
Dir::State::status "{status}";
Dir::Cache "{cache}";
Dir::Log "{log}";
Debug::NoLocking "true";
APT::Sandbox::User "root";
APT::Architecture "amd64";
APT::Architectures {{ "amd64"; }};
APT::Get::List-Cleanup "false";
APT::Update::Error-Mode "any";
Acquire::Languages "none";
Acquire::Retries "0";
Acquire::http::Timeout "10";
"#,
            empty = p("empty"),
            sources = p("sources.list"),
            state = p("state"),
            lists = p("state/lists"),
            status = p("status"),
            cache = p("cache"),
            log = p("log"),
        );
        write(&d.join("apt.conf"), config)?;
        Ok(AptClient { dir })
    }

    /// A one-line source: `deb [signed-by=KEYRING arch=amd64] URI SUITE COMPONENTS`.
    pub fn deb_line(keyring: &Path, uri: &str, suite: &str, components: &[&str]) -> String {
        format!(
            "deb [signed-by={} arch=amd64] {uri} {suite} {}\n",
            keyring.display(),
            components.join(" ")
        )
    }

    /// The generated `APT_CONFIG` file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("apt.conf")
    }

    /// Where `apt-get update` stores the downloaded indexes.
    pub fn lists_dir(&self) -> PathBuf {
        self.dir.path().join("state/lists")
    }

    /// Replaces the `sources.list`.
    pub fn set_sources(&self, sources: &str) -> io::Result<()> {
        write(&self.dir.path().join("sources.list"), sources)
    }

    /// A command for an apt tool (`apt-get`, `apt-cache`, ...) with the
    /// isolated configuration and no proxy from the environment.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("APT_CONFIG", self.config_path())
            .env("LC_ALL", "C.UTF-8")
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .env_remove("https_proxy")
            .env_remove("HTTPS_PROXY")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `apt-get update`; a failing update is an `Ok(AptRun)` with
    /// `exit_ok == false`, only failing to start apt-get is an error.
    pub fn update(&self) -> io::Result<AptRun> {
        self.run("apt-get", &["-q", "update"])
    }

    /// Runs `apt-get install -y PACKAGES` into `root`: apt resolves against
    /// the root's dpkg status and the indexes of the last [`AptClient::update`],
    /// downloads the `.deb`s (checking them against the signed indexes) and
    /// runs `dpkg --root=ROOT` to unpack and configure them there.
    pub fn install(&self, root: &DpkgRoot, packages: &[&str]) -> io::Result<AptRun> {
        let status = format!("Dir::State::status={}", root.status_file().display());
        let dpkg_root = format!("DPkg::Options::=--root={}", root.path().display());
        let dpkg_log = format!(
            "DPkg::Options::=--log={}",
            root.path().join("var/log/dpkg.log").display()
        );
        let mut args = vec![
            "-q",
            "-y",
            "-o",
            &status,
            "-o",
            &dpkg_root,
            "-o",
            &dpkg_log,
            "-o",
            "DPkg::Options::=--force-not-root",
            "-o",
            "DPkg::Options::=--force-script-chrootless",
            "-o",
            "DPkg::Options::=--force-unsafe-io",
            "install",
        ];
        args.extend_from_slice(packages);
        self.run("apt-get", &args)
    }

    /// Runs `apt-cache ARGS` (e.g. `["policy", "hello"]`, `["show", "hello"]`).
    pub fn apt_cache(&self, args: &[&str]) -> io::Result<AptRun> {
        self.run("apt-cache", args)
    }

    /// Runs an apt program with the isolated configuration.
    pub fn run(&self, program: &str, args: &[&str]) -> io::Result<AptRun> {
        let out = self.command(program).args(args).output().map_err(|e| {
            err(format!(
                "cannot run {program} (is the `apt` package installed?): {e}"
            ))
        })?;
        Ok(AptRun {
            exit_ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }
}

/// A minimal dpkg root in a temporary directory for `dpkg --root` (and
/// [`AptClient::install`]): an empty `var/lib/dpkg/status` and `available`,
/// the `info`, `updates` and `triggers` directories, architecture `amd64`,
/// and `var/log` for dpkg's log.
pub struct DpkgRoot {
    dir: TempDir,
}

impl std::fmt::Debug for DpkgRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpkgRoot")
            .field("dir", &self.dir.path())
            .finish()
    }
}

impl DpkgRoot {
    /// An empty root: nothing installed.
    pub fn new() -> io::Result<DpkgRoot> {
        let dir = tempfile::Builder::new().prefix("kroot").tempdir()?;
        let d = dir.path();
        for sub in [
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/lib/dpkg/triggers",
            "var/log",
        ] {
            fs::create_dir_all(d.join(sub))?;
        }
        write(&d.join("var/lib/dpkg/status"), "")?;
        write(&d.join("var/lib/dpkg/available"), "")?;
        write(&d.join("var/lib/dpkg/arch"), "amd64\n")?;
        Ok(DpkgRoot { dir })
    }

    /// The root directory (what `dpkg --root` gets).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `ROOT/var/lib/dpkg/status`.
    pub fn status_file(&self) -> PathBuf {
        self.dir.path().join("var/lib/dpkg/status")
    }

    /// What `dpkg --root ROOT -s PACKAGE` prints (the package's status
    /// stanza), or `None` when dpkg knows no such package.
    pub fn status(&self, package: &str) -> io::Result<Option<String>> {
        let out = Command::new("dpkg")
            .arg(format!("--root={}", self.dir.path().display()))
            .args(["-s", package])
            .env("LC_ALL", "C.UTF-8")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                err(format!(
                    "cannot run dpkg (is the `dpkg` package installed?): {e}"
                ))
            })?;
        if out.status.success() {
            Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
        } else {
            Ok(None)
        }
    }

    /// The `Status:` and `Version:` of an installed or half-installed
    /// package (e.g. `("install ok installed", "2.10-3")`).
    pub fn package_state(&self, package: &str) -> io::Result<Option<(String, String)>> {
        let Some(stanza) = self.status(package)? else {
            return Ok(None);
        };
        let field = |name: &str| {
            stanza
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        Ok(Some((field("Status:"), field("Version:"))))
    }
}
