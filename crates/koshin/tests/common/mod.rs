//! Shared by the `koshin` binary's tests: the binary run as users run it, and running
//! server processes killed on drop.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const KOSHIN: &str = env!("CARGO_BIN_EXE_koshin");

/// A running `koshin` server process, killed on drop.
pub struct Running {
    pub child: Child,
    pub url: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `koshin <args>` and waits for the line that names its URL.
pub fn start(args: &[&str], marker: &str) -> Running {
    let mut child = Command::new(KOSHIN)
        .args(args)
        .env_remove("KOSHIN_TOKEN")
        .env_remove("KOSHIN_SITE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("koshin starts");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    for stream in [
        Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().expect("stderr")),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                eprintln!("[koshin] {line}");
                let _ = tx.send(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = match rx.recv_timeout(left) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("koshin did not print '{marker}' in time: {e}");
            }
        };
        if let Some(url) = line
            .split(marker)
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
        {
            let url = url.trim_end_matches("/api/v1").to_string();
            // Keep draining output in the background.
            std::thread::spawn(move || while rx.recv().is_ok() {});
            return Running { child, url };
        }
    }
}

pub fn koshin(site: &str, token: &str, args: &[&str]) -> std::process::Output {
    Command::new(KOSHIN)
        .args(args)
        .env("KOSHIN_SITE", site)
        .env("KOSHIN_TOKEN", token)
        .output()
        .expect("koshin runs")
}

pub fn json(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "koshin failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// `koshin site serve --data DATA --listen LISTEN`, once it says where it serves.
pub fn serve_at(data: &Path, listen: &str) -> Running {
    start(
        &[
            "site",
            "serve",
            "--data",
            &data.display().to_string(),
            "--listen",
            listen,
        ],
        "serving on ",
    )
}

/// The site's administrator token, as `site init` wrote it.
pub fn admin_token(data: &Path) -> String {
    std::fs::read_to_string(data.join("admin.token"))
        .expect("admin.token")
        .trim()
        .to_string()
}

/// `koshin site serve` of the site in `data` on a free loopback port, and its admin token.
pub fn serve(data: &Path) -> (Running, String) {
    (serve_at(data, "127.0.0.1:0"), admin_token(data))
}
