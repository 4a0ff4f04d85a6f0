//! Headless Chromium driven through chromedriver (WebDriver) with `fantoccini`.
//!
//! Chromium gets a new empty profile and no network beyond loopback; chromedriver runs
//! in a process group of its own, and on drop that group, and every process started
//! with this browser's profile directory (Chromium's own children), is SIGKILLed, so a
//! failing test leaves nothing behind.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

use crate::common::{free_port, require_program};

/// A browser session; killed with everything it started on drop.
pub struct Browser {
    client: Option<Client>,
    driver: Child,
    profile: tempfile::TempDir,
}

/// The legacy log endpoint chromedriver still serves: the browser console's entries.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }
    fn method_and_body(&self, _: &url::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

impl Browser {
    /// The WebDriver session.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("connected")
    }

    /// Starts chromedriver and a headless Chromium session (fails with the install line
    /// when either is missing).
    pub async fn start() -> Browser {
        let chromium = require_program("chromium");
        let driver_bin = require_program("chromedriver");
        let port = free_port();
        let profile = tempfile::tempdir().unwrap();
        let mut cmd = Command::new(driver_bin);
        cmd.arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let driver = cmd.spawn().expect("start chromedriver");
        // Built before connecting, so that a failed connect still kills chromedriver.
        let mut b = Browser {
            client: None,
            driver,
            profile,
        };
        let client = connect_when_up(port, &chromium, b.profile.path()).await;
        client.set_window_size(1280, 860).await.unwrap();
        b.client = Some(client);
        b
    }

    /// Opens `url` and waits for the page (WebDriver waits for the load event).
    pub async fn goto(&self, url: &str) {
        self.client()
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The text of the first element matching `css` (found again if the live refresh
    /// replaced it meanwhile).
    pub async fn text(&self, css: &str) -> String {
        self.on_fresh(css, "text of", |e| async move { e.text().await })
            .await
    }

    /// Does `act` on the first element matching `css`. The live refresh may replace the
    /// element between finding it and acting on it (a stale element), and a page still
    /// loading may not have it yet: then it is looked for again and `act` done again,
    /// within a deadline. `what` names the act in a panic.
    async fn on_fresh<T, F, Fut>(&self, css: &str, what: &str, act: F) -> T
    where
        F: Fn(fantoccini::elements::Element) -> Fut,
        Fut: std::future::Future<Output = Result<T, fantoccini::error::CmdError>>,
    {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let e = match self.client().find(Locator::Css(css)).await {
                Ok(e) => e,
                Err(e) if Instant::now() < deadline && e.is_no_such_element() => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(e) => panic!("no element {css} ({what}): {e}"),
            };
            match act(e).await {
                Ok(t) => return t,
                Err(err) if err.to_string().contains("stale") && Instant::now() < deadline => {}
                Err(err) => panic!("{what} {css}: {err}"),
            }
        }
    }

    /// Whether any element matches `css`.
    pub async fn has(&self, css: &str) -> bool {
        !self
            .client()
            .find_all(Locator::Css(css))
            .await
            .unwrap()
            .is_empty()
    }

    /// Clicks the first element matching `css` (found again if the live refresh
    /// replaced it meanwhile).
    pub async fn click(&self, css: &str) {
        self.on_fresh(css, "click", |e| async move { e.click().await })
            .await
    }

    /// Types `text` into the first element matching `css`.
    pub async fn type_into(&self, css: &str, text: &str) {
        self.client()
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no field {css}: {e}"))
            .send_keys(text)
            .await
            .unwrap();
    }

    /// Waits (polling, with a deadline) until the text of `css` satisfies `ok`; returns it.
    pub async fn wait_text(&self, css: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + limit;
        let mut last = String::new();
        loop {
            if let Ok(e) = self.client().find(Locator::Css(css)).await {
                if let Ok(t) = e.text().await {
                    if ok(&t) {
                        return t;
                    }
                    last = t;
                }
            }
            if Instant::now() > deadline {
                panic!("timed out after {limit:?} waiting on the text of {css}; last: {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The page's path and query.
    pub async fn path(&self) -> String {
        let u = self.client().current_url().await.unwrap();
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }

    /// Runs `script` in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client().execute(script, vec![]).await.unwrap()
    }

    /// Fails on any JavaScript error: those the page's own collector caught
    /// (`window.batonErrors`: uncaught errors, rejections) and the console's SEVERE
    /// entries (CSP violations, failed loads, errors before the script ran).
    pub async fn assert_no_js_errors(&self) {
        let caught = self.eval("return window.batonErrors || null").await;
        assert_eq!(
            caught,
            json!([]),
            "the page's error collector is missing or caught errors"
        );
        let log = self.client().issue_cmd(BrowserLog).await.unwrap();
        let severe: Vec<&Value> = log
            .as_array()
            .map(|a| a.iter().filter(|e| e["level"] == "SEVERE").collect())
            .unwrap_or_default();
        assert!(severe.is_empty(), "console errors: {severe:#?}");
    }

    /// Saves a screenshot as `name`.png in the screenshot directory: `$BATON_UI_SCREENSHOTS`
    /// when set (docs/ui is refreshed with `BATON_UI_SCREENSHOTS=$PWD/docs/ui`), else
    /// under the target directory.
    pub async fn screenshot(&self, name: &str) {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client().screenshot().await.unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }
}

fn screenshot_dir() -> PathBuf {
    match std::env::var_os("BATON_UI_SCREENSHOTS") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots"),
    }
}

async fn connect_when_up(port: u16, chromium: &Path, profile: &Path) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
        "goog:loggingPrefs": {"browser": "ALL"},
    });
    let caps = caps.as_object().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut b = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        b.capabilities(caps.clone());
        match b.connect(&format!("http://127.0.0.1:{port}")).await {
            Ok(c) => return c,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no WebDriver session from chromedriver on port {port}: {e}"),
        }
    }
}

/// SIGKILLs every process whose command line mentions `marker` (this browser's
/// profile directory: only the Chromium processes of this test).
fn kill_marked(marker: &str) {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmdline).contains(marker) {
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let pgid = self.driver.id() as i32;
        unsafe {
            libc::killpg(pgid, libc::SIGKILL);
        }
        let _ = self.driver.wait();
        kill_marked(&self.profile.path().display().to_string());
    }
}
