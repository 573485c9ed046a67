//! The command line as users and outside scripts use it (cli.md): the real `koshin` binary
//! against a real signed archive served on loopback, and the quick start against this
//! machine's own APT sources (the live Debian archive).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

use koshin_testkit::{Archive, DebSpec, SuiteSpec};

/// The sync manager's row of a `status-messages --summary --json` answer.
fn sync_manager(summary: &serde_json::Value) -> &serde_json::Value {
    summary
        .as_array()
        .expect("array")
        .iter()
        .find(|c| c["component"] == "SMS_WSUS_SYNC_MANAGER")
        .unwrap_or_else(|| panic!("no SMS_WSUS_SYNC_MANAGER in {summary}"))
}

fn archive() -> (Archive, koshin_testkit::LoopbackServer) {
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
    a.add(
        "bookworm-security",
        "main",
        &DebSpec::new("libfoo1", "1.0-1+deb12u1", "amd64").source("foo", None),
    )
    .expect("deb");
    a.publish(&SuiteSpec::new("bookworm", "bookworm"))
        .expect("publish");
    a.publish(&SuiteSpec::new("bookworm-security", "bookworm-security").label("Debian-Security"))
        .expect("publish");
    let server = a.serve().expect("serve");
    (a, server)
}

fn init(data: &Path, lines: &[String]) {
    let mut args = vec![
        "site".to_string(),
        "init".into(),
        "--code".into(),
        "CS1".into(),
        "--data".into(),
    ];
    args.push(data.display().to_string());
    for l in lines {
        args.push("--upstream".into());
        args.push(l.clone());
    }
    let out = Command::new(KOSHIN)
        .args(&args)
        .output()
        .expect("init runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cli_contract_sync_updates_and_status_messages() {
    let (a, server) = archive();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("site");
    let line = |suite: &str| {
        format!(
            "deb [signed-by={} arch=amd64] {} {suite} main",
            a.keyring().display(),
            a.uri(&server)
        )
    };
    init(&data, &[line("bookworm"), line("bookworm-security")]);
    // site init: the token file is private, the config documents every default.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("admin.token"))
            .expect("token")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let toml = std::fs::read_to_string(data.join("koshin.toml")).expect("config");
    for key in [
        "retry_minutes = 60",
        "metadata_ttl_minutes = 1440",
        "scan_interval_minutes = 10080",
        "schedule_minutes = 1440",
    ] {
        assert!(toml.contains(key), "koshin.toml lacks {key}");
    }
    // A second init into the same folder is refused.
    let again = Command::new(KOSHIN)
        .args(["site", "init", "--code", "CS1", "--data"])
        .arg(&data)
        .output()
        .expect("runs");
    assert!(!again.status.success());

    let (site, token) = serve(&data);
    let token = token.as_str();
    // The summary's default window starts at 00:00 UTC today: its check below holds only
    // if the day did not change while the sync ran.
    let day = || jiff::Timestamp::now().as_second().div_euclid(86_400);
    let sync_day = day();
    let out = koshin(&site.url, token, &["sync", "--wait", "--full"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let list = json(&koshin(&site.url, token, &["updates", "list", "--json"]));
    let list = list.as_array().expect("array");
    assert_eq!(list.len(), 2, "hello and foo");
    for field in [
        "id",
        "revision",
        "title",
        "product",
        "classification",
        "article_id",
        "bulletin_id",
        "severity",
        "released",
        "revised",
        "superseded_by",
        "expired",
    ] {
        assert!(
            list[0].get(field).is_some(),
            "updates list JSON lacks {field}"
        );
    }
    let sec = json(&koshin(
        &site.url,
        token,
        &[
            "updates",
            "list",
            "--classification",
            "Security Updates",
            "--json",
        ],
    ));
    assert_eq!(sec.as_array().map(Vec::len), Some(1));
    assert_eq!(sec[0]["title"], "foo 1.0-1+deb12u1");

    let id = list
        .iter()
        .find(|u| u["title"] == "hello 2.10-3")
        .expect("hello")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let show = json(&koshin(
        &site.url,
        token,
        &["updates", "show", &id, "--json"],
    ));
    let names: Vec<&str> = show["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|p| p["name"].as_str())
        .collect();
    assert_eq!(names, vec!["hello", "hello-doc"]);
    let human = koshin(&site.url, token, &["updates", "show", &id]);
    assert!(String::from_utf8_lossy(&human.stdout).contains("hello 2.10-3"));

    let msgs = json(&koshin(
        &site.url,
        token,
        &[
            "status-messages",
            "--component",
            "SMS_WSUS_SYNC_MANAGER",
            "--json",
        ],
    ));
    let ids: Vec<u64> = msgs
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|m| m["message_id"].as_u64())
        .collect();
    assert_eq!(ids, vec![6701, 6704, 6705, 6702]);
    for field in [
        "message_id",
        "severity",
        "component",
        "system",
        "site",
        "time",
        "insertion_strings",
        "attributes",
    ] {
        assert!(
            msgs[0].get(field).is_some(),
            "status-messages JSON lacks {field}"
        );
    }
    assert_eq!(msgs[0]["site"], "CS1");

    // The component status summary counts what the viewer lists: four informational
    // messages, the last one 6702, and no error, so the sync manager is OK.
    if day() == sync_day {
        let sum = json(&koshin(
            &site.url,
            token,
            &["status-messages", "--summary", "--json"],
        ));
        let sm = sync_manager(&sum);
        assert_eq!(sm["status"], "OK", "{sm}");
        let counts = ["errors", "warnings", "informational"].map(|k| sm[k].as_u64());
        assert_eq!(counts, [Some(0), Some(0), Some(4)], "{sm}");
        assert_eq!(sm["last_message_id"], 6702);
        assert_eq!(
            sm["last_description"],
            "Software update synchronization done."
        );
        assert_eq!(sm["site"], "CS1");
        assert_eq!(sm["system"], msgs[0]["system"]);
        assert_eq!(sm["last_time"], msgs[3]["time"]);
    }
    // A malformed window is a 400 with the API's one-line JSON reason.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (code, body) = rt.block_on(async {
        let r = reqwest::Client::new()
            .get(format!(
                "{}/api/v1/status-messages/summary?since=yesterday",
                site.url
            ))
            .bearer_auth(token)
            .send()
            .await
            .expect("answer");
        (r.status().as_u16(), r.text().await.expect("body"))
    });
    assert_eq!(code, 400, "{body}");
    let reason: serde_json::Value = serde_json::from_str(&body).expect("JSON error");
    assert!(
        reason["error"]
            .as_str()
            .is_some_and(|e| e.contains("since")),
        "{body}"
    );
    let human = koshin(&site.url, token, &["status-messages", "--summary"]);
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains("STATUS") && human.contains("SMS_WSUS_SYNC_MANAGER"),
        "{human}"
    );

    // A failing sync exits non-zero with the reason; 6703 is filterable by id and severity.
    server.set_fault("InRelease", koshin_testkit::Fault::Status(500));
    let out = koshin(&site.url, token, &["sync", "--wait"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("500"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failed = json(&koshin(
        &site.url,
        token,
        &[
            "status-messages",
            "--id",
            "6703",
            "--severity",
            "E",
            "--json",
        ],
    ));
    assert_eq!(failed.as_array().map(Vec::len), Some(1));

    // One error makes the sync manager Warning (Configuration Manager's default threshold),
    // and 6703 is its last message.
    let listed = json(&koshin(
        &site.url,
        token,
        &[
            "status-messages",
            "--component",
            "SMS_WSUS_SYNC_MANAGER",
            "--since",
            "1h",
            "--json",
        ],
    ));
    let info = listed
        .as_array()
        .expect("array")
        .iter()
        .filter(|m| m["severity"] == "I")
        .count();
    let sum = json(&koshin(
        &site.url,
        token,
        &[
            "status-messages",
            "--summary",
            "--since",
            "1h",
            "--component",
            "sms_wsus_sync_manager",
            "--json",
        ],
    ));
    assert_eq!(sum.as_array().map(Vec::len), Some(1), "{sum}");
    let sm = sync_manager(&sum);
    assert_eq!(sm["status"], "Warning", "{sm}");
    assert_eq!(sm["errors"], 1);
    assert_eq!(sm["informational"].as_u64(), Some(info as u64));
    assert_eq!(sm["last_message_id"], 6703);
    // --id and --severity filter messages, not the summary: refused in one line.
    let out = koshin(
        &site.url,
        token,
        &["status-messages", "--summary", "--id", "6703"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--summary") && err.trim().lines().count() == 1,
        "{err}"
    );

    // Without a token the API refuses, with a one-line reason and a non-zero exit.
    let out = Command::new(KOSHIN)
        .args(["updates", "list"])
        .env("KOSHIN_SITE", &site.url)
        .env_remove("KOSHIN_TOKEN")
        .env("KOSHIN_DATA", dir.path().join("nowhere"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("token"));
}

/// The README's first command on this machine: a site synced from its own APT sources —
/// the live Debian 12 archive (main, updates, security) — with this host enrolled and
/// scanned. Then the oracle: the agent's Required packages and target versions are
/// exactly what `apt list --upgradable` prints from the same sources and the same dpkg
/// database, and the site's `updates-with-counts` report agrees with the agent.
#[test]
fn quick_start_syncs_this_machines_apt_sources_and_agrees_with_apt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("koshin-data");
    let site = start(
        &[
            "up",
            "--data",
            &data.display().to_string(),
            "--listen",
            "127.0.0.1:0",
        ],
        "API:     ",
    );
    let token = std::fs::read_to_string(data.join("admin.token")).expect("token");
    let token = token.trim();
    let list = json(&koshin(&site.url, token, &["updates", "list", "--json"]));
    let list = list.as_array().expect("array");
    assert!(
        list.len() > 30_000,
        "only {} updates from this machine's APT sources",
        list.len()
    );
    let security: Vec<_> = list
        .iter()
        .filter(|u| u["classification"] == "Security Updates")
        .collect();
    assert!(!security.is_empty(), "no security updates");
    let msgs = json(&koshin(
        &site.url,
        token,
        &["status-messages", "--id", "6702", "--json"],
    ));
    assert_eq!(msgs.as_array().map(Vec::len), Some(1));

    // The agent `up` enrolled for this host, scanned again offline (local metadata).
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let out = rt.block_on(async {
        let mut db = koshin_agent::db::AgentDb::open(&data.join("agent")).expect("agent db");
        koshin_agent::scan::scan(
            &mut db,
            None,
            Path::new("/"),
            koshin_domain::scan::ScanTrigger::Offline,
        )
        .await
        .expect("offline scan")
    });
    let mut ours: std::collections::BTreeMap<(String, String), String> =
        std::collections::BTreeMap::new();
    for u in out.updates.iter().filter(|u| u.state == "required") {
        for p in &u.packages {
            let e = ours
                .entry((p.name.clone(), p.arch.clone()))
                .or_insert_with(|| p.target.clone());
            if koshin_domain::version::compare_lenient(&p.target, e) == std::cmp::Ordering::Greater
            {
                *e = p.target.clone();
            }
        }
    }

    // apt, isolated from the host's apt.conf.d, with fresh lists from the same sources and
    // this machine's dpkg database.
    let apt = tempfile::tempdir().expect("apt dir");
    let options = koshin_apt::peer::PeerOptions {
        sources: None,
        dpkg_status: Some("/var/lib/dpkg/status".into()),
        architecture: None,
    };
    let conf = koshin_apt::peer::prepare(apt.path(), &options).expect("apt config");
    let up = koshin_apt::peer::command(&conf, "apt-get", &["-q", "update"])
        .output()
        .expect("apt-get runs");
    assert!(
        up.status.success(),
        "apt-get update: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let listing = koshin_apt::peer::command(&conf, "apt", &["list", "--upgradable"])
        .output()
        .expect("apt runs");
    assert!(listing.status.success());
    let theirs = koshin_apt::peer::parse_upgradable(&String::from_utf8_lossy(&listing.stdout));
    assert_eq!(
        ours, theirs,
        "the agent's Required packages differ from apt list --upgradable"
    );

    // The site's report counts this host as requiring exactly the agent's Required updates.
    let report = json(&koshin(
        &site.url,
        token,
        &["report", "run", "updates-with-counts", "--format", "json"],
    ));
    let site_required: std::collections::BTreeSet<String> = report
        .as_array()
        .expect("rows")
        .iter()
        .filter(|r| r["required"].as_u64() == Some(1))
        .filter_map(|r| r["id"].as_str().map(str::to_string))
        .collect();
    let agent_required: std::collections::BTreeSet<String> = out
        .updates
        .iter()
        .filter(|u| u.state == "required")
        .map(|u| u.id.clone())
        .collect();
    assert_eq!(site_required, agent_required);
}

/// The report names of cli.md, every one of which `koshin report list` must hold.
const CLI_MD_REPORTS: &[(&str, &[&str])] = &[
    ("compliance-by-product", &[]),
    ("compliance-by-update", &["update"]),
    ("computers-for-update", &["update"]),
    ("updates-for-computer", &["computer"]),
    ("updates-not-approved", &[]),
    ("updates-with-counts", &[]),
    ("computers-with-update-distribution-status", &["update"]),
    ("distribution-status-summary", &[]),
    ("distribution-status-by-update", &["update"]),
    ("failed-distributions-summary", &[]),
    ("computers-with-errors-for-deployment", &["deployment"]),
    ("infrastructure-status", &[]),
    ("status-messages-for-computer", &["computer", "days"]),
    ("new-updates-7-days", &[]),
    ("package-transfer-progress", &["package"]),
    ("owners-missing-approved-updates", &[]),
    ("inventory-health", &[]),
];

/// P9 and cli.md: `report list` holds every named report with its parameters, `report sql`
/// prints each one's SQL (a file that can be copied), every report runs in every format,
/// and a copied, edited report file appears in the list and runs.
#[test]
fn report_list_sql_and_run_cover_every_named_report() {
    let (a, server) = archive();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("site");
    let line = |suite: &str| {
        format!(
            "deb [signed-by={} arch=amd64] {} {suite} main",
            a.keyring().display(),
            a.uri(&server)
        )
    };
    init(&data, &[line("bookworm"), line("bookworm-security")]);
    let (site, token) = serve(&data);
    let token = token.as_str();
    let out = koshin(&site.url, token, &["sync", "--wait", "--full"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let list = json(&koshin(&site.url, token, &["report", "list", "--json"]));
    let list = list.as_array().expect("a list");
    for (name, params) in CLI_MD_REPORTS {
        let r = list
            .iter()
            .find(|r| r["name"] == *name)
            .unwrap_or_else(|| panic!("report list lacks {name}"));
        let got: Vec<&str> = r["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .map(|p| p.as_str().expect("a name"))
            .collect();
        assert_eq!(&got, params, "{name}: parameters");
        assert_eq!(r["source"], "built-in");

        let sql = koshin(&site.url, token, &["report", "sql", name]);
        assert!(sql.status.success(), "report sql {name}");
        let sql = String::from_utf8_lossy(&sql.stdout);
        assert!(sql.contains("-- title: "), "{name}: {sql}");
        assert!(sql.to_uppercase().contains("SELECT"), "{name}: {sql}");

        let mut args = vec!["report".to_string(), "run".into(), name.to_string()];
        for p in *params {
            args.push("--param".into());
            args.push(match *p {
                "days" => "days=7".to_string(),
                "computer" => "computer=KOSHIN-TEST".to_string(),
                other => format!("{other}=x"),
            });
        }
        for format in ["json", "csv", "table"] {
            let mut a = args.clone();
            a.extend(["--format".to_string(), format.to_string()]);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            let out = koshin(&site.url, token, &a);
            assert!(
                out.status.success(),
                "report run {name} --format {format}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            if format == "json" {
                let rows: serde_json::Value =
                    serde_json::from_slice(&out.stdout).expect("JSON rows");
                assert!(rows.is_array(), "{name}");
            }
        }
    }
    // A report run without its parameter says which one is missing.
    let out = koshin(&site.url, token, &["report", "run", "computers-for-update"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("update"));

    // The JSON rows of updates-with-counts carry the fields cli.md names.
    let rows = json(&koshin(
        &site.url,
        token,
        &["report", "run", "updates-with-counts", "--format", "json"],
    ));
    let first = &rows.as_array().expect("rows")[0];
    for k in [
        "id",
        "title",
        "required",
        "installed",
        "not_required",
        "unknown",
    ] {
        assert!(
            first.get(k).is_some(),
            "updates-with-counts lacks {k}: {first}"
        );
    }

    // Copy a report's SQL into the site's reports folder, edit it, and it is a report.
    let sql = koshin(&site.url, token, &["report", "sql", "updates-with-counts"]);
    let text = String::from_utf8_lossy(&sql.stdout)
        .replace(
            "-- title: Updates with counts of applicable and installed computers",
            "-- title: Security updates with counts",
        )
        .replace(
            "WHERE expired = 0",
            "WHERE expired = 0 AND classification = :class",
        );
    std::fs::write(data.join("reports").join("security-counts.sql"), text).expect("write");
    let list = json(&koshin(&site.url, token, &["report", "list", "--json"]));
    let mine = list
        .as_array()
        .expect("list")
        .iter()
        .find(|r| r["name"] == "security-counts")
        .expect("the copied report is listed");
    assert_eq!(mine["title"], "Security updates with counts");
    assert_eq!(mine["parameters"], serde_json::json!(["class"]));
    assert!(mine.get("error").is_none(), "{mine}");
    let rows = json(&koshin(
        &site.url,
        token,
        &[
            "report",
            "run",
            "security-counts",
            "--param",
            "class=Security Updates",
            "--format",
            "json",
        ],
    ));
    let rows = rows.as_array().expect("rows");
    assert!(!rows.is_empty());
    assert!(rows.iter().all(|r| r["title"].as_str().is_some()));

    // A report file that writes is listed with the reason and refused when run.
    std::fs::write(
        data.join("reports").join("wipe.sql"),
        "-- title: Wipe\nDELETE FROM updates",
    )
    .expect("write");
    let out = koshin(&site.url, token, &["report", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("cannot run"));
    let out = koshin(&site.url, token, &["report", "run", "wipe"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may only read"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let updates = json(&koshin(&site.url, token, &["updates", "list", "--json"]));
    assert!(
        !updates.as_array().expect("list").is_empty(),
        "nothing was deleted"
    );
}

fn koshin_stdin(
    site: &str,
    token: Option<&str>,
    config: &Path,
    args: &[&str],
    stdin: &str,
) -> std::process::Output {
    use std::io::Write as _;
    let mut cmd = Command::new(KOSHIN);
    cmd.args(args)
        .env("KOSHIN_SITE", site)
        .env_remove("KOSHIN_TOKEN")
        .env("KOSHIN_DATA", config.join("no-local-site"))
        .env("XDG_CONFIG_HOME", config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(t) = token {
        cmd.env("KOSHIN_TOKEN", t);
    }
    let mut child = cmd.spawn().expect("koshin runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("output")
}

/// Issue "trust" from the command line: an administrator is added with a role, logs in
/// (the token is kept per site, mode 0600), is refused what the role does not allow, logs
/// out; enrollment tokens are created; `koshin audit` shows who did what.
#[test]
fn admins_login_enrollment_tokens_and_audit_from_the_cli() {
    let (a, server) = archive();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("site");
    let config = dir.path().join("config");
    std::fs::create_dir_all(&config).expect("config dir");
    let line = |suite: &str| {
        format!(
            "deb [signed-by={} arch=amd64] {} {suite} main",
            a.keyring().display(),
            a.uri(&server)
        )
    };
    init(&data, &[line("bookworm")]);
    let (site, token) = serve(&data);
    let token = token.as_str();
    let out = koshin_stdin(
        &site.url,
        Some(token),
        &config,
        &["admins", "add", "ana", "--role", "read-only analyst"],
        "a long enough password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admins = json(&koshin_stdin(
        &site.url,
        Some(token),
        &config,
        &["admins", "list", "--json"],
        "",
    ));
    assert!(
        admins
            .as_array()
            .expect("list")
            .iter()
            .any(|a| a["name"] == "ana" && a["role"] == "Read-only Analyst")
    );

    let out = koshin_stdin(
        &site.url,
        None,
        &config,
        &["login", "ana"],
        "a long enough password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let file = config.join("koshin").join("tokens.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file)
            .expect("tokens.json")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // The stored token is used: ana reads, and may not sync.
    let out = koshin_stdin(&site.url, None, &config, &["updates", "list", "--json"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = koshin_stdin(&site.url, None, &config, &["sync"], "");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may not sync"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = koshin_stdin(&site.url, None, &config, &["logout"], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = koshin_stdin(
        &site.url,
        None,
        &config,
        &["login", "ana"],
        "wrong password\n",
    );
    assert!(!out.status.success());

    let t = json(&koshin_stdin(
        &site.url,
        Some(token),
        &config,
        &[
            "clients",
            "tokens",
            "create",
            "--uses",
            "5",
            "--description",
            "lab",
            "--json",
        ],
        "",
    ));
    assert!(t["token"].as_str().is_some_and(|t| t.starts_with("kse_")));
    let out = koshin_stdin(
        &site.url,
        Some(token),
        &config,
        &["clients", "tokens", "list"],
        "",
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("lab"));

    // Collections and scopes: create one, scope ana to it, list and show it.
    let run = |args: &[&str]| {
        let out = koshin_stdin(&site.url, Some(token), &config, args, "");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        run(&["collections", "create", "Pilot", "--comment", "first wave"]).contains("CS100002")
    );
    let list = json(&koshin_stdin(
        &site.url,
        Some(token),
        &config,
        &["collections", "list", "--json"],
        "",
    ));
    let names: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["All Systems", "Pilot"]);
    assert!(run(&["collections", "show", "pilot"]).contains("first wave"));
    assert!(run(&["admins", "scope", "ana", "Pilot"]).contains("CS100002"));
    let out = koshin_stdin(
        &site.url,
        Some(token),
        &config,
        &["collections", "add", "Pilot", "no-such-client"],
        "",
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-client"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let log = json(&koshin_stdin(
        &site.url,
        Some(token),
        &config,
        &["audit", "--json"],
        "",
    ));
    let log = log.as_array().expect("entries");
    for action in [
        "create administrator",
        "log in",
        "log out",
        "create enrollment token",
        "create collection",
        "set administrator scopes",
    ] {
        assert!(
            log.iter().any(|e| e["action"] == action),
            "audit lacks {action}: {log:?}"
        );
    }
    // From where: the peer address of the request.
    let created = log
        .iter()
        .find(|e| e["action"] == "create administrator")
        .expect("entry");
    assert_eq!(created["source"], "127.0.0.1", "{created}");
    assert_eq!(created["target"], "ana");
    let out = koshin_stdin(&site.url, Some(token), &config, &["audit"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("create administrator") && text.contains("ana"),
        "{text}"
    );
}

/// Content from the command line (docs/content.md): a package created and distributed to
/// the site's own distribution point and to a remote one started with `koshin dp serve`
/// (which registers itself with the administrator's token), both listed by `koshin dp
/// list`, validated, and counted by the package-transfer-progress report.
#[test]
fn content_and_distribution_points_from_the_cli() {
    let (a, server) = archive();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("site");
    let line = |suite: &str| {
        format!(
            "deb [signed-by={} arch=amd64] {} {suite} main",
            a.keyring().display(),
            a.uri(&server)
        )
    };
    init(&data, &[line("bookworm"), line("bookworm-security")]);
    let (site, token) = serve(&data);
    let token = token.as_str();
    let out = koshin(&site.url, token, &["sync", "--full", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dps = json(&koshin(&site.url, token, &["dp", "list", "--json"]));
    let own = dps[0]["name"]
        .as_str()
        .expect("the site's own point")
        .to_string();
    assert_eq!(dps[0]["local"], true);
    assert_eq!(dps[0]["url"], format!("{}/dp", site.url));

    let out = koshin(
        &site.url,
        token,
        &[
            "content",
            "create",
            "hello-fix",
            "--update",
            "hello 2.10-3",
            "--priority",
            "high",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("CS100001"));

    let dp_dir = dir.path().join("branch");
    let branch = start(
        &[
            "--site",
            &site.url,
            "--token",
            token,
            "dp",
            "serve",
            "--data",
            &dp_dir.display().to_string(),
            "--listen",
            "127.0.0.1:0",
            "--name",
            "branch",
        ],
        "served on ",
    );
    assert!(dp_dir.join("dp.json").is_file());
    let out = koshin(
        &site.url,
        token,
        &[
            "content",
            "distribute",
            "hello-fix",
            "--dp",
            &own,
            "--dp",
            "branch",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = json(&koshin(
            &site.url,
            token,
            &["content", "show", "hello-fix", "--json"],
        ));
        let states: Vec<&str> = p["targets"]
            .as_array()
            .expect("targets")
            .iter()
            .map(|t| t["state"].as_str().expect("state"))
            .collect();
        if states == ["installed", "installed"] {
            break;
        }
        assert!(Instant::now() < deadline, "not distributed: {p:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = koshin(&site.url, token, &["dp", "list"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("branch") && text.contains("remote") && text.contains(&branch.url),
        "{text}"
    );
    let v = json(&koshin(
        &site.url,
        token,
        &["dp", "validate", "branch", "--json"],
    ));
    assert_eq!(v["damaged"], serde_json::json!([]), "{v}");
    assert!(v["checked"].as_u64().is_some_and(|n| n >= 1), "{v}");
    let r = json(&koshin(
        &site.url,
        token,
        &[
            "report",
            "run",
            "package-transfer-progress",
            "--param",
            "package=hello-fix",
            "--format",
            "json",
        ],
    ));
    let row = &r[0];
    assert_eq!(
        (&row["dps_targeted"], &row["dps_done"]),
        (&serde_json::json!(2), &serde_json::json!(2)),
        "{r}"
    );

    // Deployments from the command line (docs/deployments.md).
    let run = |args: &[&str]| {
        let out = koshin(&site.url, token, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        run(&[
            "update-groups",
            "create",
            "november",
            "--update",
            "hello 2.10-3"
        ])
        .contains("1 update")
    );
    assert!(
        run(&["windows", "set", "All Systems", "nightly", "daily 22:00 3h"])
            .contains("daily 22:00 3h")
    );
    assert!(run(&["windows", "list"]).contains("nightly"));
    let created = run(&[
        "deployments",
        "create",
        "nov",
        "--group",
        "november",
        "--collection",
        "All Systems",
        "--deadline",
        "2030-01-01T00:00",
        "--notification",
        "November patches",
    ]);
    assert!(created.contains("CS1D00001"), "{created}");
    let list = json(&koshin(
        &site.url,
        token,
        &["deployments", "list", "--json"],
    ));
    assert_eq!(list[0]["name"], "nov");
    assert_eq!(list[0]["enabled"], true);
    assert!(run(&["deployments", "show", "nov"]).contains("hello 2.10-3"));
    run(&["deployments", "disable", "nov"]);
    let list = json(&koshin(
        &site.url,
        token,
        &["deployments", "list", "--json"],
    ));
    assert_eq!(list[0]["enabled"], false);
    let out = koshin(&site.url, token, &["deployments", "rollback", "nov"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot roll back"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = json(&koshin(&site.url, token, &["audit", "--json"]));
    assert!(
        log.as_array()
            .expect("log")
            .iter()
            .any(|e| e["action"] == "create deployment" && e["target"] == "nov")
    );
}

/// The hierarchy from the command line: a join token at the top, a child created with
/// `site init --parent --join-token`, served; one full sync at the top reaches the child,
/// and `koshin site links` shows the link from both ends.
#[test]
fn a_child_site_joins_and_syncs_from_its_parent() {
    let (a, server) = archive();
    let dir = tempfile::tempdir().expect("tempdir");
    let top_data = dir.path().join("cs1");
    let line = format!(
        "deb [signed-by={} arch=amd64] {} bookworm main",
        a.keyring().display(),
        a.uri(&server)
    );
    init(&top_data, &[line]);
    let (top, token) = serve(&top_data);
    let token = token.as_str();
    let join = koshin(&top.url, token, &["site", "join-token", "--json"]);
    let join = json(&join)["token"].as_str().expect("token").to_string();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let child_data = dir.path().join("ps1");
    let out = Command::new(KOSHIN)
        .args([
            "site",
            "init",
            "--code",
            "PS1",
            "--data",
            &child_data.display().to_string(),
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--parent",
            &top.url,
            "--join-token",
            &join,
        ])
        .output()
        .expect("init child");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Joined parent site CS1"));
    // The join token served once.
    let again = Command::new(KOSHIN)
        .args([
            "site",
            "init",
            "--code",
            "PS2",
            "--data",
            &dir.path().join("ps2").display().to_string(),
            "--parent",
            &top.url,
            "--join-token",
            &join,
        ])
        .output()
        .expect("init second child");
    assert!(!again.status.success());
    assert!(!dir.path().join("ps2").join("koshin.toml").exists());
    let child = start(
        &["site", "serve", "--data", &child_data.display().to_string()],
        "serving on ",
    );
    let child_token = std::fs::read_to_string(child_data.join("admin.token")).expect("token");
    let child_token = child_token.trim();
    let out = koshin(&top.url, token, &["sync", "--full", "--wait"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The same catalog at the child, once the parent's notification has reached it: the
    // same ids, revisions and metadata (each site keeps the time it received a revision as
    // `revised`).
    let catalog = |url: &str, t: &str| {
        let mut v = json(&koshin(url, t, &["updates", "list", "--json"]));
        for u in v.as_array_mut().expect("updates") {
            u.as_object_mut().expect("update").remove("revised");
        }
        v
    };
    let want = catalog(&top.url, token);
    assert!(want.as_array().is_some_and(|a| !a.is_empty()));
    let deadline = Instant::now() + Duration::from_secs(60);
    while catalog(&child.url, child_token) != want {
        assert!(Instant::now() < deadline, "the child did not sync");
        std::thread::sleep(Duration::from_millis(200));
    }
    let synced = json(&koshin(
        &child.url,
        child_token,
        &[
            "status-messages",
            "--component",
            "SMS_WSUS_SYNC_MANAGER",
            "--id",
            "6702",
            "--json",
        ],
    ));
    assert!(synced.as_array().is_some_and(|a| !a.is_empty()));
    let links = json(&koshin(&top.url, token, &["site", "links", "--json"]));
    assert_eq!(
        (&links[0]["code"], &links[0]["relation"]),
        (&serde_json::json!("PS1"), &serde_json::json!("child"))
    );
    let links = json(&koshin(
        &child.url,
        child_token,
        &["site", "links", "--json"],
    ));
    assert_eq!(
        (&links[0]["code"], &links[0]["relation"]),
        (&serde_json::json!("CS1"), &serde_json::json!("parent"))
    );
    let text = String::from_utf8_lossy(&koshin(&child.url, child_token, &["site", "links"]).stdout)
        .into_owned();
    assert!(text.contains("CS1") && text.contains("parent"), "{text}");
}

/// `koshin inventory classes`: set each kind of source, list as a table and as JSON,
/// refuse a bad name with a one-line reason, delete a property and a whole class.
#[test]
fn inventory_classes_from_the_cli() {
    let (a, server) = archive();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("site");
    init(
        &data,
        &[format!(
            "deb [signed-by={} arch=amd64] {} bookworm main",
            a.keyring().display(),
            a.uri(&server)
        )],
    );
    let (site, token) = serve(&data);
    let run = |args: &[&str]| {
        let out = koshin(&site.url, &token, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let classes = ["inventory", "classes"];
    let with = |rest: &[&'static str]| -> Vec<&'static str> {
        classes
            .iter()
            .copied()
            .chain(rest.iter().copied())
            .collect()
    };
    assert!(
        run(&with(&[
            "set",
            "app",
            "tier",
            "--file",
            "/etc/app.conf",
            "--key",
            "TIER"
        ]))
        .contains("custom.app.tier")
    );
    run(&with(&[
        "set",
        "app",
        "node",
        "--file",
        "/etc/app.json",
        "--format",
        "json",
        "--key",
        "app.nodes.0.name",
    ]));
    run(&with(&[
        "set",
        "net",
        "ip-forward",
        "--sysctl",
        "net.ipv4.ip_forward",
    ]));
    run(&with(&[
        "set",
        "app",
        "version",
        "--command",
        "dpkg-query",
        "-W",
        "-f",
        "${Version}",
        "app",
    ]));
    let table = run(&with(&["list"]));
    assert!(table.starts_with("PROPERTY"), "{table}");
    assert!(
        table.contains("command dpkg-query -W -f '${Version}' app"),
        "{table}"
    );
    assert!(
        table.contains("file /etc/app.json (json) app.nodes.0.name"),
        "{table}"
    );
    let list = json(&koshin(&site.url, &token, &with(&["list", "--json"])));
    let list = list.as_array().expect("list");
    assert_eq!(list.len(), 4);
    assert_eq!(list[0]["path"], "custom.app.node");
    assert_eq!(list[0]["source"]["kind"], "file");
    assert_eq!(list[0]["source"]["format"], "json");
    assert_eq!(list[3]["source"]["key"], "net.ipv4.ip_forward");

    let out = koshin(
        &site.url,
        &token,
        &with(&["set", "App", "x", "--sysctl", "a.b"]),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("lower-case"), "{err}");

    assert!(run(&with(&["delete", "app", "tier"])).contains("custom.app.tier deleted"));
    assert!(run(&with(&["delete", "app"])).contains("2 properties"));
    let out = koshin(&site.url, &token, &with(&["delete", "app"]));
    assert!(!out.status.success());
    let list = json(&koshin(&site.url, &token, &with(&["list", "--json"])));
    assert_eq!(list.as_array().map(Vec::len), Some(1));
}
