//! The `koshin` binary over HTTPS: `site init --https-listen` and `site serve` print both
//! URLs ("serving on http://..." first), the admin CLI verifies an https:// site with
//! `--ca-cert`, `KOSHIN_CA_CERT` or the local data folder's `pki/ca.crt`, and fails with a
//! hint without one; an internet-facing site prints only its HTTPS URL and does not answer
//! plain HTTP.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const KOSHIN: &str = env!("CARGO_BIN_EXE_koshin");
const UPSTREAM: &str =
    "deb [signed-by=/nonexistent arch=amd64] http://127.0.0.1:9/debian bookworm main";

/// A running `koshin site serve`, killed on drop, and the URL lines it printed.
struct Running {
    child: Child,
    lines: Vec<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// The URL after `marker` in the printed lines.
    fn url(&self, marker: &str) -> Option<String> {
        self.lines.iter().find_map(|l| {
            l.split(marker)
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .map(str::to_string)
        })
    }
}

fn init(data: &Path) {
    let out = Command::new(KOSHIN)
        .args(["site", "init", "--code", "CS1", "--data"])
        .arg(data)
        .args(["--upstream", UPSTREAM, "--https-listen", "127.0.0.1:0"])
        .output()
        .expect("init runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("pki/ca.crt"), "{text}");
}

/// Starts `koshin site serve` and waits for its "serving HTTPS on" line.
fn serve(data: &Path) -> Running {
    let mut child = Command::new(KOSHIN)
        .args(["site", "serve", "--data"])
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("KOSHIN_TOKEN")
        .env_remove("KOSHIN_SITE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("koshin starts");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("[site] {line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut lines = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains("serving HTTPS on ");
                lines.push(line);
                if done {
                    std::thread::spawn(move || while rx.recv().is_ok() {});
                    return Running { child, lines };
                }
            }
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("koshin site serve did not print its HTTPS URL: {e}; {lines:?}");
            }
        }
    }
}

/// `koshin ARGS` in `cwd` with only the given environment for the site, token and CA.
fn koshin(cwd: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut c = Command::new(KOSHIN);
    c.current_dir(cwd)
        .args(args)
        .env_remove("KOSHIN_SITE")
        .env_remove("KOSHIN_TOKEN")
        .env_remove("KOSHIN_CA_CERT")
        .env_remove("KOSHIN_DATA");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("koshin runs")
}

#[test]
fn site_serve_prints_both_urls_and_the_cli_verifies_https_with_the_site_ca() {
    let dir = tempfile::tempdir().expect("dir");
    // ./koshin-data, as on the site machine.
    let data = dir.path().join("koshin-data");
    init(&data);
    let site = serve(&data);
    let http = site.url("serving on ").expect("the plain URL");
    let https = site.url("serving HTTPS on ").expect("the HTTPS URL");
    assert!(http.starts_with("http://"), "{http}");
    assert!(https.starts_with("https://"), "{https}");
    let first = site
        .lines
        .iter()
        .position(|l| l.contains("serving on "))
        .expect("plain line");
    let second = site
        .lines
        .iter()
        .position(|l| l.contains("serving HTTPS on "))
        .expect("https line");
    assert!(first < second, "{:?}", site.lines);

    // On the site machine: the token and the CA of ./koshin-data.
    let out = koshin(
        dir.path(),
        &[("KOSHIN_SITE", &https)],
        &["clients", "list", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");

    // Elsewhere: --ca-cert or KOSHIN_CA_CERT, or a failure that says what to give.
    let elsewhere = tempfile::tempdir().expect("dir");
    let token = std::fs::read_to_string(data.join("admin.token")).expect("token");
    let token = token.trim();
    let ca = data.join("pki").join("ca.crt").display().to_string();
    let out = koshin(
        elsewhere.path(),
        &[("KOSHIN_SITE", &https), ("KOSHIN_TOKEN", token)],
        &["updates", "list", "--json"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--ca-cert"), "{err}");
    assert!(!err.contains(token), "the token never appears: {err}");
    let out = koshin(
        elsewhere.path(),
        &[("KOSHIN_SITE", &https), ("KOSHIN_TOKEN", token)],
        &["--ca-cert", &ca, "updates", "list", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = koshin(
        elsewhere.path(),
        &[
            ("KOSHIN_SITE", &https),
            ("KOSHIN_TOKEN", token),
            ("KOSHIN_CA_CERT", &ca),
        ],
        &["status-messages", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Plain HTTP still answers on a site that is not internet-facing.
    let out = koshin(
        elsewhere.path(),
        &[("KOSHIN_SITE", &http), ("KOSHIN_TOKEN", token)],
        &["clients", "list", "--json"],
    );
    assert!(out.status.success());
}

#[test]
fn an_internet_facing_site_prints_and_serves_only_https() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("koshin-data");
    init(&data);
    let path = data.join("koshin.toml");
    let text = std::fs::read_to_string(&path).expect("koshin.toml");
    assert!(text.contains("internet_facing = false"), "{text}");
    std::fs::write(
        &path,
        text.replace("internet_facing = false", "internet_facing = true"),
    )
    .expect("write");
    let site = serve(&data);
    assert!(site.url("serving on ").is_none(), "{:?}", site.lines);
    assert!(
        site.lines.iter().any(|l| l.contains("no plain HTTP")),
        "{:?}",
        site.lines
    );
    let https = site.url("serving HTTPS on ").expect("the HTTPS URL");
    let out = koshin(
        dir.path(),
        &[("KOSHIN_SITE", &https)],
        &["clients", "list", "--json"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same port over plain HTTP gets no answer.
    let plain = https.replacen("https://", "http://", 1);
    let out = koshin(
        dir.path(),
        &[("KOSHIN_SITE", &plain)],
        &["clients", "list", "--json"],
    );
    assert!(!out.status.success(), "plain HTTP must not be served");
}
