//! The web console end to end, in a real headless Chromium (Debian's `chromium` and
//! `chromium-driver`) driven over WebDriver: an administrator logs in, synchronizes a new
//! security update from a real signed archive, finds it required by a real dpkg machine,
//! deploys it and watches the deployment's progress reach the installed machine.
//!
//! With `KOSHIN_CONSOLE_SCREENSHOTS=DIR` the test also saves a PNG of each main page in
//! DIR (`docs/console/` holds the committed ones).

mod common;
mod webdriver;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use koshin_testkit::DebSpec;
use serde_json::json;
use webdriver::{Browser, By};

const ADMIN: &str = "ada";
const PASSWORD: &str = "a long console password";

/// The site served by `koshin_server::serve` with its background components (the sync
/// manager that "Synchronize now" wakes, the distribution manager, the trend sampler) on a
/// plain HTTP loopback port; stopped on drop.
struct Console {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Console {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn serve_console(site: &TestSite) -> Console {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(koshin_server::serve(site.site.clone(), listener, async {
        let _ = stopped.await;
    }));
    // Serving as soon as the socket answers.
    let deadline = Instant::now() + Duration::from_secs(30);
    while reqwest::get(format!("{url}/api/v1/health")).await.is_err() {
        assert!(Instant::now() < deadline, "the site does not serve");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Console {
        url,
        stop: Some(stop),
    }
}

/// Where screenshots go, when asked.
fn shots() -> Option<PathBuf> {
    std::env::var_os("KOSHIN_CONSOLE_SCREENSHOTS").map(PathBuf::from)
}

async fn shot(b: &Browser, name: &str) {
    if let Some(dir) = shots() {
        b.screenshot(&dir.join(format!("{name}.png"))).await;
    }
}

/// Must show: log in, synchronize, find a required update, deploy it, see its progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_synchronizes_finds_a_required_update_deploys_it_and_sees_progress() {
    let mut site = TestSite::start().await;
    site.admin_post(
        "/api/v1/admins",
        json!({"name": ADMIN, "role": "Software Update Manager", "password": PASSWORD}),
    )
    .await;
    // A real dpkg machine with hello 2.10-3 and libfoo1 1.0-1, enrolled, scanned, reported.
    let (root, agent) = dpkg_machine(&site.archive, &site, "pc-web").await;
    agent
        .scan_ok(koshin_domain::scan::ScanTrigger::ScanCycle)
        .await;
    agent.send().await;
    koshin_agent::inventory::send(&agent.db(), &agent.mp(), &agent.root)
        .await
        .expect("send inventory");
    // A new security update upstream that the site has not synchronized yet.
    site.archive
        .add(
            SECURITY,
            "main",
            &DebSpec::new("libfoo1", "1.0-1+deb12u2", "amd64").source("libfoo", None),
        )
        .expect("add deb12u2");
    site.publish_security();
    let console = serve_console(&site).await;
    let b = Browser::start().await;

    // `/` opens the console, which asks for a login; a wrong password says what to do.
    b.goto(&format!("{}/", console.url)).await;
    b.find(By::Css("form.login")).await;
    assert!(b.url().await.ends_with("/console/"), "{}", b.url().await);
    b.wait_script(
        "the name field to have the focus",
        "return document.activeElement === document.querySelector('input[name=name]')",
    )
    .await;
    shot(&b, "login").await;
    b.fill(By::Css("input[name=name]"), ADMIN).await;
    b.fill(By::Css("input[name=password]"), "not the password")
        .await;
    b.click_on(By::Css("form.login button[type=submit]")).await;
    b.wait_text("wrong administrator name or password").await;
    b.wait_text("Check the name and password").await;
    b.fill(By::Css("input[name=password]"), PASSWORD).await;
    b.keys("\u{E007}").await;
    b.wait_text("ada · Software Update Manager").await;
    // The keyboard: on a fresh load (the session kept by the tab), the first Tab reaches the
    // skip link, which moves the focus to the page.
    b.script("window.kosOld = true; location.reload()", vec![])
        .await;
    b.wait_script(
        "a new document",
        "return !window.kosOld && document.readyState === 'complete'",
    )
    .await;
    b.wait_text("Compliance by product").await;
    b.keys("\u{E004}").await;
    assert_eq!(b.focused().await, "skip");
    b.keys("\u{E007}").await;
    b.wait_script(
        "the skip link to focus the page",
        "return document.activeElement && document.activeElement.id === 'main'",
    )
    .await;
    b.find(By::Css("nav.side a[aria-current=page][href='#/']"))
        .await;
    b.wait_text("Compliance by product").await;
    b.wait_text("Computers").await;

