//! Custom inventory classes on the client: each class property the machine policy gives is
//! read from its source and collected as the inventory property `custom.CLASS.PROPERTY`.
//!
//! Files and sysctls are read under the root, like the rest of the inventory. Commands run
//! only on the live machine (root `/`): under another root (a test root, a mounted image)
//! the program would run against this machine, not that one. A source that is missing,
//! unreadable, fails or times out gives no value and is logged; it never stops the
//! inventory.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use koshin_domain::inventory_classes::{self as classes, FileFormat};
use koshin_wire::{InventoryClassProperty, InventorySource, MachinePolicy};

use crate::db::AgentDb;

/// The classes of the machine policy this agent holds (none before its first policy).
pub fn held(db: &AgentDb) -> Vec<InventoryClassProperty> {
    db.get("policy")
        .ok()
        .flatten()
        .and_then(|j| serde_json::from_str::<MachinePolicy>(&j).ok())
        .map(|p| p.inventory_classes)
        .unwrap_or_default()
}

/// The classes held in the agent state folder `state`, without creating it: none when
/// there is no agent database there, or it cannot be read.
pub fn held_in(state: &Path) -> Vec<InventoryClassProperty> {
    if !state.join("agent.db").is_file() {
        return Vec::new();
    }
    match AgentDb::open(state) {
        Ok(db) => held(&db),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "cannot read the inventory classes of the policy held");
            Vec::new()
        }
    }
}

/// Every class property's values on the machine under `root`, by inventory property
/// (`custom.CLASS.PROPERTY`); a property without a value is left out.
pub fn collect(root: &Path, list: &[InventoryClassProperty]) -> BTreeMap<String, Vec<String>> {
    let live = root == Path::new("/");
    let mut out = BTreeMap::new();
    for p in list {
        let path = classes::property_path(&p.class, &p.property);
        let values = match read(root, live, p) {
            Ok(v) => classes::bounded(v),
            Err(why) => {
                tracing::info!(property = %path, source = %p.source, reason = %why, "custom inventory property has no value");
                continue;
            }
        };
        if !values.is_empty() {
            out.insert(path, values);
        }
    }
    out
}

/// One class property's values; Err says why there are none.
pub fn read(root: &Path, live: bool, p: &InventoryClassProperty) -> Result<Vec<String>, String> {
    match &p.source {
        InventorySource::File { path, format, key } => {
            let format = FileFormat::parse(format)
                .ok_or_else(|| format!("this agent does not know the format '{format}'"))?;
            let text = match read_file(root, path) {
                // os-release(5): /etc/os-release, else /usr/lib/os-release.
                Err(_) if format == FileFormat::OsRelease && path == "/etc/os-release" => {
                    read_file(root, "/usr/lib/os-release")?
                }
                r => r?,
            };
            if format == FileFormat::Json {
                return classes::json(&text, key).map_err(|e| format!("{path}: {e}"));
            }
            Ok(format.read(&text, key))
        }
        InventorySource::Sysctl { key } => {
            let rel = classes::sysctl_path(key).ok_or_else(|| format!("'{key}' is no sysctl"))?;
            Ok(classes::lines(&read_file(root, &rel)?))
        }
        InventorySource::Command { argv } => {
            if !live {
                return Err("commands run only on the live machine (root /)".into());
            }
            run_command(
                argv,
                Duration::from_secs(classes::COMMAND_TIMEOUT_SECONDS),
                classes::MAX_COMMAND_OUTPUT,
            )
        }
        InventorySource::Unknown => Err("this agent does not know this kind of source".into()),
    }
}

