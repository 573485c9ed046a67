//! Installing a deployment's packages with the system's own tools: exactly the binary
//! package versions the deployment names, each from a `.deb` downloaded from the
//! distribution point and verified against the SHA-256 and size the site gave, installed
//! with `dpkg` under a root (`/` on a real machine, a throwaway root in tests). Nothing
//! else is added, removed or upgraded: apt never resolves anything here.
//!
//! # Order of work
//!
//! 1. [`Installer::download`] fetches each `.deb` into the cache as `<name>.partial`,
//!    resuming an interrupted transfer with `Range: bytes=N-`, refuses more bytes than the
//!    deployment's size, and renames the file to its final name only once size and SHA-256
//!    match. A mismatch deletes the file. A verified file already in the cache is not
//!    fetched again, so the cache also holds the versions a rollback needs.
//! 2. [`Installer::install`] changes nothing until every check passed:
//!    - the free-space rule ([`Installer::check_space`]): the packages' `Installed-Size`
//!      plus 10 MiB must be free on the file system of the root;
//!    - `dpkg --no-act --install` on the real database: `Pre-Depends`, `Conflicts`,
//!      `Breaks`, the architecture, the archive itself. dpkg's dry run says "will remove X in
//!      favour of Y" when a package conflicts with and replaces an installed one; that
//!      removal is refused, since the deployment may not take away what the user has;
//!    - `dpkg --no-act --configure` against a scratch copy of the status database in which
//!      the deployment's packages are recorded as unpacked. dpkg's `--no-act --install`
//!      stops after the unpack phase and never checks `Depends`; this second dry run makes
//!      dpkg itself judge them (alternatives, versions, `Provides`, multi-arch) with its own
//!      message, without touching the real database.
//! 3. The real `dpkg --install`, with `--force-downgrade` (a rollback reinstalls an earlier
//!    version; that is the caller's explicit choice, not dpkg's default to rely on),
//!    `--force-confdef --force-confold` (a configuration file the administrator changed is
//!    kept, never asked about: no one answers prompts here). For a root other than `/`,
//!    `--root`, `--force-not-root` and `--force-script-chrootless`: maintainer scripts run
//!    without chroot with `DPKG_ROOT` set (dpkg's contract for such roots), so a test root
//!    needs no shell of its own.
//! 4. The result is read back from dpkg's database (`dpkg-query`); a package not at the
//!    version asked for is an error even if dpkg exited 0. Packages outside the deployment
//!    whose version or presence changed are listed in [`InstallOutcome::other_changes`].
//!
//! # After a failure
//!
//! A refusal by the checks above changes nothing. dpkg unwinds a failing `preinst` or a
//! file that belongs to another package itself: the old version stays installed and
//! `dpkg --audit` prints nothing. A failing `postinst` leaves the package half-configured
//! (and packages of the same run that depend on it unpacked); then, for the deployment's
//! packages only, in this order:
//!
//! 1. `dpkg --configure` once more for the deployment's packages that are not configured
//!    (a script can fail transiently; packages left unpacked because they depend on the one
//!    that failed are configured too when it now succeeds). Only these packages are named,
//!    never `--configure -a`, so no other package the machine had pending is touched.
//! 2. A package that was **not installed before** this run and is still not configured is
//!    removed again (`dpkg --remove`): that restores the machine as it was, and it removes
//!    nothing the user had.
//! 3. A package that was installed before at another version is reinstalled at that
//!    version when its `.deb` is in the cache (the caller may have downloaded it for this
//!    purpose): the machine is back at the version that worked.
//! 4. Otherwise the package stays as dpkg left it (half-configured or unpacked): removing
//!    software the user had would be worse than a package whose configuration must be
//!    retried. **This is the one case in which `dpkg --audit` is not clean afterwards**
//!    (besides a step 2 or 3 whose own scripts fail too, or a failure dpkg cannot unwind,
//!    such as an old version's `postrm` failing during the unwinding); the error is
//!    [`InstallError::MaintainerScript`] and its output says what was tried and ends with
//!    `dpkg --audit`'s report.
//!
//! The error returned is always the first failure; what the recovery did is appended to
//! its output. Exit codes are checked everywhere; dpkg's output (stdout and stderr in order)
//! is captured and its error lines are the error's one-line message.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// What must stay free on the root's file system after the packages' installed size.
pub const SPACE_MARGIN_BYTES: u64 = 10 * 1024 * 1024;
/// Attempts of one [`Installer::download`] call (each later one resumes the earlier).
pub const DOWNLOAD_ATTEMPTS: usize = 3;

/// One binary package of a deployment: exactly this version, from this URL on the
/// distribution point, with this SHA-256 and size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallFile {
    pub package: String,
    pub version: String,
    pub architecture: String,
    pub url: String,
    /// Lower- or upper-case hex.
    pub sha256: String,
    pub size: u64,
}

/// Installs `.deb` files with dpkg under a root; downloads into a cache directory.
#[derive(Clone, Debug)]
pub struct Installer {
    root: PathBuf,
    cache: PathBuf,
    /// The root is `/`: plain dpkg, no `--root` and no forcing.
    host: bool,
}

