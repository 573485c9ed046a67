//! Writes the indices of a signed APT repository that a stock `apt-get` accepts: the
//! `Packages` (and `Packages.gz`) of each architecture, the `Release` that lists their sizes
//! and SHA-256 sums, and its signatures `InRelease` and `Release.gpg`.
//!
//! A distribution point serves the update content it holds this way, so that machines use
//! their own apt with the site's public key as `signed-by=`. The pool is flat: each `.deb`
//! sits under a path of the caller's choosing (e.g. `pool/ab/<sha256>/<name>.deb`, see
//! [`pool_filename`]), and there is one suite with one component. Nothing here touches the
//! disk: [`build_indices`] returns the files to write, so the caller decides how to place
//! them (atomically, beside the pool it already has).
//!
//! The output is deterministic for the same input (entries sorted by package, version and
//! architecture; gzip without a time stamp), apart from the signatures.

use std::io::{Read, Write};
use std::path::Path;

use sha2::Digest;

use crate::AptError;
use crate::signing::ArchiveKey;

/// One `.deb` in the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoEntry {
    /// The package's control stanza, as [`crate::debfile::read_control`] returns it.
    pub control: String,
    /// The file's path relative to the repository root,
    /// e.g. `pool/ab/<sha256>/hello_2.10-3_amd64.deb`.
    pub filename: String,
    /// The file's size in bytes.
    pub size: u64,
    /// The file's SHA-256, hex.
    pub sha256: String,
}

impl RepoEntry {
    /// Reads the `.deb` at `path` (control stanza, size, SHA-256) for publication under
    /// `filename` (relative to the repository root).
    pub fn from_deb(path: &Path, filename: &str) -> Result<RepoEntry, AptError> {
        let control = crate::debfile::read_control(path)?;
        let io = |e: std::io::Error| AptError::Io {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok(RepoEntry {
            control,
            filename: filename.to_string(),
            size,
            sha256: hex::encode(hasher.finalize()),
        })
    }
}

/// The flat pool path of a `.deb`: `pool/<first two hex digits>/<sha256>/<file name>`.
/// Two different files never share a path, and one file is stored once.
pub fn pool_filename(sha256: &str, file_name: &str) -> String {
    let sha256 = sha256.to_ascii_lowercase();
    let prefix = sha256.get(..2).unwrap_or("00");
    format!("pool/{prefix}/{sha256}/{file_name}")
}

/// What the `Release` file says about the repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RepoMeta {
    /// `Origin:` (omitted when empty).
    pub origin: String,
    /// `Label:` (omitted when empty).
    pub label: String,
    /// `Suite:` and the directory under `dists/`.
    pub suite: String,
    /// `Codename:` (omitted when empty).
    pub codename: String,
    /// The one component (`Components:`), e.g. `main`.
    pub component: String,
    /// `Architectures:`; a `binary-<arch>/Packages` is written for each. Packages of
    /// architecture `all` go into every one; packages of an architecture not listed go
    /// into none.
    pub architectures: Vec<String>,
    /// `Description:` (omitted when empty).
    pub description: String,
    /// `Date:`
    pub date: jiff::Timestamp,
    /// `Valid-Until:`; apt refuses the repository after it.
    pub valid_until: Option<jiff::Timestamp>,
}

/// Control fields that describe the file in the pool rather than the package: a stanza
/// carrying them (e.g. taken from another index) gets them replaced.
const FILE_FIELDS: [&str; 6] = ["Filename", "Size", "MD5sum", "SHA1", "SHA256", "SHA512"];

/// A control field: its name, and its lines (the first, then continuation lines).
struct Field<'a> {
    name: &'a str,
    lines: Vec<&'a str>,
}

impl Field<'_> {
    /// The value on the first line, trimmed.
    fn value(&self) -> &str {
        self.lines
            .first()
            .and_then(|l| l.split_once(':'))
            .map_or("", |(_, v)| v.trim())
    }
}

/// An entry checked and ready to be written.
struct Prepared<'a> {
    package: String,
    version: String,
    architecture: String,
    filename: &'a str,
    /// The stanza with the file fields replaced, ending with a newline.
    stanza: String,
    sha256: String,
}

