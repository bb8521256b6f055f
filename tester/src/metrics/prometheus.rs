//! `lpt run --metrics-listen ADDR`: the run's live [`Registry`] served at `GET /metrics` in
//! Prometheus's text exposition format (version 0.0.4), for dashboards while the run goes.
//!
//! Every series is the same metric × tag set `summary.json` shows, its tags as labels (values
//! escaped: backslash, double quote, newline). The names follow Prometheus's conventions, by one
//! rule ([`exported_names`]), so a dashboard can be checked against the metric catalogue:
//!
//! | lpt metric | exported as |
//! |---|---|
//! | any | `lpt_` + its name; a time metric (stored in ms) gets `_seconds` and values in seconds |
//! | counter `segments` | `counter` `lpt_segments_total`: the running sum |
//! | rate `segment_success` | `counter`s `lpt_segment_success_passes_total` and `…_fails_total` (the true and false samples, so a dashboard takes the ratio over any window), and `gauge` `lpt_segment_success_ratio`, the whole run's fraction true (the summary's `rate`) |
//! | gauge `streams` | `gauge` `lpt_streams`: the last value set |
//! | trend `latency` (ms) | `summary` `lpt_latency_seconds`: quantiles 0.5, 0.9, 0.95, 0.99 from the run's HDR histogram (three significant digits), `_sum` and `_count` |
//!
//! A trend's quantiles cover the whole run so far, as the summary's do, not a sliding window;
//! `rate(_sum) / rate(_count)` gives a window's mean.
//!
//! Each scrape copies the registry ([`Registry::snapshot`], one short lock) and renders the copy,
//! so the registry is never locked while a response is written; renders take turns, so however
//! many scrapers there are, one copy at a time is made. The listener is bound before the run
//! starts (a taken or malformed address is a configuration error) and the server stops when the
//! run ends.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use observation::metric::{self, MetricDef, MetricKind, Unit};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{Aggregation, Registry, Sink, Tags};

/// The `Content-Type` of the text exposition format this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Every exported name starts with this.
pub const PREFIX: &str = "lpt_";

/// A trend's quantiles: label value and percentile.
const QUANTILES: [(&str, f64); 4] = [("0.5", 50.0), ("0.9", 90.0), ("0.95", 95.0), ("0.99", 99.0)];

/// How long [`MetricsServer::stop`] lets a scrape in progress finish.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// The name of `def`'s metric family: `lpt_<name>`, with `_seconds` for a time metric. A counter's
/// series add `_total`; a rate's are `_passes_total`, `_fails_total` and `_ratio`.
pub fn family_name(def: &MetricDef) -> String {
    match def.unit {
        Unit::Milliseconds => format!("{PREFIX}{}_seconds", def.name),
        Unit::Plain => format!("{PREFIX}{}", def.name),
    }
}

/// Every sample name `def`'s series appear under at `/metrics`: the names a PromQL query may use.
pub fn exported_names(def: &MetricDef) -> Vec<String> {
    let family = family_name(def);
    match def.kind {
        MetricKind::Counter => vec![format!("{family}_total")],
        MetricKind::Rate => vec![
            format!("{family}_passes_total"),
            format!("{family}_fails_total"),
            format!("{family}_ratio"),
        ],
        MetricKind::Gauge => vec![family],
        MetricKind::Trend => vec![format!("{family}_sum"), format!("{family}_count"), family],
    }
}

/// The registry's series (a [`Registry::snapshot`]) in the text exposition format, metric by
/// metric in name order, series by tag set.
pub fn render(snapshot: &BTreeMap<&'static str, Vec<(Tags, Sink)>>) -> String {
    let mut out = String::new();
    for (name, series) in snapshot {
        let Some(def) = metric::lookup(name) else {
            continue;
        };
        render_metric(&mut out, def, series);
    }
    out
}

