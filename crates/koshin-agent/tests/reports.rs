//! Issue "compliance at a glance": the compliance reports agree with what each real agent
//! scanned (several clients on test roots), Unknown is explicit, the reports are current
//! the moment a batch is stored, and no report can write or read secrets.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::*;
use koshin_domain::scan::ScanTrigger;
use koshin_wire::ScanOutput;

/// Rows of a report as JSON objects.
async fn report(site: &TestSite, name: &str, params: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let mut path = format!("/api/v1/reports/{name}");
    for (i, (k, v)) in params.iter().enumerate() {
        path.push(if i == 0 { '?' } else { '&' });
        path.push_str(&format!(
            "{k}={}",
            v.replace(' ', "%20").replace('+', "%2B")
        ));
    }
    site.admin_get(&path).await["rows"]
        .as_array()
        .expect("rows")
        .clone()
}

fn s(v: &serde_json::Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} in {v}"))
        .to_string()
}

fn n(v: &serde_json::Value, k: &str) -> i64 {
    v[k].as_i64().unwrap_or_else(|| panic!("{k} in {v}"))
}

/// The state each scanned computer reported per update title; computers in `unknown` have
/// not told the site anything.
struct Truth {
    scanned: BTreeMap<String, BTreeMap<String, String>>,
    unknown: Vec<String>,
    titles: Vec<String>,
}

impl Truth {
    fn new(scans: &[(&str, &ScanOutput)], unknown: &[&str]) -> Truth {
        let scanned: BTreeMap<String, BTreeMap<String, String>> = scans
            .iter()
            .map(|(name, out)| {
                (
                    name.to_string(),
                    out.updates
                        .iter()
                        .map(|u| (u.title.clone(), u.state.clone()))
                        .collect(),
                )
            })
            .collect();
        let titles = scanned
            .values()
            .next()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        Truth {
            scanned,
            unknown: unknown.iter().map(|s| s.to_string()).collect(),
            titles,
        }
    }

    /// (required, installed, not_required, unknown) of one update.
    fn counts(&self, title: &str) -> [i64; 4] {
        let mut c = [0, 0, 0, self.unknown.len() as i64];
        for states in self.scanned.values() {
            match states.get(title).map(String::as_str) {
                Some("required") => c[0] += 1,
                Some("installed") => c[1] += 1,
                Some("not_required") => c[2] += 1,
                other => panic!("{title}: {other:?}"),
            }
        }
        c
    }

    /// Every computer's state of one update, Unknown included.
    fn by_update(&self, title: &str) -> BTreeSet<(String, String)> {
        let mut out: BTreeSet<(String, String)> = self
            .scanned
            .iter()
            .map(|(pc, states)| (pc.clone(), states[title].clone()))
            .collect();
        out.extend(self.unknown.iter().map(|pc| (pc.clone(), "unknown".into())));
        out
    }
}