/// Builds every index file of the repository described by `meta` holding `entries`,
/// signed by `key`: `dists/<suite>/<component>/binary-<arch>/Packages` and `Packages.gz`
/// per architecture, then `dists/<suite>/Release`, `InRelease` and `Release.gpg`. Paths are
/// relative to the repository root. The `.deb`s themselves are the caller's to place at
/// their `filename`s.
pub fn build_indices(
    meta: &RepoMeta,
    entries: &[RepoEntry],
    key: &ArchiveKey,
) -> Result<Vec<(String, Vec<u8>)>, AptError> {
    check_meta(meta)?;
    let mut prepared = entries.iter().map(prepare).collect::<Result<Vec<_>, _>>()?;
    prepared.sort_by(|a, b| {
        a.package
            .cmp(&b.package)
            .then_with(|| koshin_domain::version::compare_lenient(&a.version, &b.version))
            .then_with(|| a.version.cmp(&b.version))
            .then_with(|| a.architecture.cmp(&b.architecture))
            .then_with(|| a.filename.cmp(b.filename))
    });
    // The same package, version and architecture twice: the same file may be listed twice
    // (kept once); two different files would leave apt to pick one at random.
    let mut unique: Vec<Prepared> = Vec::with_capacity(prepared.len());
    for p in prepared {
        if let Some(last) = unique.last()
            && last.package == p.package
            && last.version == p.version
            && last.architecture == p.architecture
        {
            if last.filename == p.filename && last.sha256 == p.sha256 {
                continue;
            }
            return Err(AptError::BadEntry {
                file: p.filename.to_string(),
                reason: format!(
                    "{} {} ({}) is also {}",
                    p.package, p.version, p.architecture, last.filename
                ),
            });
        }
        unique.push(p);
    }

    let mut files = Vec::new();
    let mut listed: Vec<(String, u64, String)> = Vec::new();
    for arch in &meta.architectures {
        let mut packages = String::new();
        for p in unique
            .iter()
            .filter(|p| p.architecture == *arch || (p.architecture == "all" && arch != "all"))
        {
            packages.push_str(&p.stanza);
            packages.push('\n');
        }
        let dir = format!("{}/binary-{arch}", meta.component);
        let plain = packages.into_bytes();
        let gz = gzip(&plain)?;
        for (name, data) in [("Packages", plain), ("Packages.gz", gz)] {
            let rel = format!("{dir}/{name}");
            listed.push((rel.clone(), data.len() as u64, sha256_hex(&data)));
            files.push((format!("dists/{}/{rel}", meta.suite), data));
        }
    }

    let release = release_text(meta, &listed);
    let inrelease = key.clearsign(&release)?;
    let detached = key.detached_sign(release.as_bytes())?;
    let dists = format!("dists/{}", meta.suite);
    files.push((format!("{dists}/Release"), release.into_bytes()));
    files.push((format!("{dists}/InRelease"), inrelease.into_bytes()));
    files.push((format!("{dists}/Release.gpg"), detached.into_bytes()));
    Ok(files)
}

/// The `Release` text: the fields apt reads, then the SHA-256 list.
fn release_text(meta: &RepoMeta, listed: &[(String, u64, String)]) -> String {
    let mut out = String::new();
    let mut field = |name: &str, value: &str| {
        if !value.trim().is_empty() {
            out.push_str(&format!("{name}: {}\n", value.trim()));
        }
    };
    field("Origin", &meta.origin);
    field("Label", &meta.label);
    field("Suite", &meta.suite);
    field("Codename", &meta.codename);
    field("Date", &rfc1123(meta.date));
    if let Some(v) = meta.valid_until {
        field("Valid-Until", &rfc1123(v));
    }
    field("Acquire-By-Hash", "no");
    field("Architectures", &meta.architectures.join(" "));
    field("Components", &meta.component);
    field("Description", &meta.description);
    out.push_str("SHA256:\n");
    let width = listed
        .iter()
        .map(|(_, size, _)| size.to_string().len())
        .max()
        .unwrap_or(1);
    for (path, size, hash) in listed {
        out.push_str(&format!(" {hash} {size:>width$} {path}\n"));
    }
    out
}

/// The date format of `Release` files, always in UTC: `Sat, 01 Jan 2000 00:00:00 UTC`.
fn rfc1123(t: jiff::Timestamp) -> String {
    t.strftime("%a, %d %b %Y %H:%M:%S UTC").to_string()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(data))
}