/// What an installation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InstallOutcome {
    /// (package, architecture, version) as dpkg's database says after the run.
    pub installed: Vec<(String, String, String)>,
    /// `<root>/run/reboot-required` exists after the run.
    pub restart_required: bool,
    /// The packages `<root>/run/reboot-required.pkgs` lists.
    pub restart_packages: Vec<String>,
    /// Everything dpkg printed (stdout and stderr, in order).
    pub dpkg_output: String,
    /// Packages outside the deployment whose version or presence changed, as
    /// `name:arch before -> after` (dpkg's dry run refuses the known causes, so this is
    /// expected to be empty).
    pub other_changes: Vec<String>,
}

/// Why a download or an installation failed. The message is one line with the reason
/// (dpkg's own error lines); URLs lose their credentials and query strings.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("cannot download {url}: {reason}")]
    Download { url: String, reason: String },
    #[error("{file} does not match the deployment: expected {expected}, got {actual} (deleted)")]
    Checksum {
        file: String,
        expected: String,
        actual: String,
    },
    #[error(
        "not enough disk space under the dpkg root: {free} bytes free, {needed} needed (installed size + 10 MiB)"
    )]
    NoSpace { free: u64, needed: u64 },
    #[error("dependency problem, nothing was changed: {0}")]
    Dependencies(String),
    #[error("maintainer script of {package} failed: {}", summary(.output))]
    MaintainerScript { package: String, output: String },
    #[error("dpkg failed ({}): {}", exit_text(*.code), summary(.output))]
    Dpkg { code: Option<i32>, output: String },
    #[error("invalid package: {0}")]
    Invalid(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> InstallError {
    let context = context.into();
    move |source| InstallError::Io { context, source }
}

fn exit_text(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("exit code {c}"),
        None => "killed by a signal".to_string(),
    }
}

impl InstallFile {
    fn check(&self) -> Result<(), InstallError> {
        if !valid_package(&self.package) {
            return Err(InstallError::Invalid(format!(
                "package name {:?}",
                self.package
            )));
        }
        if !valid_version(&self.version) {
            return Err(InstallError::Invalid(format!(
                "version {:?} of {}",
                self.version, self.package
            )));
        }
        if !valid_arch(&self.architecture) {
            return Err(InstallError::Invalid(format!(
                "architecture {:?} of {}",
                self.architecture, self.package
            )));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InstallError::Invalid(format!(
                "SHA-256 of {} is not 64 hex digits",
                self.package
            )));
        }
        Ok(())
    }
}

