//! The repository writer against the real thing: `.deb`s built with `dpkg-deb`, indices
//! from `build_indices`, served over HTTP, and the stock `apt-get` (with only this source,
//! trusting only the written keyring) updating from it and installing a package with its
//! dependencies into a dpkg root. Also gpgv (what apt runs) and koshin's own fetcher read
//! it, and apt refuses it when signed by another key, when an index or a package file was
//! changed after signing, or when it has expired. A key exported from GnuPG signs it too.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use koshin_apt::verify::Keyring;
use koshin_apt::{
    AptSource, ArchiveKey, FetchOptions, Fetcher, RepoEntry, RepoMeta, build_indices, pool_filename,
};
use koshin_testkit::{AptClient, AptRun, DebCompression, DebSpec, DpkgRoot, LoopbackServer};

/// A repository written to a temporary directory.
struct Repo {
    root: tempfile::TempDir,
    /// Outside the served tree: the public keyring and the staged debs.
    scratch: tempfile::TempDir,
    keyring: PathBuf,
    entries: Vec<RepoEntry>,
}

impl Repo {
    fn server(&self) -> LoopbackServer {
        LoopbackServer::start(self.root.path()).expect("serve")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.path().join(rel)
    }

    /// An isolated apt whose one source is this repository, trusting `keyring`.
    fn apt(&self, server: &LoopbackServer, keyring: &Path) -> AptClient {
        let line = AptClient::deb_line(keyring, &format!("{}/", server.url()), "stable", &["main"]);
        AptClient::new(&line).expect("apt client")
    }
}

fn meta() -> RepoMeta {
    RepoMeta {
        origin: "koshin".into(),
        label: "koshin test site".into(),
        suite: "stable".into(),
        codename: "koshin".into(),
        component: "main".into(),
        architectures: vec!["amd64".into()],
        description: "Updates approved for this site".into(),
        date: jiff::Timestamp::now(),
        valid_until: Some(jiff::Timestamp::now() + jiff::SignedDuration::from_hours(24 * 7)),
    }
}

/// The packages: hello (two versions; the newer depends on libhello1 and hello-data),
/// each built with a different compression.
fn specs() -> Vec<(DebSpec, DebCompression)> {
    vec![
        (
            DebSpec::new("libhello1", "1.0-1", "amd64")
                .section("libs")
                .file("usr/lib/libhello.so.1", b"not really a library\n"),
            DebCompression::Zstd,
        ),
        (
            DebSpec::new("hello-data", "2.10-3", "all")
                .source("hello", None)
                .file("usr/share/hello/greeting", b"Hello, world!\n"),
            DebCompression::Xz,
        ),
        (
            DebSpec::new("hello", "2.10-3", "amd64")
                .depends("libhello1 (>= 1.0), hello-data (= 2.10-3)")
                .file("usr/bin/hello", b"#!/bin/sh\necho Hello\n"),
            DebCompression::Gzip,
        ),
        (
            DebSpec::new("hello", "2.9-1", "amd64").file("usr/bin/hello", b"#!/bin/sh\necho Hi\n"),
            DebCompression::None,
        ),
    ]
}

/// Builds the debs, places them in the flat pool and writes the indices signed by `key`.
fn publish(key: &ArchiveKey, meta: &RepoMeta) -> Repo {
    let root = tempfile::Builder::new()
        .prefix("krepo")
        .tempdir()
        .expect("tempdir");
    let scratch = tempfile::Builder::new()
        .prefix("kscratch")
        .tempdir()
        .expect("tempdir");
    let mut entries = Vec::new();
    for (spec, compression) in specs() {
        let staged = scratch.path().join(spec.file_name());
        spec.build_compressed(&staged, compression)
            .expect("dpkg-deb");
        let mut entry = RepoEntry::from_deb(&staged, "").expect("read deb");
        entry.filename = pool_filename(&entry.sha256, &spec.file_name());
        let dest = root.path().join(&entry.filename);
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(&staged, &dest).expect("copy to pool");
        entries.push(entry);
    }
    write_indices(root.path(), meta, &entries, key);
    let keyring = scratch.path().join("koshin-archive-keyring.gpg");
    std::fs::write(&keyring, key.public_keyring().expect("keyring")).expect("write keyring");
    Repo {
        root,
        scratch,
        keyring,
        entries,
    }
}

