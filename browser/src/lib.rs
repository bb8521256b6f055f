//! Headless Chromium driven over the Chrome DevTools Protocol (CDP): the HTML report as a
//! browser renders it (a test), and the players probe's tabs, each a real hls.js player.
//!
//! Design decision: a small CDP client on `tokio-tungstenite` rather than `chromiumoxide`. The
//! callers send a handful of commands (open a tab, navigate, evaluate, screenshot, let, refuse or
//! answer a request). chromiumoxide 0.9, its browser fetcher left off, pulls no TLS stack, but it
//! compiles generated bindings of the whole protocol (`chromiumoxide_cdp`, some 110 000 lines) and
//! brings `async-tungstenite`, `reqwest` and `which` besides: minutes of build on the 2-core CI
//! machine for types nothing here reads. `tokio-tungstenite`, built without a TLS feature (the
//! DevTools socket is plain `ws://` on loopback), adds three small crates (`tungstenite`, `sha1`,
//! itself) to the tokio the workspace already builds. The protocol's messages are JSON read
//! through `serde_json::Value`; each command this crate sends is one `call` with its parameters
//! written where it is used.
//!
//! The browser (`/usr/bin/chromium`, which `ci/setup` installs, or `$LPT_CHROMIUM`) runs headless
//! with a temporary profile and home of its own, so no run reads or leaves state elsewhere.
//! Media plays without a user gesture, and no tab is throttled or suspended for being in the
//! background: a players run keeps many tabs playing at once, none of them focused.
//!
//! Reach: a page reaches no network but this machine and the hosts its [`Browser`] was launched
//! for ([`Browser::launch_reaching`]; none for [`Browser::launch`]). Every request a page makes is
//! paused by the CDP `Fetch` domain and let through only when it stays on this machine (`file:`,
//! `data:`, `blob:`, `about:`, or HTTP and WebSocket to `localhost`, `127.0.0.1` or `[::1]`) or
//! goes to one of those hosts; any other fails with `net::ERR_BLOCKED_BY_CLIENT.Inspector` and is
//! listed by [`Page::blocked`]. Below that, no other host resolves (`--host-resolver-rules`, which
//! Chromium applies to addresses as well as names, for its own connections as for a page's) and
//! the browser's own background traffic (component updates, sync, translation, metrics) is
//! switched off. [`Page::requests`] lists every request the page made and how it ended, from the
//! `Network` domain's events.
//!
//! Served documents: [`Browser::serve`] answers requests for a URL from memory (`Fetch.fulfill-
//! Request`), before any name is resolved, so a page and its scripts need no server and never
//! touch the disk; the players probe serves its page and hls.js this way.
//!
//! Processes: Chromium forks zygotes, renderers, a GPU and a network process, and a crash
//! handler that detaches itself. All but the crash handler share the browser's process group;
//! the crash handler is known by the temporary home in its command line. On drop every one of
//! them is SIGKILLed and reaped. Reaping the orphans needs them to be this process's children:
//! a container's init reaps late if at all (this CI's takes seconds), and until then they are
//! zombies that `pgrep chromium` lists after the test. So [`Browser::launch`] makes the calling
//! process a child subreaper (`PR_SET_CHILD_SUBREAPER`): orphans of its descendants are
//! reparented to it, not to init, and the drop waits until every one is gone.
//!
//! The API is async, called within a tokio runtime (a `#[tokio::test]`, or a runtime the test
//! builds beside code that runs its own, as Polars does): a reader task answers each command's
//! future and records the page's events as they arrive.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt as _, StreamExt as _};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The environment variable naming another Chromium binary than [`DEFAULT_CHROMIUM`].
pub const CHROMIUM_ENV: &str = "LPT_CHROMIUM";

/// The Chromium `ci/setup` installs (Debian's package).
pub const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// How long the browser gets to start and write its DevTools port.
const LAUNCH_DEADLINE: Duration = Duration::from_secs(30);

/// How long one DevTools command gets for its reply.
const COMMAND_DEADLINE: Duration = Duration::from_secs(30);

/// How long [`Browser::open`] waits for the page's `load` event.
const LOAD_DEADLINE: Duration = Duration::from_secs(30);

/// How long [`Drop`] waits for the browser's processes to be reaped.
const REAP_DEADLINE: Duration = Duration::from_secs(10);

/// Every page's viewport in CSS pixels (at one device pixel each), whatever the headless
/// window's size.
pub const VIEWPORT: (u32, u32) = (1280, 1024);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(20);

/// The browser's switches besides its profile and host rules: headless, nothing of its own on the
/// network, media that plays unprompted in tabs never throttled for being in the background.
const SWITCHES: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--remote-debugging-port=0",
    "--hide-scrollbars",
    "--mute-audio",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-sync",
    "--disable-features=Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,LocalNetworkAccessChecks",
    "--metrics-recording-only",
    "--no-pings",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
];