fn valid_package(s: &str) -> bool {
    s.len() >= 2
        && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

fn valid_version(s: &str) -> bool {
    !s.is_empty()
        && s.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.~:".contains(&b))
}

fn valid_arch(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A URL without user information, query or fragment, for messages.
fn redact(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or("");
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => url.to_string(),
    }
}

/// An error and its causes on one line, without the URL reqwest puts in.
fn reqwest_reason(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = e.to_string();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(c) = cur {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cur = c.source();
    }
    s
}

/// One attempt of a download failed; `Retry` means another attempt may resume it.
enum Fetch {
    Retry(InstallError),
    Fatal(InstallError),
}

/// A `.deb` as `dpkg-deb --field` describes it.
#[derive(Clone, Debug)]
struct Deb {
    path: PathBuf,
    package: String,
    version: String,
    arch: String,
    installed_kib: u64,
    /// The control stanza as dpkg-deb printed it.
    control: String,
}

impl Deb {
    fn key(&self) -> (String, String) {
        (self.package.clone(), self.arch.clone())
    }
    fn spec(&self) -> String {
        format!("{}:{}", self.package, self.arch)
    }
}

/// (name, architecture) → (dpkg state such as `installed`, version).
type Snapshot = BTreeMap<(String, String), (String, String)>;

/// A state in which dpkg counts a package as configured.
fn configured(state: &str) -> bool {
    state == "installed"
}

/// Installed in any way (what a rollback can return to or must not remove).
fn present(state: &str) -> bool {
    !matches!(state, "not-installed" | "config-files" | "")
}

/// The output of one tool run.
struct Run {
    code: Option<i32>,
    ok: bool,
    output: String,
}

impl Installer {
    pub fn new(root: &Path, cache: &Path) -> Installer {
        let host = root
            .canonicalize()
            .unwrap_or_else(|_| root.to_path_buf())
            .as_os_str()
            == "/";
        Installer {
            root: root.to_path_buf(),
            cache: cache.to_path_buf(),
            host,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn cache(&self) -> &Path {
        &self.cache
    }

    /// Where the cache keeps a package's `.deb`: `<name>_<version>_<arch>.deb` with the
    /// epoch's colon written `%3a`, as apt names its archives.
    pub fn cache_path(&self, package: &str, version: &str, architecture: &str) -> PathBuf {
        self.cache.join(format!(
            "{package}_{}_{architecture}.deb",
            version.replace(':', "%3a")
        ))
    }

    /// Downloads one file into the cache, resuming a partial download with HTTP Range
    /// (within this call up to [`DOWNLOAD_ATTEMPTS`] times, and across calls: the partial
    /// file stays), verifies size and SHA-256 (a mismatch deletes it and is an error); a
    /// file already in the cache with the right hash is not downloaded again. Timeouts are
    /// the client's; one file must not be downloaded by two calls at once.
    pub async fn download(
        &self,
        http: &reqwest::Client,
        f: &InstallFile,
    ) -> Result<PathBuf, InstallError> {
        f.check()?;
        let want = f.sha256.to_ascii_lowercase();
        let dest = self.cache_path(&f.package, &f.version, &f.architecture);
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let part = self.cache.join(format!("{name}.partial"));
        tokio::fs::create_dir_all(&self.cache)
            .await
            .map_err(io_err(format!("cannot create {}", self.cache.display())))?;

        if let Ok(meta) = tokio::fs::metadata(&dest).await {
            if meta.len() == f.size && sha256_file(&dest).await? == want {
                return Ok(dest);
            }
            remove(&dest)?;
        }

        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut have = tokio::fs::metadata(&part)
                .await
                .map(|m| m.len())
                .unwrap_or(0);
            if have > f.size {
                remove(&part)?;
                have = 0;
            }
            if have == f.size && have > 0 {
                break;
            }
            match self.fetch(http, f, &part, have).await {
                Ok(()) => break,
                Err(Fetch::Retry(e)) if attempt < DOWNLOAD_ATTEMPTS => {
                    tracing::info!("download of {} interrupted, resuming: {e}", f.package);
                }
                Err(Fetch::Retry(e) | Fetch::Fatal(e)) => return Err(e),
            }
        }

        let got = tokio::fs::metadata(&part)
            .await
            .map_err(io_err(format!("cannot read {}", part.display())))?
            .len();
        if got != f.size {
            remove(&part)?;
            return Err(InstallError::Checksum {
                file: name,
                expected: format!("{} bytes", f.size),
                actual: format!("{got} bytes"),
            });
        }
        let actual = sha256_file(&part).await?;
        if actual != want {
            remove(&part)?;
            return Err(InstallError::Checksum {
                file: name,
                expected: format!("SHA-256 {want}"),
                actual: format!("SHA-256 {actual}"),
            });
        }
        tokio::fs::rename(&part, &dest)
            .await
            .map_err(io_err(format!("cannot rename {}", part.display())))?;
        Ok(dest)
    }

    /// One GET, from byte `have` of the partial file on.
    async fn fetch(
        &self,
        http: &reqwest::Client,
        f: &InstallFile,
        part: &Path,
        have: u64,
    ) -> Result<(), Fetch> {
        let url = redact(&f.url);
        let download = |reason: String| InstallError::Download {
            url: url.clone(),
            reason,
        };
        let too_big = |actual: String| InstallError::Checksum {
            file: part
                .file_name()
                .map(|n| n.to_string_lossy().trim_end_matches(".partial").to_string())
                .unwrap_or_default(),
            expected: format!("{} bytes", f.size),
            actual,
        };
        let mut req = http.get(&f.url);
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| Fetch::Retry(download(reqwest_reason(e))))?;
        let status = resp.status().as_u16();
        let mut offset = match status {
            206 if have > 0 => {
                let range = resp
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_content_range);
                match range {
                    Some((_, Some(total))) if total != f.size => {
                        remove(part).map_err(Fetch::Fatal)?;
                        return Err(Fetch::Fatal(too_big(format!("{total} bytes"))));
                    }
                    Some((start, _)) if start == have => have,
                    _ => {
                        remove(part).map_err(Fetch::Fatal)?;
                        return Err(Fetch::Retry(download(
                            "the server answered another range than asked; starting over".into(),
                        )));
                    }
                }
            }
            200 => {
                if let Some(len) = resp.content_length()
                    && len != f.size
                {
                    remove(part).map_err(Fetch::Fatal)?;
                    return Err(Fetch::Fatal(too_big(format!("{len} bytes"))));
                }
                0
            }
            416 if have > 0 => {
                remove(part).map_err(Fetch::Fatal)?;
                return Err(Fetch::Retry(download(
                    "range not satisfiable; starting over".into(),
                )));
            }
            _ => return Err(Fetch::Fatal(download(format!("HTTP status {status}")))),
        };
        let mut file = if offset == 0 {
            tokio::fs::File::create(part).await
        } else {
            tokio::fs::OpenOptions::new().append(true).open(part).await
        }
        .map_err(|e| Fetch::Fatal(io_err(format!("cannot write {}", part.display()))(e)))?;
        let write_err = |e| Fetch::Fatal(io_err(format!("cannot write {}", part.display()))(e));
        loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => {
                    offset = offset.saturating_add(bytes.len() as u64);
                    if offset > f.size {
                        drop(file);
                        remove(part).map_err(Fetch::Fatal)?;
                        return Err(Fetch::Fatal(too_big(format!("more than {} bytes", f.size))));
                    }
                    file.write_all(&bytes).await.map_err(write_err)?;
                }
                Ok(None) => break,
                Err(e) => {
                    file.flush().await.map_err(write_err)?;
                    return Err(Fetch::Retry(download(format!(
                        "{} after {offset} of {} bytes",
                        reqwest_reason(e),
                        f.size
                    ))));
                }
            }
        }
        file.flush().await.map_err(write_err)?;
        if offset < f.size {
            return Err(Fetch::Retry(download(format!(
                "the transfer ended after {offset} of {} bytes",
                f.size
            ))));
        }
        Ok(())
    }

    /// Free space check: the seeds' rule — at least 10 MB (here 10 MiB) free on the file
    /// system of the root after the packages' installed size (`Installed-Size` of each
    /// `.deb`, counted in full even for an upgrade); error otherwise (before touching
    /// anything).
    pub fn check_space(&self, files: &[PathBuf]) -> Result<(), InstallError> {
        let debs = files
            .iter()
            .map(|p| inspect(p))
            .collect::<Result<Vec<_>, _>>()?;
        self.check_space_for(&debs)
    }

    fn check_space_for(&self, debs: &[Deb]) -> Result<(), InstallError> {
        let installed = debs.iter().fold(0u64, |acc, d| {
            acc.saturating_add(d.installed_kib.saturating_mul(1024))
        });
        let needed = installed.saturating_add(SPACE_MARGIN_BYTES);
        let free = free_bytes(&self.root)?;
        if free < needed {
            return Err(InstallError::NoSpace { free, needed });
        }
        Ok(())
    }

    /// Installs exactly these .debs with dpkg under the root: first a dry run that
    /// changes nothing (dependencies, conflicts), then the real install; reads the result
    /// back from dpkg's status; reports whether a restart is required (the platform signal
    /// `<root>/run/reboot-required` appeared or exists, and which packages asked for it
    /// via reboot-required.pkgs). See the module's documentation for what happens after a
    /// failure, and the one case that leaves the database not clean.
    pub fn install(&self, debs: &[PathBuf]) -> Result<InstallOutcome, InstallError> {
        if debs.is_empty() {
            return Ok(InstallOutcome::default());
        }
        let debs = debs
            .iter()
            .map(|p| inspect(p))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, d) in debs.iter().enumerate() {
            if debs[..i].iter().any(|e| e.key() == d.key()) {
                return Err(InstallError::Invalid(format!(
                    "{} is given twice",
                    d.spec()
                )));
            }
        }
        self.check_space_for(&debs)?;
        let before = self.snapshot()?;

        // Dry run 1: the unpack phase on the real database.
        let mut dry = self.dpkg(false);
        dry.arg("--no-act")
            .args(install_options())
            .arg("--install")
            .args(debs.iter().map(|d| &d.path));
        let run = run_tool(dry, "dpkg")?;
        if !run.ok {
            return Err(classify_dry(run));
        }
        if let Some(removal) = removals(&run.output) {
            return Err(InstallError::Dependencies(removal));
        }

        // Dry run 2: dpkg's own Depends check against a scratch copy of the database.
        self.check_depends(&debs)?;

        // The real run.
        let mut real = self.dpkg(true);
        real.args(install_options())
            .arg("--install")
            .args(debs.iter().map(|d| &d.path));
        let run = run_tool(real, "dpkg")?;
        let mut output = run.output.clone();
        if !run.ok {
            let first = classify_real(&run, &debs);
            let fixed = self.recover(&debs, &before, &mut output)?;
            if !fixed {
                return Err(with_output(first, output));
            }
        }

        let after = self.snapshot()?;
        let mut installed = Vec::with_capacity(debs.len());
        for d in &debs {
            match after.get(&d.key()) {
                Some((state, version)) if configured(state) && *version == d.version => {
                    installed.push((d.package.clone(), d.arch.clone(), version.clone()));
                }
                other => {
                    let now = other.map_or("not installed".to_string(), |(s, v)| {
                        format!("{s} at version {v}")
                    });
                    output.push_str(&format!(
                        "koshin: after dpkg ({}), {} is {now}, not installed at {}\n",
                        exit_text(run.code),
                        d.spec(),
                        d.version
                    ));
                    return Err(InstallError::Dpkg {
                        code: run.code,
                        output,
                    });
                }
            }
        }
        let other_changes = changes(&before, &after, &debs);
        let (restart_required, restart_packages) = self.restart_signal();
        Ok(InstallOutcome {
            installed,
            restart_required,
            restart_packages,
            dpkg_output: output,
            other_changes,
        })
    }

    /// The version dpkg's database has for `package:architecture` when it is configured
    /// (state `installed`); `None` when it is absent or not configured (unpacked,
    /// half-configured, only configuration files left).
    pub fn installed_version(
        &self,
        package: &str,
        architecture: &str,
    ) -> Result<Option<String>, InstallError> {
        Ok(self
            .snapshot()?
            .remove(&(package.to_string(), architecture.to_string()))
            .filter(|(state, _)| configured(state))
            .map(|(_, v)| v))
    }

    /// What `dpkg --audit` prints: empty when the database is consistent.
    pub fn audit(&self) -> Result<String, InstallError> {
        let mut cmd = self.dpkg(false);
        cmd.arg("--audit");
        let run = run_tool(cmd, "dpkg")?;
        // dpkg --audit exits 1 when it found something, and prints it.
        if !run.ok && run.output.trim().is_empty() {
            return Err(InstallError::Dpkg {
                code: run.code,
                output: run.output,
            });
        }
        Ok(run.output)
    }

    fn admindir(&self) -> PathBuf {
        self.root.join("var/lib/dpkg")
    }

    /// A dpkg command for this root; `log` keeps dpkg's log (`<root>/var/log/dpkg.log`,
    /// the system's own on `/`), otherwise it goes nowhere (a dry run logs what it would
    /// do as if it did it).
    fn dpkg(&self, log: bool) -> Command {
        let mut c = Command::new("dpkg");
        if !self.host {
            c.arg(arg("--root=", &self.root));
            c.args(["--force-not-root", "--force-script-chrootless"]);
        }
        let log_dir = self.root.join("var/log");
        if !log {
            c.arg("--log=/dev/null");
        } else if !self.host {
            if log_dir.is_dir() {
                c.arg(arg("--log=", &log_dir.join("dpkg.log")));
            } else {
                c.arg("--log=/dev/null");
            }
        }
        tool_env(&mut c);
        c
    }

    /// Every package dpkg's database knows, read with `dpkg-query` (which also reads the
    /// journal a crashed dpkg may have left).
    fn snapshot(&self) -> Result<Snapshot, InstallError> {
        let mut c = Command::new("dpkg-query");
        if !self.host {
            c.arg(arg("--admindir=", &self.admindir()));
        }
        c.args([
            "--show",
            "--showformat=${Package}\\t${Architecture}\\t${Version}\\t${Status}\\n",
        ]);
        tool_env(&mut c);
        let mut out = Snapshot::new();
        let run = run_tool(c, "dpkg-query")?;
        if !run.ok {
            return Err(InstallError::Dpkg {
                code: run.code,
                output: run.output,
            });
        }
        for line in run.output.lines() {
            let mut f = line.split('\t');
            let (Some(name), Some(arch), Some(version), Some(status)) =
                (f.next(), f.next(), f.next(), f.next())
            else {
                continue;
            };
            let state = status.split_whitespace().nth(2).unwrap_or("").to_string();
            out.insert(
                (name.to_string(), arch.to_string()),
                (state, version.to_string()),
            );
        }
        Ok(out)
    }

    /// dpkg's `--no-act --install` never reaches the configure phase, so it cannot say
    /// whether `Depends` are met. Copy the status database (and any journal) into a scratch
    /// admin directory, record the deployment's packages there as unpacked, and let
    /// `dpkg --no-act --configure` judge them. The scratch directory has no maintainer
    /// scripts, and `--no-act` runs none anyway.
    fn check_depends(&self, debs: &[Deb]) -> Result<(), InstallError> {
        let scratch = tempfile::Builder::new()
            .prefix("koshin-dpkg-check")
            .tempdir()
            .map_err(io_err("cannot create a scratch dpkg database"))?;
        let s = scratch.path();
        let admin = self.admindir();
        for sub in ["info", "updates", "triggers"] {
            fs::create_dir_all(s.join(sub))
                .map_err(io_err("cannot create a scratch dpkg database"))?;
        }
        copy_or_empty(&admin.join("status"), &s.join("status"))?;
        copy_or_empty(&admin.join("arch"), &s.join("arch"))?;
        fs::write(s.join("available"), "").map_err(io_err("cannot write the scratch database"))?;
        let mut last = -1i64;
        if let Ok(entries) = fs::read_dir(admin.join("updates")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
                    fs::copy(e.path(), s.join("updates").join(&name))
                        .map_err(io_err("cannot copy dpkg's journal"))?;
                    last = last.max(name.parse().unwrap_or(0));
                }
            }
        }
        let mut journal = String::new();
        for d in debs {
            journal.push_str(&format!(
                "Package: {}\nStatus: install ok unpacked\n",
                d.package
            ));
            for line in d.control.lines() {
                if line.trim().is_empty()
                    || line.starts_with("Package:")
                    || line.starts_with("Status:")
                {
                    continue;
                }
                journal.push_str(line);
                journal.push('\n');
            }
            journal.push('\n');
        }
        fs::write(s.join("updates").join(format!("{:04}", last + 1)), journal)
            .map_err(io_err("cannot write the scratch database"))?;

        let mut c = self.dpkg(false);
        c.arg(arg("--admindir=", s))
            .arg("--no-act")
            .arg("--configure")
            .args(debs.iter().map(Deb::spec));
        let run = run_tool(c, "dpkg")?;
        if !run.ok {
            return Err(InstallError::Dependencies(dependency_summary(&run.output)));
        }
        Ok(())
    }

    /// After a failed real run: see the module's documentation. Returns whether every
    /// package of the deployment ended up configured at its version (a transient failure
    /// that the second configure fixed); appends what it did to `output`.
    fn recover(
        &self,
        debs: &[Deb],
        before: &Snapshot,
        output: &mut String,
    ) -> Result<bool, InstallError> {
        let unconfigured = |snap: &Snapshot| -> Vec<Deb> {
            debs.iter()
                .filter(|d| {
                    snap.get(&d.key())
                        .is_some_and(|(state, _)| present(state) && !configured(state))
                })
                .cloned()
                .collect()
        };
        let all_done = |snap: &Snapshot| {
            debs.iter().all(|d| {
                snap.get(&d.key())
                    .is_some_and(|(s, v)| configured(s) && *v == d.version)
            })
        };
        let now = self.snapshot()?;
        let broken = unconfigured(&now);
        if broken.is_empty() {
            return Ok(false);
        }
        let mut c = self.dpkg(true);
        c.args(install_options())
            .arg("--configure")
            .args(broken.iter().map(Deb::spec));
        let names: Vec<String> = broken.iter().map(Deb::spec).collect();
        let retry = run_tool(c, "dpkg")?;
        output.push_str(&format!(
            "koshin: configuring {} once more: {}\n",
            names.join(" "),
            if retry.ok { "done" } else { "failed" }
        ));
        output.push_str(&retry.output);
        let now = self.snapshot()?;
        if all_done(&now) {
            return Ok(true);
        }
        for d in unconfigured(&now) {
            let earlier = before
                .get(&d.key())
                .filter(|(state, _)| present(state))
                .cloned();
            match earlier {
                None => {
                    let mut c = self.dpkg(true);
                    c.arg("--remove").arg(d.spec());
                    let r = run_tool(c, "dpkg")?;
                    output.push_str(&format!(
                        "koshin: {} was not installed before; removing it again: {}\n",
                        d.spec(),
                        if r.ok { "done" } else { "failed" }
                    ));
                    output.push_str(&r.output);
                }
                Some((_, version)) => {
                    let cached = self.cache_path(&d.package, &version, &d.arch);
                    let usable = cached.is_file()
                        && inspect(&cached).is_ok_and(|c| {
                            c.package == d.package && c.version == version && c.arch == d.arch
                        });
                    if usable {
                        let mut c = self.dpkg(true);
                        c.args(install_options()).arg("--install").arg(&cached);
                        let r = run_tool(c, "dpkg")?;
                        output.push_str(&format!(
                            "koshin: reinstalling {} {version} (installed before) from the cache: {}\n",
                            d.spec(),
                            if r.ok { "done" } else { "failed" }
                        ));
                        output.push_str(&r.output);
                    } else {
                        output.push_str(&format!(
                            "koshin: {} {version} was installed before and its .deb is not in the cache; left as dpkg left it\n",
                            d.spec()
                        ));
                    }
                }
            }
        }
        let audit = self.audit()?;
        if !audit.trim().is_empty() {
            output.push_str("koshin: dpkg --audit:\n");
            output.push_str(&audit);
        }
        Ok(false)
    }

    /// `<root>/run/reboot-required` exists; the packages `reboot-required.pkgs` lists.
    fn restart_signal(&self) -> (bool, Vec<String>) {
        let run_dir = self.root.join("run");
        let required = run_dir.join("reboot-required").exists();
        let mut packages: Vec<String> = Vec::new();
        if let Ok(text) = fs::read_to_string(run_dir.join("reboot-required.pkgs")) {
            for l in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
                if !packages.iter().any(|p| p == l) {
                    packages.push(l.to_string());
                }
            }
        }
        (required, packages)
    }
}