fn render_metric(out: &mut String, def: &MetricDef, series: &[(Tags, Sink)]) {
    let family = family_name(def);
    // Time metrics are kept in ms; Prometheus's base unit is the second. Dividing (rather than
    // multiplying by 0.001) keeps a whole number of ms exact in seconds.
    let per_unit = match def.unit {
        Unit::Milliseconds => 1000.0,
        Unit::Plain => 1.0,
    };
    match def.kind {
        MetricKind::Counter => {
            let name = format!("{family}_total");
            header(out, &name, def, "counter", "running sum");
            for (tags, sink) in series {
                if let Sink::Counter { sum, .. } = sink {
                    sample(out, &name, tags, None, sum / per_unit);
                }
            }
        }
        MetricKind::Rate => {
            let rates = || {
                series.iter().filter_map(|(tags, sink)| match sink {
                    Sink::Rate { passes, total } => Some((tags, *passes, *total)),
                    _ => None,
                })
            };
            let name = format!("{family}_passes_total");
            header(out, &name, def, "counter", "true samples");
            for (tags, passes, _) in rates() {
                sample(out, &name, tags, None, passes as f64);
            }
            let name = format!("{family}_fails_total");
            header(out, &name, def, "counter", "false samples");
            for (tags, passes, total) in rates() {
                sample(out, &name, tags, None, (total - passes) as f64);
            }
            let name = format!("{family}_ratio");
            header(out, &name, def, "gauge", "fraction true over the whole run");
            for (tags, passes, total) in rates() {
                sample(out, &name, tags, None, passes as f64 / total as f64);
            }
        }
        MetricKind::Gauge => {
            header(out, &family, def, "gauge", "last value set");
            for (tags, sink) in series {
                if let Some(value) = sink.aggregate(Aggregation::Value, Duration::ZERO) {
                    sample(out, &family, tags, None, value / per_unit);
                }
            }
        }
        MetricKind::Trend => {
            header(out, &family, def, "summary", "quantiles over the whole run");
            for (tags, sink) in series {
                let at = |aggregation| sink.aggregate(aggregation, Duration::ZERO);
                let (Some(count), Some(mean)) = (at(Aggregation::Count), at(Aggregation::Mean))
                else {
                    continue;
                };
                for (label, percentile) in QUANTILES {
                    if let Some(value) = at(Aggregation::Percentile(percentile)) {
                        sample(out, &family, tags, Some(label), value / per_unit);
                    }
                }
                sample(
                    out,
                    &format!("{family}_sum"),
                    tags,
                    None,
                    mean * count / per_unit,
                );
                sample(out, &format!("{family}_count"), tags, None, count);
            }
        }
    }
}

/// `# HELP` and `# TYPE` of one family; the help names the lpt metric it comes from.
fn header(out: &mut String, name: &str, def: &MetricDef, kind: &str, what: &str) {
    let unit = match def.unit {
        Unit::Milliseconds => ", in seconds",
        Unit::Plain => "",
    };
    let help = format!(
        "{} (lpt {} `{}`: {what}{unit})",
        def.description,
        def.kind.name(),
        def.name
    );
    let _ = writeln!(out, "# HELP {name} {}", escape_help(&help));
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// One sample line: `name{tag="value",…,quantile="q"} value`.
fn sample(out: &mut String, name: &str, tags: &Tags, quantile: Option<&str>, value: f64) {
    out.push_str(name);
    let labels = tags
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .chain(quantile.map(|q| ("quantile", q)));
    let mut first = true;
    for (key, value) in labels {
        out.push(if first { '{' } else { ',' });
        first = false;
        let _ = write!(out, "{key}=\"{}\"", escape_label_value(value));
    }
    if !first {
        out.push('}');
    }
    out.push(' ');
    out.push_str(&format_value(value));
    out.push('\n');
}

/// A label value as the format quotes it: `\` → `\\`, `"` → `\"`, newline → `\n`.
pub fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// A help text as the format writes it: `\` → `\\`, newline → `\n` (quotes stay).
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as Go's `ParseFloat` reads it (`+Inf`, `-Inf`, `NaN`, else the shortest
/// decimal that round-trips).
fn format_value(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        value.to_string()
    }
}

/// The address given to `--metrics-listen` could not be listened on.
#[derive(Debug, thiserror::Error)]
#[error(
    "--metrics-listen: cannot listen on `{address}` ({source}); give HOST:PORT, e.g. 127.0.0.1:9464 \
     (port 0 picks a free one)"
)]
pub struct ListenError {
    pub address: String,
    #[source]
    pub source: std::io::Error,
}

/// The metrics endpoint's socket, bound before the run starts.
pub struct MetricsListener {
    listener: tokio::net::TcpListener,
    addr: SocketAddr,
}

impl MetricsListener {
    /// Binds `address` (`HOST:PORT`; port 0 takes a free port, see [`local_addr`](Self::local_addr)).
    pub async fn bind(address: &str) -> Result<MetricsListener, ListenError> {
        let error = |source| ListenError {
            address: address.to_owned(),
            source,
        };
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .map_err(error)?;
        let addr = listener.local_addr().map_err(error)?;
        Ok(MetricsListener { listener, addr })
    }