/// gzip at the best level, with no file name or time stamp (deterministic output).
fn gzip(data: &[u8]) -> Result<Vec<u8>, AptError> {
    let mut enc = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::best());
    let io = |e: std::io::Error| AptError::Io {
        path: "Packages.gz".into(),
        reason: e.to_string(),
    };
    enc.write_all(data).map_err(io)?;
    enc.finish().map_err(io)
}

/// A name used as a path segment (`dists/<suite>/<component>/binary-<arch>`): not empty, no
/// blanks, no control characters, no `.`/`..` or empty segment, not absolute.
fn path_safe(s: &str, allow_slash: bool) -> bool {
    !s.is_empty()
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && (allow_slash || !s.contains('/'))
        && s.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

fn check_meta(meta: &RepoMeta) -> Result<(), AptError> {
    let bad = |reason: String| Err(AptError::BadRepository { reason });
    if !path_safe(&meta.suite, true) {
        return bad(format!("invalid suite {:?}", meta.suite));
    }
    if !path_safe(&meta.component, true) {
        return bad(format!("invalid component {:?}", meta.component));
    }
    if meta.architectures.is_empty() {
        return bad("no architectures".into());
    }
    for (i, arch) in meta.architectures.iter().enumerate() {
        if !path_safe(arch, false) {
            return bad(format!("invalid architecture {arch:?}"));
        }
        if meta.architectures[..i].contains(arch) {
            return bad(format!("architecture {arch} is listed twice"));
        }
    }
    for (name, value) in [
        ("origin", &meta.origin),
        ("label", &meta.label),
        ("codename", &meta.codename),
        ("description", &meta.description),
    ] {
        if value.contains(['\n', '\r']) {
            return bad(format!("the {name} must be one line: {value:?}"));
        }
    }
    if meta.codename.contains(char::is_whitespace) {
        return bad(format!("invalid codename {:?}", meta.codename));
    }
    Ok(())
}

/// Splits a control stanza into fields; a blank line, a line that is not `Field: value`
/// or a continuation line first is an error.
fn fields(control: &str) -> Result<Vec<Field<'_>>, String> {
    let mut out: Vec<Field> = Vec::new();
    for (i, line) in control.lines().enumerate() {
        let n = i + 1;
        if line.trim().is_empty() {
            return Err(format!(
                "line {n} of the control stanza is blank (more than one stanza)"
            ));
        }
        if line.starts_with([' ', '\t']) {
            match out.last_mut() {
                Some(f) => f.lines.push(line),
                None => {
                    return Err("the control stanza starts with a continuation line".into());
                }
            }
            continue;
        }
        let Some((name, _)) = line.split_once(':') else {
            return Err(format!(
                "line {n} of the control stanza is not 'Field: value'"
            ));
        };
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!(
                "line {n} of the control stanza has a bad field name"
            ));
        }
        out.push(Field {
            name,
            lines: vec![line],
        });
    }
    Ok(out)
}

