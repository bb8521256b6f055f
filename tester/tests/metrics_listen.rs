//! `lpt run --metrics-listen`: a real run scraped by a real Prometheus, and the Grafana dashboard
//! (`ci/grafana/lpt-dashboard.json`) checked against the names the endpoint exports, so neither
//! can drift from the metric catalogue.
//!
//! The Prometheus is Debian's (`ci/setup` installs it), started by the test on its own port and
//! data directory and killed when the test ends.

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use observation::metric::{CATALOG, MetricDef, MetricKind};
use serde_json::Value;
use tester::metrics::prometheus::exported_names;
use testkit::ports::{free_port, wait_until};

const PROMETHEUS: &str = "/usr/bin/prometheus";

/// How often the test asks Prometheus while it waits (it scrapes every second).
const QUERY_EVERY: Duration = Duration::from_millis(250);

/// One stream for 20 s through an embedded, offline stack with one orchestrator transcoding
/// itself, at P144p: the shortest run that keeps producing segments while Prometheus scrapes it.
const SCENARIO: &str = r#"name = "metrics-listen"
[target]
kind = "embedded"
orchestrators = 1
transcoders_per_orchestrator = 0
offline = true
[source]
width = 640
height = 360
clip = "6s"
[ladder]
profiles = ["P144p30fps16x9"]
[workloads.one]
executor = "constant-streams"
streams = 1
duration = "20s"
"#;

