//! Real Debian APT archives in a temporary directory: `.deb`s built with
//! `dpkg-deb`, `Packages` and `Release` generated with `apt-ftparchive`,
//! `InRelease`/`Release.gpg` signed with a throwaway `gpg` key.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::cmd::{err, read_string, run, run_filter, write};
use crate::deb::DebSpec;
use crate::gpg::Gpg;
use crate::server::LoopbackServer;

/// How an index file is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    /// Uncompressed (`Packages`).
    None,
    /// gzip (`Packages.gz`).
    Gz,
    /// xz (`Packages.xz`).
    Xz,
}

impl Compression {
    /// File name suffix: `""`, `".gz"` or `".xz"`.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gz => ".gz",
            Compression::Xz => ".xz",
        }
    }
}

/// What `Archive::publish` writes for one suite (`dists/<suite>/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SuiteSpec {
    /// `Suite:` and the directory name under `dists/`, e.g. `bookworm-security`.
    pub suite: String,
    /// `Codename:`
    pub codename: String,
    /// `Origin:` (omitted when empty).
    pub origin: String,
    /// `Label:` (omitted when empty).
    pub label: String,
    /// `Version:` (omitted when empty), e.g. `12`.
    pub version: String,
    /// `Components:`, each published as `<component>/binary-<arch>/`.
    pub components: Vec<String>,
    /// `Architectures:`; `Architecture: all` packages go into every one of them.
    pub architectures: Vec<String>,
    /// `Valid-Until:` verbatim, RFC 2822 like `Sat, 01 Jan 2000 00:00:00 UTC`.
    pub valid_until: Option<String>,
    /// Writes `Acquire-By-Hash: yes` and `by-hash/SHA256/<hex>` copies of
    /// every index (copies from earlier publishes are kept, like Debian).
    pub acquire_by_hash: bool,
    /// Which `Packages` files are served.
    pub compressions: Vec<Compression>,
    /// List the uncompressed `Packages` in `Release` even when it is not
    /// served (what Debian does); default true.
    pub list_uncompressed: bool,
    /// `Date:` verbatim instead of the current time.
    pub date: Option<String>,
    /// `Description:` (omitted when `None`).
    pub description: Option<String>,
    /// Further `Release` fields (e.g. `NotAutomatic: yes`), placed in the top
    /// field block; a name that is already present replaces its value.
    pub extra_fields: Vec<(String, String)>,
}

impl SuiteSpec {
    /// Origin and label `Debian`, version `12`, component `main`,
    /// architecture `amd64`, by-hash on, `Packages.gz` and `Packages.xz`.
    pub fn new(suite: &str, codename: &str) -> Self {
        SuiteSpec {
            suite: suite.to_owned(),
            codename: codename.to_owned(),
            origin: "Debian".to_owned(),
            label: "Debian".to_owned(),
            version: "12".to_owned(),
            components: vec!["main".to_owned()],
            architectures: vec!["amd64".to_owned()],
            valid_until: None,
            acquire_by_hash: true,
            compressions: vec![Compression::Gz, Compression::Xz],
            list_uncompressed: true,
            date: None,
            description: None,
            extra_fields: Vec::new(),
        }
    }

    /// Sets `Origin:`.
    pub fn origin(mut self, origin: &str) -> Self {
        self.origin = origin.to_owned();
        self
    }

    /// Sets `Label:`.
    pub fn label(mut self, label: &str) -> Self {
        self.label = label.to_owned();
        self
    }

    /// Sets `Version:`.
    pub fn version(mut self, version: &str) -> Self {
        self.version = version.to_owned();
        self
    }

