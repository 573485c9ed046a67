//! Fetching real archives built with dpkg-deb / apt-ftparchive and signed with gpg.

use std::collections::HashSet;

use koshin_apt::verify::Keyring;
use koshin_apt::{AptError, AptSource, FetchOptions, Fetcher};
use koshin_testkit::{Archive, Compression, DebSpec, Fault, Gpg, SuiteSpec};

fn archive(spec: SuiteSpec) -> Archive {
    let mut a = Archive::new().expect("archive");
    a.add(
        "bookworm",
        "main",
        &DebSpec::new("hello", "2.10-3+b1", "amd64").source("hello", Some("2.10-3")),
    )
    .expect("deb");
    a.add(
        "bookworm",
        "main",
        &DebSpec::new("hello-doc", "2.10-3", "all").source("hello", None),
    )
    .expect("deb");
    a.publish(&spec).expect("publish");
    a
}

fn source(a: &Archive, server: &koshin_testkit::LoopbackServer) -> AptSource {
    AptSource {
        uri: a.uri(server),
        suite: "bookworm".into(),
        components: vec!["main".into()],
        architectures: vec!["amd64".into()],
        signed_by: vec![a.keyring().to_path_buf()],
    }
}

fn fetcher() -> Fetcher {
    Fetcher::new(FetchOptions {
        read_timeout: std::time::Duration::from_secs(2),
        ..FetchOptions::default()
    })
    .expect("fetcher")
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[tokio::test]
async fn fetches_by_hash_and_parses_every_binary() {
    let a = archive(SuiteSpec::new("bookworm", "bookworm"));
    let server = a.serve().expect("serve");
    let keyring = Keyring::load(&[a.keyring().to_path_buf()]).expect("keyring");
    let suite = fetcher()
        .fetch_suite(&source(&a, &server), &keyring, now(), &HashSet::new())
        .await
        .expect("fetch");
    assert_eq!(suite.release.codename, "bookworm");
    let pkgs = suite.indices[0].packages.as_ref().expect("parsed");
    let mut names: Vec<(&str, &str, &str)> = pkgs
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.source.as_str(),
                p.source_version.as_str(),
            )
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        vec![
            ("hello", "hello", "2.10-3"),
            ("hello-doc", "hello", "2.10-3")
        ]
    );
    assert!(
        server.requests_matching("by-hash/SHA256/") >= 1,
        "{:?}",
        server.request_log()
    );
    // An index already synced is not fetched again.
    let skip: HashSet<String> = suite.indices.iter().map(|i| i.sha256.clone()).collect();
    let before = server.request_log().len();
    let again = fetcher()
        .fetch_suite(&source(&a, &server), &keyring, now(), &skip)
        .await
        .expect("fetch");
    assert!(again.indices[0].packages.is_none());
    assert_eq!(server.request_log().len(), before + 1, "only InRelease");
}

#[tokio::test]
async fn falls_back_to_release_and_release_gpg() {
    let a = archive(
        SuiteSpec::new("bookworm", "bookworm")
            .by_hash(false)
            .compressions(&[Compression::Xz]),
    );
    let server = a.serve().expect("serve");
    server.set_fault("InRelease", Fault::NotFound);
    let keyring = Keyring::load(&[a.keyring().to_path_buf()]).expect("keyring");
    let suite = fetcher()
        .fetch_suite(&source(&a, &server), &keyring, now(), &HashSet::new())
        .await
        .expect("fetch via Release.gpg");
    assert_eq!(suite.indices[0].path, "main/binary-amd64/Packages.xz");
    assert_eq!(server.requests("Release.gpg"), 1);
    // An armored keyring works too.
    let armored = Keyring::load(&[a.keyring_armored().to_path_buf()]).expect("armored keyring");
    assert!(!armored.is_empty());
}

