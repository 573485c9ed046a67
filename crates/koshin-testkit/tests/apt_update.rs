//! Proves the generated archives are real: the real `apt-get update`
//! accepts them, and rejects them once damaged in transit or at rest.

mod common;

use koshin_testkit::{AptClient, Archive, Compression, Fault, Gpg, LoopbackServer, SuiteSpec};

fn client(archive: &Archive, server: &LoopbackServer, suites: &[&str]) -> AptClient {
    let uri = archive.uri(server);
    let sources: String = suites
        .iter()
        .map(|s| AptClient::deb_line(archive.keyring(), &uri, s, &["main"]))
        .collect();
    AptClient::new(&sources).expect("apt client")
}

fn assert_fails(run: &koshin_testkit::AptRun, needle: &str) {
    assert!(
        !run.clean(),
        "apt-get update should have failed:\n{}",
        run.output()
    );
    assert!(
        run.output().contains(needle),
        "expected {needle:?} in apt output:\n{}",
        run.output()
    );
}

#[test]
fn apt_get_update_accepts_two_suites() {
    let (archive, _, _) = common::two_suite_archive();
    let server = archive.serve().expect("serve");
    let apt = client(&archive, &server, &["bookworm", "bookworm-security"]);
    let run = apt.update().expect("apt-get update");
    assert!(run.clean(), "apt-get update failed:\n{}", run.output());

    // apt followed Acquire-By-Hash for the Packages indexes.
    assert_eq!(server.requests("/dists/bookworm/InRelease"), 1);
    assert!(
        server.requests_matching("/by-hash/SHA256/") >= 2,
        "no by-hash requests: {:?}",
        server.request_log()
    );

    let policy = apt.apt_cache(&["policy", "hello"]).expect("apt-cache");
    assert!(policy.clean(), "{}", policy.output());
    assert!(
        policy.stdout.contains("Candidate: 2.10-3+b1"),
        "{}",
        policy.stdout
    );
    assert!(policy.stdout.contains("2.10-3 500"), "{}", policy.stdout);

    let show = apt
        .apt_cache(&["show", "hello=2.10-3+b1"])
        .expect("apt-cache");
    assert!(
        show.stdout.contains("Source: hello (2.10-3)"),
        "{}",
        show.stdout
    );
    let show = apt.apt_cache(&["show", "koshin-data"]).expect("apt-cache");
    assert!(show.stdout.contains("Version: 1:1.0-1"), "{}", show.stdout);
    assert!(show.stdout.contains("Architecture: all"), "{}", show.stdout);
    let show = apt.apt_cache(&["show", "libfoo1"]).expect("apt-cache");
    assert!(
        show.stdout
            .contains("Filename: pool/main/libf/libfoo/libfoo1_1.0-1_amd64.deb"),
        "{}",
        show.stdout
    );
}

#[test]
fn corrupt_packages_in_transit_fails() {
    let (archive, _, _) = common::two_suite_archive();
    let server = archive.serve().expect("serve");
    for c in [Compression::Gz, Compression::Xz] {
        let plain = archive.packages_rel("bookworm", "main", "amd64", c);
        server.set_fault(&plain, Fault::Corrupt);
        let index = format!("main/binary-amd64/Packages{}", c.extension());
        let by_hash = archive.by_hash_rel("bookworm", &index).expect("by-hash");
        server.set_fault(&by_hash, Fault::Corrupt);
    }
    let run = client(&archive, &server, &["bookworm"])
        .update()
        .expect("apt-get update");
    assert_fails(&run, "E:");
}

#[test]
fn truncated_packages_gz_fails() {
    let mut archive = Archive::new().expect("archive");
    archive
        .add("bookworm", "main", &common::hello())
        .expect("add");
    let spec = SuiteSpec::new("bookworm", "bookworm")
        .by_hash(false)
        .compressions(&[Compression::Gz]);
    archive.publish(&spec).expect("publish");
    let server = archive.serve().expect("serve");
    server.set_fault("main/binary-amd64/Packages.gz", Fault::Truncate(20));
    let run = client(&archive, &server, &["bookworm"])
        .update()
        .expect("apt-get update");
    assert_fails(&run, "Packages");
    assert!(server.requests("main/binary-amd64/Packages.gz") >= 1);
}

#[test]
fn corrupt_file_at_rest_fails() {
    let mut archive = Archive::new().expect("archive");
    archive
        .add("bookworm", "main", &common::hello())
        .expect("add");
    let spec = SuiteSpec::new("bookworm", "bookworm")
        .by_hash(false)
        .compressions(&[Compression::Gz]);
    archive.publish(&spec).expect("publish");
    let rel = archive.packages_rel("bookworm", "main", "amd64", Compression::Gz);
    koshin_testkit::corrupt(&archive.root().join(rel)).expect("corrupt");
    let server = archive.serve().expect("serve");
    let run = client(&archive, &server, &["bookworm"])
        .update()
        .expect("apt-get update");
    assert_fails(&run, "E:");
}