    // Synchronize now: the progress, then the result, announced.
    let before = site.content_version();
    b.click_on(By::XPath("//nav//a[normalize-space()='Synchronization']"))
        .await;
    b.wait_text("Update source").await;
    // After navigating, the page's heading has the focus (a screen reader reads it).
    b.wait_script(
        "the heading to have the focus",
        "return document.activeElement && document.activeElement.tagName === 'H1'",
    )
    .await;
    b.click_on(By::XPath("//button[normalize-space()='Synchronize now']"))
        .await;
    b.find(By::Css("#sync-result.ok-box")).await;
    b.wait_text("Synchronization succeeded").await;
    let after = site.content_version();
    assert!(after > before, "content version {before} -> {after}");
    b.wait_text(&format!("content version {after}")).await;
    shot(&b, "synchronization").await;

    // The machine scans the new catalog: the new security update is required.
    agent
        .scan_ok(koshin_domain::scan::ScanTrigger::ScanCycle)
        .await;
    agent.send().await;
    assert_eq!(
        site.current_state(&agent.client_id(), LIBFOO_SEC2),
        Some(st("required", false))
    );

    // Find it: updates some computer requires, searched by name.
    b.click_on(By::XPath("//nav//a[normalize-space()='Software updates']"))
        .await;
    b.fill(By::Css("input[name=search]"), "libfoo").await;
    b.click_on(By::Css("input[name=required]")).await;
    b.click_on(By::XPath(
        "//form[@role='search']//button[normalize-space()='Apply']",
    ))
    .await;
    b.wait_text(LIBFOO_SEC2).await;
    shot(&b, "updates").await;
    b.click_on(By::XPath(&format!(
        "//a[normalize-space()='{LIBFOO_SEC2}']"
    )))
    .await;
    // Drill down: the computers that require it.
    b.find(By::XPath("//a[normalize-space()='pc-web']")).await;
    b.wait_text("Deploy this update").await;
    shot(&b, "update").await;

    // Deploy it: the form comes with the update filled in.
    b.click_on(By::XPath("//a[normalize-space()='Deploy this update…']"))
        .await;
    b.find(By::Css("textarea[name=updates]")).await;
    b.wait_script(
        "the collections to load",
        "return !!document.querySelector('select[name=collection] option[value=SMS00001]')",
    )
    .await;
    b.fill(By::Css("input[name=name]"), "libfoo security").await;
    // Installed as soon as it is available: no postponing.
    b.click_on(By::Css("input[name=allow_postpone]")).await;
    b.wait_script(
        "postponing to be off",
        "return !document.querySelector('input[name=allow_postpone]').checked",
    )
    .await;
    shot(&b, "deployment-new").await;
    b.click_on(By::XPath("//button[normalize-space()='Create deployment']"))
        .await;
    b.wait_text("Deployment libfoo security").await;
    b.find(By::Css("#deployment-progress svg[role=img]")).await;

    // The machine evaluates its deployments until the content is on the distribution
    // point and it has installed the update.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let e = evaluate_deployments(&agent).await;
        let v = root.package_state("libfoo1").expect("dpkg -s").map(|v| v.1);
        if v.as_deref() == Some("1.0-1+deb12u2") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "libfoo1 is still {v:?}; the agent decided {e:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The page follows: the progress chart and the line under it show the success.
    b.wait_text("1 of 1 computers succeeded").await;
    b.find(By::XPath(
        "//table//span[contains(@class,'badge') and normalize-space()='succeeded']",
    ))
    .await;
    shot(&b, "deployment").await;