fn write_indices(root: &Path, meta: &RepoMeta, entries: &[RepoEntry], key: &ArchiveKey) {
    for (rel, data) in build_indices(meta, entries, key).expect("build indices") {
        let path = root.join(&rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, data).expect("write index");
    }
}

fn assert_refused(run: &AptRun, needles: &[&str]) {
    assert!(
        !run.exit_ok || !run.clean(),
        "apt should have refused:\n{}",
        run.output()
    );
    let out = run.output();
    assert!(
        needles.iter().any(|n| out.contains(n)),
        "expected one of {needles:?} in:\n{out}"
    );
}

#[test]
fn stock_apt_installs_a_package_and_its_dependencies() {
    let key = ArchiveKey::generate("koshin test archive <apt@koshin.invalid>").expect("key");
    let repo = publish(&key, &meta());
    let server = repo.server();
    let apt = repo.apt(&server, &repo.keyring);

    let update = apt.update().expect("apt-get update");
    assert!(
        update.clean(),
        "apt-get update failed:\n{}",
        update.output()
    );
    assert!(server.requests("/dists/stable/InRelease") >= 1);

    let policy = apt.apt_cache(&["policy", "hello"]).expect("apt-cache");
    assert!(
        policy.stdout.contains("Candidate: 2.10-3"),
        "{}",
        policy.output()
    );
    assert!(policy.stdout.contains("2.9-1 500"), "{}", policy.output());

    let root = DpkgRoot::new().expect("dpkg root");
    let install = apt.install(&root, &["hello"]).expect("apt-get install");
    assert!(
        install.clean(),
        "apt-get install failed:\n{}",
        install.output()
    );
    // apt downloaded the packages from the pool (not from a cache or elsewhere).
    assert!(
        server.requests_matching("/pool/") >= 3,
        "{:?}",
        server.request_log()
    );

    for (package, version) in [
        ("hello", "2.10-3"),
        ("libhello1", "1.0-1"),
        ("hello-data", "2.10-3"),
    ] {
        let state = root.package_state(package).expect("dpkg -s");
        assert_eq!(
            state,
            Some(("install ok installed".to_string(), version.to_string())),
            "{package}: {:?}",
            root.status(package)
        );
    }
    assert_eq!(
        std::fs::read(root.path().join("usr/bin/hello")).expect("installed file"),
        b"#!/bin/sh\necho Hello\n"
    );
    assert!(root.path().join("usr/share/hello/greeting").is_file());
    assert!(root.path().join("usr/lib/libhello.so.1").is_file());
}