/// Options of every run that installs or configures.
fn install_options() -> [&'static str; 3] {
    ["--force-downgrade", "--force-confdef", "--force-confold"]
}

fn arg(prefix: &str, path: &Path) -> OsString {
    let mut a = OsString::from(prefix);
    a.push(path);
    a
}

/// English, non-interactive, with the programs dpkg insists on finding in `PATH`.
fn tool_env(c: &mut Command) {
    let mut path = std::env::var("PATH").unwrap_or_default();
    for dir in [
        "/usr/local/sbin",
        "/usr/local/bin",
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
    ] {
        if !path.split(':').any(|p| p == dir) {
            if !path.is_empty() {
                path.push(':');
            }
            path.push_str(dir);
        }
    }
    c.env("PATH", path)
        .env("LC_ALL", "C")
        .env_remove("LANGUAGE")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("DEBCONF_NONINTERACTIVE_SEEN", "true")
        .stdin(Stdio::null());
}

/// Runs a tool with stdout and stderr into one unnamed temporary file (in order; a daemon
/// a maintainer script starts may keep the file open without making us wait for it).
fn run_tool(mut cmd: Command, tool: &str) -> Result<Run, InstallError> {
    let mut out = tempfile::tempfile().map_err(io_err("cannot create a temporary file"))?;
    let err = out
        .try_clone()
        .map_err(io_err("cannot create a temporary file"))?;
    cmd.stdout(Stdio::from(
        out.try_clone()
            .map_err(io_err("cannot create a temporary file"))?,
    ))
    .stderr(Stdio::from(err));
    let status = cmd.status().map_err(|e| {
        let context = if e.kind() == io::ErrorKind::NotFound {
            format!("cannot run {tool} (is the dpkg package installed?)")
        } else {
            format!("cannot run {tool}")
        };
        InstallError::Io { context, source: e }
    })?;
    out.rewind()
        .map_err(io_err("cannot read the output of dpkg"))?;
    let mut bytes = Vec::new();
    out.read_to_end(&mut bytes)
        .map_err(io_err("cannot read the output of dpkg"))?;
    Ok(Run {
        code: status.code(),
        ok: status.success(),
        output: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// Reads a `.deb`'s control fields with `dpkg-deb --field`.
fn inspect(path: &Path) -> Result<Deb, InstallError> {
    let mut c = Command::new("dpkg-deb");
    c.arg("--field").arg(path);
    tool_env(&mut c);
    let run = run_tool(c, "dpkg-deb")?;
    if !run.ok {
        return Err(InstallError::Dpkg {
            code: run.code,
            output: run.output,
        });
    }
    let field = |name: &str| {
        run.output.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (!l.starts_with([' ', '\t']) && k.eq_ignore_ascii_case(name))
                .then(|| v.trim().to_string())
        })
    };
    let (Some(package), Some(version), Some(arch)) =
        (field("Package"), field("Version"), field("Architecture"))
    else {
        return Err(InstallError::Invalid(format!(
            "{} has no Package, Version or Architecture field",
            path.display()
        )));
    };
    let installed_kib = match field("Installed-Size") {
        None => 0,
        Some(s) => s.parse().map_err(|_| {
            InstallError::Invalid(format!("{}: Installed-Size {s:?}", path.display()))
        })?,
    };
    Ok(Deb {
        path: path.to_path_buf(),
        package,
        version,
        arch,
        installed_kib,
        control: run.output.clone(),
    })
}

/// Free bytes for an unprivileged user on the file system holding `path`.
fn free_bytes(path: &Path) -> Result<u64, InstallError> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| InstallError::Invalid(format!("root path {} contains NUL", path.display())))?;
    // SAFETY: statvfs is plain data; the call fills it from a NUL-terminated path.
    let mut s: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut s) };
    if rc != 0 {
        return Err(InstallError::Io {
            context: format!("cannot read the free space of {}", path.display()),
            source: io::Error::last_os_error(),
        });
    }
    // The field types differ between targets (32-bit `c_ulong`); `from` covers all.
    #[allow(clippy::useless_conversion)]
    let (blocks, size) = (u64::from(s.f_bavail), u64::from(s.f_frsize));
    Ok(blocks.saturating_mul(size))
}