#[test]
fn inrelease_signed_by_other_key_fails() {
    let (mut archive, _, _) = common::two_suite_archive();
    let other = Gpg::throwaway("mallory").expect("key");
    archive.resign_with(&other, "bookworm").expect("resign");
    let server = archive.serve().expect("serve");
    let run = client(&archive, &server, &["bookworm"])
        .update()
        .expect("apt-get update");
    // apt names the signer by its long key id (the fingerprint's last 16 digits).
    let fpr = other.fingerprint();
    assert_fails(&run, &format!("NO_PUBKEY {}", &fpr[fpr.len() - 16..]));
}

#[test]
fn inrelease_edited_after_signing_fails() {
    let (mut archive, _, _) = common::two_suite_archive();
    archive
        .tamper_inrelease_unsigned("bookworm", |t| t.replace("Label: Debian", "Label: Evil"))
        .expect("tamper");
    let server = archive.serve().expect("serve");
    let run = client(&archive, &server, &["bookworm"])
        .update()
        .expect("apt-get update");
    assert_fails(&run, "BADSIG");
}

#[test]
fn expired_valid_until_correctly_signed_fails() {
    let (mut archive, _, _) = common::two_suite_archive();
    archive
        .tamper_release("bookworm-security", |t| {
            t.replace(
                "Valid-Until: Sat, 01 Jan 2100",
                "Valid-Until: Sat, 01 Jan 2000",
            )
        })
        .expect("tamper");
    let server = archive.serve().expect("serve");
    let run = client(&archive, &server, &["bookworm-security"])
        .update()
        .expect("apt-get update");
    assert_fails(&run, "expired");
}

#[test]
fn release_size_mismatch_correctly_signed_fails() {
    let (mut archive, _, _) = common::two_suite_archive();
    let release = archive.release_text("bookworm").expect("release");
    // Every listed index gets one byte added to its size.
    archive
        .tamper_release("bookworm", |t| {
            t.lines()
                .map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    match (l.starts_with(' '), f.as_slice()) {
                        (true, [h, size, p]) => {
                            let n: u64 = size.parse().expect("size");
                            format!(" {h} {:>16} {p}\n", n + 1)
                        }
                        _ => format!("{l}\n"),
                    }
                })
                .collect()
        })
        .expect("tamper");
    assert_ne!(release, archive.release_text("bookworm").expect("release"));
    let server = archive.serve().expect("serve");
    let run = client(&archive, &server, &["bookworm"])
        .update()
        .expect("apt-get update");
    assert_fails(&run, "E:");
}

#[test]
fn inrelease_unavailable_fails() {
    let (archive, _, _) = common::two_suite_archive();
    let server = archive.serve().expect("serve");
    server.set_fault("InRelease", Fault::Status(503));
    server.set_fault("Release.gpg", Fault::DropConnection);
    server.set_fault("Release", Fault::NotFound);
    let run = client(&archive, &server, &["bookworm"])
        .update()
        .expect("apt-get update");
    // Without APT::Update::Error-Mode "any" apt would only warn and exit 0.
    assert!(!run.exit_ok, "{}", run.output());
    assert_fails(&run, "503");
}

#[test]
fn apt_get_install_puts_packages_into_a_dpkg_root() {
    use koshin_testkit::{DebSpec, DpkgRoot};
    let mut archive = Archive::new().expect("archive");
    archive
        .add(
            "stable",
            "main",
            &DebSpec::new("greeter", "1.0-1", "amd64")
                .depends("greeter-data")
                .file("usr/bin/greeter", b"#!/bin/sh\necho hi\n"),
        )
        .expect("deb");
    archive
        .add(
            "stable",
            "main",
            &DebSpec::new("greeter-data", "1.0-1", "all"),
        )
        .expect("deb");
    archive
        .publish(&SuiteSpec::new("stable", "stable"))
        .expect("publish");
    let server = archive.serve().expect("serve");
    let apt = client(&archive, &server, &["stable"]);
    let update = apt.update().expect("apt-get update");
    assert!(update.clean(), "{}", update.output());

    let root = DpkgRoot::new().expect("dpkg root");
    assert_eq!(root.package_state("greeter").expect("dpkg -s"), None);
    let install = apt.install(&root, &["greeter"]).expect("apt-get install");
    assert!(install.clean(), "{}", install.output());
    for name in ["greeter", "greeter-data"] {
        assert_eq!(
            root.package_state(name).expect("dpkg -s"),
            Some(("install ok installed".to_owned(), "1.0-1".to_owned()))
        );
    }
    assert!(root.path().join("usr/bin/greeter").is_file());
    // dpkg recorded them in the root's own status file.
    let installed = std::fs::read_to_string(root.status_file()).expect("status");
    assert!(installed.contains("Package: greeter\n"), "{installed}");
}