#[test]
fn gpgv_and_koshins_verifier_accept_the_signatures() {
    let key = ArchiveKey::generate("koshin test archive").expect("key");
    let repo = publish(&key, &meta());
    let inrelease = repo.path("dists/stable/InRelease");
    for args in [
        vec![inrelease.clone()],
        vec![
            repo.path("dists/stable/Release.gpg"),
            repo.path("dists/stable/Release"),
        ],
    ] {
        let out = Command::new("gpgv")
            .arg("--keyring")
            .arg(&repo.keyring)
            .args(&args)
            .output()
            .expect("run gpgv");
        assert!(
            out.status.success(),
            "gpgv {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("Good signature"), "{stderr}");
    }

    let keyring = Keyring::load(std::slice::from_ref(&repo.keyring)).expect("keyring");
    let text = std::fs::read_to_string(&inrelease).expect("read");
    let body = keyring
        .verify_inrelease("InRelease", &text)
        .expect("koshin verifies InRelease");
    assert_eq!(
        body,
        std::fs::read_to_string(repo.path("dists/stable/Release")).expect("Release")
    );
}

#[tokio::test]
async fn koshins_own_fetcher_reads_the_repository() {
    let key = ArchiveKey::generate("koshin test archive").expect("key");
    let repo = publish(&key, &meta());
    let server = repo.server();
    let keyring = Keyring::load(std::slice::from_ref(&repo.keyring)).expect("keyring");
    let source = AptSource {
        uri: format!("{}/", server.url()),
        suite: "stable".into(),
        components: vec!["main".into()],
        architectures: vec!["amd64".into()],
        signed_by: vec![repo.keyring.clone()],
    };
    let fetcher = Fetcher::new(FetchOptions::default()).expect("fetcher");
    let suite = fetcher
        .fetch_suite(
            &source,
            &keyring,
            jiff::Timestamp::now().as_second(),
            &HashSet::new(),
        )
        .await
        .expect("fetch");
    assert_eq!(suite.release.codename, "koshin");
    let packages = suite.indices[0].packages.as_ref().expect("parsed");
    let mut got: Vec<(String, String, String, u64, String)> = packages
        .iter()
        .map(|p| {
            (
                p.name.clone(),
                p.version.clone(),
                p.filename.clone(),
                p.size,
                p.sha256.clone(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String, String, u64, String)> = repo
        .entries
        .iter()
        .map(|e| {
            let field = |name: &str| {
                e.control
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .expect("field")
                    .trim()
                    .to_string()
            };
            (
                field("Package:"),
                field("Version:"),
                e.filename.clone(),
                e.size,
                e.sha256.clone(),
            )
        })
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn apt_refuses_a_repository_signed_by_another_key() {
    let trusted = ArchiveKey::generate("the site's key").expect("key");
    let other = ArchiveKey::generate("someone else").expect("key");
    let repo = publish(&other, &meta());
    let trusted_keyring = repo.scratch.path().join("trusted.gpg");
    std::fs::write(&trusted_keyring, trusted.public_keyring().expect("keyring")).expect("write");
    let server = repo.server();
    let apt = repo.apt(&server, &trusted_keyring);
    let update = apt.update().expect("apt-get update");
    assert_refused(&update, &["NO_PUBKEY"]);
    assert!(
        update.output().contains(&other.fingerprint()[24..]),
        "{}",
        update.output()
    );

    // Nothing from it can be installed.
    let root = DpkgRoot::new().expect("dpkg root");
    let install = apt.install(&root, &["hello"]).expect("apt-get install");
    assert!(!install.exit_ok, "{}", install.output());
    assert_eq!(root.package_state("hello").expect("dpkg -s"), None);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, data).expect("gzip");
    gz.finish().expect("gzip")
}

#[test]
fn apt_refuses_a_packages_index_changed_after_signing() {
    let key = ArchiveKey::generate("koshin test archive").expect("key");

    // Someone with write access to the files, but not the key, adds a package.
    let repo = publish(&key, &meta());
    let dir = repo.path("dists/stable/main/binary-amd64");
    let mut packages = std::fs::read_to_string(dir.join("Packages")).expect("Packages");
    packages.push_str(
        "Package: evil\nVersion: 1\nArchitecture: amd64\nFilename: pool/evil.deb\nSize: 1\nSHA256: 00\nDescription: x\n\n",
    );
    std::fs::write(dir.join("Packages"), &packages).expect("write");
    std::fs::write(dir.join("Packages.gz"), gzip(packages.as_bytes())).expect("write");
    let server = repo.server();
    let apt = repo.apt(&server, &repo.keyring);
    let update = apt.update().expect("apt-get update");
    assert_refused(&update, &["File has unexpected size", "Hash Sum mismatch"]);
    let policy = apt.apt_cache(&["policy", "evil"]).expect("apt-cache");
    assert!(
        !policy.stdout.contains("Candidate: 1"),
        "{}",
        policy.output()
    );

    // Or changes a version in place.
    let repo = publish(&key, &meta());
    let dir = repo.path("dists/stable/main/binary-amd64");
    let packages = std::fs::read_to_string(dir.join("Packages")).expect("Packages");
    let changed = packages.replacen("Version: 2.9-1\n", "Version: 9.9-1\n", 1);
    assert_ne!(changed, packages);
    std::fs::write(dir.join("Packages"), &changed).expect("write");
    std::fs::write(dir.join("Packages.gz"), gzip(changed.as_bytes())).expect("write");
    let server = repo.server();
    let apt = repo.apt(&server, &repo.keyring);
    let update = apt.update().expect("apt-get update");
    assert_refused(&update, &["Hash Sum mismatch", "File has unexpected size"]);
    let policy = apt.apt_cache(&["policy", "hello"]).expect("apt-cache");
    assert!(!policy.stdout.contains("9.9-1"), "{}", policy.output());
}

#[test]
fn apt_refuses_a_packages_index_corrupted_in_place() {
    let key = ArchiveKey::generate("koshin test archive").expect("key");
    let repo = publish(&key, &meta());
    // Same size, different bytes: only the SHA-256 can tell.
    for name in ["Packages", "Packages.gz"] {
        koshin_testkit::corrupt(&repo.path(&format!("dists/stable/main/binary-amd64/{name}")))
            .expect("corrupt");
    }
    let server = repo.server();
    let apt = repo.apt(&server, &repo.keyring);
    let update = apt.update().expect("apt-get update");
    assert_refused(&update, &["Hash Sum mismatch"]);
}

#[test]
fn apt_refuses_a_package_file_changed_after_signing() {
    let key = ArchiveKey::generate("koshin test archive").expect("key");
    let repo = publish(&key, &meta());
    let hello = repo
        .entries
        .iter()
        .find(|e| e.control.contains("Package: hello\nVersion: 2.10-3"))
        .expect("hello entry");
    koshin_testkit::corrupt(&repo.path(&hello.filename)).expect("corrupt");

    let server = repo.server();
    let apt = repo.apt(&server, &repo.keyring);
    let update = apt.update().expect("apt-get update");
    assert!(update.clean(), "{}", update.output());
    let root = DpkgRoot::new().expect("dpkg root");
    let install = apt.install(&root, &["hello"]).expect("apt-get install");
    assert_refused(&install, &["Hash Sum mismatch"]);
    assert_eq!(root.package_state("hello").expect("dpkg -s"), None);
}

#[test]
fn apt_refuses_an_expired_repository() {
    let key = ArchiveKey::generate("koshin test archive").expect("key");
    let mut m = meta();
    m.date = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(48);
    m.valid_until = Some(jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24));
    let repo = publish(&key, &m);
    let server = repo.server();
    let apt = repo.apt(&server, &repo.keyring);
    let update = apt.update().expect("apt-get update");
    assert_refused(&update, &["is no longer valid", "expired"]);
}

#[test]
fn a_key_made_by_gpg_can_sign_the_repository() {
    // A site may already have an archive key in GnuPG: its unprotected export is usable.
    let gpg = koshin_testkit::Gpg::throwaway("existing site key").expect("gpg key");
    let out = Command::new("gpg")
        .arg("--homedir")
        .arg(gpg.home())
        .args([
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--armor",
            "--export-secret-keys",
            gpg.fingerprint(),
        ])
        .output()
        .expect("gpg --export-secret-keys");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = ArchiveKey::from_armored_secret(&String::from_utf8(out.stdout).expect("armored"))
        .expect("read the gpg key");
    assert_eq!(key.fingerprint(), gpg.fingerprint());

    let repo = publish(&key, &meta());
    // apt trusts the keyring exported by gpg itself.
    let gpg_keyring = repo.scratch.path().join("gpg-export.gpg");
    gpg.export_keyring(&gpg_keyring).expect("gpg --export");
    let server = repo.server();
    let apt = repo.apt(&server, &gpg_keyring);
    let update = apt.update().expect("apt-get update");
    assert!(update.clean(), "{}", update.output());
}