fn copy_or_empty(from: &Path, to: &Path) -> Result<(), InstallError> {
    match fs::copy(from, to) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::write(to, "").map_err(io_err(format!("cannot write {}", to.display())))
        }
        Err(e) => Err(io_err(format!("cannot copy {}", from.display()))(e)),
    }
}

fn remove(path: &Path) -> Result<(), InstallError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("cannot delete {}", path.display()))(e)),
    }
}

async fn sha256_file(path: &Path) -> Result<String, InstallError> {
    let p = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<String, InstallError> {
        let mut f = fs::File::open(&p).map_err(io_err(format!("cannot read {}", p.display())))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f
                .read(&mut buf)
                .map_err(io_err(format!("cannot read {}", p.display())))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        Ok(hex::encode(h.finalize()))
    })
    .await
    .map_err(|e| InstallError::Io {
        context: "hashing stopped".into(),
        source: io::Error::other(e.to_string()),
    })?
}

/// `bytes START-END/TOTAL` → (START, TOTAL unless `*`).
fn parse_content_range(v: &str) -> Option<(u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (start, _end) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((start.trim().parse().ok()?, total))
}

/// dpkg's error blocks: each line starting `dpkg:` (not warnings) with the indented lines
/// that follow it.
fn blocks(output: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut in_block = false;
    for line in output.lines() {
        if let Some(rest) = line.strip_prefix("dpkg: ") {
            in_block = !rest.starts_with("warning");
            if in_block {
                out.push(vec![rest.trim().to_string()]);
            }
        } else if in_block && line.starts_with([' ', '\t']) && !line.trim().is_empty() {
            if let Some(b) = out.last_mut() {
                b.push(line.trim().to_string());
            }
        } else {
            in_block = false;
        }
    }
    out
}