    // Collections: a query edited, previewed, saved as versions, and rolled back.
    b.click_on(By::XPath("//nav//a[normalize-space()='Collections']"))
        .await;
    b.fill(
        By::Css("form[aria-label='New collection'] input[name=name]"),
        "Missing hello",
    )
    .await;
    b.click_on(By::XPath("//button[normalize-space()='Create collection']"))
        .await;
    b.wait_text("Collection Missing hello").await;
    b.fill(
        By::Css("textarea[name=query]"),
        "required(\"hello 2.10-4\")",
    )
    .await;
    b.click_on(By::XPath("//button[normalize-space()='Preview query']"))
        .await;
    b.wait_text("The query matches 1 computers now").await;
    b.fill(By::Css("input[name=note]"), "hosts missing hello")
        .await;
    b.click_on(By::XPath(
        "//button[normalize-space()='Save as a new version']",
    ))
    .await;
    b.wait_text("Saved as version 2; the collection has 1 members now.")
        .await;
    b.fill(By::Css("textarea[name=query]"), "installed(curl)")
        .await;
    b.click_on(By::XPath(
        "//button[normalize-space()='Save as a new version']",
    ))
    .await;
    b.wait_text("Saved as version 3; the collection has 0 members now.")
        .await;
    shot(&b, "collection").await;
    b.click_on(By::Css("button[aria-label='Roll back to version 2']"))
        .await;
    b.wait_text("Version 4 now has the rules of version 2.")
        .await;
    b.wait_script(
        "the editor to show version 2's query",
        "return document.querySelector('textarea[name=query]').value === 'required(\"hello 2.10-4\")'",
    )
    .await;

    // Every main page: its controls are labelled, its charts described, its tables
    // captioned — and, when asked, a screenshot of it.
    const ACCESSIBLE: &str = r#"
        const unlabelled = [...document.querySelectorAll('main input, main select, main textarea')]
            .filter((e) => e.type !== 'hidden' && !e.labels?.length && !e.getAttribute('aria-label'));
        const charts = [...document.querySelectorAll('main svg[role=img]')]
            .filter((s) => !s.getAttribute('aria-labelledby') || !s.querySelector('title'));
        const tables = [...document.querySelectorAll('main table')].filter((t) => !t.caption);
        return unlabelled.length === 0 && charts.length === 0 && tables.length === 0
            && document.querySelectorAll('main h1').length === 1
            && !document.querySelector('main .error');
    "#;
    for (name, nav, wait) in [
        ("dashboard", "Dashboard", "Required updates over time"),
        ("computers", "Computers", "pc-web"),
        ("collections", "Collections", "Missing hello"),
        (
            "distribution-points",
            "Distribution points",
            "Content packages",
        ),
        ("reports", "Reports", "updates-with-counts"),
        (
            "status-messages",
            "Status messages",
            "Component status today",
        ),
        ("hierarchy", "Hierarchy", "This site"),
        ("deployments", "Deployments", "libfoo security"),
    ] {
        b.click_on(By::XPath(&format!("//nav//a[normalize-space()='{nav}']")))
            .await;
        b.wait_text(wait).await;
        b.wait_script(
            &format!(
                "{name}: every control labelled, chart described, table captioned, no error shown"
            ),
            ACCESSIBLE,
        )
        .await;
        shot(&b, name).await;
    }
    for (name, path, wait) in [
        ("computer", "#/computers/pc-web", "chassis"),
        (
            "report",
            "#/reports/compliance-by-classification",
            "rows, generated",
        ),
        (
            "content-package",
            "#/content/packages/CS100001",
            "installed",
        ),
        ("update", "#/updates?required=1", "hello 2.10-4"),
    ] {
        b.goto(&format!("{}/console/{path}", console.url)).await;
        b.wait_text(wait).await;
        b.wait_script(&format!("{name}: accessible"), ACCESSIBLE)
            .await;
        if name != "update" {
            shot(&b, name).await;
        }
    }

    b.quit().await;
    drop(console);
    site.served.stop().await;
}
