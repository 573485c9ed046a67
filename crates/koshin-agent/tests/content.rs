//! Content (issue "library, distribution points a stock apt can use, priorities and
//! senders"): packages fetched into the library and sent to the site's own and remote
//! distribution points, each a signed APT repository that a stock apt-get installs from;
//! the distribution manager's priorities without preemption; the sender's rate limit,
//! schedule and emergency lift; 2342/2330 and 3531/3533; damaged files sent again; broken
//! downloads resumed.

mod common;

use std::time::{Duration, Instant};

use common::*;
use koshin_server::content::remote::{DpIdentity, DpState, router};
use koshin_testkit::{AptClient, DebSpec, DpkgRoot, Fault};
use serde_json::json;

/// A remote distribution point served in-process on loopback and registered at the site.
struct RemoteDp {
    name: String,
    url: String,
    dir: tempfile::TempDir,
}

impl RemoteDp {
    async fn start(site: &TestSite, name: &str) -> RemoteDp {
        let dir = tempfile::tempdir().expect("dp dir");
        let token = format!("ksp_{}", hex::encode(rand::random::<[u8; 32]>()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = DpState::open(
            dir.path(),
            DpIdentity {
                site: site.url.clone(),
                name: name.into(),
                url: url.clone(),
                push_token_sha256: koshin_server::init::hash_token(&token),
            },
        )
        .expect("dp state");
        tokio::spawn(async move {
            axum::serve(listener, router(state))
                .await
                .expect("serve dp");
        });
        let (s, v) = call(
            site,
            "POST",
            "/api/v1/dps/register",
            Some(&site.token),
            Some(json!({"name": name, "url": url, "push_token": token})),
        )
        .await;
        assert_eq!(s, 200, "{v}");
        RemoteDp {
            name: name.into(),
            url,
            dir,
        }
    }

    fn repo(&self) -> std::path::PathBuf {
        self.dir.path().join("repo")
    }
}

/// Runs the distribution manager of the site until the returned sender is dropped.
fn distribution_manager(site: &TestSite) -> tokio::sync::watch::Sender<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(koshin_server::content::distmgr::run(site.site.clone(), rx));
    tx
}

async fn create(site: &TestSite, name: &str, update: &str, priority: &str) -> serde_json::Value {
    let (s, v) = call(
        site,
        "POST",
        "/api/v1/content",
        Some(&site.token),
        Some(json!({"name": name, "updates": [update], "priority": priority})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v
}

async fn distribute(site: &TestSite, package: &str, dps: &[&str], groups: &[&str]) {
    let (s, v) = call(
        site,
        "POST",
        &format!("/api/v1/content/{package}/distribute"),
        Some(&site.token),
        Some(json!({"distribution_points": dps, "groups": groups})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
}

async fn show(site: &TestSite, package: &str) -> serde_json::Value {
    let (s, v) = call(
        site,
        "GET",
        &format!("/api/v1/content/{package}"),
        Some(&site.token),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    v
}

fn state_on(p: &serde_json::Value, dp: &str) -> Option<String> {
    p["targets"]
        .as_array()?
        .iter()
        .find(|t| t["distribution_point"] == dp)
        .and_then(|t| t["state"].as_str().map(str::to_string))
}

/// Waits until `package` is installed on every one of `dps`.
async fn installed(site: &TestSite, package: &str, dps: &[&str]) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = show(site, package).await;
        if dps
            .iter()
            .all(|d| state_on(&p, d).as_deref() == Some("installed"))
        {
            return p;
        }
        assert!(Instant::now() < deadline, "not installed in time: {p:#}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (message id, insertion strings) of the content components' messages, oldest first.
fn messages(site: &TestSite) -> Vec<(u32, Vec<String>)> {
    site.site
        .store
        .query_status(&Default::default(), &koshin_domain::Scope::All)
        .expect("status")
        .into_iter()
        .filter(|m| matches!(m.message_id, 2342 | 2330 | 3531 | 3532 | 3533))
        .map(|m| (m.message_id, m.insertion_strings))
        .collect()
}

const LOCAL: &str = "KOSHIN-TEST";

/// Must show 1 and 3 (in part): a package goes to the site's own and a remote distribution
/// point, each announced by 2342 and finished by 2330 (the remote one through the sender's
/// 3531 and 3533); a stock apt-get, with only a distribution point as its source and the
/// site's public key, installs it into a dpkg root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stock_apt_get_installs_from_a_koshin_distribution_point() {
    let site = TestSite::start().await;
    let _dm = distribution_manager(&site);
    let branch = RemoteDp::start(&site, "branch").await;
    let p = create(&site, "hello-security", HELLO_NEW, "high").await;
    let id = p["id"].as_str().expect("id").to_string();
    assert_eq!(id, "CS100001");
    distribute(&site, &id, &[LOCAL, &branch.name], &[]).await;
    let p = installed(&site, &id, &[LOCAL, "branch"]).await;
    assert_eq!(p["file_list"][0]["in_library"], true, "{p:#}");

    for dp in [LOCAL, "branch"] {
        let m = messages(&site);
        let start = m
            .iter()
            .position(|(id2, s)| *id2 == 2342 && s[1] == dp)
            .unwrap_or_else(|| panic!("no 2342 for {dp}: {m:?}"));
        let done = m
            .iter()
            .position(|(id2, s)| *id2 == 2330 && s[1] == dp)
            .unwrap_or_else(|| panic!("no 2330 for {dp}: {m:?}"));
        assert!(start < done, "{m:?}");
    }
    let m = messages(&site);
    assert!(
        m.iter()
            .any(|(i, s)| *i == 3531 && s[2] == "branch" && s[3] == "0"),
        "{m:?}"
    );
    assert!(
        m.iter()
            .any(|(i, s)| *i == 3533 && s[2] == "branch" && s[3] == "100"),
        "{m:?}"
    );

    // P18: the package-transfer-progress report.
    let (s, v) = call(
        &site,
        "GET",
        &format!("/api/v1/reports/package-transfer-progress?package={id}"),
        Some(&site.token),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let row = &v["rows"][0];
    assert_eq!(
        (
            &row["site"],
            &row["last_transfer_pct"],
            &row["dps_targeted"],
            &row["dps_done"],
            &row["dps_done_pct"]
        ),
        (
            &json!("CS1"),
            &json!(100),
            &json!(2),
            &json!(2),
            &json!(100)
        ),
        "{v}"
    );

    // The same file in a second package is stored once in the library.
    create(&site, "hello-again", HELLO_NEW, "low").await;
    let library: Vec<_> = walk(&site.data.join("content"));
    assert_eq!(library.len(), 1, "{library:?}");

    // A stock apt-get, only the distribution point as its source, the site's key as signed-by.
    let keyring = site.data.join("pki").join("archive-key.gpg");
    for url in [branch.url.clone(), format!("{}/dp", site.url)] {
        let apt =
            AptClient::new(&AptClient::deb_line(&keyring, &url, "koshin", &["main"])).expect("apt");
        let up = apt.update().expect("apt-get update");
        assert!(up.clean(), "{url}: {}", up.output());
        let root = DpkgRoot::new().expect("dpkg root");
        let run = apt.install(&root, &["hello"]).expect("apt-get install");
        assert!(run.exit_ok, "{url}: {}", run.output());
        assert_eq!(
            root.package_state("hello").expect("dpkg status"),
            Some(("install ok installed".to_string(), "2.10-4".to_string())),
            "{url}"
        );
    }

    // A different key: apt refuses the repository.
    let other = koshin_apt::signing::ArchiveKey::generate("not the site").expect("key");
    let wrong = tempfile::tempdir().expect("dir");
    let wrong_keyring = wrong.path().join("other.gpg");
    std::fs::write(&wrong_keyring, other.public_keyring().expect("keyring")).expect("write");
    let apt = AptClient::new(&AptClient::deb_line(
        &wrong_keyring,
        &branch.url,
        "koshin",
        &["main"],
    ))
    .expect("apt");
    assert!(!apt.update().expect("apt-get update").clean());
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Adds a package of `size` random (incompressible) bytes to bookworm-security and syncs.
async fn big_package(site: &mut TestSite, name: &str, size: usize) -> String {
    let blob: Vec<u8> = (0..size).map(|_| rand::random::<u8>()).collect();
    site.archive
        .add(
            SECURITY,
            "main",
            &DebSpec::new(name, "1.0-1", "amd64")
                .source(name, None)
                .file(&format!("/usr/share/{name}/blob"), &blob),
        )
        .expect("add");
    site.publish_security();
    site.sync().await;
    format!("{name} 1.0-1")
}

/// Must show 2: a closed sender schedule holds every transfer; an emergency lift sends at
/// once, highest priority first; a rate limit shows in the transfer time; a medium
/// package under way is not interrupted by a new high one, which goes next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priorities_schedules_rate_limits_and_the_emergency_lift() {
    let mut site = TestSite::start().await;
    let big = big_package(&mut site, "bigdata", 400 * 1024).await;
    let _dm = distribution_manager(&site);
    let _branch = RemoteDp::start(&site, "branch").await;
    let settings = |body: serde_json::Value| {
        let site = &site;
        async move {
            let (s, v) = call(
                site,
                "POST",
                "/api/v1/dps/branch/settings",
                Some(&site.token),
                Some(body),
            )
            .await;
            assert_eq!(s, 200, "{v}");
        }
    };
    settings(json!({"schedule": ["00-24=closed"]})).await;
    for (name, update, priority) in [
        ("low-1", LIBFOO_OLD, "low"),
        ("medium-1", CURL, "medium"),
        ("high-1", HELLO_NEW, "high"),
    ] {
        create(&site, name, update, priority).await;
        distribute(&site, name, &["branch"], &[]).await;
    }
    // Outside the schedule: everything waits.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for name in ["low-1", "medium-1", "high-1"] {
        assert_eq!(
            state_on(&show(&site, name).await, "branch").as_deref(),
            Some("waiting")
        );
    }
    assert!(messages(&site).is_empty(), "{:?}", messages(&site));
    // The emergency lift: sent at once, by priority.
    settings(json!({"lift_minutes": 60})).await;
    for name in ["low-1", "medium-1", "high-1"] {
        installed(&site, name, &["branch"]).await;
    }
    let order: Vec<String> = messages(&site)
        .into_iter()
        .filter(|(i, _)| *i == 2342)
        .map(|(_, s)| s[0].clone())
        .collect();
    assert_eq!(
        order,
        ["CS100003", "CS100002", "CS100001"],
        "high, medium, low"
    );

    // A rate limit of 200 KiB/s: 400 KiB take about two seconds.
    settings(json!({"lift_minutes": 0, "schedule": [], "rate_limit": 200 * 1024})).await;
    create(&site, "big-medium", &big, "medium").await;
    let started = Instant::now();
    distribute(&site, "big-medium", &["branch"], &[]).await;
    // While it is under way, a high package arrives: it waits for the medium one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    create(&site, "urgent", LIBFOO_SEC, "high").await;
    distribute(&site, "urgent", &["branch"], &[]).await;
    installed(&site, "big-medium", &["branch"]).await;
    let took = started.elapsed();
    installed(&site, "urgent", &["branch"]).await;
    assert!(
        took >= Duration::from_millis(1700),
        "400 KiB at 200 KiB/s took {took:?}"
    );
    let m = messages(&site);
    let pos = |id: u32, pkg: &str| {
        m.iter()
            .position(|(i, s)| *i == id && s[0] == pkg)
            .unwrap_or_else(|| panic!("no {id} for {pkg}: {m:?}"))
    };
    assert!(pos(2330, "CS100004") < pos(2342, "CS100005"), "{m:?}");
}

/// Must show 3: a damaged file on a distribution point is found by validation, removed,
/// and sent again; a download from the upstream that breaks off resumes where it stopped;
/// adding a point to a group sends it none of the group's packages until the group is
/// assigned again (P15).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_files_are_sent_again_and_downloads_resume() {
    let mut site = TestSite::start().await;
    let big = big_package(&mut site, "resumable", 256 * 1024).await;
    let _dm = distribution_manager(&site);
    let branch = RemoteDp::start(&site, "branch").await;

    // The upstream breaks the download off halfway once; the library resumes with a Range.
    site.upstream
        .set_fault_times("resumable_1.0-1_amd64.deb", Fault::Truncate(128 * 1024), 1);
    site.upstream.clear_log();
    create(&site, "resumable", &big, "medium").await;
    distribute(&site, "resumable", &["branch"], &[]).await;
    installed(&site, "resumable", &["branch"]).await;
    let ranges: Vec<_> = site
        .upstream
        .request_records()
        .into_iter()
        .filter(|r| r.path.ends_with("resumable_1.0-1_amd64.deb"))
        .map(|r| r.range)
        .collect();
    assert_eq!(ranges.len(), 2, "{ranges:?}");
    assert_eq!(ranges[0], None);
    assert!(
        ranges[1]
            .as_deref()
            .is_some_and(|r| r.starts_with("bytes=") && r != "bytes=0-"),
        "{ranges:?}"
    );

    // Damage the file on the point: validation finds it, and it is sent again.
    let files = walk(&branch.repo().join("pool"));
    assert_eq!(files.len(), 1, "{files:?}");
    let len = std::fs::metadata(&files[0]).expect("file").len() as usize;
    std::fs::write(&files[0], vec![0u8; len]).expect("damage");
    let (s, v) = call(
        &site,
        "POST",
        "/api/v1/dps/branch/validate",
        Some(&site.token),
        None,
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["damaged"].as_array().map(Vec::len), Some(1), "{v}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ok = files[0].exists()
            && koshin_server::content::library::sha256_file(&files[0]).ok()
                == files[0]
                    .parent()
                    .and_then(|d| d.file_name())
                    .map(|n| n.to_string_lossy().into_owned());
        if ok && state_on(&show(&site, "resumable").await, "branch").as_deref() == Some("installed")
        {
            break;
        }
        assert!(Instant::now() < deadline, "not sent again");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let count_2330 = messages(&site)
        .iter()
        .filter(|(i, s)| *i == 2330 && s[1] == "branch")
        .count();
    assert_eq!(count_2330, 2);

    // P15: a group's existing packages do not follow a new member.
    let (s, _) = call(
        &site,
        "POST",
        "/api/v1/dp-groups",
        Some(&site.token),
        Some(json!({"name": "everywhere", "add": [LOCAL]})),
    )
    .await;
    assert_eq!(s, 200);
    create(&site, "hello-group", HELLO_NEW, "medium").await;
    distribute(&site, "hello-group", &[], &["everywhere"]).await;
    installed(&site, "hello-group", &[LOCAL]).await;
    let (s, _) = call(
        &site,
        "POST",
        "/api/v1/dp-groups/everywhere/members",
        Some(&site.token),
        Some(json!({"add": ["branch"]})),
    )
    .await;
    assert_eq!(s, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(state_on(&show(&site, "hello-group").await, "branch"), None);
    distribute(&site, "hello-group", &[], &["everywhere"]).await;
    installed(&site, "hello-group", &[LOCAL, "branch"]).await;
}

/// P22: a client uses the distribution point whose boundary holds its address; a
/// protected point serves only clients inside its boundaries, so one outside falls back to
/// an unprotected point. `koshin-agent status` says which and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_choose_a_distribution_point_by_boundary() {
    let site = TestSite::start().await;
    let branch = RemoteDp::start(&site, "branch").await;
    let agent = site.enroll("pc-dp", TYPICAL).await;
    let set = |dp: &'static str, body: serde_json::Value| {
        let site = &site;
        async move {
            let (s, v) = call(
                site,
                "POST",
                &format!("/api/v1/dps/{dp}/settings"),
                Some(&site.token),
                Some(body),
            )
            .await;
            assert_eq!(s, 200, "{v}");
        }
    };
    let choice = || async {
        koshin_agent::runner::poll_policy(&agent.db(), &agent.mp())
            .await
            .expect("policy");
        koshin_agent::enroll::status(&agent.state)
            .expect("status")
            .distribution_point
            .expect("a distribution point")
    };
    // Inside the protected boundary of the branch point: bound to it.
    set(
        "branch",
        json!({"protected": true, "boundaries": ["127.0.0.0/8"]}),
    )
    .await;
    set(LOCAL, json!({"boundaries": ["10.0.0.0/8"]})).await;
    let c = choice().await;
    assert_eq!(
        (c.name.as_str(), c.url.as_str()),
        ("branch", branch.url.as_str())
    );
    assert!(
        c.reason.contains("127.0.0.0/8") && c.reason.contains("protected"),
        "{}",
        c.reason
    );
    // Outside it: the protected point never serves it; the nearest unprotected one does.
    let elsewhere = "203.0.113.0/24";
    let b = koshin_domain::boundaries::Boundary::parse(elsewhere).expect("boundary");
    assert!(
        !koshin_agent::dp::local_addresses()
            .iter()
            .any(|a| b.contains(*a)),
        "this machine is inside {elsewhere}: pick another test network"
    );
    set("branch", json!({"boundaries": [elsewhere]})).await;
    let c = choice().await;
    assert_eq!(c.name, LOCAL, "{}", c.reason);
    assert!(c.reason.contains("nearest unprotected"), "{}", c.reason);
}