/// dpkg's error blocks on one line; when there are none, the last lines of the output.
pub fn summary(output: &str) -> String {
    join_blocks(blocks(output), output)
}

/// Like [`summary`] without dpkg's `error processing ...` lines when others say more
/// (a refusal found by a dry run left nothing "unconfigured").
fn dependency_summary(output: &str) -> String {
    let all = blocks(output);
    let specific: Vec<Vec<String>> = all
        .iter()
        .filter(|b| !b.first().is_some_and(|h| h.starts_with("error processing")))
        .cloned()
        .collect();
    join_blocks(if specific.is_empty() { all } else { specific }, output)
}

fn join_blocks(blocks: Vec<Vec<String>>, output: &str) -> String {
    let mut parts: Vec<String> = blocks.into_iter().flatten().collect();
    if parts.is_empty() {
        let lines: Vec<&str> = output
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        parts = lines[lines.len().saturating_sub(3)..]
            .iter()
            .map(|l| l.to_string())
            .collect();
    }
    if parts.is_empty() {
        return "no output".to_string();
    }
    parts.join(" ")
}

/// A failed dry run: a dependency-type refusal or anything else dpkg refused.
fn classify_dry(run: Run) -> InstallError {
    let lower = run.output.to_ascii_lowercase();
    if ["depend", "breaks", "conflict", "would break"]
        .iter()
        .any(|k| lower.contains(k))
    {
        InstallError::Dependencies(dependency_summary(&run.output))
    } else {
        InstallError::Dpkg {
            code: run.code,
            output: run.output,
        }
    }
}