    /// Sets the components.
    pub fn components(mut self, components: &[&str]) -> Self {
        self.components = components.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Sets the architectures.
    pub fn architectures(mut self, architectures: &[&str]) -> Self {
        self.architectures = architectures.iter().map(|s| (*s).to_owned()).collect();
        self
    }

    /// Sets `Valid-Until:`.
    pub fn valid_until(mut self, date: &str) -> Self {
        self.valid_until = Some(date.to_owned());
        self
    }

    /// Sets `Date:`.
    pub fn date(mut self, date: &str) -> Self {
        self.date = Some(date.to_owned());
        self
    }

    /// Turns by-hash on or off.
    pub fn by_hash(mut self, on: bool) -> Self {
        self.acquire_by_hash = on;
        self
    }

    /// Sets the served compressions.
    pub fn compressions(mut self, compressions: &[Compression]) -> Self {
        self.compressions = compressions.to_vec();
        self
    }

    /// Adds a `Release` field.
    pub fn field(mut self, name: &str, value: &str) -> Self {
        self.extra_fields.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// One package recorded in a suite's index.
#[derive(Clone, Debug)]
struct Entry {
    component: String,
    name: String,
    version: String,
    arch: String,
    pool_rel: String,
}

/// A real, signed APT archive in a temporary directory.
///
/// Layout: `pool/<component>/<prefix>/<source>/*.deb` and
/// `dists/<suite>/{Release,InRelease,Release.gpg,<component>/binary-<arch>/...}`.
/// Serve [`Archive::root`] with [`LoopbackServer`] (or [`Archive::serve`]).
pub struct Archive {
    root: TempDir,
    keys: TempDir,
    keyring: PathBuf,
    keyring_armored: PathBuf,
    gpg: Gpg,
    /// Pool path -> the spec it was built from.
    pool: HashMap<String, DebSpec>,
    /// Pool path -> its `Packages` stanza from `apt-ftparchive packages`.
    stanzas: HashMap<String, String>,
    suites: BTreeMap<String, Vec<Entry>>,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Archive")
            .field("root", &self.root.path())
            .field("gpg", &self.gpg)
            .field("suites", &self.suites.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Checksum field names that open the file lists of a `Release` file.
const CHECKSUM_FIELDS: [&str; 4] = ["MD5Sum", "SHA1", "SHA256", "SHA512"];

/// Debian's order of the top `Release` fields; others follow in given order.
const RELEASE_FIELD_ORDER: [&str; 15] = [
    "Origin",
    "Label",
    "Suite",
    "Version",
    "Codename",
    "Changelogs",
    "Date",
    "Valid-Until",
    "NotAutomatic",
    "ButAutomaticUpgrades",
    "Acquire-By-Hash",
    "No-Support-for-Architecture-all",
    "Architectures",
    "Components",
    "Description",
];

impl Archive {
    /// An empty archive in a new temporary directory, signed by a new
    /// throwaway key.
    pub fn new() -> io::Result<Archive> {
        Archive::with_key(Gpg::throwaway("koshin test archive")?)
    }

    /// An empty archive signed by `gpg` (e.g. to share a key between two
    /// archives).
    pub fn with_key(gpg: Gpg) -> io::Result<Archive> {
        let root = tempfile::Builder::new().prefix("karchive").tempdir()?;
        let keys = tempfile::Builder::new().prefix("kkeys").tempdir()?;
        let keyring = keys.path().join("archive-keyring.gpg");
        let keyring_armored = keys.path().join("archive-keyring.asc");
        gpg.export_keyring(&keyring)?;
        gpg.export_armored(&keyring_armored)?;
        fs::create_dir_all(root.path().join("pool"))?;
        fs::create_dir_all(root.path().join("dists"))?;
        Ok(Archive {
            root,
            keys,
            keyring,
            keyring_armored,
            gpg,
            pool: HashMap::new(),
            stanzas: HashMap::new(),
            suites: BTreeMap::new(),
        })
    }

    /// The archive root (the directory to serve at `/`).
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The archive's signing key.
    pub fn gpg(&self) -> &Gpg {
        &self.gpg
    }

    /// A binary keyring (for `signed-by=`) that verifies this archive. It
    /// lives outside [`Archive::root`].
    pub fn keyring(&self) -> &Path {
        &self.keyring
    }

    /// The same key ASCII-armored (`.asc`).
    pub fn keyring_armored(&self) -> &Path {
        &self.keyring_armored
    }

    /// A directory outside the served tree for the caller's scratch files.
    pub fn scratch_dir(&self) -> &Path {
        self.keys.path()
    }

    /// URI to use in an APT line for this archive served by `server`.
    pub fn uri(&self, server: &LoopbackServer) -> String {
        format!("{}/", server.url())
    }

    /// Starts a [`LoopbackServer`] over [`Archive::root`].
    pub fn serve(&self) -> io::Result<LoopbackServer> {
        LoopbackServer::start(self.root())
    }

    /// `dists/<suite>` as a filesystem path.
    pub fn suite_dir(&self, suite: &str) -> PathBuf {
        self.root().join("dists").join(suite)
    }

    /// `dists/<suite>/<component>/binary-<arch>/Packages<ext>`, relative to
    /// the root (also usable as a server path suffix).
    pub fn packages_rel(&self, suite: &str, component: &str, arch: &str, c: Compression) -> String {
        format!(
            "dists/{suite}/{component}/binary-{arch}/Packages{}",
            c.extension()
        )
    }

    /// The published `Release` text of `suite`.
    pub fn release_text(&self, suite: &str) -> io::Result<String> {
        read_string(&self.suite_dir(suite).join("Release"))
    }

    /// The by-hash path (relative to the root) that APT fetches for
    /// `index_rel` (relative to `dists/<suite>/`, e.g.
    /// `main/binary-amd64/Packages.xz`), taken from the SHA256 list of the
    /// published `Release`.
    pub fn by_hash_rel(&self, suite: &str, index_rel: &str) -> io::Result<String> {
        let release = self.release_text(suite)?;
        let hash = release_checksums(&release, "SHA256")
            .into_iter()
            .find(|(_, _, p)| p == index_rel)
            .map(|(h, _, _)| h)
            .ok_or_else(|| {
                err(format!(
                    "{index_rel} is not listed in dists/{suite}/Release"
                ))
            })?;
        let dir = match index_rel.rsplit_once('/') {
            Some((dir, _)) => format!("{dir}/"),
            None => String::new(),
        };
        Ok(format!("dists/{suite}/{dir}by-hash/SHA256/{hash}"))
    }

    /// Builds a real `.deb` with `dpkg-deb --build` into
    /// `pool/<component>/<prefix>/<source>/<name>_<version>_<arch>.deb` and
    /// records it for `(suite, component)`, replacing an earlier record of the
    /// same name, version and architecture in that suite. Adding an identical
    /// spec again (e.g. to a second suite) reuses the pool file; a different
    /// spec at the same pool path is an error. Returns the `.deb`'s path.
    pub fn add(&mut self, suite: &str, component: &str, deb: &DebSpec) -> io::Result<PathBuf> {
        check_rel("suite", suite)?;
        check_rel("component", component)?;
        let pool_rel = deb.pool_path(component);
        check_rel("pool path", &pool_rel)?;
        let path = self.root().join(&pool_rel);
        match self.pool.get(&pool_rel) {
            Some(existing) if existing == deb => {}
            Some(_) => {
                return Err(err(format!(
                    "{pool_rel} already exists with different contents (a pool file cannot change)"
                )));
            }
            None => {
                if let Some(parent) = path.parent() {
                    fs::create_dir_all(parent)?;
                }
                deb.build(&path)?;
                let out = run(Command::new("apt-ftparchive")
                    .current_dir(self.root())
                    .args(hash_options())
                    .arg("packages")
                    .arg(&pool_rel))?;
                let stanza = String::from_utf8(out.stdout)
                    .map_err(|_| err(format!("apt-ftparchive printed non-UTF-8 for {pool_rel}")))?;
                let stanza = stanza.trim_end_matches('\n');
                if !stanza.starts_with("Package: ") {
                    return Err(err(format!(
                        "apt-ftparchive packages {pool_rel} gave no stanza: {stanza:?}"
                    )));
                }
                self.stanzas.insert(pool_rel.clone(), format!("{stanza}\n"));
                self.pool.insert(pool_rel.clone(), deb.clone());
            }
        }
        let entries = self.suites.entry(suite.to_owned()).or_default();
        entries.retain(|e| !(e.name == deb.name && e.version == deb.version && e.arch == deb.arch));
        entries.push(Entry {
            component: component.to_owned(),
            name: deb.name.clone(),
            version: deb.version.clone(),
            arch: deb.arch.clone(),
            pool_rel,
        });
        Ok(path)
    }

    /// Removes package `name` at `version` (all architectures) from a suite's
    /// index; the `.deb` stays in the pool. Takes effect at the next publish.
    pub fn remove(&mut self, suite: &str, name: &str, version: &str) {
        if let Some(entries) = self.suites.get_mut(suite) {
            entries.retain(|e| !(e.name == name && e.version == version));
        }
    }

    /// (Re)generates `dists/<suite>/`: `Packages` per component and
    /// architecture over exactly the recorded debs (stanzas from
    /// `apt-ftparchive packages`), compressed as requested, per-directory
    /// `Release` files, by-hash copies, the top `Release` (checksums from
    /// `apt-ftparchive release`, fields in Debian's order), `InRelease`
    /// (clearsigned) and `Release.gpg` (detached, armored).
    pub fn publish(&mut self, spec: &SuiteSpec) -> io::Result<()> {
        check_rel("suite", &spec.suite)?;
        if spec.components.is_empty() || spec.architectures.is_empty() {
            return Err(err(format!(
                "suite {} needs components and architectures",
                spec.suite
            )));
        }
        if spec.compressions.is_empty() {
            return Err(err(format!(
                "suite {} needs at least one compression",
                spec.suite
            )));
        }
        for c in &spec.components {
            check_rel("component", c)?;
        }
        for a in &spec.architectures {
            check_rel("architecture", a)?;
        }
        let suite_dir = self.suite_dir(&spec.suite);
        fs::create_dir_all(&suite_dir)?;
        let wanted: Vec<String> = spec
            .components
            .iter()
            .flat_map(|c| {
                spec.architectures
                    .iter()
                    .map(move |a| format!("{c}/binary-{a}"))
            })
            .collect();
        clean_dir(&suite_dir, "", &wanted, spec.acquire_by_hash)?;

        let serve_plain = spec.compressions.contains(&Compression::None);
        let no_entries = Vec::new();
        let entries = self.suites.get(&spec.suite).unwrap_or(&no_entries);
        let mut plain_files = Vec::new();
        for component in &spec.components {
            for arch in &spec.architectures {
                let dir = suite_dir.join(component).join(format!("binary-{arch}"));
                fs::create_dir_all(&dir)?;
                let mut selected: Vec<&Entry> = entries
                    .iter()
                    .filter(|e| {
                        &e.component == component
                            && (&e.arch == arch || (e.arch == "all" && arch != "all"))
                    })
                    .collect();
                selected.sort_by(|a, b| {
                    (&a.name, &a.version, &a.arch).cmp(&(&b.name, &b.version, &b.arch))
                });
                let mut packages = String::new();
                for e in selected {
                    let stanza = self.stanzas.get(&e.pool_rel).ok_or_else(|| {
                        err(format!("internal: no Packages stanza for {}", e.pool_rel))
                    })?;
                    packages.push_str(stanza);
                    packages.push('\n');
                }
                let plain = dir.join("Packages");
                write(&plain, &packages)?;
                for c in &spec.compressions {
                    let target = dir.join(format!("Packages{}", c.extension()));
                    match c {
                        Compression::None => {}
                        Compression::Gz => run_filter(
                            Command::new("gzip").args(["-9", "-n", "-c"]),
                            &plain,
                            &target,
                        )?,
                        Compression::Xz => {
                            run_filter(Command::new("xz").args(["-6", "-c"]), &plain, &target)?
                        }
                    }
                }
                let mut sub = String::new();
                sub.push_str(&format!("Archive: {}\n", spec.suite));
                if !spec.origin.is_empty() {
                    sub.push_str(&format!("Origin: {}\n", spec.origin));
                }
                if !spec.label.is_empty() {
                    sub.push_str(&format!("Label: {}\n", spec.label));
                }
                if !spec.version.is_empty() {
                    sub.push_str(&format!("Version: {}\n", spec.version));
                }
                if spec.acquire_by_hash {
                    sub.push_str("Acquire-By-Hash: yes\n");
                }
                sub.push_str(&format!("Component: {component}\nArchitecture: {arch}\n"));
                write(&dir.join("Release"), sub)?;
                if !serve_plain {
                    if spec.list_uncompressed {
                        plain_files.push(plain);
                    } else {
                        fs::remove_file(&plain)?;
                    }
                }
            }
        }

        let mut cmd = Command::new("apt-ftparchive");
        cmd.current_dir(&suite_dir).args(hash_options());
        let mut opt = |k: &str, v: &str| {
            cmd.arg("-o")
                .arg(format!("APT::FTPArchive::Release::{k}={v}"));
        };
        opt("Origin", &spec.origin);
        opt("Label", &spec.label);
        opt("Suite", &spec.suite);
        opt("Codename", &spec.codename);
        opt("Version", &spec.version);
        opt("Architectures", &spec.architectures.join(" "));
        opt("Components", &spec.components.join(" "));
        cmd.args(["release", "."]);
        let out = run(&mut cmd)?;
        let generated = String::from_utf8(out.stdout)
            .map_err(|_| err("apt-ftparchive release printed non-UTF-8"))?;
        let release = compose_release(&generated, spec)?;
        write(&suite_dir.join("Release"), &release)?;
        for plain in plain_files {
            fs::remove_file(&plain)?;
        }

        if spec.acquire_by_hash {
            for (hash, _, rel) in release_checksums(&release, "SHA256") {
                let src = suite_dir.join(&rel);
                if !src.is_file() {
                    continue; // listed but not served (uncompressed Packages)
                }
                let dir = src
                    .parent()
                    .unwrap_or(&suite_dir)
                    .join("by-hash")
                    .join("SHA256");
                fs::create_dir_all(&dir)?;
                fs::copy(&src, dir.join(&hash))
                    .map_err(|e| err(format!("cannot copy {} to by-hash: {e}", src.display())))?;
            }
        }
        self.sign_suite(&spec.suite, None)
    }

    /// Re-signs `InRelease` and `Release.gpg` of `suite` with `other`,
    /// keeping the `Release` text (clients trusting only this archive's key
    /// must then reject it).
    pub fn resign_with(&mut self, other: &Gpg, suite: &str) -> io::Result<()> {
        self.sign_suite(suite, Some(other))
    }

    /// Edits the `Release` text of `suite` and re-signs it correctly with the
    /// archive key (for size/hash mismatches, expired `Valid-Until`, ...).
    pub fn tamper_release(
        &mut self,
        suite: &str,
        f: impl FnOnce(String) -> String,
    ) -> io::Result<()> {
        let path = self.suite_dir(suite).join("Release");
        let text = read_string(&path)?;
        write(&path, f(text))?;
        self.sign_suite(suite, None)
    }

    /// Edits the signed text inside `InRelease` after signing, keeping the
    /// old signature, so it no longer verifies. `f` gets the `Release` text
    /// (dash-escaping undone). The plain `Release` is rewritten with the same
    /// edit, so it no longer matches `Release.gpg` either.
    pub fn tamper_inrelease_unsigned(
        &mut self,
        suite: &str,
        f: impl FnOnce(String) -> String,
    ) -> io::Result<()> {
        let dir = self.suite_dir(suite);
        let inrelease = read_string(&dir.join("InRelease"))?;
        let (head, body, sig) = split_clearsigned(&inrelease).ok_or_else(|| {
            err(format!(
                "dists/{suite}/InRelease is not a clearsigned message"
            ))
        })?;
        let mut edited = f(body);
        if !edited.ends_with('\n') {
            edited.push('\n');
        }
        let mut out = head.to_owned();
        for line in edited.lines() {
            if line.starts_with('-') {
                out.push_str("- ");
            }
            out.push_str(line);
            out.push('\n');
        }
        out.push_str(sig);
        write(&dir.join("InRelease"), out)?;
        write(&dir.join("Release"), edited)
    }

    fn sign_suite(&self, suite: &str, key: Option<&Gpg>) -> io::Result<()> {
        let dir = self.suite_dir(suite);
        let release = dir.join("Release");
        if !release.is_file() {
            return Err(err(format!(
                "dists/{suite}/Release does not exist (publish first)"
            )));
        }
        let key = key.unwrap_or(&self.gpg);
        key.clearsign(&release, &dir.join("InRelease"))?;
        key.detach_sign(&release, &dir.join("Release.gpg"))
    }
}

/// `-o` options making apt-ftparchive emit only MD5 and SHA256, like Debian.
fn hash_options() -> [&'static str; 4] {
    [
        "-o",
        "APT::FTPArchive::SHA1=false",
        "-o",
        "APT::FTPArchive::SHA512=false",
    ]
}

/// Refuses empty names and anything that could escape the archive.
fn check_rel(what: &str, s: &str) -> io::Result<()> {
    let ok = !s.is_empty()
        && !s.starts_with('/')
        && !s.contains(char::is_whitespace)
        && s.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(())
    } else {
        Err(err(format!("invalid {what} {s:?}")))
    }
}

/// Removes stale files under `dists/<suite>` before a publish: everything
/// except the wanted `<component>/binary-<arch>` directories (whose files
/// are removed too, but whose `by-hash/` stays when `keep_by_hash`).
fn clean_dir(dir: &Path, rel: &str, wanted: &[String], keep_by_hash: bool) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let child_rel = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let path = entry.path();
        if !entry.file_type()?.is_dir() {
            fs::remove_file(&path)?;
        } else if wanted.contains(&rel.to_owned()) {
            if !(keep_by_hash && name == "by-hash") {
                fs::remove_dir_all(&path)?;
            }
        } else if wanted.contains(&child_rel)
            || wanted
                .iter()
                .any(|w| w.starts_with(&format!("{child_rel}/")))
        {
            clean_dir(&path, &child_rel, wanted, keep_by_hash)?;
        } else {
            fs::remove_dir_all(&path)?;
        }
    }
    Ok(())
}

/// Rebuilds `apt-ftparchive release` output with the spec's fields in
/// Debian's order in the top block, followed by the checksum lists.
fn compose_release(generated: &str, spec: &SuiteSpec) -> io::Result<String> {
    let mut fields: Vec<(String, String)> = Vec::new();
    let mut rest_start = None;
    let mut offset = 0;
    for line in generated.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if let Some(name) = trimmed.strip_suffix(':')
            && CHECKSUM_FIELDS.contains(&name)
        {
            rest_start = Some(offset);
            break;
        }
        if let Some((k, v)) = trimmed.split_once(':')
            && !k.starts_with(' ')
        {
            fields.push((k.to_owned(), v.trim().to_owned()));
        }
        offset += line.len();
    }
    let rest_start = rest_start.ok_or_else(|| {
        err(format!(
            "no checksum list in apt-ftparchive output:\n{generated}"
        ))
    })?;
    let checksums = &generated[rest_start..];

    let mut set = |k: &str, v: Option<&str>| {
        fields.retain(|(name, _)| !name.eq_ignore_ascii_case(k));
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            fields.push((k.to_owned(), v.to_owned()));
        }
    };
    set("Origin", Some(&spec.origin));
    set("Label", Some(&spec.label));
    set("Suite", Some(&spec.suite));
    set("Version", Some(&spec.version));
    set("Codename", Some(&spec.codename));
    if let Some(d) = &spec.date {
        set("Date", Some(d));
    }
    set("Valid-Until", spec.valid_until.as_deref());
    set("Acquire-By-Hash", spec.acquire_by_hash.then_some("yes"));
    set("Architectures", Some(&spec.architectures.join(" ")));
    set("Components", Some(&spec.components.join(" ")));
    set("Description", spec.description.as_deref());
    for (k, v) in &spec.extra_fields {
        set(k, Some(v));
    }
    let rank = |k: &str| {
        RELEASE_FIELD_ORDER
            .iter()
            .position(|o| o.eq_ignore_ascii_case(k))
            .unwrap_or(RELEASE_FIELD_ORDER.len())
    };
    fields.sort_by_key(|(k, _)| rank(k)); // stable: unknown fields keep their order
    let mut out = String::new();
    for (k, v) in fields {
        out.push_str(&format!("{k}: {v}\n"));
    }
    out.push_str(checksums);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// The `(hash, size, path)` lines of checksum list `field` of a `Release`.
pub(crate) fn release_checksums(release: &str, field: &str) -> Vec<(String, u64, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in release.lines() {
        if !line.starts_with(' ') {
            inside = line.trim_end().strip_suffix(':') == Some(field);
            continue;
        }
        if inside {
            let mut parts = line.split_whitespace();
            if let (Some(h), Some(s), Some(p)) = (parts.next(), parts.next(), parts.next())
                && let Ok(size) = s.parse()
            {
                out.push((h.to_owned(), size, p.to_owned()));
            }
        }
    }
    out
}

/// Splits a clearsigned message into (armor header through the blank line,
/// dash-unescaped text, signature block).
fn split_clearsigned(msg: &str) -> Option<(&str, String, &str)> {
    const BEGIN: &str = "-----BEGIN PGP SIGNED MESSAGE-----\n";
    const SIG: &str = "-----BEGIN PGP SIGNATURE-----";
    if !msg.starts_with(BEGIN) {
        return None;
    }
    let header_end = msg.find("\n\n")? + 2;
    let sig_start = msg.find(&format!("\n{SIG}"))? + 1;
    if sig_start < header_end {
        return None;
    }
    let mut body = String::new();
    for line in msg[header_end..sig_start].lines() {
        body.push_str(line.strip_prefix("- ").unwrap_or(line));
        body.push('\n');
    }
    Some((&msg[..header_end], body, &msg[sig_start..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_lists_parse() {
        let r = "Suite: x\nMD5Sum:\n abc 12 main/binary-amd64/Packages\nSHA256:\n def 34 main/binary-amd64/Packages.gz\n";
        assert_eq!(
            release_checksums(r, "SHA256"),
            vec![(
                "def".to_owned(),
                34,
                "main/binary-amd64/Packages.gz".to_owned()
            )]
        );
    }

    #[test]
    fn clearsigned_split_unescapes() {
        let m = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nA: 1\n- -B: 2\n-----BEGIN PGP SIGNATURE-----\n\nxx\n-----END PGP SIGNATURE-----\n";
        let (head, body, sig) = split_clearsigned(m).expect("clearsigned");
        assert_eq!(head, "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\n");
        assert_eq!(body, "A: 1\n-B: 2\n");
        assert!(sig.starts_with("-----BEGIN PGP SIGNATURE-----"));
    }

    #[test]
    fn release_fields_are_reordered_before_checksums() {
        let generated = "Architectures: amd64\nCodename: c\nDate: D\nSuite: s\nMD5Sum:\n a 1 x\n";
        let spec = SuiteSpec::new("s", "c").valid_until("V");
        let r = compose_release(generated, &spec).expect("compose");
        assert_eq!(
            r,
            "Origin: Debian\nLabel: Debian\nSuite: s\nVersion: 12\nCodename: c\nDate: D\nValid-Until: V\nAcquire-By-Hash: yes\nArchitectures: amd64\nComponents: main\nMD5Sum:\n a 1 x\n"
        );
    }
}
