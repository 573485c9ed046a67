//! Running the real `apt-get update` (and `apt-cache`) against test
//! archives, fully isolated from the host's APT configuration and state.

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