/// dpkg's dry run planning to remove an installed package (a conflicting package the
/// new one replaces).
fn removals(output: &str) -> Option<String> {
    let found: Vec<String> = output
        .lines()
        .filter_map(|l| l.strip_prefix("dpkg: yes, will "))
        .map(|l| format!("installing would {}", l.trim()))
        .collect();
    (!found.is_empty()).then(|| {
        format!(
            "{} (the deployment may not remove installed packages)",
            found.join("; ")
        )
    })
}

/// The first failure of the real run, from dpkg's `error processing` blocks.
fn classify_real(run: &Run, debs: &[Deb]) -> InstallError {
    let lines: Vec<&str> = run.output.lines().collect();
    let mut saw_dependency = false;
    for (i, line) in lines.iter().enumerate() {
        let subject = line
            .strip_prefix("dpkg: error processing archive ")
            .map(|s| (true, s))
            .or_else(|| {
                line.strip_prefix("dpkg: error processing package ")
                    .map(|s| (false, s))
            });
        let Some((archive, rest)) = subject else {
            continue;
        };
        let what = rest
            .rsplit_once(" (--")
            .map_or(rest, |(w, _)| w)
            .trim()
            .to_string();
        let reason: String = lines[i + 1..]
            .iter()
            .take_while(|l| l.starts_with([' ', '\t']))
            .map(|l| l.trim())
            .collect::<Vec<_>>()
            .join(" ");
        if reason.contains("script subprocess") {
            let package = if archive {
                debs.iter()
                    .find(|d| d.path.as_os_str() == what.as_str())
                    .map_or(what.clone(), |d| d.package.clone())
            } else {
                what.split(':').next().unwrap_or(&what).to_string()
            };
            return InstallError::MaintainerScript {
                package,
                output: run.output.clone(),
            };
        }
        if reason.contains("dependency problems") {
            saw_dependency = true;
        }
    }
    if saw_dependency {
        InstallError::Dependencies(summary(&run.output))
    } else {
        InstallError::Dpkg {
            code: run.code,
            output: run.output.clone(),
        }
    }
}

