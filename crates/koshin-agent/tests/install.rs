//! The agent's installer against the real dpkg: real `.deb`s built with dpkg-deb, served
//! on loopback, installed into a throwaway dpkg root. Every maintainer script here refuses
//! to run without `DPKG_ROOT` (dpkg sets it for a chrootless root), so nothing can touch
//! the host.

use std::path::{Path, PathBuf};
use std::process::Command;

use koshin_agent::install::{InstallError, InstallFile, Installer};
use koshin_testkit::{DebSpec, DpkgRoot, Fault, LoopbackServer};
use sha2::{Digest, Sha256};

/// A dpkg root, a directory the server serves, the agent's cache, and the server.
struct Setup {
    root: DpkgRoot,
    served: tempfile::TempDir,
    cache: tempfile::TempDir,
    server: LoopbackServer,
}

impl Setup {
    fn new() -> Setup {
        let root = DpkgRoot::new().expect("dpkg root");
        let served = tempfile::tempdir().expect("served dir");
        let cache = tempfile::tempdir().expect("cache dir");
        let server = LoopbackServer::start(served.path()).expect("server");
        Setup {
            root,
            served,
            cache,
            server,
        }
    }

    fn installer(&self) -> Installer {
        Installer::new(self.root.path(), self.cache.path())
    }

    /// Builds `spec` into the served directory.
    fn publish(&self, spec: &DebSpec) -> PathBuf {
        let path = self.served.path().join(spec.file_name());
        spec.build(&path).expect("build deb");
        path
    }

    /// What the deployment says about a published `.deb`.
    fn file(&self, spec: &DebSpec) -> InstallFile {
        let path = self.served.path().join(spec.file_name());
        let bytes = std::fs::read(&path).expect("read deb");
        InstallFile {
            package: spec.name.clone(),
            version: spec.version.clone(),
            architecture: spec.arch.clone(),
            url: format!("{}/{}", self.server.url(), spec.file_name()),
            sha256: hex::encode(Sha256::digest(&bytes)),
            size: bytes.len() as u64,
        }
    }

    /// Installs a package with plain dpkg, as the machine had it before the deployment.
    fn preinstall(&self, spec: &DebSpec) {
        let dir = tempfile::tempdir().expect("tmp");
        let deb = dir.path().join(spec.file_name());
        spec.build(&deb).expect("build deb");
        let out = self.dpkg(&["--install".as_ref(), deb.as_os_str()]);
        assert!(out.status.success(), "{}", text(&out));
    }

    fn dpkg(&self, args: &[&std::ffi::OsStr]) -> std::process::Output {
        Command::new("dpkg")
            .arg(format!("--root={}", self.root.path().display()))
            .args([
                "--force-not-root",
                "--force-script-chrootless",
                "--log=/dev/null",
            ])
            .args(args)
            .env("LC_ALL", "C")
            .output()
            .expect("run dpkg")
    }

    fn audit(&self) -> String {
        text(&self.dpkg(&["--audit".as_ref()]))
    }

    fn state(&self, package: &str) -> Option<(String, String)> {
        self.root.package_state(package).expect("dpkg -s")
    }

    fn status_file(&self) -> String {
        std::fs::read_to_string(self.root.status_file()).expect("status")
    }
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn installed(version: &str) -> Option<(String, String)> {
    Some(("install ok installed".to_string(), version.to_string()))
}

/// A maintainer script that only ever runs against the test root.
fn script(body: &str) -> String {
    format!("#!/bin/sh\nset -e\n[ -n \"$DPKG_ROOT\" ] || exit 99\n{body}\n")
}

fn hello(version: &str) -> DebSpec {
    DebSpec::new("hello", version, "amd64").file("usr/bin/hello", version.as_bytes())
}

/// Bytes that do not compress, so the `.deb` is big enough to be cut in the middle.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn cached(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("cache")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn upgrade_installs_exactly_the_deployed_version() {
    let s = Setup::new();
    s.preinstall(&hello("1.0-1"));
    s.preinstall(&DebSpec::new("bystander", "1", "all"));
    let v2 = hello("2.0-1");
    s.publish(&v2);
    // A newer bystander on the same server is not part of the deployment.
    s.publish(&DebSpec::new("bystander", "2", "all"));
    let installer = s.installer();
    let http = reqwest::Client::new();