/// The hosts every browser may reach: this machine's loopback names.
const LOOPBACK_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// `--host-resolver-rules`: nothing resolves but the loopback hosts and `reach`.
fn host_resolver_rules(reach: &[String]) -> String {
    let mut rules = String::from("--host-resolver-rules=MAP * ~NOTFOUND");
    for host in LOOPBACK_HOSTS
        .iter()
        .copied()
        .chain(reach.iter().map(String::as_str))
    {
        rules.push_str(", EXCLUDE ");
        rules.push_str(host);
    }
    rules
}

/// What went wrong driving the browser.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{path}: no Chromium to run ({source}); run ci/setup, or set {CHROMIUM_ENV} to a Chromium binary"
    )]
    Missing {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{path} exited ({status}) before it listened for DevTools; its log ends:\n{log}")]
    Exited {
        path: PathBuf,
        status: ExitStatus,
        log: String,
    },
    #[error(
        "{path} wrote no DevTools port to DevToolsActivePort within {deadline:?}; its log ends:\n{log}"
    )]
    NoDevToolsPort {
        path: PathBuf,
        deadline: Duration,
        log: String,
    },
    #[error("connecting to the DevTools socket {url}: {source}")]
    Connect {
        url: String,
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    #[error("{method}: Chromium answered error {code}: {message}")]
    Protocol {
        method: String,
        code: i64,
        message: String,
    },
    #[error("{method}: the reply {reply} has no {what}")]
    Reply {
        method: String,
        what: String,
        reply: Value,
    },
    #[error("{method}: no reply within {deadline:?}")]
    Timeout { method: String, deadline: Duration },
    #[error("{method}: the DevTools connection is closed (did the browser die?)")]
    Closed { method: String },
    #[error("navigating to {url}: {error}")]
    Navigation { url: String, error: String },
    #[error("{url} fired no load event within {deadline:?}")]
    Load { url: String, deadline: Duration },
    #[error("`{expression}` threw: {message}")]
    Script { expression: String, message: String },
    #[error("`{expression}` returned {value}, which does not decode: {source}")]
    Decode {
        expression: String,
        value: Value,
        source: serde_json::Error,
    },
    #[error("`{condition}` was not true within {deadline:?}; last value: {last}")]
    Wait {
        condition: String,
        deadline: Duration,
        last: Value,
    },
}

/// A request a page made, as the DevTools `Network` domain reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub url: String,
    /// Chromium's resource type: `Document`, `Stylesheet`, `Image`, `Font`, `Fetch`, ….
    pub kind: String,
    /// The response's HTTP status, once there was one.
    pub status: Option<u16>,
    pub outcome: Outcome,
}

/// How a [`Request`] ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Not finished yet.
    Pending,
    /// Loaded to its end.
    Loaded,
    /// Failed with Chromium's error text (`net::ERR_BLOCKED_BY_CLIENT.Inspector` for one this module
    /// refused).
    Failed(String),
}

impl std::fmt::Display for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.url)?;
        if let Some(status) = self.status {
            write!(f, " (HTTP {status})")?;
        }
        match &self.outcome {
            Outcome::Pending => write!(f, ": pending"),
            Outcome::Loaded => write!(f, ": loaded"),
            Outcome::Failed(error) => write!(f, ": failed, {error}"),
        }
    }
}

/// A headless Chromium; it and every process it started are killed and reaped on drop.
pub struct Browser {
    connection: Arc<Connection>,
    tasks: [JoinHandle<()>; 2],
    process: BrowserProcess,
}

impl Browser {
    /// Starts Chromium (`$LPT_CHROMIUM`, else [`DEFAULT_CHROMIUM`]), its pages kept on this
    /// machine, and connects to its DevTools socket. Must be called within a tokio runtime.
    /// Makes the calling process a child subreaper, so that it reaps the browser's orphans on
    /// drop (see the module's header).
    pub async fn launch() -> Result<Browser, Error> {
        Browser::launch_reaching(&[]).await
    }

    /// [`Browser::launch`], with pages that may also reach the hosts `reach` (names or
    /// addresses, e.g. the host of the HLS a player reads).
    pub async fn launch_reaching(reach: &[String]) -> Result<Browser, Error> {
        let path = std::env::var_os(CHROMIUM_ENV)
            .map_or_else(|| PathBuf::from(DEFAULT_CHROMIUM), PathBuf::from);
        let mut process = BrowserProcess::start(&path, reach)?;
        let url = process.devtools_url().await?;
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .map_err(|source| Error::Connect {
                url: url.clone(),
                source: Box::new(source),
            })?;
        let (sink, stream) = socket.split();
        let (outgoing, queue) = mpsc::unbounded_channel();
        let connection = Arc::new(Connection {
            next_id: AtomicU64::new(1),
            outgoing,
            pending: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            reach: reach.to_vec(),
            served: Mutex::new(HashMap::new()),
        });
        let tasks = [
            tokio::spawn(write_messages(sink, queue)),
            tokio::spawn(read_messages(Arc::clone(&connection), stream)),
        ];
        Ok(Browser {
            connection,
            tasks,
            process,
        })
    }