/// A regular file under `root` (`path` taken as relative to it), up to
/// [`classes::MAX_FILE_BYTES`]; a device, a pipe or a folder is not read.
fn read_file(root: &Path, path: &str) -> Result<String, String> {
    let full = root.join(path.trim_start_matches('/'));
    let meta = std::fs::metadata(&full).map_err(|e| format!("{}: {e}", full.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a regular file", full.display()));
    }
    let mut data = Vec::new();
    std::fs::File::open(&full)
        .and_then(|f| f.take(classes::MAX_FILE_BYTES).read_to_end(&mut data))
        .map_err(|e| format!("{}: {e}", full.display()))?;
    Ok(String::from_utf8_lossy(&data).into_owned())
}

/// Kills a process group.
fn kill_group(pgid: u32) {
    if let Ok(pgid) = i32::try_from(pgid) {
        // SAFETY: kill(2) with a negative pid signals the group the child leads; no memory
        // is involved.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

/// Runs a program with its arguments, without a shell, stdin empty, in its own process
/// group: each non-empty line of the first `limit` bytes of its standard output is one
/// value (a line cut at the limit is dropped). Err when it cannot start, exits with an
/// error or runs longer than `timeout` (then the whole group is killed).
pub fn run_command(
    argv: &[String],
    timeout: Duration,
    limit: usize,
) -> Result<Vec<String>, String> {
    use std::os::unix::process::CommandExt;
    let (program, args) = argv.split_first().ok_or("the command names no program")?;
    let mut child = std::process::Command::new(program)
        .args(args)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let pgid = child.id();
    let Some(mut stdout) = child.stdout.take() else {
        kill_group(pgid);
        let _ = child.wait();
        return Err(format!("cannot read the output of {program}"));
    };
    let (tx, rx) = std::sync::mpsc::channel();
    // Reads to the end (so the program never blocks on a full pipe), keeping `limit` bytes.
    std::thread::spawn(move || {
        let (mut kept, mut cut, mut buf) = (Vec::new(), false, [0u8; 8192]);
        loop {
            match stdout.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = limit.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                    cut |= n > room;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = tx.send((kept, cut));
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Ok(None) => {
                kill_group(pgid);
                let _ = child.wait();
                return Err(format!(
                    "{program} did not finish within {} s and was stopped",
                    timeout.as_secs_f32()
                ));
            }
            Err(e) => {
                kill_group(pgid);
                let _ = child.wait();
                return Err(format!("cannot wait for {program}: {e}"));
            }
        }
    };
    // The program has ended; what it started may still hold the pipe open until the
    // deadline.
    let left = deadline.saturating_duration_since(Instant::now());
    let (mut out, cut) = match rx.recv_timeout(left.max(Duration::from_millis(100))) {
        Ok(r) => r,
        Err(_) => {
            kill_group(pgid);
            rx.recv_timeout(Duration::from_secs(1)).map_err(|_| {
                format!("the output of {program} was not closed within the time allowed")
            })?
        }
    };
    if !status.success() {
        return Err(format!("{program} failed ({status})"));
    }
    if cut {
        // Keep whole lines only.
        let end = out.iter().rposition(|&b| b == b'\n').unwrap_or(0);
        out.truncate(end);
    }
    Ok(classes::lines(&String::from_utf8_lossy(&out)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, text).expect("write");
    }

    fn prop(class: &str, property: &str, source: InventorySource) -> InventoryClassProperty {
        InventoryClassProperty {
            class: class.into(),
            property: property.into(),
            source,
        }
    }

    fn file(path: &str, format: &str, key: &str) -> InventorySource {
        InventorySource::File {
            path: path.into(),
            format: format.into(),
            key: key.into(),
        }
    }

    fn argv(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    /// Each source under a test root; what is missing, unreadable or unknown gives no value
    /// and the others are still read; commands do not run under another root.
    #[test]
    fn reads_each_source_under_a_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        write(root, "etc/app.conf", "# app\nTIER=\"gold\"\n");
        write(root, "etc/app.ini", "[server]\nport = 8443\n");
        write(
            root,
            "etc/app.json",
            r#"{"app": {"nodes": [{"name": "n1"}, {"name": "n2"}], "tags": ["a", "b"]}}"#,
        );
        write(root, "etc/bad.json", "{ not json");
        write(root, "usr/lib/os-release", "ID=debian\nVERSION_ID=\"12\"\n");
        write(root, "proc/sys/net/ipv4/ip_forward", "1\n");
        std::fs::create_dir_all(root.join("etc/a-folder")).expect("folder");
        let list = vec![
            prop("app", "tier", file("/etc/app.conf", "key-value", "TIER")),
            prop("app", "port", file("/etc/app.ini", "ini", "server.port")),
            prop(
                "app",
                "node",
                file("/etc/app.json", "json", "app.nodes.1.name"),
            ),
            prop("app", "tags", file("/etc/app.json", "json", "app.tags")),
            prop("app", "broken", file("/etc/bad.json", "json", "a")),
            prop("app", "missing", file("/etc/none.conf", "key-value", "A")),
            prop("app", "folder", file("/etc/a-folder", "key-value", "A")),
            prop("app", "yaml", file("/etc/app.conf", "yaml", "TIER")),
            prop(
                "os",
                "id",
                file("/etc/os-release", "os-release", "VERSION_ID"),
            ),
            prop(
                "net",
                "forward",
                InventorySource::Sysctl {
                    key: "net.ipv4.ip_forward".into(),
                },
            ),
            prop(
                "net",
                "none",
                InventorySource::Sysctl {
                    key: "net.ipv4.nothing".into(),
                },
            ),
            prop(
                "cmd",
                "echo",
                InventorySource::Command {
                    argv: argv(&["echo", "hello"]),
                },
            ),
            prop("x", "y", InventorySource::Unknown),
        ];
        let got = collect(root, &list);
        let want: BTreeMap<String, Vec<String>> = [
            ("custom.app.tier", vec!["gold"]),
            ("custom.app.port", vec!["8443"]),
            ("custom.app.node", vec!["n2"]),
            ("custom.app.tags", vec!["a", "b"]),
            ("custom.os.id", vec!["12"]),
            ("custom.net.forward", vec!["1"]),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
        .collect();
        assert_eq!(got, want);
        assert!(
            read(root, false, &list[11])
                .unwrap_err()
                .contains("live machine")
        );
        assert!(
            read(root, false, &list[4])
                .unwrap_err()
                .contains("not JSON")
        );
    }

    /// Commands on the live machine: output lines are values, a failing or missing program
    /// gives none, a slow one is stopped at the timeout, output past the limit is dropped.
    #[test]
    fn commands_run_without_a_shell() {
        let t = Duration::from_secs(10);
        assert_eq!(
            run_command(&argv(&["echo", "hello"]), t, 1024),
            Ok(vec!["hello".to_string()])
        );
        // No shell: the `;` is an argument.
        assert_eq!(
            run_command(&argv(&["echo", "a;", "b"]), t, 1024),
            Ok(vec!["a; b".to_string()])
        );
        assert_eq!(
            run_command(&argv(&["printf", "one\n\n two \nthree"]), t, 1024),
            Ok(argv(&["one", "two", "three"]))
        );
        assert!(
            run_command(&argv(&["false"]), t, 1024)
                .unwrap_err()
                .contains("failed")
        );
        assert!(
            run_command(&argv(&["/nonexistent/program"]), t, 1024)
                .unwrap_err()
                .contains("cannot run")
        );
        assert!(run_command(&[], t, 1024).is_err());
        let started = Instant::now();
        let slow = run_command(&argv(&["sleep", "30"]), Duration::from_millis(300), 1024);
        assert!(slow.unwrap_err().contains("did not finish"));
        assert!(started.elapsed() < Duration::from_secs(5));
        // 10 lines of 10 bytes, 35 kept: three whole lines.
        let many = run_command(
            &argv(&[
                "sh",
                "-c",
                "for i in 0 1 2 3 4 5 6 7 8 9; do echo 12345678$i; done",
            ]),
            t,
            35,
        );
        assert_eq!(many, Ok(argv(&["123456780", "123456781", "123456782"])));
        // A program that writes far more than the limit still finishes normally.
        let big = run_command(&argv(&["seq", "1", "200000"]), t, 64 << 10).expect("seq");
        assert_eq!(big.first().map(String::as_str), Some("1"));
        assert!(big.len() < 20_000);
        // Through the inventory, on the live root.
        let got = collect(
            Path::new("/"),
            &[prop(
                "cmd",
                "echo",
                InventorySource::Command {
                    argv: argv(&["echo", "hello"]),
                },
            )],
        );
        assert_eq!(got["custom.cmd.echo"], ["hello"]);
    }
}