    let deb = installer
        .download(&http, &s.file(&v2))
        .await
        .expect("download");
    assert_eq!(deb, installer.cache_path("hello", "2.0-1", "amd64"));
    let out = installer
        .install(std::slice::from_ref(&deb))
        .expect("install");

    assert_eq!(
        out.installed,
        vec![("hello".into(), "amd64".into(), "2.0-1".into())]
    );
    assert!(out.other_changes.is_empty(), "{:?}", out.other_changes);
    assert!(!out.restart_required);
    assert!(
        out.dpkg_output
            .contains("Unpacking hello (2.0-1) over (1.0-1)")
    );
    assert_eq!(s.state("hello"), installed("2.0-1"));
    assert_eq!(s.state("bystander"), installed("1"));
    assert_eq!(
        std::fs::read(s.root.path().join("usr/bin/hello")).expect("file"),
        b"2.0-1"
    );
    assert_eq!(
        installer
            .installed_version("hello", "amd64")
            .expect("query"),
        Some("2.0-1".into())
    );
    assert_eq!(
        installer.installed_version("hello", "i386").expect("query"),
        None
    );
    assert_eq!(s.audit(), "");
    assert!(
        std::fs::read_to_string(s.root.path().join("var/log/dpkg.log"))
            .expect("dpkg log")
            .contains("upgrade hello:amd64 1.0-1 2.0-1")
    );

    // A verified file in the cache is not fetched again.
    let requests = s.server.requests(&v2.file_name());
    installer
        .download(&http, &s.file(&v2))
        .await
        .expect("again");
    assert_eq!(s.server.requests(&v2.file_name()), requests);
}

#[tokio::test]
async fn interrupted_downloads_resume_with_range() {
    let s = Setup::new();
    let big = hello("2.0-1").file("usr/share/hello/data", &noise(300_000));
    s.publish(&big);
    let f = s.file(&big);
    assert!(f.size > 200_000, "{}", f.size);
    let installer = s.installer();
    let http = reqwest::Client::new();
    let name = big.file_name();

    // Cut once: the same call resumes where the first response stopped.
    s.server.set_fault_times(&name, Fault::Truncate(70_000), 1);
    let deb = installer.download(&http, &f).await.expect("download");
    let records = s.server.request_records();
    assert_eq!(records.len(), 2, "{records:?}");
    assert_eq!(records[0].range, None);
    assert_eq!(records[1].range.as_deref(), Some("bytes=70000-"));
    assert_eq!(
        hex::encode(Sha256::digest(std::fs::read(&deb).expect("deb"))),
        f.sha256
    );
    assert_eq!(cached(s.cache.path()), vec![name.clone()]);

    // Cut more often than one call tries: the partial file survives the failed call and
    // the next call continues it.
    std::fs::remove_file(&deb).expect("rm");
    s.server.clear_log();
    s.server.set_fault_times(&name, Fault::Truncate(50_000), 3);
    let e = installer.download(&http, &f).await.expect_err("three cuts");
    assert!(matches!(e, InstallError::Download { .. }), "{e}");
    assert!(e.to_string().contains("after 150000 of"), "{e}");
    assert_eq!(cached(s.cache.path()), vec![format!("{name}.partial")]);
    let deb = installer.download(&http, &f).await.expect("resumed");
    let ranges: Vec<Option<String>> = s
        .server
        .request_records()
        .into_iter()
        .map(|r| r.range)
        .collect();
    assert_eq!(
        ranges,
        vec![
            None,
            Some("bytes=50000-".into()),
            Some("bytes=100000-".into()),
            Some("bytes=150000-".into())
        ]
    );
    installer.install(&[deb]).expect("install");
    assert_eq!(s.state("hello"), installed("2.0-1"));
}