    /// Opens `url` in a new tab and waits for its `load` event (every resource the document
    /// holds has loaded or failed). The tab's requests are recorded from before the first one.
    pub async fn open(&self, url: &str) -> Result<Page, Error> {
        let c = &self.connection;
        let target = c
            .call(
                None,
                "Target.createTarget",
                // A window of its own: a background tab renders no frames, so it would play none.
                json!({"url": "about:blank", "newWindow": true}),
            )
            .await?;
        let target_id = string_field(&target, "Target.createTarget", "targetId")?;
        let attached = c
            .call(
                None,
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await?;
        let session = string_field(&attached, "Target.attachToTarget", "sessionId")?;
        let state = Arc::new(SessionState::default());
        lock(&c.sessions).insert(session.clone(), Arc::clone(&state));
        let page = Page {
            connection: Arc::clone(c),
            session,
            target_id,
            state,
        };
        page.call("Page.enable", json!({})).await?;
        page.call("Page.setLifecycleEventsEnabled", json!({"enabled": true}))
            .await?;
        let (width, height) = VIEWPORT;
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await?;
        page.call("Network.enable", json!({})).await?;
        page.call("Fetch.enable", json!({"patterns": [{"urlPattern": "*"}]}))
            .await?;
        page.navigate(url).await?;
        Ok(page)
    }

    /// Answers every request of this browser's pages for `url` (compared without its query and
    /// fragment) with `body` as `content_type`, from memory: no request leaves the browser and
    /// no name is resolved. Serving a URL again replaces its document.
    pub fn serve(&self, url: &str, content_type: &str, body: &[u8]) {
        let document = Served {
            content_type: content_type.to_string(),
            base64: base64::engine::general_purpose::STANDARD
                .encode(body)
                .into(),
        };
        lock(&self.connection.served).insert(without_query(url).to_string(), document);
    }

    /// Every process of this browser now: its process group and its crash handler.
    pub fn processes(&self) -> BTreeSet<u32> {
        self.process.processes()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        // `process` drops next: SIGKILL and reap.
    }
}

/// A tab of a [`Browser`]; closed on drop.
pub struct Page {
    connection: Arc<Connection>,
    session: String,
    target_id: String,
    state: Arc<SessionState>,
}

impl Page {
    /// Evaluates `expression` in the page (a promise is awaited) and decodes its value.
    pub async fn eval<T: DeserializeOwned>(&self, expression: &str) -> Result<T, Error> {
        let reply = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(exception) = reply.get("exceptionDetails") {
            let message = exception["exception"]["description"]
                .as_str()
                .or(exception["text"].as_str())
                .unwrap_or("an exception")
                .to_string();
            return Err(Error::Script {
                expression: expression.to_string(),
                message,
            });
        }
        let value = reply["result"].get("value").cloned().unwrap_or(Value::Null);
        serde_json::from_value(value.clone()).map_err(|source| Error::Decode {
            expression: expression.to_string(),
            value,
            source,
        })
    }