    /// The address bound, with the port the kernel chose for port 0.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves `registry` at `GET /metrics` until the returned server stops or drops.
    pub fn serve(self, registry: Arc<Registry>) -> MetricsServer {
        let state = Arc::new(Scrapes {
            registry,
            turn: tokio::sync::Mutex::new(()),
        });
        let app = Router::new()
            .route("/metrics", get(scrape))
            .with_state(state);
        let stop = CancellationToken::new();
        let task = tokio::spawn(
            axum::serve(self.listener, app)
                .with_graceful_shutdown(stop.clone().cancelled_owned())
                .into_future(),
        );
        MetricsServer {
            addr: self.addr,
            stop,
            task: Some(task),
        }
    }
}

/// What every scrape shares.
struct Scrapes {
    registry: Arc<Registry>,
    /// Renders take turns: one registry copy at a time.
    turn: tokio::sync::Mutex<()>,
}

async fn scrape(State(scrapes): State<Arc<Scrapes>>) -> impl IntoResponse {
    let body = {
        let _turn = scrapes.turn.lock().await;
        render(&scrapes.registry.snapshot())
    };
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body)
}

/// The running endpoint; stops serving when [`stop`](Self::stop)ped or dropped.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl MetricsServer {
    /// `http://ADDR/metrics`.
    pub fn url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// Stops accepting scrapes and lets one in progress finish (for at most two seconds).
    pub async fn stop(mut self) {
        self.stop.cancel();
        let Some(mut task) = self.task.take() else {
            return;
        };
        match tokio::time::timeout(STOP_GRACE, &mut task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => warn!("the metrics endpoint failed: {error}"),
            Ok(Err(error)) => warn!("the metrics endpoint's task failed: {error}"),
            Err(_) => task.abort(),
        }
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tags;

    #[test]
    fn counters_rates_and_gauges_render_with_escaped_labels() {
        let registry = Registry::new();
        let awkward = tags([("stream", "a\"b\\c\nd"), ("workload", "w")]);
        registry.add("segments", &awkward, 1.0);
        registry.add("segments", &awkward, 1.0);
        for ok in [true, true, false, true] {
            registry.add_bool(
                "segment_success",
                &tags([("rendition", "P144p30fps16x9")]),
                ok,
            );
        }
        registry.add("streams", &tags([("workload", "w")]), 3.0);
        registry.add("streams", &tags([("workload", "w")]), 2.0);

        assert_eq!(
            render(&registry.snapshot()),
            r#"# HELP lpt_segment_success_passes_total a rendition segment was downloaded and passed every check (lpt rate `segment_success`: true samples)
# TYPE lpt_segment_success_passes_total counter
lpt_segment_success_passes_total{rendition="P144p30fps16x9"} 3
# HELP lpt_segment_success_fails_total a rendition segment was downloaded and passed every check (lpt rate `segment_success`: false samples)
# TYPE lpt_segment_success_fails_total counter
lpt_segment_success_fails_total{rendition="P144p30fps16x9"} 1
# HELP lpt_segment_success_ratio a rendition segment was downloaded and passed every check (lpt rate `segment_success`: fraction true over the whole run)
# TYPE lpt_segment_success_ratio gauge
lpt_segment_success_ratio{rendition="P144p30fps16x9"} 0.75
# HELP lpt_segments_total rendition segments downloaded (lpt counter `segments`: running sum)
# TYPE lpt_segments_total counter
lpt_segments_total{stream="a\"b\\c\nd",workload="w"} 2
# HELP lpt_streams streams publishing (lpt gauge `streams`: last value set)
# TYPE lpt_streams gauge
lpt_streams{workload="w"} 2
"#
        );
    }

    #[test]
    fn a_time_trend_is_a_summary_in_seconds_with_four_quantiles() {
        let registry = Registry::new();
        let series = tags([("rendition", "P240p30fps16x9"), ("stream", "s1")]);
        // 0.125 ms … 2 ms: exact in the histogram (1 µs resolution) and in binary.
        for eighths in 1..=16 {
            registry.add("latency", &series, f64::from(eighths) * 0.125);
        }
        registry.add("tickets_won", &Tags::new(), 4.0);

        assert_eq!(
            render(&registry.snapshot()),
            r#"# HELP lpt_latency_seconds glass-to-glass latency: stamped frame sent → its segment downloadable (lpt trend `latency`: quantiles over the whole run, in seconds)
# TYPE lpt_latency_seconds summary
lpt_latency_seconds{rendition="P240p30fps16x9",stream="s1",quantile="0.5"} 0.001
lpt_latency_seconds{rendition="P240p30fps16x9",stream="s1",quantile="0.9"} 0.001875
lpt_latency_seconds{rendition="P240p30fps16x9",stream="s1",quantile="0.95"} 0.002
lpt_latency_seconds{rendition="P240p30fps16x9",stream="s1",quantile="0.99"} 0.002
lpt_latency_seconds_sum{rendition="P240p30fps16x9",stream="s1"} 0.017
lpt_latency_seconds_count{rendition="P240p30fps16x9",stream="s1"} 16
# HELP lpt_tickets_won_total winning tickets (lpt counter `tickets_won`: running sum)
# TYPE lpt_tickets_won_total counter
lpt_tickets_won_total 4
"#
        );
    }

    #[test]
    fn a_plain_trend_keeps_its_unit_and_negative_values() {
        let registry = Registry::new();
        for deficit in [-2.5, 1.0, 3.0, 7.0] {
            registry.add("vmaf_deficit", &Tags::new(), deficit);
        }
        let text = render(&registry.snapshot());
        assert!(text.contains("# TYPE lpt_vmaf_deficit summary\n"), "{text}");
        assert!(
            text.contains("lpt_vmaf_deficit{quantile=\"0.5\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("lpt_vmaf_deficit{quantile=\"0.99\"} 7\n"),
            "{text}"
        );
        assert!(text.contains("lpt_vmaf_deficit_sum 8.5\n"), "{text}");
        assert!(text.contains("lpt_vmaf_deficit_count 4\n"), "{text}");
    }

    #[test]
    fn every_exported_name_is_unique_and_prefixed() {
        let mut seen = std::collections::BTreeSet::new();
        for def in metric::CATALOG {
            for name in exported_names(def) {
                assert!(name.starts_with(PREFIX), "{name}");
                assert!(seen.insert(name.clone()), "{name} is exported twice");
            }
        }
    }

    #[test]
    fn values_are_written_as_prometheus_reads_them() {
        assert_eq!(format_value(f64::INFINITY), "+Inf");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(0.001), "0.001");
        assert_eq!(format_value(-3.0), "-3");
        assert_eq!(escape_help("a\\b\nc \"d\""), "a\\\\b\\nc \"d\"");
    }

    #[tokio::test]
    async fn the_endpoint_serves_the_registry_until_stopped() {
        let registry = Arc::new(Registry::new());
        registry.add("streams", &tags([("workload", "w")]), 1.0);
        let listener = MetricsListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr();
        assert_ne!(addr.port(), 0);
        let server = listener.serve(registry.clone());
        assert_eq!(server.url(), format!("http://{addr}/metrics"));

        let (status, content_type, body) = get_text(addr, "/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(content_type, CONTENT_TYPE);
        assert!(body.contains("lpt_streams{workload=\"w\"} 1\n"), "{body}");
        // Live: a sample added now is in the next scrape.
        registry.add("streams", &tags([("workload", "w")]), 5.0);
        assert!(get_text(addr, "/metrics").await.2.contains("} 5\n"));
        assert_eq!(get_text(addr, "/other").await.0, 404);

        server.stop().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn a_taken_address_is_an_error_naming_it() {
        let held = MetricsListener::bind("127.0.0.1:0").await.unwrap();
        let address = held.local_addr().to_string();
        let error = MetricsListener::bind(&address).await.err().unwrap();
        assert!(
            error.to_string().contains(&format!("`{address}`")),
            "{error}"
        );
        let error = MetricsListener::bind("9464").await.err().unwrap();
        assert!(error.to_string().contains("HOST:PORT"), "{error}");
    }

    /// A plain HTTP/1.0 GET: status, `Content-Type` and body.
    async fn get_text(addr: SocketAddr, path: &str) -> (u16, String, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(format!("GET {path} HTTP/1.0\r\nHost: lpt\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        let content_type = head
            .lines()
            .find_map(|l| l.strip_prefix("content-type: "))
            .unwrap_or_default()
            .to_owned();
        (status, content_type, body.to_owned())
    }
}