#[tokio::test]
async fn a_file_that_does_not_match_is_deleted_and_nothing_installed() {
    let s = Setup::new();
    s.preinstall(&hello("1.0-1"));
    let v2 = hello("2.0-1");
    s.publish(&v2);
    let installer = s.installer();
    let http = reqwest::Client::new();
    let status = s.status_file();

    let mut wrong = s.file(&v2);
    wrong.sha256 = "ab".repeat(32);
    let e = installer.download(&http, &wrong).await.expect_err("sha");
    assert!(matches!(e, InstallError::Checksum { .. }), "{e}");
    assert!(e.to_string().contains("SHA-256"), "{e}");
    assert!(cached(s.cache.path()).is_empty());

    // Damaged on the wire: same length, other bytes.
    s.server.set_fault_times(&v2.file_name(), Fault::Corrupt, 1);
    let e = installer
        .download(&http, &s.file(&v2))
        .await
        .expect_err("corrupt");
    assert!(matches!(e, InstallError::Checksum { .. }), "{e}");
    assert!(cached(s.cache.path()).is_empty());

    // Another size than the deployment says is refused before it is all read.
    let mut short = s.file(&v2);
    short.size -= 1;
    let e = installer.download(&http, &short).await.expect_err("size");
    assert!(e.to_string().contains("bytes"), "{e}");
    assert!(cached(s.cache.path()).is_empty());

    // A URL's credentials never reach the message.
    let mut missing = s.file(&v2);
    missing.url = missing
        .url
        .replace("http://", "http://agent:s3cret@")
        .replace(".deb", "-gone.deb?token=s3cret");
    let e = installer.download(&http, &missing).await.expect_err("404");
    assert!(e.to_string().contains("404"), "{e}");
    assert!(!e.to_string().contains("s3cret"), "{e}");

    assert_eq!(s.status_file(), status);
    assert_eq!(s.state("hello"), installed("1.0-1"));
}

#[test]
fn a_missing_dependency_is_refused_before_anything_changes() {
    let s = Setup::new();
    s.preinstall(&hello("1.0-1"));
    let installer = s.installer();
    let status = s.status_file();

    let needy = DebSpec::new("needy", "1", "amd64").depends("libmissing (>= 2), hello (>= 1.0)");
    let deb = s.publish(&needy);
    let e = installer
        .install(std::slice::from_ref(&deb))
        .expect_err("refused");
    let InstallError::Dependencies(why) = &e else {
        panic!("{e}");
    };
    assert!(why.contains("needy depends on libmissing (>= 2)"), "{why}");
    assert!(why.contains("libmissing is not installed"), "{why}");
    assert!(!why.contains("leaving unconfigured"), "{why}");
    assert_eq!(s.status_file(), status);
    assert_eq!(s.state("needy"), None);
    assert_eq!(s.audit(), "");

    // A version too old is a dependency problem too.
    let newer = DebSpec::new("needy", "1", "amd64").depends("hello (>= 2)");
    let deb = s.publish(&newer);
    let e = installer
        .install(std::slice::from_ref(&deb))
        .expect_err("too old");
    assert!(matches!(e, InstallError::Dependencies(_)), "{e}");
    assert!(e.to_string().contains("hello (>= 2)"), "{e}");
    assert_eq!(s.status_file(), status);

    // Pre-Depends are dpkg's unpack-time check.
    let pre = DebSpec::new("early", "1", "amd64").field("Pre-Depends", "libmissing");
    let deb = s.publish(&pre);
    let e = installer
        .install(std::slice::from_ref(&deb))
        .expect_err("pre");
    assert!(matches!(e, InstallError::Dependencies(_)), "{e}");
    assert!(e.to_string().contains("pre-depends on libmissing"), "{e}");
    assert_eq!(s.status_file(), status);

    // Replacing (removing) an installed package is not the deployment's to do.
    let usurper = DebSpec::new("usurper", "1", "amd64")
        .field("Conflicts", "hello")
        .field("Replaces", "hello");
    let deb = s.publish(&usurper);
    let e = installer
        .install(std::slice::from_ref(&deb))
        .expect_err("removal");
    assert!(e.to_string().contains("remove hello"), "{e}");
    assert_eq!(s.status_file(), status);

    // When the deployment brings the dependency along, both install.
    let lib = DebSpec::new("libmissing", "2", "all");
    let debs = [s.publish(&needy), s.publish(&lib)];
    let out = installer.install(&debs).expect("together");
    assert_eq!(out.installed.len(), 2);
    assert_eq!(s.state("needy"), installed("1"));
    assert_eq!(s.state("libmissing"), installed("2"));
    assert_eq!(s.state("hello"), installed("1.0-1"));
    assert_eq!(s.audit(), "");
}