    /// Waits until `condition`, a JavaScript expression, evaluates to `true`, or fails after
    /// `deadline` with its last value. A condition that throws fails at once: write it so it
    /// holds `false` until the page is ready (`!!document.querySelector('video')?.currentTime`).
    pub async fn wait_for(&self, condition: &str, deadline: Duration) -> Result<(), Error> {
        let end = Instant::now() + deadline;
        loop {
            let last: Value = self.eval(condition).await?;
            if last == Value::Bool(true) {
                return Ok(());
            }
            if Instant::now() >= end {
                return Err(Error::Wait {
                    condition: condition.to_string(),
                    deadline,
                    last,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// A PNG of what the viewport ([`VIEWPORT`]) shows now.
    pub async fn screenshot_png(&self) -> Result<Vec<u8>, Error> {
        const METHOD: &str = "Page.captureScreenshot";
        let reply = self.call(METHOD, json!({"format": "png"})).await?;
        let data = string_field(&reply, METHOD, "data")?;
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| Error::Reply {
                method: METHOD.into(),
                what: format!("base64 data ({e})"),
                reply: Value::Null,
            })
    }

    /// Every request the page made so far, in the order it made them (a redirect is a request
    /// of its own).
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state.requests)
            .iter()
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// The URLs of the requests this module refused because they would have left the machine.
    pub fn blocked(&self) -> Vec<String> {
        lock(&self.state.blocked).clone()
    }

    async fn navigate(&self, url: &str) -> Result<(), Error> {
        let mut lifecycle = self.state.lifecycle.subscribe();
        let reply = self.call("Page.navigate", json!({"url": url})).await?;
        if let Some(error) = reply["errorText"].as_str().filter(|e| !e.is_empty()) {
            return Err(Error::Navigation {
                url: url.to_string(),
                error: error.to_string(),
            });
        }
        let loader = string_field(&reply, "Page.navigate", "loaderId")?;
        let loaded = lifecycle.wait_for(|events| {
            events
                .iter()
                .any(|(l, name)| *l == loader && name == "load")
        });
        match tokio::time::timeout(LOAD_DEADLINE, loaded).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(Error::Closed {
                method: "Page.lifecycleEvent".into(),
            }),
            Err(_) => Err(Error::Load {
                url: url.to_string(),
                deadline: LOAD_DEADLINE,
            }),
        }
    }

    async fn call(&self, method: &str, params: Value) -> Result<Value, Error> {
        self.connection
            .call(Some(&self.session), method, params)
            .await
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        lock(&self.connection.sessions).remove(&self.session);
        self.connection.post(
            None,
            "Target.closeTarget",
            json!({"targetId": self.target_id}),
        );
    }
}

/// A string field of a command's reply.
fn string_field(reply: &Value, method: &str, field: &str) -> Result<String, Error> {
    reply[field]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| Error::Reply {
            method: method.to_string(),
            what: format!("string `{field}`"),
            reply: reply.clone(),
        })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A CDP error reply.
struct ProtocolError {
    code: i64,
    message: String,
}

/// The DevTools connection, shared by the browser, its pages and the reader task.
struct Connection {
    next_id: AtomicU64,
    outgoing: mpsc::UnboundedSender<String>,
    /// Commands awaiting their reply, by id.
    pending: Mutex<HashMap<u64, oneshot::Sender<Result<Value, ProtocolError>>>>,
    /// What each attached page's events recorded, by session id.
    sessions: Mutex<HashMap<String, Arc<SessionState>>>,
    closed: AtomicBool,
    /// Hosts besides loopback that pages may reach.
    reach: Vec<String>,
    /// Documents answered from memory, by URL without query.
    served: Mutex<HashMap<String, Served>>,
}

/// A document [`Browser::serve`] answers with.
struct Served {
    content_type: String,
    /// The body, base64 as `Fetch.fulfillRequest` takes it, encoded once for every request.
    base64: Arc<str>,
}

/// `url` without its query and fragment.
fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// What a page's events recorded.
#[derive(Default)]
struct SessionState {
    /// Requests by the `Network` domain's request id, in order.
    requests: Mutex<Vec<(String, Request)>>,
    blocked: Mutex<Vec<String>>,
    /// Lifecycle events so far: (loader id, name).
    lifecycle: watch::Sender<Vec<(String, String)>>,
}

impl SessionState {
    /// Applies `change` to the latest request with `id`.
    fn update(&self, id: &str, change: impl FnOnce(&mut Request)) {
        if let Some((_, r)) = lock(&self.requests)
            .iter_mut()
            .rev()
            .find(|(rid, _)| rid == id)
        {
            change(r);
        }
    }
}

impl Connection {
    /// Queues command `id` for the writer task (to the browser, or to a page's `session`);
    /// false once the connection is closed.
    fn send(&self, id: u64, session: Option<&str>, method: &str, params: Value) -> bool {
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = session {
            message["sessionId"] = session.into();
        }
        self.outgoing.send(message.to_string()).is_ok()
    }

    /// Sends a command whose reply nobody waits for.
    fn post(&self, session: Option<&str>, method: &str, params: Value) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(id, session, method, params);
    }

    /// Sends a command and waits for its reply.
    async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, Error> {
        let closed = || Error::Closed {
            method: method.to_string(),
        };
        let (reply, answer) = oneshot::channel();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        lock(&self.pending).insert(id, reply);
        if self.closed.load(Ordering::Acquire) {
            lock(&self.pending).remove(&id);
            return Err(closed());
        }
        if !self.send(id, session, method, params) {
            lock(&self.pending).remove(&id);
            return Err(closed());
        }
        match tokio::time::timeout(COMMAND_DEADLINE, answer).await {
            Ok(Ok(Ok(result))) => Ok(result),
            Ok(Ok(Err(e))) => Err(Error::Protocol {
                method: method.to_string(),
                code: e.code,
                message: e.message,
            }),
            Ok(Err(_)) => Err(closed()),
            Err(_) => {
                lock(&self.pending).remove(&id);
                Err(Error::Timeout {
                    method: method.to_string(),
                    deadline: COMMAND_DEADLINE,
                })
            }
        }
    }

    /// Handles one message from the browser: a reply, or an event of a page.
    fn dispatch(&self, message: &Value) {
        if let Some(id) = message["id"].as_u64() {
            let Some(reply) = lock(&self.pending).remove(&id) else {
                return; // a posted command's reply
            };
            let result = match message.get("error") {
                Some(e) => Err(ProtocolError {
                    code: e["code"].as_i64().unwrap_or(0),
                    message: e["message"].as_str().unwrap_or("").to_string(),
                }),
                None => Ok(message["result"].clone()),
            };
            let _ = reply.send(result);
            return;
        }
        let (Some(method), Some(session)) =
            (message["method"].as_str(), message["sessionId"].as_str())
        else {
            return;
        };
        let Some(state) = lock(&self.sessions).get(session).cloned() else {
            return;
        };
        let p = &message["params"];
        let text = |v: &Value| v.as_str().unwrap_or("").to_string();
        match method {
            "Fetch.requestPaused" => {
                let url = text(&p["request"]["url"]);
                let id = &p["requestId"];
                let served = lock(&self.served)
                    .get(without_query(&url))
                    .map(|d| (d.content_type.clone(), Arc::clone(&d.base64)));
                if let Some((content_type, body)) = served {
                    self.post(
                        Some(session),
                        "Fetch.fulfillRequest",
                        json!({
                            "requestId": id,
                            "responseCode": 200,
                            "responseHeaders": [
                                {"name": "Content-Type", "value": content_type},
                                {"name": "Cache-Control", "value": "no-store"},
                            ],
                            "body": &*body,
                        }),
                    );
                } else if may_reach(&url, &self.reach) {
                    self.post(
                        Some(session),
                        "Fetch.continueRequest",
                        json!({"requestId": id}),
                    );
                } else {
                    lock(&state.blocked).push(url);
                    self.post(
                        Some(session),
                        "Fetch.failRequest",
                        json!({"requestId": id, "errorReason": "BlockedByClient"}),
                    );
                }
            }
            "Network.requestWillBeSent" => lock(&state.requests).push((
                text(&p["requestId"]),
                Request {
                    url: text(&p["request"]["url"]),
                    kind: p["type"].as_str().unwrap_or("Other").to_string(),
                    status: None,
                    outcome: Outcome::Pending,
                },
            )),
            "Network.responseReceived" => {
                let status = p["response"]["status"]
                    .as_f64()
                    .filter(|s| (0.0..=999.0).contains(s))
                    .map(|s| s as u16);
                state.update(&text(&p["requestId"]), |r| r.status = status);
            }
            "Network.loadingFinished" => {
                state.update(&text(&p["requestId"]), |r| r.outcome = Outcome::Loaded);
            }
            "Network.loadingFailed" => {
                let error = text(&p["errorText"]);
                state.update(&text(&p["requestId"]), |r| {
                    r.outcome = Outcome::Failed(error);
                });
            }
            "Page.lifecycleEvent" => {
                let event = (text(&p["loaderId"]), text(&p["name"]));
                state.lifecycle.send_modify(|events| events.push(event));
            }
            _ => {}
        }
    }
}

async fn write_messages(
    mut sink: SplitSink<Socket, Message>,
    mut queue: mpsc::UnboundedReceiver<String>,
) {
    while let Some(text) = queue.recv().await {
        if sink.send(Message::Text(text.into())).await.is_err() {
            return;
        }
    }
}

async fn read_messages(connection: Arc<Connection>, mut stream: SplitStream<Socket>) {
    while let Some(Ok(message)) = stream.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        if let Ok(value) = serde_json::from_str::<Value>(text.as_str()) {
            connection.dispatch(&value);
        }
    }
    connection.closed.store(true, Ordering::Release);
    // Dropping the senders answers every waiting command with `Closed`.
    lock(&connection.pending).clear();
}

/// Whether a page may load `url` without leaving the machine: a local scheme, or HTTP or
/// WebSocket to one of the loopback hosts the browser's `--host-resolver-rules` leave resolvable
/// (`localhost`, `127.0.0.1`, `[::1]`).
pub fn stays_on_machine(url: &str) -> bool {
    may_reach(url, &[])
}

/// Whether a page of a browser launched to reach the hosts `reach` may load `url`: what
/// [`stays_on_machine`] lets through, and HTTP or WebSocket to one of those hosts (a name
/// compared without case, an address by value).
pub fn may_reach(url: &str, reach: &[String]) -> bool {
    let Some((scheme, rest)) = url.split_once(':') else {
        return false;
    };
    match scheme.to_ascii_lowercase().as_str() {
        "file" | "data" | "blob" | "about" => true,
        "http" | "https" | "ws" | "wss" => network_host(rest).is_some_and(|host| {
            LOOPBACK_HOSTS
                .iter()
                .copied()
                .chain(reach.iter().map(String::as_str))
                .any(|allowed| same_host(host, allowed))
        }),
        _ => false,
    }
}

/// The host of a URL's `//authority…` part, an IPv6 address without its brackets.
fn network_host(rest: &str) -> Option<&str> {
    let authority = rest.strip_prefix("//")?.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(ip, _)| ip),
        None => host_port.split(':').next(),
    }
}