/// Must show 2: with several enrolled clients (real agents on test roots), the four
/// compliance reports agree with what each agent scanned; a client that never scanned and
/// one whose messages wait in its backlog are Unknown; an update that reaches the catalog
/// after the last scans is Unknown everywhere until a client scans and reports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compliance_reports_agree_with_what_each_agent_scanned() {
    let mut site = TestSite::start().await;
    let machines: &[(&str, &[(&str, &str)])] = &[
        ("pc-typical", TYPICAL),
        ("pc-current", &[("hello", "2.10-4"), ("curl", "7.88.1-10")]),
        ("pc-patched", &[("libfoo1", "1.0-1+deb12u1")]),
        ("pc-bare", &[]),
    ];
    let mut agents = Vec::new();
    let mut scans = Vec::new();
    for (name, installed) in machines {
        let agent = site.enroll(name, installed).await;
        let out = agent.scan_ok(ScanTrigger::ScanCycle).await;
        agent.send().await;
        scans.push((*name, out));
        agents.push(agent);
    }
    // Enrolled, never scanned.
    let _silent = site.enroll("pc-silent", TYPICAL).await;
    // Scanned, but its messages wait in its backlog.
    let backlog = site.enroll("pc-backlog", TYPICAL).await;
    let backlog_scan = backlog.scan_ok(ScanTrigger::ScanCycle).await;
    assert!(backlog.queue_length() > 0);

    let refs: Vec<(&str, &ScanOutput)> = scans.iter().map(|(n, o)| (*n, o)).collect();
    let truth = Truth::new(&refs, &["pc-backlog", "pc-silent"]);
    assert_eq!(truth.titles.len(), 5);

    // updates-with-counts: every update's four counts.
    let counts = site.updates_with_counts().await;
    for t in &truth.titles {
        assert_eq!(counts[t], truth.counts(t), "updates-with-counts, {t}");
    }

    // compliance-by-update and computers-for-update, for every update, by update ID.
    for t in &truth.titles {
        let id = site.update_id(t);
        let rows = report(&site, "compliance-by-update", &[("update", &id)]).await;
        let got: BTreeSet<(String, String)> = rows
            .iter()
            .map(|r| (s(r, "computer"), s(r, "state")))
            .collect();
        assert_eq!(got, truth.by_update(t), "compliance-by-update, {t}");

        let rows = report(&site, "computers-for-update", &[("update", &id)]).await;
        let got: BTreeSet<(String, String)> = rows
            .iter()
            .map(|r| (s(r, "computer"), s(r, "state")))
            .collect();
        let want: BTreeSet<(String, String)> = truth
            .by_update(t)
            .into_iter()
            .filter(|(_, st)| st == "required" || st == "installed")
            .collect();
        assert_eq!(got, want, "computers-for-update, {t}");
    }

    // updates-for-computer: what applies to each scanned computer; everything Unknown for
    // the computers the site has not heard from.
    for (pc, states) in &truth.scanned {
        let rows = report(&site, "updates-for-computer", &[("computer", pc)]).await;
        let got: BTreeMap<String, String> = rows
            .iter()
            .map(|r| (s(r, "title"), s(r, "state")))
            .collect();
        let want: BTreeMap<String, String> = states
            .iter()
            .filter(|(_, st)| *st != "not_required")
            .map(|(t, st)| (t.clone(), st.clone()))
            .collect();
        assert_eq!(got, want, "updates-for-computer, {pc}");
    }
    for pc in &truth.unknown {
        let rows = report(&site, "updates-for-computer", &[("computer", pc)]).await;
        assert_eq!(rows.len(), 5, "{pc}");
        assert!(rows.iter().all(|r| s(r, "state") == "unknown"), "{pc}");
    }

    // compliance-by-product: the sums of the per-update truth over each product.
    let products: BTreeMap<String, String> = site
        .query("SELECT title, product FROM updates", &[])
        .into_iter()
        .map(|r| {
            (
                r[0].as_str().expect("title").to_string(),
                r[1].as_str().expect("product").to_string(),
            )
        })
        .collect();
    let mut want: BTreeMap<String, [i64; 4]> = BTreeMap::new();
    for t in &truth.titles {
        let e = want.entry(products[t].clone()).or_default();
        for (i, v) in truth.counts(t).into_iter().enumerate() {
            e[i] += v;
        }
    }
    let rows = report(&site, "compliance-by-product", &[]).await;
    let got: BTreeMap<String, [i64; 4]> = rows
        .iter()
        .map(|r| {
            (
                s(r, "product"),
                [
                    n(r, "required"),
                    n(r, "installed"),
                    n(r, "not_required"),
                    n(r, "unknown"),
                ],
            )
        })
        .collect();
    assert_eq!(got, want, "compliance-by-product");

    // The backlog arrives: its states count the moment the batch is stored.
    backlog.send().await;
    let mut refs = refs;
    refs.push(("pc-backlog", &backlog_scan));
    let truth = Truth::new(&refs, &["pc-silent"]);
    let counts = site.updates_with_counts().await;
    for t in &truth.titles {
        assert_eq!(counts[t], truth.counts(t), "after the backlog, {t}");
    }
    assert_eq!(counts[HELLO_NEW], [2, 1, 2, 1]);

    // A new update reaches the catalog: Unknown on every computer until one scans it.
    site.publish_libfoo_deb12u2().await;
    let counts = site.updates_with_counts().await;
    assert_eq!(counts[LIBFOO_SEC2], [0, 0, 0, 6]);
    let rows = report(&site, "updates-for-computer", &[("computer", "pc-current")]).await;
    assert!(
        rows.iter()
            .any(|r| s(r, "title") == LIBFOO_SEC2 && s(r, "state") == "unknown"),
        "{rows:?}"
    );
    // pc-typical scans online (a deployment evaluation fetches metadata) and reports.
    let out = agents[0]
        .scan_ok(ScanTrigger::DeploymentEvaluationCycle)
        .await;
    assert!(out.online);
    assert_eq!(scanned(&out, LIBFOO_SEC2), st("required", false));
    agents[0].send().await;
    let counts = site.updates_with_counts().await;
    assert_eq!(counts[LIBFOO_SEC2], [1, 0, 0, 5]);
    // P7: new in the last 7 days and not installed: the new update, with its first
    // detection; an update installed wherever it applies is not listed.
    let rows = report(&site, "new-updates-7-days", &[]).await;
    let new = rows
        .iter()
        .find(|r| s(r, "title") == LIBFOO_SEC2)
        .expect("the new update is listed");
    assert!(new["first_detected"].is_string(), "{new}");
    assert!(new["released"].is_string(), "{new}");
    assert!(rows.iter().all(|r| s(r, "title") != HELLO_OLD), "{rows:?}");
    // pc-current scans online: the new update does not apply there, and it says so with
    // its scan record alone.
    let out = agents[1]
        .scan_ok(ScanTrigger::DeploymentEvaluationCycle)
        .await;
    assert_eq!(out.state_messages, 0);
    agents[1].send().await;
    let counts = site.updates_with_counts().await;
    assert_eq!(counts[LIBFOO_SEC2], [1, 0, 1, 4]);
}