#[test]
fn a_failing_preinst_leaves_the_old_version() {
    let s = Setup::new();
    s.preinstall(&hello("1.0-1"));
    let bad = hello("2.0-1").script("preinst", &script("echo 'no room at the inn' >&2\nexit 1"));
    let deb = s.publish(&bad);
    let e = s.installer().install(&[deb]).expect_err("preinst");
    let InstallError::MaintainerScript { package, output } = &e else {
        panic!("{e}");
    };
    assert_eq!(package, "hello");
    assert!(output.contains("no room at the inn"), "{output}");
    let line = e.to_string();
    assert!(line.contains("pre-installation script"), "{line}");
    assert!(line.contains("exit status 1"), "{line}");
    assert!(!line.contains('\n'), "{line}");
    assert_eq!(s.state("hello"), installed("1.0-1"));
    assert_eq!(s.audit(), "");
}

#[test]
fn a_failing_postinst_returns_to_the_cached_previous_version() {
    let s = Setup::new();
    let v1 = hello("1.0-1");
    s.preinstall(&v1);
    let installer = s.installer();
    // The caller keeps the installed version's .deb in the cache for this.
    v1.build(&installer.cache_path("hello", "1.0-1", "amd64"))
        .expect("cache v1");
    let bad = hello("2.0-1").script("postinst", &script("echo 'cannot start' >&2\nexit 1"));
    let deb = s.publish(&bad);
    let e = installer.install(&[deb]).expect_err("postinst");
    let InstallError::MaintainerScript { package, output } = &e else {
        panic!("{e}");
    };
    assert_eq!(package, "hello");
    assert!(e.to_string().contains("post-installation script"), "{e}");
    assert!(
        output.contains("configuring hello:amd64 once more: failed"),
        "{output}"
    );
    assert!(
        output.contains("reinstalling hello:amd64 1.0-1"),
        "{output}"
    );
    assert_eq!(s.state("hello"), installed("1.0-1"));
    assert_eq!(s.audit(), "");
}

#[test]
fn a_failing_postinst_without_the_previous_deb_stays_half_configured() {
    let s = Setup::new();
    s.preinstall(&hello("1.0-1"));
    let bad = hello("2.0-1").script("postinst", &script("exit 1"));
    let deb = s.publish(&bad);
    let e = s.installer().install(&[deb]).expect_err("postinst");
    let InstallError::MaintainerScript { package, output } = &e else {
        panic!("{e}");
    };
    assert_eq!(package, "hello");
    assert!(output.contains("not in the cache"), "{output}");
    // The documented exception: dpkg's state as dpkg left it, nothing removed.
    assert_eq!(
        s.state("hello"),
        Some(("install ok half-configured".into(), "2.0-1".into()))
    );
    assert!(s.audit().contains("half configured"), "{}", s.audit());
    assert!(output.contains("dpkg --audit"), "{output}");
    assert_eq!(
        s.installer()
            .installed_version("hello", "amd64")
            .expect("q"),
        None
    );
}

#[test]
fn a_new_package_whose_postinst_fails_is_removed_again() {
    let s = Setup::new();
    let bad = DebSpec::new("fresh", "1", "amd64").script("postinst", &script("exit 1"));
    let deb = s.publish(&bad);
    let e = s.installer().install(&[deb]).expect_err("postinst");
    assert!(
        matches!(&e, InstallError::MaintainerScript { package, .. } if package == "fresh"),
        "{e}"
    );
    let state = s.state("fresh");
    assert!(
        state.is_none()
            || state
                .as_ref()
                .is_some_and(|(st, _)| st.contains("not-installed")),
        "{state:?}"
    );
    assert_eq!(s.audit(), "");
}

#[test]
fn a_transiently_failing_postinst_is_configured_on_the_second_try() {
    let s = Setup::new();
    s.preinstall(&hello("1.0-1"));
    let flaky = hello("2.0-1").script(
        "postinst",
        &script(
            "if [ ! -e \"$DPKG_ROOT/tried\" ]; then touch \"$DPKG_ROOT/tried\"; exit 1; fi\nexit 0",
        ),
    );
    let deb = s.publish(&flaky);
    let out = s.installer().install(&[deb]).expect("second try");
    assert_eq!(s.state("hello"), installed("2.0-1"));
    assert!(
        out.dpkg_output.contains("once more: done"),
        "{}",
        out.dpkg_output
    );
    assert_eq!(s.audit(), "");
}

