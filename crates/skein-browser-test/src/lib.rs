//! Test support for Skein's dashboard (not published): starts Debian's `chromium` headless
//! under its `chromedriver`, drives it with fantoccini, and offers the few things the browser
//! tests need — go to a page, wait until something shows (with a readable failure naming what
//! never appeared), read texts, click, and keep screenshots as test artefacts.
//!
//! The browser and driver paths can be overridden with `SKEIN_CHROMIUM` and
//! `SKEIN_CHROMEDRIVER`; without them the Debian paths `/usr/bin/chromium` and
//! `/usr/bin/chromedriver` are used.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// How long a wait lasts before the test fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A headless Chromium session.
pub struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    artefacts: PathBuf,
}

fn program(env: &str, default: &str) -> PathBuf {
    let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
    assert!(
        path.exists(),
        "{} not found: the dashboard tests drive a real Chromium; install Debian's `chromium` and \
         `chromium-driver` (apt-get install chromium chromium-driver) or set {env}",
        path.display()
    );
    path
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile; screenshots go to
    /// `artefacts`.
    pub async fn start(artefacts: impl Into<PathBuf>) -> Browser {
        Self::launch(artefacts.into(), None).await
    }

    /// The same, with the browser's local time zone set to `zone` (`America/New_York`), to see
    /// what a user elsewhere sees.
    pub async fn start_in_time_zone(artefacts: impl Into<PathBuf>, zone: &str) -> Browser {
        Self::launch(artefacts.into(), Some(zone)).await
    }

    async fn launch(artefacts: PathBuf, zone: Option<&str>) -> Browser {
        let chromium = program("SKEIN_CHROMIUM", "/usr/bin/chromium");
        let chromedriver = program("SKEIN_CHROMEDRIVER", "/usr/bin/chromedriver");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port for chromedriver")
            .port();
        let mut driver = Command::new(chromedriver);
        if let Some(zone) = zone {
            driver.env("TZ", zone); // Chromium, which chromedriver starts, inherits it
        }
        let driver = driver
            .arg(format!("--port={port}"))
            // Its own process group, so the browser it starts can be killed with it.
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().expect("a browser profile directory");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1440,900", "--no-first-run", "--disable-quic",
                    // The machine has no network: keep Chromium from calling home.
                    "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let attempt = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                .capabilities(capabilities.clone())
                .connect(&url)
                .await;
            match attempt {
                Ok(client) => break client,
                Err(e) if started.elapsed() > WAIT => panic!("no WebDriver session from chromedriver: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        std::fs::create_dir_all(&artefacts).expect("the screenshot directory");
        Browser {
            client,
            driver,
            _profile: profile,
            artefacts,
        }
    }

    /// The WebDriver client, for anything not wrapped here.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Loads a URL.
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("cannot load {url}: {e}"));
    }

    /// Runs a script in the page and returns its value.
    pub async fn eval(&self, script: &str) -> Value {
        self.client
            .execute(script, Vec::new())
            .await
            .unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Waits until `script` (an expression) is truthy, then returns its value.
    pub async fn wait_until(&self, what: &str, script: &str) -> Value {
        let started = Instant::now();
        loop {
            let value = self.eval(&format!("return ({script});")).await;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::Array(a) => !a.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            if started.elapsed() > WAIT {
                let page = self.eval("return document.body.innerText.slice(0, 2000);").await;
                let shot = self.screenshot("failure").await;
                panic!(
                    "waited {WAIT:?} for {what}; the page shows:\n{}\n(screenshot: {})",
                    page.as_str().unwrap_or_default(),
                    shot.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for an element matching a CSS selector.
    pub async fn find(&self, css: &str) -> Element {
        let selector = serde_json::to_string(css).expect("a string");
        self.wait_until(css, &format!("document.querySelector({selector})"))
            .await;
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"))
    }

    /// Waits until the element matching `css` contains `needle`, and returns its text.
    pub async fn wait_for_text(&self, css: &str, needle: &str) -> String {
        let selector = serde_json::to_string(css).expect("a string");
        let wanted = serde_json::to_string(needle).expect("a string");
        let script = format!(
            "[...document.querySelectorAll({selector})].map(e => e.innerText ?? e.textContent).find(t => t.includes({wanted})) || ''"
        );
        let what = format!("{needle:?} in {css}");
        self.wait_until(&what, &script)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The visible texts of every element matching `css`.
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let selector = serde_json::to_string(css).expect("a string");
        let value = self
            .eval(&format!(
                "return [...document.querySelectorAll({selector})].map(e => e.innerText ?? e.textContent);"
            ))
            .await;
        serde_json::from_value(value).unwrap_or_default()
    }

    /// Clicks the element matching `css` (waiting for it).
    /// A page that re-renders between finding and clicking leaves a stale element: it is
    /// found again, a few times.
    pub async fn click(&self, css: &str) {
        let mut attempts = 0;
        loop {
            let element = self.find(css).await;
            match element.click().await {
                Ok(_) => return,
                Err(_) if attempts < 5 => {
                    attempts += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("cannot click {css}: {e}"),
            }
        }
    }

    /// The page's path and query.
    pub async fn location(&self) -> String {
        self.eval("return location.pathname + location.search;")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Saves a PNG screenshot as `<artefacts>/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("a screenshot");
        let path = self.artefacts.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("the screenshot is saved");
        path
    }

    /// A screenshot the README shows: saved like [`Browser::screenshot`], and with
    /// `SKEIN_UPDATE_DOCS_SCREENSHOTS=1` also into `docs/screenshots/`, so the pictures are
    /// regenerated by the tests that check what they show.
    pub async fn screenshot_for_docs(&self, name: &str) -> PathBuf {
        let path = self.screenshot(name).await;
        if std::env::var_os("SKEIN_UPDATE_DOCS_SCREENSHOTS").is_some() {
            let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
            std::fs::create_dir_all(&docs).expect("docs/screenshots");
            std::fs::copy(&path, docs.join(format!("{name}.png"))).expect("the screenshot is copied to docs");
        }
        path
    }

    /// Where screenshots go.
    pub fn artefacts(&self) -> &Path {
        &self.artefacts
    }

    /// Ends the session and the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Also when a failed test unwinds: neither the driver nor its browser may outlive it.
        // SAFETY: kill(2) with a negative pid signals the process group chromedriver leads.
        unsafe {
            libc::kill(-(self.driver.id() as libc::pid_t), libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}