/// Must show 3: a report may only read — a statement that writes, attaches, changes
/// pragmas or reads secrets is refused when listed and when run; parameters are checked;
/// the refresh interval a console asks for is 1–60 minutes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_only_read_and_refresh_within_limits() {
    let site = TestSite::start().await;
    let _pc = site.enroll("pc-a", TYPICAL).await;
    let dir = site.data.join("reports");
    let refused = [
        ("wipe", "DELETE FROM updates"),
        (
            "insert",
            "INSERT INTO site_kv(key, value) VALUES ('x', 'y')",
        ),
        ("tokens", "SELECT token_sha256 FROM admin_tokens"),
        ("credentials", "SELECT name, credential_sha256 FROM clients"),
        ("attach", "ATTACH DATABASE '/tmp/x.db' AS x"),
        ("pragma", "PRAGMA writable_schema = 1"),
        ("vacuum", "VACUUM INTO '/tmp/copy.db'"),
        ("two", "SELECT 1; DELETE FROM updates"),
    ];
    for (name, sql) in refused {
        std::fs::write(dir.join(format!("{name}.sql")), sql).expect("write");
    }
    std::fs::write(
        dir.join("my-clients.sql"),
        "-- title: My clients\n-- category: Mine\nSELECT computer, client_id FROM v_clients WHERE computer LIKE :like",
    )
    .expect("write");

    let list = site.admin_get("/api/v1/reports").await;
    let list = list.as_array().expect("list");
    for (name, _) in refused {
        let r = list
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} is listed"));
        assert!(
            r["error"].is_string(),
            "{name} listed without an error: {r}"
        );
    }
    let mine = list
        .iter()
        .find(|r| r["name"] == "my-clients")
        .expect("listed");
    assert!(mine.get("error").is_none(), "{mine}");
    assert_eq!(mine["category"], "Mine");

    let before = site.count("SELECT COUNT(*) FROM updates", &[]);
    let get = |path: String| {
        let site = &site;
        async move {
            site.http()
                .get(format!("{}{path}", site.url))
                .bearer_auth(&site.token)
                .send()
                .await
                .expect("GET")
        }
    };
    for (name, _) in refused {
        let resp = get(format!("/api/v1/reports/{name}")).await;
        assert_eq!(resp.status(), 400, "{name}");
        let body = resp.text().await.expect("body");
        assert!(
            body.contains("may only read") || body.contains("does not prepare"),
            "{name}: {body}"
        );
    }
    assert_eq!(site.count("SELECT COUNT(*) FROM updates", &[]), before);

    let rows = report(&site, "my-clients", &[("like", "pc-%")]).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(s(&rows[0], "computer"), "pc-a");

    // Parameters: missing, unknown.
    let resp = get("/api/v1/reports/my-clients".into()).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("'like'"));
    let resp = get("/api/v1/reports/updates-with-counts?nope=1".into()).await;
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("no parameter 'nope'"));
    let resp = get("/api/v1/reports/does-not-exist".into()).await;
    assert_eq!(resp.status(), 404);

    // P9: a console's refresh interval is 1 to 60 minutes.
    for bad in ["0", "61", "x", "-5"] {
        let resp = get(format!(
            "/api/v1/reports/updates-with-counts?refresh_minutes={bad}"
        ))
        .await;
        assert_eq!(resp.status(), 400, "refresh_minutes={bad}");
    }
    let resp = get("/api/v1/reports/updates-with-counts?refresh_minutes=15".into()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("refresh").and_then(|v| v.to_str().ok()),
        Some("900")
    );
    let v: serde_json::Value = resp.json().await.expect("JSON");
    let generated: jiff::Timestamp = v["generated"].as_str().unwrap().parse().unwrap();
    let next: jiff::Timestamp = v["next_refresh"].as_str().unwrap().parse().unwrap();
    assert_eq!(next.as_second() - generated.as_second(), 15 * 60);
}