#[test]
fn rollback_installs_the_older_version() {
    let s = Setup::new();
    let v1 = hello("1.0-1");
    s.preinstall(&v1);
    let installer = s.installer();
    let v2 = s.publish(&hello("2.0-1"));
    installer.install(&[v2]).expect("upgrade");
    assert_eq!(s.state("hello"), installed("2.0-1"));

    let old = s.publish(&v1);
    let out = installer.install(&[old]).expect("rollback");
    assert_eq!(
        out.installed,
        vec![("hello".into(), "amd64".into(), "1.0-1".into())]
    );
    assert!(
        out.dpkg_output.contains("downgrading hello"),
        "{}",
        out.dpkg_output
    );
    assert_eq!(s.state("hello"), installed("1.0-1"));
    assert_eq!(
        std::fs::read(s.root.path().join("usr/bin/hello")).expect("file"),
        b"1.0-1"
    );
    assert_eq!(s.audit(), "");
}

#[test]
fn a_package_that_asks_for_a_restart_is_reported() {
    let s = Setup::new();
    let installer = s.installer();
    let plain = s.publish(&DebSpec::new("plain", "1", "amd64"));
    let out = installer.install(&[plain]).expect("plain");
    assert!(!out.restart_required);
    assert!(out.restart_packages.is_empty());

    let kernel = DebSpec::new("kernelish", "1", "amd64").script(
        "postinst",
        &script(
            "mkdir -p \"$DPKG_ROOT/run\"\ntouch \"$DPKG_ROOT/run/reboot-required\"\necho kernelish >> \"$DPKG_ROOT/run/reboot-required.pkgs\"",
        ),
    );
    let deb = s.publish(&kernel);
    let out = installer.install(&[deb]).expect("kernel");
    assert!(out.restart_required);
    assert_eq!(out.restart_packages, vec!["kernelish".to_string()]);
    assert!(s.root.path().join("run/reboot-required").exists());
}

#[test]
fn not_enough_space_is_refused_before_anything_changes() {
    let s = Setup::new();
    s.preinstall(&hello("1.0-1"));
    let status = s.status_file();
    // 4 TiB, as dpkg-deb records it (KiB).
    let huge = hello("2.0-1").field("Installed-Size", "4294967296");
    let deb = s.publish(&huge);
    let installer = s.installer();

    let e = installer
        .check_space(std::slice::from_ref(&deb))
        .expect_err("check");
    let InstallError::NoSpace { free, needed } = e else {
        panic!("{e}");
    };
    assert_eq!(needed, 4294967296 * 1024 + 10 * 1024 * 1024);
    assert!(free < needed);
    installer
        .check_space(&[s.publish(&hello("2.0-2"))])
        .expect("a small package fits");

    let e = installer.install(&[deb]).expect_err("install");
    assert!(matches!(e, InstallError::NoSpace { .. }), "{e}");
    assert!(e.to_string().contains("bytes free"), "{e}");
    assert_eq!(s.status_file(), status);
    assert_eq!(s.state("hello"), installed("1.0-1"));
    assert_eq!(s.audit(), "");
}

#[test]
fn a_file_owned_by_another_package_is_refused_and_unwound() {
    let s = Setup::new();
    s.preinstall(&hello("1.0-1"));
    // dpkg finds this only while unpacking for real, and unwinds it itself.
    let squatter = DebSpec::new("squatter", "1", "amd64").file("usr/bin/hello", b"mine");
    let deb = s.publish(&squatter);
    let e = s.installer().install(&[deb]).expect_err("conflict");
    assert!(matches!(e, InstallError::Dpkg { .. }), "{e}");
    assert!(e.to_string().contains("trying to overwrite"), "{e}");
    assert!(
        e.to_string().contains("which is also in package hello"),
        "{e}"
    );
    let state = s.state("squatter");
    assert!(
        state.is_none()
            || state
                .as_ref()
                .is_some_and(|(st, _)| st.contains("not-installed")),
        "{state:?}"
    );
    assert_eq!(s.state("hello"), installed("1.0-1"));
    assert_eq!(
        std::fs::read(s.root.path().join("usr/bin/hello")).expect("file"),
        b"1.0-1"
    );
    assert_eq!(s.audit(), "");
}