fn same_host(host: &str, allowed: &str) -> bool {
    match (host.parse::<IpAddr>(), allowed.parse::<IpAddr>()) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => !host.is_empty() && host.eq_ignore_ascii_case(allowed),
        _ => false,
    }
}

/// The browser's process and its temporary directory (profile, home, log), removed after every
/// process is reaped.
struct BrowserProcess {
    path: PathBuf,
    child: Child,
    dir: tempfile::TempDir,
}

impl BrowserProcess {
    fn start(path: &Path, reach: &[String]) -> Result<BrowserProcess, Error> {
        become_subreaper();
        let dir = tempfile::Builder::new()
            .prefix("lpt-chromium-")
            .tempdir()
            .map_err(|source| Error::Io {
                what: "a temporary directory for the browser".into(),
                source,
            })?;
        let (profile, home) = (dir.path().join("profile"), dir.path().join("home"));
        let io = |what: &str| {
            let what = what.to_string();
            move |source| Error::Io { what, source }
        };
        std::fs::create_dir_all(&home).map_err(io("the browser's home directory"))?;
        let log = std::fs::File::create(dir.path().join("chromium.log"))
            .map_err(io("the browser's log file"))?;
        let log_too = log.try_clone().map_err(io("the browser's log file"))?;
        let mut command = Command::new(path);
        command
            .args(SWITCHES)
            .arg(host_resolver_rules(reach))
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            // The crash handler's database and any dotfile go to the temporary home.
            .env("HOME", &home)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_CACHE_HOME")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_too);
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().map_err(|source| Error::Missing {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(BrowserProcess {
            path: path.to_path_buf(),
            child,
            dir,
        })
    }

    /// Waits for the browser to write `DevToolsActivePort` and returns its socket's URL.
    async fn devtools_url(&mut self) -> Result<String, Error> {
        let file = self.dir.path().join("profile").join("DevToolsActivePort");
        let end = Instant::now() + LAUNCH_DEADLINE;
        loop {
            if let Some(url) = std::fs::read_to_string(&file)
                .ok()
                .as_deref()
                .and_then(devtools_url)
            {
                return Ok(url);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Error::Exited {
                    path: self.path.clone(),
                    status,
                    log: self.log_tail(),
                });
            }
            if Instant::now() >= end {
                return Err(Error::NoDevToolsPort {
                    path: self.path.clone(),
                    deadline: LAUNCH_DEADLINE,
                    log: self.log_tail(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The end of the browser's stdout and stderr, without D-Bus complaints (a container has
    /// no D-Bus).
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("chromium.log")).unwrap_or_default();
        let lines: Vec<&str> = log
            .lines()
            .filter(|l| !l.contains(":ERROR:dbus/"))
            .collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    fn group(&self) -> i32 {
        i32::try_from(self.child.id()).expect("a pid fits an i32")
    }

    /// The processes of the browser's group, and those whose command line names its directory
    /// (the crash handler, which leaves the group).
    fn processes(&self) -> BTreeSet<u32> {
        let marker = self.dir.path().as_os_str().as_encoded_bytes();
        let group = self.group();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return BTreeSet::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                process_group(*pid) == Some(group)
                    || std::fs::read(format!("/proc/{pid}/cmdline"))
                        .is_ok_and(|c| c.windows(marker.len()).any(|w| w == marker))
            })
            .collect()
    }
}

impl Drop for BrowserProcess {
    fn drop(&mut self) {
        let main = self.child.id();
        let mut left = self.processes();
        // SAFETY: kill(2) with a process group this process created, and pids it read just now.
        unsafe {
            libc::kill(-self.group(), libc::SIGKILL);
            for pid in &left {
                libc::kill(*pid as i32, libc::SIGKILL);
            }
        }
        let _ = self.child.wait();
        left.remove(&main);
        let end = Instant::now() + REAP_DEADLINE;
        loop {
            // A child forked before the kill joins the group after the first look.
            left.extend(self.processes().into_iter().filter(|p| *p != main));
            left.retain(|pid| !reaped(*pid));
            if left.is_empty() {
                return;
            }
            if Instant::now() >= end {
                eprintln!(
                    "chromium: processes {left:?} of {} still exist {REAP_DEADLINE:?} after SIGKILL",
                    self.path.display()
                );
                return;
            }
            std::thread::sleep(POLL);
        }
    }
}

/// The DevTools socket's URL from `DevToolsActivePort`'s text (port, then path), once whole.
fn devtools_url(text: &str) -> Option<String> {
    let mut lines = text.lines();
    let port: u16 = lines.next()?.trim().parse().ok()?;
    let path = lines.next()?.trim();
    path.starts_with("/devtools/browser/")
        .then(|| format!("ws://127.0.0.1:{port}{path}"))
}

/// The process group of `pid` (field 5 of `/proc/<pid>/stat`), zombies included.
fn process_group(pid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// Reaps `pid` if it is a child of this process that has exited; true once it no longer
/// exists.
fn reaped(pid: u32) -> bool {
    let mut status = 0;
    // SAFETY: waitpid(2) on one pid with WNOHANG; `status` outlives the call.
    let r = unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
    r == pid as i32 || !Path::new(&format!("/proc/{pid}")).exists()
}

/// Makes this process the reaper of its descendants' orphans (see the module's header).
fn become_subreaper() {
    // SAFETY: prctl(2) with an option that takes one integer argument.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    #[test]
    fn only_local_schemes_and_loopback_hosts_stay_on_the_machine() {
        for url in [
            "file:///tmp/report.html",
            "data:image/png;base64,AAAA",
            "blob:file:///0b8f",
            "about:blank",
            "http://127.0.0.1:8080/hls/index.m3u8",
            "https://localhost/x",
            "http://LOCALHOST:1",
            "ws://[::1]:9222/devtools",
            "http://user:pw@127.0.0.1/x",
        ] {
            assert!(stays_on_machine(url), "{url}");
        }
        for url in [
            "https://cdn.jsdelivr.net/npm/hls.js",
            "http://example.com/",
            "http://93.184.215.14/x.png",
            "http://127.3.4.5/",
            "https://[2001:db8::1]/",
            "http://127.0.0.1.example.com/",
            "http://localhost.example.com/",
            "http://127.0.0.1@example.com/",
            "ftp://127.0.0.1/",
            "chrome://settings",
            "no-scheme",
        ] {
            assert!(!stays_on_machine(url), "{url}");
        }
    }

    #[test]
    fn the_devtools_url_is_read_only_once_the_file_is_whole() {
        assert_eq!(devtools_url(""), None);
        assert_eq!(devtools_url("37477"), None);
        assert_eq!(devtools_url("37477\n/devtools/bro"), None);
        assert_eq!(
            devtools_url("37477\n/devtools/browser/4577a23f\n").as_deref(),
            Some("ws://127.0.0.1:37477/devtools/browser/4577a23f")
        );
    }

    /// A red 40 × 30 SVG image.
    const SVG: &str = r#"<svg xmlns="http://www.w3.org/2000/svg" width="40" height="30"><rect width="40" height="30" fill="rgb(198,40,40)"/></svg>"#;

    /// Serves [`SVG`] to every connection on a port of loopback address `ip`.
    fn svg_server(ip: &str) -> u16 {
        let body = SVG;
        let listener = TcpListener::bind((ip, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let mut reader = BufReader::new(&stream);
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                let _ = write!(
                    &stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: image/svg+xml\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        port
    }

    #[tokio::test]
    async fn a_page_reaches_loopback_and_nothing_else_and_leaves_no_process() {
        let (port, port6) = (svg_server("127.0.0.1"), svg_server("::1"));
        let dir = tempfile::tempdir().unwrap();
        let html = dir.path().join("page.html");
        std::fs::write(
            &html,
            format!(
                r#"<!DOCTYPE html><html><head><title>driver test</title></head><body>
<img id="ip" src="http://127.0.0.1:{port}/a.svg"><img id="name" src="http://localhost:{port}/b.svg">
<img id="ip6" src="http://[::1]:{port6}/e.svg">
<img id="cdn" src="https://cdn.example.com/c.png"><img id="addr" src="http://93.184.215.14/d.png">
</body></html>"#
            ),
        )
        .unwrap();
        let url = format!("file://{}", html.display());
        let browser = Browser::launch().await.unwrap_or_else(|e| panic!("{e}"));
        let processes = browser.processes();
        assert!(processes.len() > 1, "{processes:?}");
        let page = browser.open(&url).await.unwrap();

        let widths: Vec<u32> = page
            .eval("[...document.images].map(i => i.complete ? i.naturalWidth : -1)")
            .await
            .unwrap();
        assert_eq!(
            widths,
            [40, 40, 40, 0, 0],
            "loopback loads, the rest does not: {:#?}",
            page.requests()
        );
        let mut blocked = page.blocked();
        blocked.sort();
        assert_eq!(
            blocked,
            [
                "http://93.184.215.14/d.png",
                "https://cdn.example.com/c.png"
            ]
        );
        let requests = page.requests();
        let outcome = |u: &str| {
            let r = requests.iter().find(|r| r.url == u);
            r.unwrap_or_else(|| panic!("no request for {u}: {requests:#?}"))
                .outcome
                .clone()
        };
        assert_eq!(outcome(&url), Outcome::Loaded);
        assert_eq!(
            outcome(&format!("http://localhost:{port}/b.svg")),
            Outcome::Loaded
        );
        assert_eq!(
            outcome("http://93.184.215.14/d.png"),
            Outcome::Failed("net::ERR_BLOCKED_BY_CLIENT.Inspector".into())
        );

        assert_eq!(
            page.eval::<String>("document.title").await.unwrap(),
            "driver test"
        );
        page.wait_for("document.readyState === 'complete'", Duration::from_secs(5))
            .await
            .unwrap();
        let err = page
            .wait_for("document.title === 'other'", Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Wait { .. }), "{err}");
        let err = page.eval::<Value>("no_such_name.x").await.unwrap_err();
        assert!(
            matches!(&err, Error::Script { message, .. } if message.contains("no_such_name")),
            "{err}"
        );
        let err = page.eval::<u32>("'text'").await.unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{err}");
        let err = match browser.open(&format!("{url}.missing")).await {
            Ok(_) => panic!("a missing file opened"),
            Err(e) => e,
        };
        assert!(
            matches!(&err, Error::Navigation { error, .. } if error.contains("FILE_NOT_FOUND")),
            "{err}"
        );

        let png = page.screenshot_png().await.unwrap();
        let info = png::Decoder::new(std::io::Cursor::new(&png))
            .read_info()
            .unwrap()
            .info()
            .clone();
        assert_eq!((info.width, info.height), VIEWPORT);

        drop(page);
        drop(browser);
        let left: Vec<u32> = processes
            .iter()
            .copied()
            .filter(|p| Path::new(&format!("/proc/{p}")).exists())
            .collect();
        assert!(left.is_empty(), "still in /proc after drop: {left:?}");
    }

    #[test]
    fn a_reached_host_is_matched_by_name_without_case_and_by_address_value() {
        let reach = [
            "Media.Example.com".to_string(),
            "10.0.0.7".to_string(),
            "::2".to_string(),
        ];
        for url in [
            "https://media.example.com/live/a.m3u8",
            "http://user@MEDIA.example.COM:8443/x",
            "http://10.0.0.7:8935/stream/a.m3u8",
            "http://[0:0::2]:80/a.ts",
        ] {
            assert!(may_reach(url, &reach), "{url}");
        }
        for url in [
            "https://media.example.com.evil.net/a.m3u8",
            "http://10.0.0.70/a.m3u8",
            "http://media.example.com@evil.net/",
            "http://[::3]/a.ts",
            "ftp://media.example.com/a",
        ] {
            assert!(!may_reach(url, &reach), "{url}");
        }
        assert_eq!(
            host_resolver_rules(&reach),
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE ::1, EXCLUDE Media.Example.com, EXCLUDE 10.0.0.7, EXCLUDE ::2"
        );
    }

    /// A page served from memory at a made-up origin loads its script the same way, and reaches
    /// a loopback address outside the three only when the browser was launched for it.
    #[tokio::test]
    async fn served_documents_load_from_memory_and_reach_is_per_browser() {
        let other = svg_server("127.0.0.2");
        let page_url = "http://page.lpt.localhost/index.html";
        let html = format!(
            r#"<!DOCTYPE html><html><head><script src="/app.js"></script></head><body>
<img src="http://127.0.0.2:{other}/a.svg"></body></html>"#
        );
        for (reach, width) in [(vec![], 0), (vec!["127.0.0.2".to_string()], 40)] {
            let browser = Browser::launch_reaching(&reach).await.unwrap();
            browser.serve(page_url, "text/html", html.as_bytes());
            browser.serve(
                "http://page.lpt.localhost/app.js",
                "text/javascript",
                b"document.title = 'served';",
            );
            let page = browser.open(&format!("{page_url}?q=1")).await.unwrap();
            assert_eq!(
                page.eval::<String>("document.title").await.unwrap(),
                "served"
            );
            let widths: Vec<u32> = page
                .eval("[...document.images].map(i => i.complete ? i.naturalWidth : -1)")
                .await
                .unwrap();
            assert_eq!(widths, [width], "reach {reach:?}: {:#?}", page.requests());
        }
    }

    #[test]
    fn a_missing_chromium_says_to_run_ci_setup() {
        let err = match BrowserProcess::start(Path::new("/nonexistent/chromium"), &[]) {
            Ok(_) => panic!("a missing binary started"),
            Err(e) => e,
        };
        assert!(err.to_string().contains("run ci/setup"), "{err}");
    }
}