#[tokio::test]
async fn refuses_unknown_keys_and_edited_releases() {
    let mut a = archive(SuiteSpec::new("bookworm", "bookworm"));
    let server = a.serve().expect("serve");
    let keyring = Keyring::load(&[a.keyring().to_path_buf()]).expect("keyring");
    a.resign_with(&Gpg::throwaway("intruder").expect("key"), "bookworm")
        .expect("resign");
    let err = fetcher()
        .fetch_release(&source(&a, &server), &keyring, now())
        .await
        .expect_err("unknown key");
    assert!(matches!(err, AptError::UnknownKey { .. }), "{err}");

    let mut a = archive(SuiteSpec::new("bookworm", "bookworm"));
    let server = a.serve().expect("serve");
    let keyring = Keyring::load(&[a.keyring().to_path_buf()]).expect("keyring");
    a.tamper_inrelease_unsigned("bookworm", |t| t.replace("Origin: Debian", "Origin: Evil"))
        .expect("tamper");
    let err = fetcher()
        .fetch_release(&source(&a, &server), &keyring, now())
        .await
        .expect_err("bad signature");
    assert!(matches!(err, AptError::BadSignature { .. }), "{err}");
}

#[tokio::test]
async fn refuses_a_release_signed_for_another_suite() {
    let mut a = archive(SuiteSpec::new("bookworm", "bookworm"));
    let server = a.serve().expect("serve");
    let keyring = Keyring::load(&[a.keyring().to_path_buf()]).expect("keyring");
    a.tamper_release("bookworm", |t| {
        t.replace("Suite: bookworm", "Suite: trixie")
            .replace("Codename: bookworm", "Codename: trixie")
    })
    .expect("tamper");
    let err = fetcher()
        .fetch_release(&source(&a, &server), &keyring, now())
        .await
        .expect_err("replayed suite");
    assert!(err.to_string().contains("not 'bookworm'"), "{err}");
}

#[tokio::test]
async fn a_missing_keyring_is_a_clear_error() {
    let err = Keyring::load(&["/nonexistent/keyring.gpg".into()])
        .err()
        .expect("error");
    assert!(
        err.to_string().contains("/nonexistent/keyring.gpg"),
        "{err}"
    );
}

#[tokio::test]
async fn verifies_the_live_debian_keyring_format() {
    // The system keyrings Debian ships (RSA 4096) load: they are what verifies the live archive.
    let k = Keyring::load(&["/usr/share/keyrings/debian-archive-keyring.gpg".into()])
        .expect("Debian keyring");
    assert!(!k.is_empty());
    assert!(!Keyring::system().expect("system keyrings").is_empty());
}

/// A signature that verifies but was made by a key that has since expired is refused, as
/// apt refuses EXPKEYSIG. The key is made in 2020 with gpg's clock set back, valid one day.
#[tokio::test]
async fn refuses_a_signature_by_an_expired_key() {
    let a = archive(SuiteSpec::new("bookworm", "bookworm"));
    let home = tempfile::tempdir().expect("gnupg home");
    let gpg = |args: &[&str]| {
        let out = std::process::Command::new("gpg")
            .arg("--homedir")
            .arg(home.path())
            .args([
                "--batch",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                "--faked-system-time",
                "20200101T000000!",
            ])
            .args(args)
            .output()
            .expect("gpg runs");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    gpg(&[
        "--quick-gen-key",
        "old archive key <old@koshin.invalid>",
        "ed25519",
        "sign",
        "1d",
    ]);
    let keyring = home.path().join("old.gpg");
    std::fs::write(&keyring, gpg(&["--export"])).expect("keyring");
    let release = a.root().join("dists/bookworm/Release");
    let signed = home.path().join("InRelease");
    gpg(&[
        "--clearsign",
        "--output",
        signed.to_str().expect("path"),
        release.to_str().expect("path"),
    ]);
    let text = std::fs::read_to_string(&signed).expect("signed");
    let keyring = Keyring::load(&[keyring]).expect("keyring");
    let err = keyring
        .verify_inrelease("InRelease", &text)
        .expect_err("expired key");
    assert!(err.to_string().contains("expired on 2020-01-02"), "{err}");
}
