//! The API routes the web console reads, for scripts too: paged clients, paged reports with
//! filters, the compliance trend, and the permissions a login reports.

mod common;

use common::*;
use koshin_domain::scan::ScanTrigger;
use serde_json::json;

async fn get_with_total(
    site: &TestSite,
    path: &str,
    token: &str,
) -> (u16, Option<u64>, serde_json::Value) {
    let r = site
        .http()
        .get(format!("{}{path}", site.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET");
    let status = r.status().as_u16();
    let total = r
        .headers()
        .get("x-total-count")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (
        status,
        total,
        r.json().await.unwrap_or(serde_json::Value::Null),
    )
}

fn names(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .expect("a list")
        .iter()
        .map(|c| c["name"].as_str().expect("name").to_string())
        .collect()
}

/// Three reporting clients: the list pages by name with the total, searches, and finds
/// none silent; reports page with `total` and filter; an update's computers by state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_and_reports_page_on_the_site() {
    let site = TestSite::start().await;
    for (name, installed) in [
        ("pc-a", TYPICAL),
        ("pc-b", &[("hello", "2.10-4")][..]),
        ("pc-c", TYPICAL),
    ] {
        let a = site.enroll(name, installed).await;
        a.scan_ok(ScanTrigger::ScanCycle).await;
        a.send().await;
    }
    let t = site.token.clone();

    let (s, total, v) = get_with_total(&site, "/api/v1/clients?limit=2", &t).await;
    assert_eq!((s, total), (200, Some(3)));
    assert_eq!(names(&v), ["pc-a", "pc-b"]);
    // The page's clients have their counts, as in the whole list.
    assert_eq!(v[0]["required"], 2, "{v:#}");
    let (_, total, v) = get_with_total(&site, "/api/v1/clients?limit=2&offset=2", &t).await;
    assert_eq!((total, names(&v)), (Some(3), vec!["pc-c".to_string()]));
    let (_, total, v) = get_with_total(&site, "/api/v1/clients?search=C-B", &t).await;
    assert_eq!((total, names(&v)), (Some(1), vec!["pc-b".to_string()]));
    let (_, total, _) = get_with_total(&site, "/api/v1/clients?search=%25", &t).await;
    assert_eq!(total, Some(0), "a % in the search is a literal");
    let (_, total, _) =
        get_with_total(&site, "/api/v1/clients?not_reporting_days=1&limit=10", &t).await;
    assert_eq!(total, Some(0), "every client reported just now");
    // Without paging: the whole list, as the CLI reads it.
    let (_, total, v) = get_with_total(&site, "/api/v1/clients", &t).await;
    assert_eq!((total, names(&v).len()), (None, 3));
    let (s, _, v) = get_with_total(&site, "/api/v1/clients?limit=10001", &t).await;
    assert_eq!(s, 400, "{v}");

    // A report's page and its total; the rows are the report's own order.
    let all = site.admin_get("/api/v1/reports/updates-with-counts").await;
    let rows = all["rows"].as_array().expect("rows").clone();
    assert!(all.get("total").is_none());
    let page = site
        .admin_get("/api/v1/reports/updates-with-counts?limit=2&offset=1")
        .await;
    assert_eq!(page["total"], rows.len());
    assert_eq!(page["rows"].as_array().expect("rows")[..], rows[1..3]);
    // Filters: required only, by text, by classification.
    let req = site
        .admin_get("/api/v1/reports/updates-with-counts?required_only=1")
        .await;
    let titles: Vec<&str> = req["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| r["title"].as_str().expect("title"))
        .collect();
    assert_eq!(titles, [HELLO_NEW, LIBFOO_SEC], "{req:#}");
    let found = site
        .admin_get(
            "/api/v1/reports/updates-with-counts?search=LIBFOO&classification=Security%20Updates",
        )
        .await;
    assert_eq!(
        found["rows"].as_array().expect("rows").len(),
        1,
        "{found:#}"
    );
    let (s, v) = call(
        &site,
        "GET",
        "/api/v1/reports/updates-with-counts?limit=x",
        Some(&t),
        None,
    )
    .await;
    assert_eq!(s, 400, "{v}");

    // The computers that require an update, and only those.
    let id = site.update_id(HELLO_NEW);
    let r = site
        .admin_get(&format!(
            "/api/v1/reports/compliance-by-update?update={id}&state=required&limit=1"
        ))
        .await;
    assert_eq!(r["total"], 2, "{r:#}");
    assert_eq!(r["rows"][0]["computer"], "pc-a");
    // A page without its count: the rows in name order, no total while more follow; the
    // last page knows it, as the statement ended within it.
    let r = site
        .admin_get(&format!(
            "/api/v1/reports/computers-in-state-for-update?update={id}&state=required&limit=1&count=0"
        ))
        .await;
    assert!(r.get("total").is_none(), "{r:#}");
    assert_eq!(r["rows"].as_array().map(Vec::len), Some(1), "{r:#}");
    assert_eq!(r["rows"][0]["computer"], "pc-a");
    let r = site
        .admin_get(&format!(
            "/api/v1/reports/computers-in-state-for-update?update={id}&state=required&limit=1&offset=1&count=0"
        ))
        .await;
    assert_eq!(r["rows"][0]["computer"], "pc-c", "{r:#}");
    assert_eq!(r["total"], 2, "{r:#}");
    let r = site
        .admin_get(&format!(
            "/api/v1/reports/computers-in-state-for-update?update={id}&state=installed&limit=5"
        ))
        .await;
    assert_eq!(r["total"], 1, "{r:#}");
    assert_eq!(r["rows"][0]["computer"], "pc-b");
    let (_, total, u) = get_with_total(&site, &format!("/api/v1/updates/{id}?limit=1"), &t).await;
    assert_eq!(total, Some(2));
    assert_eq!(u["required_by"].as_array().expect("required_by").len(), 1);
    assert_eq!(u["required_by"][0]["name"], "pc-a");
    let (_, total, u) =
        get_with_total(&site, &format!("/api/v1/updates/{id}?limit=5&offset=1"), &t).await;
    assert_eq!(total, Some(2));
    assert_eq!(u["required_by"][0]["name"], "pc-c", "{u:#}");
    assert_eq!(u["required_by"].as_array().expect("required_by").len(), 1);

    // A collection's members, one page at a time, counted in full.
    let (_, total, c) = get_with_total(
        &site,
        "/api/v1/collections/All%20Systems?limit=1&offset=1",
        &t,
    )
    .await;
    assert_eq!(total, Some(3));
    assert_eq!(c["member_list"][0]["name"], "pc-b", "{c:#}");
    assert_eq!(c["member_list"].as_array().expect("members").len(), 1);

    // The dashboard's report: pairs per product and classification add up to the clients.
    let by = site
        .admin_get("/api/v1/reports/compliance-by-classification")
        .await;
    for row in by["rows"].as_array().expect("rows") {
        let n = |k: &str| row[k].as_i64().expect("count");
        assert_eq!(
            n("required") + n("installed") + n("not_required") + n("unknown"),
            3 * n("updates"),
            "{row}"
        );
    }
}

/// The trend: samples stored by the job, at most one an interval, and the counts now;
/// refused to a scoped administrator and for a window out of range. A login says what
/// its role may do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compliance_trend_keeps_samples_and_the_counts_now() {
    let site = TestSite::start().await;
    let a = site.enroll("pc-a", TYPICAL).await;

    // Before any scan: every pair is Unknown.
    koshin_server::trend::sample_if_due(&site.site)
        .await
        .expect("sample");
    let wait = koshin_server::trend::sample_if_due(&site.site)
        .await
        .expect("sample");
    assert!(wait > 0 && wait <= 3_600_000, "{wait}");
    a.scan_ok(ScanTrigger::ScanCycle).await;
    a.send().await;
    let t = site.admin_get("/api/v1/compliance/trend?days=7").await;
    let points = t["points"].as_array().expect("points");
    assert_eq!(points.len(), 1, "one sample an interval: {t:#}");
    assert_eq!(points[0]["required"], 0);
    assert!(points[0]["unknown"].as_i64().expect("unknown") > 0);
    assert_eq!(t["current"]["required"], 2, "{t:#}");
    assert_eq!(t["current"]["updates_required"], 2);
    assert_eq!(t["current"]["clients"], 1);
    assert_eq!(t["interval_minutes"], 60);

    // Older samples beyond the window are left out; many samples come back as at most
    // max_points.
    let now = now_ms();
    for h in 1..=48 {
        site.site
            .store
            .sample_compliance(now - h * HOUR_MS)
            .expect("sample");
    }
    let t = site
        .admin_get("/api/v1/compliance/trend?days=1&max_points=10")
        .await;
    let n = t["points"].as_array().expect("points").len();
    assert!((5..=10).contains(&n), "{n} points: {t:#}");
    let (s, v) = call(
        &site,
        "GET",
        "/api/v1/compliance/trend?days=0",
        Some(&site.token),
        None,
    )
    .await;
    assert_eq!(s, 400, "{v}");

    // A scoped administrator's trend would count clients outside the scope.
    site.admin_post("/api/v1/collections", json!({"name": "Web"}))
        .await;
    site.admin_post(
        "/api/v1/admins",
        json!({"name": "scoped", "role": "Read-only Analyst", "password": "a long password here",
               "scopes": ["Web"]}),
    )
    .await;
    let (s, login) = call(
        &site,
        "POST",
        "/api/v1/login",
        None,
        Some(json!({"name": "scoped", "password": "a long password here"})),
    )
    .await;
    assert_eq!(s, 200, "{login}");
    assert_eq!(login["permissions"], json!(["read"]));
    let token = login["token"].as_str().expect("token");
    let (s, v) = call(&site, "GET", "/api/v1/compliance/trend", Some(token), None).await;
    assert_eq!(s, 403, "{v}");
    assert!(v["error"].as_str().expect("error").contains("scope"), "{v}");
}