#[test]
fn prometheus_scrapes_a_live_run_s_segments_and_latency_quantiles() {
    assert!(
        Path::new(PROMETHEUS).is_file(),
        "{PROMETHEUS} is missing: run ci/setup (it installs Debian's `prometheus` package)"
    );
    let _turn = testkit::lpt_run::one_at_a_time();
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("metrics-listen.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let run_dir = dir.path().join("run");

    let mut lpt = LptProcess::start(&scenario, &run_dir);
    let target = lpt.metrics_address(Duration::from_secs(30));
    let prometheus = Prometheus::start(&target, dir.path());

    // While the run goes (its series turn stale once the endpoint stops): the target is up, OK
    // segments are counted, and the latency trend answers quantiles.
    let mut segments = 0.0;
    let mut latency_p95 = 0.0;
    let mut last_query: Option<Instant> = None;
    wait_until(
        "Prometheus answering lpt's segment count and latency p95",
        Duration::from_secs(45),
        || {
            if last_query.is_some_and(|t| t.elapsed() < QUERY_EVERY) {
                return false;
            }
            last_query = Some(Instant::now());
            lpt.assert_running();
            let up = prometheus.query(r#"up{job="lpt"}"#);
            segments = prometheus
                .query(r#"sum(lpt_segments_total{job="lpt",rendition="P144p30fps16x9"})"#)
                .unwrap_or(0.0);
            latency_p95 = prometheus
                .query(r#"max(lpt_latency_seconds{job="lpt",quantile="0.95"})"#)
                .unwrap_or(0.0);
            up == Some(1.0) && segments > 0.0 && latency_p95 > 0.0
        },
    );
    assert_eq!(
        prometheus.query(r#"sum(lpt_segment_success_fails_total{job="lpt"})"#),
        Some(0.0),
        "an offline run on loopback fails no segment"
    );
    let success = prometheus.query(r#"min(lpt_segment_success_ratio{job="lpt"})"#);
    assert_eq!(success, Some(1.0));
    // Glass-to-glass on loopback: at least a segment's worth of frames, at most a few segments.
    assert!(
        (0.05..20.0).contains(&latency_p95),
        "latency p95 {latency_p95} s"
    );

    let code = lpt.wait(Duration::from_secs(60));
    assert_eq!(code, 0, "{}", lpt.stderr());
    // The scrape saw part of what the summary holds, in the same series and unit.
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    let final_count = summary["metrics"]["segments"]["values"]["count"]
        .as_f64()
        .unwrap();
    assert!(
        segments <= final_count,
        "scraped {segments}, summary {final_count}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(75),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_taken_metrics_address_is_a_configuration_error_before_the_run() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = held.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("metrics-listen.toml");
    std::fs::write(&scenario, SCENARIO).unwrap();
    let run_dir = dir.path().join("run");
    let output = Command::new(env!("CARGO_BIN_EXE_lpt"))
        .arg("run")
        .arg(&scenario)
        .arg("--out")
        .arg(&run_dir)
        .args(["--metrics-listen", &address])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(104));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("--metrics-listen: cannot listen on `{address}`")),
        "{stderr}"
    );
    assert!(!run_dir.exists(), "nothing runs: no run directory");
}

#[test]
fn the_dashboard_queries_only_what_the_endpoint_exports() {
    let path = testkit::lpt_run::repo_root().join("ci/grafana/lpt-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 36);
    assert!(
        dashboard["__inputs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "no DS_PROMETHEUS input"
    );

    let exported: HashMap<String, &MetricDef> = CATALOG
        .iter()
        .flat_map(|def| exported_names(def).into_iter().map(move |name| (name, def)))
        .collect();
    let mut used = BTreeSet::new();
    let mut panels = 0;
    for panel in all_panels(&dashboard) {
        let title = panel["title"].as_str().unwrap_or_default();
        if panel["type"] == "row" {
            continue;
        }
        panels += 1;
        assert_eq!(panel["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        for target in targets {
            assert_eq!(target["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
            let expr = target["expr"].as_str().unwrap();
            let names = promql_names(expr);
            assert!(
                !names.metrics.is_empty(),
                "{title}: `{expr}` names no metric"
            );
            let mut labels: BTreeSet<&str> = ["job", "instance"].into();
            for metric in &names.metrics {
                let def = exported
                    .get(metric)
                    .unwrap_or_else(|| panic!("{title}: `{metric}` is not exported ({expr})"));
                used.insert(def.name);
                labels.extend(def.tags);
                if def.kind == MetricKind::Trend {
                    labels.insert("quantile");
                }
            }
            let legend = target["legendFormat"].as_str().unwrap_or_default();
            for label in names.labels.iter().map(String::as_str).chain(
                legend
                    .split("{{")
                    .skip(1)
                    .filter_map(|s| s.split_once("}}"))
                    .map(|(label, _)| label.trim()),
            ) {
                assert!(
                    labels.contains(label),
                    "{title}: label `{label}` is not one of {labels:?} ({expr}, legend `{legend}`)"
                );
            }
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .unwrap();
        let (metric, label) = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .and_then(|q| q.split_once(','))
            .unwrap_or_else(|| {
                panic!("variable query `{query}` is not label_values(METRIC, LABEL)")
            });
        let def = exported
            .get(metric.trim())
            .unwrap_or_else(|| panic!("variable query `{query}`: not an exported metric"));
        let label = label.trim();
        assert!(
            def.tags.contains(&label) || label == "instance",
            "variable query `{query}`: `{}` has no tag `{label}`",
            def.name
        );
    }

    assert!(panels >= 8, "{panels} panels");
    for wanted in [
        "segment_success",
        "segments",
        "segments_lost",
        "latency",
        "segment_latency",
        "download_time",
        "transcode_time",
        "stalls",
        "checks",
        "tickets_sent",
        "tickets_redeemed",
        "payment_ev_error",
    ] {
        assert!(used.contains(wanted), "no panel shows `{wanted}`");
    }
}

/// Every panel, including those inside collapsed rows.
fn all_panels(dashboard: &Value) -> Vec<&Value> {
    let mut panels = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        panels.push(panel);
        if let Some(inner) = panel["panels"].as_array() {
            panels.extend(inner);
        }
    }
    panels
}

/// What a PromQL expression names: metrics (selectors) and labels (in matchers and in `by`,
/// `without`, `on`, `ignoring`, `group_left`, `group_right` lists).
#[derive(Debug, Default, PartialEq)]
struct PromqlNames {
    metrics: Vec<String>,
    labels: Vec<String>,
}

/// Reads the names of a PromQL expression: an identifier followed by `(` is a function, one of
/// the aggregation operators and keywords is not a metric, strings and range durations are
/// skipped, identifiers inside `{…}` and after a grouping keyword are labels.
fn promql_names(expr: &str) -> PromqlNames {
    const AGGREGATIONS: &[&str] = &[
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
    ];
    const KEYWORDS: &[&str] = &["and", "or", "unless", "bool", "offset"];
    const GROUPING: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = PromqlNames::default();
    let mut i = 0;
    let mut in_braces = false;
    let mut label_list = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' | '`' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += if chars[i] == '\\' { 2 } else { 1 };
                }
                i += 1;
            }
            '[' => {
                while i < chars.len() && chars[i] != ']' {
                    i += 1;
                }
                i += 1;
            }
            '{' => {
                in_braces = true;
                i += 1;
            }
            '}' => {
                in_braces = false;
                i += 1;
            }
            ')' => {
                label_list = false;
                i += 1;
            }
            '$' | '0'..='9' => {
                i += 1;
                while i < chars.len() && (chars[i].is_alphanumeric() || "_.".contains(chars[i])) {
                    i += 1;
                }
            }
            c if c.is_alphabetic() || c == '_' || c == ':' => {
                let start = i;
                while i < chars.len() && (chars[i].is_alphanumeric() || "_:".contains(chars[i])) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let next = chars[i..].iter().find(|c| !c.is_whitespace());
                if in_braces || label_list {
                    names.labels.push(word);
                } else if GROUPING.contains(&word.as_str()) {
                    label_list = next == Some(&'(');
                    if label_list {
                        i += chars[i..].iter().position(|c| *c == '(').unwrap() + 1;
                    }
                } else if next != Some(&'(')
                    && !AGGREGATIONS.contains(&word.as_str())
                    && !KEYWORDS.contains(&word.as_str())
                {
                    names.metrics.push(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

#[test]
fn promql_names_tells_metrics_from_functions_labels_and_ranges() {
    let names = promql_names(
        r#"sum by (stream, rendition) (rate(lpt_segments_total{workload=~"$w",quantile="0.5"}[$__rate_interval])) / on (stream) group_left max without (x) (lpt_b) > bool 0.5e3 or lpt_c offset 5m"#,
    );
    assert_eq!(names.metrics, ["lpt_segments_total", "lpt_b", "lpt_c"]);
    assert_eq!(
        names.labels,
        ["stream", "rendition", "workload", "quantile", "stream", "x"]
    );
}

/// `lpt run` of a scenario with `--metrics-listen 127.0.0.1:0`, its stderr read as it comes (the
/// metrics URL line, and everything for a failure's message); SIGKILLed when dropped.
struct LptProcess {
    child: Child,
    url: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl LptProcess {
    fn start(scenario: &Path, run_dir: &Path) -> LptProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_lpt"))
            .arg("run")
            .arg(scenario)
            .arg("--out")
            .arg(run_dir)
            .args(["--metrics-listen", "127.0.0.1:0"])
            .env_remove("LPT_LOG")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("lpt runs");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (send, url) = mpsc::channel();
        let lines = BufReader::new(child.stderr.take().unwrap());
        let kept = stderr.clone();
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("metrics: serving ") {
                    let _ = send.send(url.to_owned());
                }
                let mut kept = kept.lock().unwrap();
                kept.push_str(&line);
                kept.push('\n');
            }
        });
        LptProcess { child, url, stderr }
    }

    /// `HOST:PORT` of the metrics endpoint, from the line lpt prints on stderr.
    fn metrics_address(&self, deadline: Duration) -> String {
        let url = self.url.recv_timeout(deadline).unwrap_or_else(|_| {
            panic!(
                "lpt printed no `metrics: serving` line within {deadline:?}:\n{}",
                self.stderr()
            )
        });
        url.strip_prefix("http://")
            .and_then(|rest| rest.strip_suffix("/metrics"))
            .unwrap_or_else(|| panic!("`{url}` is not http://HOST:PORT/metrics"))
            .to_owned()
    }

    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("lpt ended ({status}) before the scrape:\n{}", self.stderr());
        }
    }

    fn wait(&mut self, deadline: Duration) -> i32 {
        let mut code = None;
        wait_until("lpt run ending", deadline, || {
            code = self
                .child
                .try_wait()
                .unwrap()
                .map(|s| s.code().unwrap_or(-1));
            code.is_some()
        });
        code.unwrap()
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for LptProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's Prometheus scraping `target` as job `lpt` every second, on a free port with its data
/// under `dir`; SIGKILLed when dropped.
struct Prometheus {
    child: Child,
    address: String,
    log: PathBuf,
}

impl Prometheus {
    fn start(target: &str, dir: &Path) -> Prometheus {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: lpt\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        let address = format!("127.0.0.1:{}", free_port());
        let log = dir.join("prometheus.log");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("{PROMETHEUS} starts ({e}): run ci/setup"));
        let prometheus = Prometheus {
            child,
            address,
            log,
        };
        wait_until("Prometheus ready", Duration::from_secs(20), || {
            prometheus
                .get("/-/ready")
                .is_some_and(|(status, _)| status == 200)
        });
        prometheus
    }

    /// The value of an instant query that answers one sample; `None` when it answers none.
    fn query(&self, query: &str) -> Option<f64> {
        let (status, body) = self
            .get(&format!("/api/v1/query?query={}", percent_encode(query)))
            .unwrap_or_else(|| panic!("Prometheus stopped answering:\n{}", self.log()));
        let answer: Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{query}: {e}: {body}"));
        assert_eq!(status, 200, "{query}: {body}");
        let result = answer["data"]["result"].as_array().unwrap();
        assert!(result.len() <= 1, "{query} answers {result:?}");
        let value = result.first()?["value"][1].as_str().unwrap();
        Some(value.parse().unwrap())
    }

    /// A plain HTTP/1.0 GET: status and body; `None` when nothing answers.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = std::net::TcpStream::connect(&self.address).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.address
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, body.to_owned()))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A query string's value, percent-encoded (everything but unreserved characters).
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
