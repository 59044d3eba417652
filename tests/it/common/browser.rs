//! A real browser for the console's tests: Debian's Chromium, headless,
//! driven over the DevTools protocol (a WebSocket on loopback) with just
//! what the tests need: open a page, run a line of script in it, press
//! keys, size the window, take a screenshot.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use super::KillOnDrop;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub struct Browser {
    ws: Socket,
    session: String,
    next: u64,
    /// Events that arrived while a call waited for its answer.
    events: VecDeque<Value>,
    _process: KillOnDrop,
    _profile: tempfile::TempDir,
}

/// How long any one step may take before the test says where it stuck.
const STEP: Duration = Duration::from_secs(30);

impl Browser {
    /// Starts Chromium with a window of `width` x `height` (a phone's
    /// when `mobile`), or `None` when it is not installed (which fails
    /// under CI).
    pub async fn launch(width: u32, height: u32, mobile: bool) -> Option<Browser> {
        if !super::installed("chromium", "chromium") {
            return None;
        }
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--hide-scrollbars",
                "--remote-debugging-port=0",
                &format!("--user-data-dir={}", profile.path().display()),
                "about:blank",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line.split("DevTools listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let process = KillOnDrop(child);
        let url = rx
            .recv_timeout(STEP)
            .expect("chromium never said where DevTools listens");
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .expect("connect to DevTools");
        let mut b = Browser {
            ws,
            session: String::new(),
            next: 0,
            events: VecDeque::new(),
            _process: process,
            _profile: profile,
        };
        let target = b
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = b
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        b.session = attached["sessionId"].as_str().unwrap().to_owned();
        b.call("Page.enable", json!({})).await;
        b.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        )
        .await;
        Some(b)
    }

    /// One DevTools command, answered.
    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        loop {
            let got = tokio::time::timeout(STEP, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"))
                .expect("DevTools closed")
                .unwrap();
            let Message::Text(text) = got else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
            if v.get("method").is_some() {
                self.events.push_back(v);
            }
        }
    }

    /// Waits for DevTools event `name` (one that came already counts).
    async fn event(&mut self, name: &str) {
        if let Some(i) = self.events.iter().position(|e| e["method"] == name) {
            self.events.drain(..=i);
            return;
        }
        loop {
            let got = tokio::time::timeout(STEP, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("no {name}"))
                .expect("DevTools closed")
                .unwrap();
            let Message::Text(text) = got else { continue };
            let v: Value = serde_json::from_str(&text).unwrap();
            if v["method"] == name {
                return;
            }
        }
    }

    /// Opens `url` and waits for it to load.
    pub async fn goto(&mut self, url: &str) {
        self.events.clear();
        self.call("Page.navigate", json!({"url": url})).await;
        self.event("Page.loadEventFired").await;
    }

    /// Runs `js` in the page (promises awaited) and returns its value.
    pub async fn eval(&mut self, js: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": js, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(e) = r.get("exceptionDetails") {
            panic!("{js}: {e}");
        }
        r["result"]["value"].clone()
    }

    /// Runs `js`, which leaves the page (a click, a submit), and waits for
    /// the next page to load.
    pub async fn leave(&mut self, js: &str) {
        self.events.clear();
        self.eval(js).await;
        self.event("Page.loadEventFired").await;
    }

    /// The page's text as a person reads it.
    pub async fn text(&mut self) -> String {
        self.eval("document.body.innerText")
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Waits until the page (as it is now, without reloading) shows
    /// `want`; the text when it does.
    pub async fn until_shows(&mut self, want: &str, secs: u64) -> String {
        for _ in 0..secs * 5 {
            let t = self.text().await;
            if t.contains(want) {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("the page never showed {want:?}:\n{}", self.text().await);
    }

    /// Presses `key` (`Tab`, `Enter`) as a keyboard would.
    pub async fn press(&mut self, key: &str) {
        let (code, text) = match key {
            "Tab" => (9, ""),
            "Enter" => (13, "\r"),
            other => panic!("no key {other}"),
        };
        for kind in ["keyDown", "keyUp"] {
            let mut p =
                json!({"type": kind, "key": key, "code": key, "windowsVirtualKeyCode": code});
            if kind == "keyDown" && !text.is_empty() {
                p["text"] = json!(text);
            }
            self.call("Input.dispatchKeyEvent", p).await;
        }
    }

    /// Presses Enter and waits for the page it leads to.
    pub async fn press_enter_and_wait(&mut self) {
        self.events.clear();
        self.press("Enter").await;
        self.event("Page.loadEventFired").await;
    }

    /// The window as a PNG.
    pub async fn screenshot(&mut self) -> Vec<u8> {
        use base64::Engine as _;
        let r = self
            .call("Page.captureScreenshot", json!({"format": "png"}))
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap()
    }
}
