//! Live progress while a run goes: streams live, segments ok/failed, latency p95, VMAF mean.
//!
//! Adapts to where it writes, as k6 does: on a terminal one status line redraws in place
//! (indicatif, restored by a drop guard); elsewhere — CI logs — a plain line every ten seconds.
//! `--quiet` shows nothing. Everything shown is read from the metrics registry, so progress and
//! the final summary can never disagree.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::task::JoinHandle;

use crate::metrics::{Aggregation, Registry, Tags};
use crate::thresholds::format_value;

/// One line of progress, from the registry's current state.
pub fn status_line(registry: &Registry) -> String {
    let elapsed = registry.elapsed();
    let value = |metric: &str, aggregation: Aggregation| {
        registry
            .merged(metric, &Tags::new())
            .and_then(|sink| sink.aggregate(aggregation, elapsed))
    };
    let streams = value("streams", Aggregation::Value).unwrap_or(0.0);
    let (ok, failed) = match registry.merged("segment_success", &Tags::new()) {
        Some(sink) => {
            let total = sink.samples() as f64;
            let rate = sink.aggregate(Aggregation::Rate, elapsed).unwrap_or(0.0);
            ((total * rate).round(), (total * (1.0 - rate)).round())
        }
        None => (0.0, 0.0),
    };
    let mut line = format!(
        "{:>5}s  streams {streams}  segments ok {ok} failed {failed}",
        elapsed.as_secs()
    );
    if let Some(p95) = value("latency", Aggregation::Percentile(95.0)) {
        line.push_str(&format!(
            "  latency p95 {}",
            format_value(p95, observation::metric::Unit::Milliseconds)
        ));
    }
    if let Some(vmaf) = value("vmaf", Aggregation::Mean) {
        line.push_str(&format!("  VMAF mean {vmaf:.1}"));
    }
    line
}

/// Shows progress until dropped.
pub struct Progress {
    task: Option<JoinHandle<()>>,
    bar: Option<ProgressBar>,
}

impl Progress {
    pub fn start(registry: Arc<Registry>, quiet: bool) -> Progress {
        if quiet {
            return Progress {
                task: None,
                bar: None,
            };
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {msg}").expect("a valid progress template"),
            );
            let shown = bar.clone();
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(500));
                loop {
                    tick.tick().await;
                    shown.set_message(status_line(&registry));
                    shown.tick();
                }
            });
            Progress {
                task: Some(task),
                bar: Some(bar),
            }
        } else {
            let task = tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(10));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    eprintln!("{}", status_line(&registry));
                }
            });
            Progress {
                task: Some(task),
                bar: None,
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tags;

    #[test]
    fn status_line_reads_the_registry() {
        let registry = Registry::new();
        assert!(status_line(&registry).ends_with("streams 0  segments ok 0 failed 0"));
        let t = tags([("rendition", "P240p30fps16x9")]);
        registry.add("streams", &tags([("workload", "w")]), 2.0);
        for ok in [true, true, true, false] {
            registry.add_bool("segment_success", &t, ok);
        }
        registry.add("latency", &t, 2500.0);
        registry.add("vmaf", &t, 87.25);
        let line = status_line(&registry);
        assert!(line.contains("streams 2  segments ok 3 failed 1"), "{line}");
        assert!(line.contains("latency p95 2.5s"), "{line}");
        assert!(line.contains("VMAF mean 87.2"), "{line}");
    }
}
