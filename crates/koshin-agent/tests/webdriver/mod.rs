//! A small W3C WebDriver client for the console's browser tests: it starts Debian's
//! `chromedriver` on a loopback port, opens a headless Chromium session with a fresh
//! profile, and drives it with the few commands the tests need (navigate, find, click,
//! type, read text, run a script, take a screenshot). Written here over reqwest, which the
//! tests already build, rather than pulling a WebDriver crate's dependency tree.
//!
//! Every wait is for a condition, with a deadline, never a fixed sleep.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long a wait for a condition lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(60);

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A headless Chromium driven through chromedriver; both end when it is dropped.
pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// An element of the page.
#[derive(Clone, Debug)]
pub struct Element(String);

/// How to find an element.
pub enum By<'a> {
    Css(&'a str),
    XPath(&'a str),
}

impl By<'_> {
    fn body(&self) -> Value {
        match self {
            By::Css(s) => json!({"using": "css selector", "value": s}),
            By::XPath(s) => json!({"using": "xpath", "value": s}),
        }
    }

    fn describe(&self) -> String {
        match self {
            By::Css(s) => format!("css {s}"),
            By::XPath(s) => format!("xpath {s}"),
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Browser {
    /// Starts chromedriver and a headless Chromium (as root: no sandbox; no background
    /// networking, so nothing reaches outside this machine).
    pub async fn start() -> Browser {
        let profile = tempfile::Builder::new()
            .prefix("kconsole-chromium")
            .tempdir()
            .expect("profile dir");
        let port = free_port();
        let log = std::fs::File::create(profile.path().join("chromedriver.log"))
            .expect("chromedriver log");
        let mut cmd = Command::new(CHROMEDRIVER);
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log));
        // Its own process group, so the browser it starts ends with it.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd.spawn().unwrap_or_else(|e| {
            panic!("cannot run {CHROMEDRIVER} (apt-get install chromium-driver): {e}")
        });
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("http client");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = http
                .get(format!("{base}/status"))
                .send()
                .await
                .ok()
                .map(|r| r.status().is_success())
                .unwrap_or(false);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let data_dir = profile.path().join("profile");
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1400,1000".into(),
            "--force-device-scale-factor=1".into(),
            "--lang=en-US".into(),
            format!("--user-data-dir={}", data_dir.display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "timeouts": {"implicit": 0, "pageLoad": 60000, "script": 30000},
        }}});
        let mut b = Browser {
            driver,
            base,
            session: String::new(),
            http,
            _profile: profile,
        };
        let v = b.call("POST", "/session", Some(caps)).await;
        b.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session in {v}"))
            .to_string();
        b
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = resp.status();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        assert!(
            status.is_success(),
            "WebDriver {method} {path}: {status} {v}"
        );
        v["value"].clone()
    }

    /// A command that may fail (an element not there yet): the error value.
    async fn try_call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            _ => self.http.post(url).json(&body.unwrap_or_else(|| json!({}))),
        };
        let resp = req.send().await.map_err(|e| json!(e.to_string()))?;
        let ok = resp.status().is_success();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        if ok {
            Ok(v["value"].clone())
        } else {
            Err(v["value"].clone())
        }
    }

    fn s(&self, path: &str) -> String {
        format!("/session/{}{path}", self.session)
    }

    pub async fn goto(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(json!({"url": url})))
            .await;
    }

    pub async fn url(&self) -> String {
        self.call("GET", &self.s("/url"), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs a script in the page; its return value.
    pub async fn script(&self, script: &str, args: Vec<Value>) -> Value {
        self.call(
            "POST",
            &self.s("/execute/sync"),
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    async fn find_now(&self, by: &By<'_>) -> Option<Element> {
        let v = self
            .try_call("POST", &self.s("/element"), Some(by.body()))
            .await
            .ok()?;
        v[ELEMENT].as_str().map(|id| Element(id.to_string()))
    }

    /// Waits until an element is there and visible.
    pub async fn find(&self, by: By<'_>) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(e) = self.find_now(&by).await
                && self.displayed(&e).await
            {
                return e;
            }
            if Instant::now() >= deadline {
                let text = self.page_text().await;
                panic!(
                    "no visible element {} on the page; it says:\n{text}",
                    by.describe()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the element takes room on the page (not hidden, not in a closed part).
    async fn displayed(&self, e: &Element) -> bool {
        self.try_call(
            "POST",
            &self.s("/execute/sync"),
            Some(json!({
                "script": "const e = arguments[0]; return !!(e && (e.offsetWidth || e.offsetHeight || e.getClientRects().length)) && !e.closest('[hidden]');",
                "args": [{ELEMENT: e.0}],
            })),
        )
        .await
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
    }

    pub async fn click(&self, e: &Element) {
        self.call("POST", &self.s(&format!("/element/{}/click", e.0)), None)
            .await;
    }

    /// Finds (waiting) and clicks.
    pub async fn click_on(&self, by: By<'_>) {
        let e = self.find(by).await;
        self.click(&e).await;
    }

    pub async fn clear(&self, e: &Element) {
        self.call("POST", &self.s(&format!("/element/{}/clear", e.0)), None)
            .await;
    }

    pub async fn type_into(&self, e: &Element, text: &str) {
        self.call(
            "POST",
            &self.s(&format!("/element/{}/value", e.0)),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Finds (waiting), empties and types into a field.
    pub async fn fill(&self, by: By<'_>, text: &str) {
        let e = self.find(by).await;
        self.clear(&e).await;
        self.type_into(&e, text).await;
    }

    /// Presses keys in the focused element ("\u{E004}" is Tab, "\u{E007}" Enter).
    pub async fn keys(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                [
                    json!({"type": "keyDown", "value": c.to_string()}),
                    json!({"type": "keyUp", "value": c.to_string()}),
                ]
            })
            .collect();
        self.call(
            "POST",
            &self.s("/actions"),
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .await;
    }

    pub async fn text(&self, e: &Element) -> String {
        self.call("GET", &self.s(&format!("/element/{}/text", e.0)), None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page's visible text.
    pub async fn page_text(&self) -> String {
        self.try_call(
            "POST",
            &self.s("/execute/sync"),
            Some(json!({"script": "return document.body ? document.body.innerText : ''", "args": []})),
        )
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
    }

    /// Waits until the page's visible text contains `needle`.
    pub async fn wait_text(&self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.page_text().await;
            if text.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the page never said {needle:?}; it says:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Waits until a script returns true.
    pub async fn wait_script(&self, what: &str, script: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if self.script(script, vec![]).await.as_bool() == Some(true) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "never true: {what}; the page says:\n{}",
                self.page_text().await
            );
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// The id, tag or text of the focused element.
    pub async fn focused(&self) -> String {
        self.script(
            "const e = document.activeElement; return e ? (e.id || e.tagName + ':' + (e.textContent || '').trim().slice(0, 40)) : ''",
            vec![],
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_string()
    }

    /// Saves a PNG of the whole page (up to 3000 pixels tall).
    pub async fn screenshot(&self, path: &Path) {
        // Let the page settle: no request of the console in flight and the fonts ready.
        self.wait_script(
            "the page to be idle",
            "return document.readyState === 'complete' && !document.querySelector('[aria-busy=\"true\"]') && !/Loading…/.test(document.body.innerText)",
        )
        .await;
        // The whole page: the window as tall as the document (bounded), then back.
        let height = self
            .script(
                "return Math.ceil(document.documentElement.scrollHeight)",
                vec![],
            )
            .await
            .as_u64()
            .unwrap_or(1000)
            .clamp(700, 3000);
        self.call(
            "POST",
            &self.s("/window/rect"),
            Some(json!({"width": 1400, "height": height + 140})),
        )
        .await;
        let v = self.call("GET", &self.s("/screenshot"), None).await;
        self.call(
            "POST",
            &self.s("/window/rect"),
            Some(json!({"width": 1400, "height": 1000})),
        )
        .await;
        let b64 = v.as_str().expect("screenshot data");
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("screenshot base64");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("screenshot folder");
        }
        std::fs::write(path, png).expect("write screenshot");
    }

    /// Ends the session (and the browser).
    pub async fn quit(mut self) {
        let path = format!("/session/{}", self.session);
        let _ = self
            .http
            .delete(format!("{}{path}", self.base))
            .send()
            .await;
        self.session.clear();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver and every browser process it started: one process group.
        let pid = self.driver.id() as i32;
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}
