//! Structure of published archives: real hashes, signatures that verify
//! with `gpgv`, Debian field order, by-hash, republishing.

mod common;

use std::path::Path;
use std::process::Command;

use common::output;
use koshin_testkit::{Archive, Compression, DebSpec, Gpg, SuiteSpec};

fn gpgv(keyring: &Path, args: &[&Path]) -> bool {
    Command::new("gpgv")
        .arg("--keyring")
        .arg(keyring)
        .args(args)
        .output()
        .expect("gpgv")
        .status
        .success()
}

/// The stanza of package `name` at `version` in a Packages text.
fn stanza<'a>(packages: &'a str, name: &str, version: &str) -> Option<&'a str> {
    packages.split("\n\n").find(|s| {
        s.lines().any(|l| l == format!("Package: {name}"))
            && s.lines().any(|l| l == format!("Version: {version}"))
    })
}

fn field<'a>(stanza: &'a str, name: &str) -> Option<&'a str> {
    stanza
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

fn packages(archive: &Archive, suite: &str) -> String {
    let rel = archive.packages_rel(suite, "main", "amd64", Compression::Gz);
    output(Command::new("zcat").arg(archive.root().join(rel)))
}

#[test]
fn packages_entries_describe_the_real_debs() {
    let (archive, _, _) = common::two_suite_archive();
    let pkgs = packages(&archive, "bookworm-security");
    let xz = output(
        Command::new("xzcat").arg(archive.root().join(archive.packages_rel(
            "bookworm-security",
            "main",
            "amd64",
            Compression::Xz,
        ))),
    );
    assert_eq!(pkgs, xz);
    let binnmu = stanza(&pkgs, "hello", "2.10-3+b1").expect("binNMU stanza");
    assert_eq!(field(binnmu, "Source"), Some("hello (2.10-3)"));
    let filename = field(binnmu, "Filename").expect("Filename");
    assert_eq!(filename, "pool/main/h/hello/hello_2.10-3+b1_amd64.deb");
    let deb = archive.root().join(filename);
    let sha = output(Command::new("sha256sum").arg(&deb));
    assert_eq!(field(binnmu, "SHA256"), sha.split_whitespace().next());
    let size = std::fs::metadata(&deb).expect("deb").len().to_string();
    assert_eq!(field(binnmu, "Size"), Some(size.as_str()));
    assert!(
        stanza(&pkgs, "koshin-data", "1:1.0-1").is_some(),
        "arch:all missing:\n{pkgs}"
    );
    assert!(stanza(&pkgs, "hello", "2.10-3").is_none());

    // The .deb itself is real.
    let control = output(Command::new("dpkg-deb").arg("--field").arg(&deb));
    assert!(control.contains("Source: hello (2.10-3)"), "{control}");
    let listing = output(Command::new("dpkg-deb").arg("--contents").arg(&deb));
    assert!(listing.contains("./usr/bin/hello"), "{listing}");
    assert!(listing.contains("root/root"), "{listing}");
}

#[test]
fn release_is_signed_ordered_and_by_hash() {
    let (archive, _, _) = common::two_suite_archive();
    let dir = archive.suite_dir("bookworm-security");
    assert!(gpgv(archive.keyring(), &[&dir.join("InRelease")]));
    assert!(gpgv(
        archive.keyring(),
        &[&dir.join("Release.gpg"), &dir.join("Release")]
    ));

    let release = archive.release_text("bookworm-security").expect("Release");
    let names: Vec<&str> = release
        .lines()
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k))
        .collect();
    assert_eq!(
        names,
        [
            "Origin",
            "Label",
            "Suite",
            "Version",
            "Codename",
            "Date",
            "Valid-Until",
            "Acquire-By-Hash",
            "Architectures",
            "Components",
            "MD5Sum",
            "SHA256"
        ]
    );
    assert!(release.contains("Label: Debian-Security\n"));
    assert!(release.contains("Valid-Until: Sat, 01 Jan 2100 00:00:00 UTC\n"));
    // Debian lists the uncompressed index without serving it.
    assert!(release.contains(" main/binary-amd64/Packages\n"));
    assert!(!dir.join("main/binary-amd64/Packages").exists());

    for index in ["Packages.gz", "Packages.xz", "Release"] {
        let rel = archive
            .by_hash_rel("bookworm-security", &format!("main/binary-amd64/{index}"))
            .expect("by-hash");
        let copy = std::fs::read(archive.root().join(&rel)).expect("by-hash copy");
        let orig = std::fs::read(dir.join("main/binary-amd64").join(index)).expect("index");
        assert_eq!(copy, orig, "{rel}");
    }
    // The armored export is a usable key too.
    let imported = Gpg::throwaway("importer").expect("key");
    let listing = output(
        Command::new("gpg")
            .arg("--homedir")
            .arg(imported.home())
            .args(["--batch", "--show-keys", "--with-colons"])
            .arg(archive.keyring_armored()),
    );
    assert!(listing.contains(archive.gpg().fingerprint()), "{listing}");
}