/// The first error with the whole output (including what recovery did).
fn with_output(e: InstallError, output: String) -> InstallError {
    match e {
        InstallError::MaintainerScript { package, .. } => {
            InstallError::MaintainerScript { package, output }
        }
        InstallError::Dpkg { code, .. } => InstallError::Dpkg { code, output },
        other => other,
    }
}

/// Packages outside the deployment whose version or presence changed.
fn changes(before: &Snapshot, after: &Snapshot, debs: &[Deb]) -> Vec<String> {
    let show = |e: Option<&(String, String)>| match e {
        Some((s, v)) if present(s) => v.clone(),
        _ => "absent".to_string(),
    };
    let mut keys: Vec<&(String, String)> = before.keys().chain(after.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !debs.iter().any(|d| d.key() == **k))
        .filter_map(|k| {
            let (b, a) = (show(before.get(k)), show(after.get(k)));
            (b != a).then(|| format!("{}:{} {b} -> {a}", k.0, k.1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_credentials_and_queries() {
        assert_eq!(
            redact("https://user:pw@dp.example:8443/pool/a.deb?token=x#y"),
            "https://dp.example:8443/pool/a.deb"
        );
        assert_eq!(redact("http://h/p"), "http://h/p");
    }

    #[test]
    fn names_are_checked_before_they_name_files() {
        let f = InstallFile {
            package: "hello".into(),
            version: "1:2.0-1".into(),
            architecture: "amd64".into(),
            url: String::new(),
            sha256: "a".repeat(64),
            size: 1,
        };
        assert!(f.check().is_ok());
        for bad in [
            InstallFile {
                package: "../x".into(),
                ..f.clone()
            },
            InstallFile {
                version: "1/2".into(),
                ..f.clone()
            },
            InstallFile {
                architecture: "amd64/..".into(),
                ..f.clone()
            },
            InstallFile {
                sha256: "zz".into(),
                ..f.clone()
            },
        ] {
            assert!(matches!(bad.check(), Err(InstallError::Invalid(_))));
        }
        let i = Installer::new(Path::new("/nonexistent-root"), Path::new("/c"));
        assert_eq!(
            i.cache_path("hello", "1:2.0-1", "amd64"),
            Path::new("/c/hello_1%3a2.0-1_amd64.deb")
        );
    }

    #[test]
    fn content_ranges() {
        assert_eq!(
            parse_content_range("bytes 10-99/100"),
            Some((10, Some(100)))
        );
        assert_eq!(parse_content_range("bytes 10-99/*"), Some((10, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }

    #[test]
    fn summaries_keep_dpkg_error_lines() {
        let out = "Selecting previously unselected package b.\n\
dpkg: warning: downgrading a from 2 to 1\n\
dpkg: dependency problems prevent configuration of b:\n b depends on c; however:\n  Package c is not installed.\n\n\
dpkg: error processing package b (--configure):\n dependency problems - leaving unconfigured\n\
Errors were encountered while processing:\n b\n";
        assert_eq!(
            summary(out),
            "dependency problems prevent configuration of b: b depends on c; however: Package c is not installed. error processing package b (--configure): dependency problems - leaving unconfigured"
        );
        assert_eq!(
            dependency_summary(out),
            "dependency problems prevent configuration of b: b depends on c; however: Package c is not installed."
        );
        assert_eq!(summary("a\nb\nc\nd\n"), "b c d");
    }
}