/// Checks one entry and renders its `Packages` stanza.
fn prepare(entry: &RepoEntry) -> Result<Prepared<'_>, AptError> {
    let bad = |reason: String| AptError::BadEntry {
        file: entry.filename.clone(),
        reason,
    };
    if !path_safe(&entry.filename, true) {
        return Err(bad(format!("invalid file name {:?}", entry.filename)));
    }
    if entry.sha256.len() != 64 || !entry.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(bad(format!("invalid SHA-256 {:?}", entry.sha256)));
    }
    let fields = fields(&entry.control).map_err(&bad)?;
    let get = |name: &str| -> Result<String, AptError> {
        let f = fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| bad(format!("the control stanza has no {name} field")))?;
        let v = f.value();
        if v.is_empty() || v.contains(char::is_whitespace) || f.lines.len() > 1 {
            return Err(bad(format!("invalid {name} {:?}", f.lines.join("\n"))));
        }
        Ok(v.to_string())
    };
    let package = get("Package")?;
    let version = get("Version")?;
    let architecture = get("Architecture")?;
    koshin_domain::version::Version::parse(&version).map_err(|e| bad(e.to_string()))?;

    let sha256 = entry.sha256.to_ascii_lowercase();
    let mut stanza = String::with_capacity(entry.control.len() + 160);
    for f in fields
        .iter()
        .filter(|f| !FILE_FIELDS.iter().any(|n| n.eq_ignore_ascii_case(f.name)))
    {
        for line in &f.lines {
            stanza.push_str(line.trim_end());
            stanza.push('\n');
        }
    }
    stanza.push_str(&format!(
        "Filename: {}\nSize: {}\nSHA256: {sha256}\n",
        entry.filename, entry.size
    ));
    Ok(Prepared {
        package,
        version,
        architecture,
        filename: &entry.filename,
        stanza,
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::release::Release;
    use crate::verify::Keyring;

    fn entry(control: &str, file: &str, fill: char) -> RepoEntry {
        RepoEntry {
            control: control.to_string(),
            filename: format!("pool/{file}"),
            size: 1000 + file.len() as u64,
            sha256: fill.to_string().repeat(64),
        }
    }

    fn control(package: &str, version: &str, arch: &str) -> String {
        format!(
            "Package: {package}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: T <t@koshin.invalid>\nDescription: {package}\n long text\n .\n more"
        )
    }

    fn meta() -> RepoMeta {
        RepoMeta {
            origin: "koshin".into(),
            label: "koshin site".into(),
            suite: "stable".into(),
            codename: "koshin".into(),
            component: "main".into(),
            architectures: vec!["amd64".into(), "arm64".into()],
            description: "updates of the site".into(),
            date: "2000-01-01T00:00:00Z".parse().expect("date"),
            valid_until: None,
        }
    }

    fn entries() -> Vec<RepoEntry> {
        vec![
            entry(
                &control("hello", "2.10-3", "amd64"),
                "hello_2.10-3_amd64.deb",
                'a',
            ),
            // Stale file fields from elsewhere are replaced, whatever their case.
            entry(
                &format!(
                    "{}\nFilename: old/x.deb\nSize: 1\nMD5sum: 00\nsha1: 11\nSHA256: 22\nSHA512: 33",
                    control("hello", "2.9-1", "amd64")
                ),
                "hello_2.9-1_amd64.deb",
                'b',
            ),
            entry(
                &control("hello-doc", "2.10-3", "all"),
                "hello-doc_2.10-3_all.deb",
                'c',
            ),
            entry(
                &control("hello", "2.10-3", "arm64"),
                "hello_2.10-3_arm64.deb",
                'd',
            ),
            entry(
                &control("hello", "2.10-3", "riscv64"),
                "hello_2.10-3_riscv64.deb",
                'e',
            ),
        ]
    }

    fn files_of(out: Vec<(String, Vec<u8>)>) -> HashMap<String, Vec<u8>> {
        out.into_iter().collect()
    }

    #[test]
    fn writes_packages_release_and_signatures() {
        let key = ArchiveKey::generate("repo test").expect("key");
        let out = build_indices(&meta(), &entries(), &key).expect("build");
        let names: Vec<&str> = out.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "dists/stable/main/binary-amd64/Packages",
                "dists/stable/main/binary-amd64/Packages.gz",
                "dists/stable/main/binary-arm64/Packages",
                "dists/stable/main/binary-arm64/Packages.gz",
                "dists/stable/Release",
                "dists/stable/InRelease",
                "dists/stable/Release.gpg",
            ]
        );
        let files = files_of(out);
        let text = |p: &str| String::from_utf8(files[p].clone()).expect("utf-8");

        let amd64 = text("dists/stable/main/binary-amd64/Packages");
        let parsed = crate::packages::parse("amd64", amd64.as_bytes()).expect("parse");
        let ids: Vec<(&str, &str, &str, &str)> = parsed
            .iter()
            .map(|p| {
                (
                    p.name.as_str(),
                    p.version.as_str(),
                    p.architecture.as_str(),
                    p.filename.as_str(),
                )
            })
            .collect();
        assert_eq!(
            ids,
            vec![
                ("hello", "2.9-1", "amd64", "pool/hello_2.9-1_amd64.deb"),
                ("hello", "2.10-3", "amd64", "pool/hello_2.10-3_amd64.deb"),
                (
                    "hello-doc",
                    "2.10-3",
                    "all",
                    "pool/hello-doc_2.10-3_all.deb"
                ),
            ]
        );
        assert_eq!(parsed[0].sha256, "b".repeat(64));
        assert_eq!(parsed[0].size, 1000 + "hello_2.9-1_amd64.deb".len() as u64);
        for stale in ["old/x.deb", "MD5sum", "sha1", "SHA512", "Size: 1\n", ": 22"] {
            assert!(!amd64.contains(stale), "{stale} left in:\n{amd64}");
        }
        // The control stanza is kept as it was, then the file fields follow.
        assert!(
            amd64.starts_with(&format!(
                "{}\nFilename: pool/hello_2.9-1_amd64.deb\nSize: 1021\nSHA256: {}\n\nPackage: hello\n",
                control("hello", "2.9-1", "amd64"),
                "b".repeat(64)
            )),
            "{amd64}"
        );
        assert!(amd64.ends_with("\n\n"), "{amd64:?}");

        let arm64 = text("dists/stable/main/binary-arm64/Packages");
        let parsed = crate::packages::parse("arm64", arm64.as_bytes()).expect("parse");
        let ids: Vec<(&str, &str)> = parsed
            .iter()
            .map(|p| (p.name.as_str(), p.architecture.as_str()))
            .collect();
        assert_eq!(ids, vec![("hello", "arm64"), ("hello-doc", "all")]);

        let mut gunzipped = Vec::new();
        flate2::read::GzDecoder::new(&files["dists/stable/main/binary-amd64/Packages.gz"][..])
            .read_to_end(&mut gunzipped)
            .expect("gunzip");
        assert_eq!(gunzipped, amd64.as_bytes());

        let release_text = text("dists/stable/Release");
        assert!(
            release_text.starts_with(
                "Origin: koshin\nLabel: koshin site\nSuite: stable\nCodename: koshin\nDate: Sat, 01 Jan 2000 00:00:00 UTC\nAcquire-By-Hash: no\nArchitectures: amd64 arm64\nComponents: main\nDescription: updates of the site\nSHA256:\n"
            ),
            "{release_text}"
        );
        let release = Release::parse(&release_text, "stable").expect("parse Release");
        assert_eq!(release.date, Some(946_684_800));
        assert_eq!(release.valid_until, None);
        assert_eq!(release.sha256.len(), 4);
        for (rel, (size, hash)) in &release.sha256 {
            let data = &files[&format!("dists/stable/{rel}")];
            assert_eq!(*size, data.len() as u64, "{rel}");
            assert_eq!(*hash, sha256_hex(data), "{rel}");
        }

        let dir = tempfile::tempdir().expect("tempdir");
        let keyring = dir.path().join("k.gpg");
        std::fs::write(&keyring, key.public_keyring().expect("keyring")).expect("write");
        let keyring = Keyring::load(&[keyring]).expect("load");
        let signed = keyring
            .verify_inrelease("InRelease", &text("dists/stable/InRelease"))
            .expect("InRelease verifies");
        assert_eq!(signed, release_text);
        keyring
            .verify_detached(
                "Release.gpg",
                &files["dists/stable/Release"],
                &files["dists/stable/Release.gpg"],
            )
            .expect("Release.gpg verifies");
    }

    #[test]
    fn output_is_deterministic_and_valid_until_is_written() {
        let key = ArchiveKey::generate("repo test").expect("key");
        let mut m = meta();
        m.valid_until = Some("2000-01-08T12:30:00Z".parse().expect("date"));
        let mut reversed = entries();
        reversed.reverse();
        let a = files_of(build_indices(&m, &entries(), &key).expect("build"));
        let b = files_of(build_indices(&m, &reversed, &key).expect("build"));
        for name in [
            "dists/stable/main/binary-amd64/Packages",
            "dists/stable/main/binary-amd64/Packages.gz",
            "dists/stable/Release",
        ] {
            assert_eq!(a[name], b[name], "{name}");
        }
        let release = String::from_utf8(a["dists/stable/Release"].clone()).expect("utf-8");
        assert!(
            release.contains("\nValid-Until: Sat, 08 Jan 2000 12:30:00 UTC\n"),
            "{release}"
        );

        // An empty repository is valid: empty indices.
        let empty = files_of(build_indices(&m, &[], &key).expect("build"));
        assert!(empty["dists/stable/main/binary-amd64/Packages"].is_empty());
    }

    #[test]
    fn the_same_file_twice_is_listed_once() {
        let key = ArchiveKey::generate("repo test").expect("key");
        let mut list = entries();
        list.push(list[0].clone());
        let files = files_of(build_indices(&meta(), &list, &key).expect("build"));
        let amd64 = String::from_utf8(files["dists/stable/main/binary-amd64/Packages"].clone())
            .expect("utf-8");
        assert_eq!(amd64.matches("Package: hello\n").count(), 2, "{amd64}");
    }

    fn refused(entries: &[RepoEntry], meta: &RepoMeta) -> String {
        let key = ArchiveKey::generate("repo test").expect("key");
        build_indices(meta, entries, &key)
            .expect_err("must be refused")
            .to_string()
    }

    #[test]
    fn refuses_bad_entries_naming_the_file() {
        let m = meta();
        for missing in ["Package", "Version", "Architecture"] {
            let c: String = control("hello", "1.0", "amd64")
                .lines()
                .filter(|l| !l.starts_with(missing))
                .collect::<Vec<_>>()
                .join("\n");
            let err = refused(&[entry(&c, "nameless.deb", 'a')], &m);
            assert!(err.contains("pool/nameless.deb"), "{err}");
            assert!(err.contains(&format!("no {missing} field")), "{err}");
        }
        let cases = [
            (
                entry(
                    &format!("{}\n\nPackage: two", control("a", "1", "amd64")),
                    "two.deb",
                    'a',
                ),
                "blank",
            ),
            (
                entry(" Package: a\nVersion: 1", "cont.deb", 'a'),
                "continuation",
            ),
            (
                entry("Package a\nVersion: 1", "nocolon.deb", 'a'),
                "not 'Field: value'",
            ),
            (
                entry(&control("a", "1 2", "amd64"), "ver.deb", 'a'),
                "invalid Version",
            ),
            (
                entry(&control("a", "a:b", "amd64"), "epoch.deb", 'a'),
                "bad syntax",
            ),
            (
                entry(&control("a", "1", "amd64"), "../escape.deb", 'a'),
                "invalid file name",
            ),
            (
                entry(&control("a", "1", "amd64"), "sp ace.deb", 'a'),
                "invalid file name",
            ),
            (
                entry(&control("a", "1", "amd64"), "hash.deb", 'g'),
                "invalid SHA-256",
            ),
        ];
        for (e, needle) in cases {
            let err = refused(std::slice::from_ref(&e), &m);
            assert!(err.contains(&e.filename), "{err}");
            assert!(err.contains(needle), "{needle}: {err}");
        }

        // Two different files claiming the same package, version and architecture.
        let one = entry(&control("a", "1", "amd64"), "one.deb", 'a');
        let two = entry(&control("a", "1", "amd64"), "two.deb", 'b');
        let err = refused(&[one, two], &m);
        assert!(
            err.contains("pool/one.deb") && err.contains("pool/two.deb"),
            "{err}"
        );
    }

    #[test]
    fn refuses_bad_repository_descriptions() {
        let e = entries();
        let mut m = meta();
        m.architectures.clear();
        assert!(refused(&e, &m).contains("no architectures"));
        for suite in ["", "a b", "../x", "/abs"] {
            let mut m = meta();
            m.suite = suite.into();
            assert!(refused(&e, &m).contains("invalid suite"), "{suite:?}");
        }
        let mut m = meta();
        m.component = "main/".into();
        assert!(refused(&e, &m).contains("invalid component"));
        let mut m = meta();
        m.architectures = vec!["amd64".into(), "amd64".into()];
        assert!(refused(&e, &m).contains("twice"));
        let mut m = meta();
        m.architectures = vec!["amd/64".into()];
        assert!(refused(&e, &m).contains("invalid architecture"));
        let mut m = meta();
        m.description = "two\nlines".into();
        assert!(refused(&e, &m).contains("one line"));
    }

    #[test]
    fn pool_paths_spread_by_hash() {
        let sha = "AB".to_string() + &"0".repeat(62);
        assert_eq!(
            pool_filename(&sha, "hello_2.10-3_amd64.deb"),
            format!("pool/ab/{}/hello_2.10-3_amd64.deb", sha.to_lowercase())
        );
    }
}