#[test]
fn republish_after_remove_keeps_pool_and_old_by_hash() {
    let (mut archive, stable, _) = common::two_suite_archive();
    let old = archive
        .by_hash_rel("bookworm", "main/binary-amd64/Packages.xz")
        .expect("by-hash");
    archive.remove("bookworm", "hello", "2.10-3");
    let newer = DebSpec::new("hello", "2.10-4", "amd64");
    archive.add("bookworm", "main", &newer).expect("add");
    archive.publish(&stable).expect("republish");

    let pkgs = packages(&archive, "bookworm");
    assert!(stanza(&pkgs, "hello", "2.10-3").is_none(), "{pkgs}");
    assert!(stanza(&pkgs, "hello", "2.10-4").is_some(), "{pkgs}");
    assert!(
        archive
            .root()
            .join("pool/main/h/hello/hello_2.10-3_amd64.deb")
            .exists()
    );
    let new = archive
        .by_hash_rel("bookworm", "main/binary-amd64/Packages.xz")
        .expect("by-hash");
    assert_ne!(old, new);
    assert!(archive.root().join(&old).exists(), "old by-hash copy gone");
    assert!(gpgv(
        archive.keyring(),
        &[&archive.suite_dir("bookworm").join("InRelease")]
    ));
}

#[test]
fn pool_files_are_shared_and_immutable() {
    let mut archive = Archive::new().expect("archive");
    let deb = DebSpec::new("hello", "1.0-1", "amd64");
    let a = archive.add("sid", "main", &deb).expect("add");
    let bytes = std::fs::read(&a).expect("deb");
    let b = archive.add("trixie", "main", &deb).expect("add again");
    assert_eq!(a, b);
    assert_eq!(bytes, std::fs::read(&b).expect("deb"));
    let changed = deb.clone().description("different");
    let e = archive
        .add("trixie", "main", &changed)
        .expect_err("conflict");
    assert!(e.to_string().contains("already exists"), "{e}");
    assert!(archive.add("sid", "../x", &deb).is_err());
    assert!(
        archive
            .add(
                "sid",
                "main",
                &DebSpec::new("bad", "1", "amd64").file("../etc/x", b"")
            )
            .is_err()
    );
    let e = archive
        .add("sid", "main", &DebSpec::new("Bad_Name", "1", "amd64"))
        .expect_err("dpkg-deb rejects");
    assert!(e.to_string().contains("dpkg-deb"), "{e}");
    assert!(
        archive
            .publish(&SuiteSpec::new("sid", "sid").components(&[]))
            .is_err()
    );
}

#[test]
fn uncompressed_only_without_by_hash() {
    let mut archive = Archive::new().expect("archive");
    archive
        .add("sid", "main", &DebSpec::new("hello", "1.0-1", "amd64"))
        .expect("add");
    let spec = SuiteSpec::new("sid", "sid")
        .by_hash(false)
        .compressions(&[Compression::None]);
    archive.publish(&spec).expect("publish");
    let dir = archive.suite_dir("sid").join("main/binary-amd64");
    assert!(dir.join("Packages").exists());
    assert!(!dir.join("Packages.gz").exists());
    assert!(!dir.join("by-hash").exists());
    let release = archive.release_text("sid").expect("Release");
    assert!(!release.contains("Acquire-By-Hash"), "{release}");

    // Switching to xz without listing the uncompressed file.
    let mut spec = spec.compressions(&[Compression::Xz]);
    spec.list_uncompressed = false;
    archive.publish(&spec).expect("publish");
    let release = archive.release_text("sid").expect("Release");
    assert!(
        !release.contains(" main/binary-amd64/Packages\n"),
        "{release}"
    );
    assert!(
        release.contains(" main/binary-amd64/Packages.xz\n"),
        "{release}"
    );
    assert!(!dir.join("Packages").exists());
}

#[test]
fn tampering_helpers_break_or_keep_signatures() {
    let (mut archive, _, _) = common::two_suite_archive();
    let dir = archive.suite_dir("bookworm");
    archive
        .tamper_release("bookworm", |t| t.replace("Version: 12", "Version: 12.99"))
        .expect("tamper");
    assert!(
        archive
            .release_text("bookworm")
            .expect("r")
            .contains("Version: 12.99")
    );
    assert!(gpgv(archive.keyring(), &[&dir.join("InRelease")]));
    assert!(gpgv(
        archive.keyring(),
        &[&dir.join("Release.gpg"), &dir.join("Release")]
    ));

    archive
        .tamper_inrelease_unsigned("bookworm", |t| t.replace("Version: 12.99", "Version: 13"))
        .expect("tamper");
    let inrelease = std::fs::read_to_string(dir.join("InRelease")).expect("InRelease");
    assert!(inrelease.contains("\nVersion: 13\n"));
    assert!(!gpgv(archive.keyring(), &[&dir.join("InRelease")]));
    assert!(!gpgv(
        archive.keyring(),
        &[&dir.join("Release.gpg"), &dir.join("Release")]
    ));

    let other = Gpg::throwaway("other").expect("key");
    archive.resign_with(&other, "bookworm").expect("resign");
    assert!(!gpgv(archive.keyring(), &[&dir.join("InRelease")]));
    let other_ring = archive.scratch_dir().join("other.gpg");
    other.export_keyring(&other_ring).expect("export");
    assert!(gpgv(&other_ring, &[&dir.join("InRelease")]));

    let gz = dir.join("main/binary-amd64/Packages.gz");
    let before = std::fs::read(&gz).expect("gz");
    koshin_testkit::corrupt(&gz).expect("corrupt");
    let after = std::fs::read(&gz).expect("gz");
    assert_eq!(before.len(), after.len());
    assert_ne!(before, after);
    koshin_testkit::truncate(&gz, 10).expect("truncate");
    assert_eq!(std::fs::metadata(&gz).expect("gz").len(), 10);
    assert!(koshin_testkit::truncate(&gz, 11).is_err());
}
