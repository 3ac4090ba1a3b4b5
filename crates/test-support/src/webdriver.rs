//! A minimal W3C WebDriver client over reqwest, enough to drive the real console window
//! through tauri-driver and WebKitWebDriver.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// tauri-driver and the WebKitWebDriver it starts; both are killed on drop.
pub struct Driver {
    child: Child,
    base: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Driver {
    pub async fn start() -> Driver {
        let display = ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()));
        assert!(
            display,
            "the desktop tests need a display: run them under xvfb-run (make test does)"
        );
        let port = free_port();
        let native = free_port();
        let child = Command::new("tauri-driver")
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            // Its own process group, so drop can end WebKitWebDriver and the app with it.
            .process_group(0)
            .spawn()
            .expect(
                "tauri-driver must be on PATH for the desktop tests \
                 (cargo install tauri-driver --locked; apt-get install webkit2gtk-driver)",
            );
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        // Both tauri-driver and the WebKitWebDriver behind it must be listening.
        let deadline = Instant::now() + Duration::from_secs(30);
        for p in [port, native] {
            while std::net::TcpStream::connect(("127.0.0.1", p)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "the WebDriver servers did not start listening"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        driver
    }

    /// WebKitWebDriver alone, driving WebKitGTK's MiniBrowser: a real browser engine for
    /// pages that are not the app (exported reports).
    pub async fn start_browser() -> Driver {
        let port = free_port();
        let child = Command::new("WebKitWebDriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .expect("WebKitWebDriver must be on PATH (apt-get install webkit2gtk-driver)");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "WebKitWebDriver did not start listening"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        driver
    }

    /// A MiniBrowser session (after `start_browser`).
    pub async fn browser_session(&self) -> Session {
        let browser = ["4.1", "4.0"]
            .iter()
            .map(|v| format!("/usr/lib/x86_64-linux-gnu/webkit2gtk-{v}/MiniBrowser"))
            .find(|p| Path::new(p).exists())
            .expect("WebKitGTK's MiniBrowser (package libwebkit2gtk-4.1-0)");
        self.open(json!({
            "capabilities": { "alwaysMatch": {
                "webkitgtk:browserOptions": { "binary": browser, "args": ["--automation"] }
            }}
        }))
        .await
    }

    /// Starts the app binary with `args` and opens a WebDriver session on its window.
    pub async fn session(&self, app: &Path, args: &[String]) -> Session {
        self.open(json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "wry",
                "tauri:options": { "application": app, "args": args }
            }}
        }))
        .await
    }

    async fn open(&self, caps: Value) -> Session {
        // Starting the app for a session, and some commands on a loaded machine, take
        // longer than the 10 s the protocol tests allow an answer: a minute here, so a
        // busy CI machine is not a failure while a window that never answers still is.
        firebreak_common::process::install_tls_provider();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .unwrap();
        let reply: Value = http
            .post(format!("{}/session", self.base))
            .json(&caps)
            .send()
            .await
            .expect("POST /session")
            .json()
            .await
            .expect("session reply");
        let id = reply["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {reply}"))
            .to_owned();
        Session {
            http,
            url: format!("{}/session/{id}", self.base),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Session {
    http: reqwest::Client,
    url: String,
}

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let reply: Value = req
            .send()
            .await
            .expect("webdriver request")
            .json()
            .await
            .expect("json");
        reply["value"].clone()
    }

    pub async fn title(&self) -> String {
        self.call(reqwest::Method::GET, "/title", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits up to 30 s for an element matching `css`, and returns its id.
    pub async fn wait_for(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let v = self
                .call(
                    reqwest::Method::POST,
                    "/element",
                    Some(json!({"using": "css selector", "value": css})),
                )
                .await;
            if let Some(id) = v[ELEMENT_KEY].as_str() {
                return id.to_owned();
            }
            assert!(Instant::now() < deadline, "no element {css} appeared: {v}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The element's text content (WebKit's rendered-text answer drops clipped text).
    pub async fn text(&self, element: &str) -> String {
        self.execute(
            "return arguments[0].textContent",
            json!([{ ELEMENT_KEY: element }]),
        )
        .await
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    /// Waits for an element matching `css`, then clicks it.
    pub async fn click_on(&self, css: &str) {
        let element = self.wait_for(css).await;
        self.click(&element).await;
    }

    /// Waits for an element matching `css`, then types `text` into it.
    pub async fn type_on(&self, css: &str, text: &str) {
        let element = self.wait_for(css).await;
        self.type_into(&element, text).await;
    }

    /// Clicks the element as a pointer would. One that is out of view (a long Act column)
    /// is scrolled into view and clicked again; a click the driver still refuses fails the
    /// test with the driver's reason rather than passing unnoticed.
    pub async fn click(&self, element: &str) {
        let path = format!("/element/{element}/click");
        let click = || self.call(reqwest::Method::POST, &path, Some(json!({})));
        let v = click().await;
        if v.get("error").is_none() {
            return;
        }
        self.execute(
            "arguments[0].scrollIntoView({block: 'center'})",
            json!([{ ELEMENT_KEY: element }]),
        )
        .await;
        let again = click().await;
        assert!(
            again.get("error").is_none(),
            "the click was refused: {again}"
        );
    }

    pub async fn type_into(&self, element: &str, text: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Loads a URL in the session's window.
    pub async fn navigate(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// Empties an input, as a user selecting all and deleting would.
    pub async fn clear(&self, element: &str) {
        self.call(
            reqwest::Method::POST,
            &format!("/element/{element}/clear"),
            Some(json!({})),
        )
        .await;
    }

    /// Runs script in the page and returns its result.
    pub async fn execute(&self, script: &str, args: Value) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Saves a PNG of the window to `target/e2e-shots/NAME.png`, for a person to look at.
    pub async fn screenshot(&self, name: &str) {
        use base64::Engine as _;
        let v = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let Some(data) = v.as_str() else { return };
        let Ok(png) = base64::engine::general_purpose::STANDARD.decode(data) else {
            return;
        };
        let dir = crate::workspace_root().join("target/e2e-shots");
        let _ = std::fs::create_dir_all(&dir);
        let _ = std::fs::write(dir.join(format!("{name}.png")), png);
    }

    pub async fn close(self) {
        let _ = self.http.delete(&self.url).send().await;
    }
}
