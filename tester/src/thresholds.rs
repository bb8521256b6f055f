//! Thresholds: a small grammar over metrics that turns a run's observations into a verdict.
//!
//! `"latency{rendition=P360p30fps16x9}" = ["p(95) < 4s"]` reads: over every series of `latency`
//! tagged `rendition=P360p30fps16x9`, the 95th percentile must be below 4 seconds. Expressions are
//! `AGG OP VALUE[UNIT]` with `AGG` one of `p(N)`, `mean` (`avg`), `med`, `min`, `max`, `count`,
//! `rate`, `value`. They are parsed and checked against the metric's type and unit before anything
//! runs, so a typo fails in `lpt validate`, not after an hour of soak. A threshold whose metric
//! has no samples fails with "no data": silence is not success.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::hint::closest;
use crate::metrics::{Aggregation, Registry, Tags};
use observation::metric::{MetricDef, MetricKind, TAG_KEYS, Unit};

/// A metric name with an optional tag selector: `latency{rendition=P360p30fps16x9,stream=s1}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    pub metric: &'static MetricDef,
    pub tags: Tags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
    NotEqual,
}

impl Comparison {
    pub fn holds(self, observed: f64, limit: f64) -> bool {
        match self {
            Comparison::Less => observed < limit,
            Comparison::LessOrEqual => observed <= limit,
            Comparison::Greater => observed > limit,
            Comparison::GreaterOrEqual => observed >= limit,
            Comparison::Equal => observed == limit,
            Comparison::NotEqual => observed != limit,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Comparison::Less => "<",
            Comparison::LessOrEqual => "<=",
            Comparison::Greater => ">",
            Comparison::GreaterOrEqual => ">=",
            Comparison::Equal => "==",
            Comparison::NotEqual => "!=",
        }
    }
}

/// A parsed, type-checked expression. `limit` is in the metric's base unit (ms for time metrics).
#[derive(Debug, Clone, PartialEq)]
pub struct Expression {
    pub aggregation: Aggregation,
    pub comparison: Comparison,
    pub limit: f64,
    pub text: String,
}

/// One threshold of a scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub selector_text: String,
    pub selector: Selector,
    pub expression: Expression,
    pub abort_on_fail: bool,
    /// With `abort_on_fail`: how long into the run before a failure may abort it.
    pub delay_abort_eval: Duration,
}

/// The outcome of one threshold, with what was observed beside it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdVerdict {
    pub metric: String,
    pub expression: String,
    /// In the metric's unit (milliseconds for time metrics); `None` when there was no data.
    pub observed: Option<f64>,
    pub unit: Unit,
    pub passed: bool,
    pub reason: Option<String>,
    pub abort_on_fail: bool,
}

/// Why a selector or expression was refused; the message names the offending text.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ThresholdError {
    pub message: String,
}

fn error(message: impl Into<String>) -> ThresholdError {
    ThresholdError {
        message: message.into(),
    }
}

/// Parses `metric` or `metric{key=value,...}` and checks the metric and tag keys exist.
pub fn parse_selector(text: &str) -> Result<Selector, ThresholdError> {
    let text = text.trim();
    let (name, tag_text) = match text.find('{') {
        Some(open) => {
            let Some(inner) = text[open + 1..].strip_suffix('}') else {
                return Err(error(format!(
                    "`{text}`: a tag selector must end with `}}`, e.g. `latency{{rendition=P360p30fps16x9}}`"
                )));
            };
            (text[..open].trim(), Some(inner))
        }
        None => (text, None),
    };
    let metric = observation::metric::lookup(name).ok_or_else(|| {
        let names = observation::metric::CATALOG.iter().map(|m| m.name);
        match closest(name, names) {
            Some(hint) => error(format!("unknown metric `{name}`; did you mean `{hint}`?")),
            None => error(format!(
                "unknown metric `{name}`; known metrics: {}",
                observation::metric::CATALOG
                    .iter()
                    .map(|m| m.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    })?;
    let mut tags = Tags::new();
    for pair in tag_text.into_iter().flat_map(|t| t.split(',')) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(error(format!(
                "`{text}`: tag `{}` must be written `key=value`",
                pair.trim()
            )));
        };
        let (key, value) = (key.trim(), value.trim());
        if !TAG_KEYS.contains(&key) {
            let hint = closest(key, TAG_KEYS.iter().copied())
                .map(|h| format!("; did you mean `{h}`?"))
                .unwrap_or_else(|| format!("; tag keys are {}", TAG_KEYS.join(", ")));
            return Err(error(format!("`{text}`: unknown tag key `{key}`{hint}")));
        }
        if value.is_empty() {
            return Err(error(format!("`{text}`: tag `{key}` has no value")));
        }
        if tags.insert(key.to_owned(), value.to_owned()).is_some() {
            return Err(error(format!("`{text}`: tag `{key}` is given twice")));
        }
    }
    Ok(Selector { metric, tags })
}

/// Which aggregations each metric type supports.
fn allowed(kind: MetricKind) -> &'static [&'static str] {
    match kind {
        MetricKind::Counter => &["count", "rate"],
        MetricKind::Rate => &["rate", "count"],
        MetricKind::Trend => &["p(N)", "mean", "avg", "med", "min", "max", "count"],
        MetricKind::Gauge => &["value", "min", "max"],
    }
}

/// Parses `AGG OP VALUE[UNIT]` and checks it against `metric`'s type and unit.
pub fn parse_expression(text: &str, metric: &MetricDef) -> Result<Expression, ThresholdError> {
    let source = text;
    let text = text.trim();
    let bad = |why: String| error(format!("`{source}`: {why}"));

    let (aggregation, rest) = if let Some(after) = text.strip_prefix("p(") {
        let close = after
            .find(')')
            .ok_or_else(|| bad("`p(` needs a closing `)`, e.g. `p(95) < 4s`".into()))?;
        let n: f64 = after[..close]
            .trim()
            .parse()
            .map_err(|_| bad(format!("`{}` is not a percentile number", &after[..close])))?;
        if !(0.0..=100.0).contains(&n) {
            return Err(bad(format!("percentile {n} is outside 0..100")));
        }
        (Aggregation::Percentile(n), &after[close + 1..])
    } else {
        let end = text
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(text.len());
        let word = &text[..end];
        let aggregation = match word {
            "mean" | "avg" => Aggregation::Mean,
            "med" => Aggregation::Median,
            "min" => Aggregation::Min,
            "max" => Aggregation::Max,
            "count" => Aggregation::Count,
            "rate" => Aggregation::Rate,
            "value" => Aggregation::Value,
            "" => {
                return Err(bad(format!(
                    "expected an aggregation first ({})",
                    allowed(metric.kind).join(", ")
                )));
            }
            other => {
                let known = ["mean", "avg", "med", "min", "max", "count", "rate", "value"];
                let hint = closest(other, known)
                    .map(|h| format!("; did you mean `{h}`?"))
                    .unwrap_or_default();
                return Err(bad(format!("unknown aggregation `{other}`{hint}")));
            }
        };
        (aggregation, &text[end..])
    };

    let aggregation_name = match aggregation {
        Aggregation::Percentile(_) => "p(N)",
        Aggregation::Mean => "mean",
        Aggregation::Median => "med",
        Aggregation::Min => "min",
        Aggregation::Max => "max",
        Aggregation::Count => "count",
        Aggregation::Rate => "rate",
        Aggregation::Value => "value",
    };
    if !allowed(metric.kind).contains(&aggregation_name) {
        return Err(bad(format!(
            "`{aggregation_name}` does not apply to `{}`, a {} metric; use one of: {}",
            metric.name,
            metric.kind.name(),
            allowed(metric.kind).join(", ")
        )));
    }

    let rest = rest.trim_start();
    let (comparison, rest) = [
        ("<=", Comparison::LessOrEqual),
        (">=", Comparison::GreaterOrEqual),
        ("==", Comparison::Equal),
        ("!=", Comparison::NotEqual),
        ("<", Comparison::Less),
        (">", Comparison::Greater),
    ]
    .into_iter()
    .find_map(|(symbol, c)| rest.strip_prefix(symbol).map(|r| (c, r)))
    .ok_or_else(|| {
        bad("expected a comparison (<, <=, >, >=, ==, !=) after the aggregation".into())
    })?;

    let rest = rest.trim();
    let number_end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')))
        .unwrap_or(rest.len());
    // `e` may begin no unit we accept, so a trailing `e` is never mistaken for one.
    let (number, unit) = rest.split_at(number_end);
    if number.is_empty() {
        return Err(bad("expected a number after the comparison".into()));
    }
    let value: f64 = number
        .parse()
        .map_err(|_| bad(format!("`{number}` is not a number")))?;
    let unit = unit.trim();
    let counts_things = matches!(aggregation, Aggregation::Count);
    let scale = match (unit, metric.unit, counts_things) {
        ("", _, _) => 1.0,
        ("%", _, _)
            if matches!(aggregation, Aggregation::Rate) && metric.kind == MetricKind::Rate =>
        {
            0.01
        }
        ("%", _, _) => return Err(bad("`%` applies only to `rate` on a rate metric".into())),
        (_, Unit::Milliseconds, false) => match unit {
            "us" | "µs" => 1e-3,
            "ms" => 1.0,
            "s" => 1e3,
            "m" => 60e3,
            "h" => 3600e3,
            other => {
                return Err(bad(format!(
                    "unknown time unit `{other}` (use us, ms, s, m or h)"
                )));
            }
        },
        (_, Unit::Milliseconds, true) => {
            return Err(bad(format!(
                "`count` is a number of samples; remove the unit `{unit}`"
            )));
        }
        (_, Unit::Plain, _) => {
            return Err(bad(format!(
                "`{}` is not a time metric, so `{unit}` is not a unit it takes; write a plain number",
                metric.name
            )));
        }
    };
    Ok(Expression {
        aggregation,
        comparison,
        limit: value * scale,
        text: text.to_owned(),
    })
}

impl Threshold {
    /// Parses a selector and an expression together (the scenario loader's entry point).
    pub fn parse(
        selector_text: &str,
        expression_text: &str,
        abort_on_fail: bool,
        delay_abort_eval: Duration,
    ) -> Result<Threshold, ThresholdError> {
        let selector = parse_selector(selector_text)?;
        let expression = parse_expression(expression_text, selector.metric)?;
        Ok(Threshold {
            selector_text: selector_text.trim().to_owned(),
            selector,
            expression,
            abort_on_fail,
            delay_abort_eval,
        })
    }

    /// Judges the threshold against what the registry holds now.
    pub fn evaluate(&self, registry: &Registry) -> ThresholdVerdict {
        let observed = registry
            .merged(self.selector.metric.name, &self.selector.tags)
            .and_then(|sink| sink.aggregate(self.expression.aggregation, registry.elapsed()));
        let unit = self
            .expression
            .aggregation
            .result_unit(self.selector.metric.unit);
        let (passed, reason) = match observed {
            None => (false, Some("no data".to_owned())),
            Some(value)
                if self
                    .expression
                    .comparison
                    .holds(value, self.expression.limit) =>
            {
                (true, None)
            }
            Some(value) => (
                false,
                Some(format!(
                    "observed {} is not {} {}",
                    format_value(value, unit),
                    self.expression.comparison.symbol(),
                    format_value(self.expression.limit, unit)
                )),
            ),
        };
        ThresholdVerdict {
            metric: self.selector_text.clone(),
            expression: self.expression.text.clone(),
            observed,
            unit,
            passed,
            reason,
            abort_on_fail: self.abort_on_fail,
        }
    }
}

/// A value with its unit, as people read it: `3.2s`, `850ms`, `0.993`.
pub fn format_value(value: f64, unit: Unit) -> String {
    match unit {
        Unit::Milliseconds if value.abs() >= 1000.0 => format!("{}s", round_sig(value / 1e3)),
        Unit::Milliseconds => format!("{}ms", round_sig(value)),
        Unit::Plain => round_sig(value).to_string(),
    }
}

fn round_sig(value: f64) -> f64 {
    if value == 0.0 || !value.is_finite() {
        return value;
    }
    let digits = 4 - value.abs().log10().floor() as i32 - 1;
    let factor = 10f64.powi(digits.clamp(0, 12));
    (value * factor).round() / factor
}

impl fmt::Display for ThresholdVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mark = if self.passed { "✓" } else { "✗" };
        let observed = self
            .observed
            .map(|v| format_value(v, self.unit))
            .unwrap_or_else(|| "no data".into());
        write!(
            f,
            "{mark} {} {}  (observed {observed})",
            self.metric, self.expression
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::tags;

    fn metric(name: &str) -> &'static MetricDef {
        observation::metric::lookup(name).unwrap()
    }

    fn threshold(selector: &str, expression: &str) -> Threshold {
        Threshold::parse(selector, expression, false, Duration::ZERO).unwrap()
    }

    fn parse_err(selector: &str, expression: &str) -> String {
        Threshold::parse(selector, expression, false, Duration::ZERO)
            .unwrap_err()
            .message
    }

    #[test]
    fn every_comparison_operator() {
        let registry = Registry::new();
        registry.add("vmaf", &Tags::new(), 80.0);
        let cases = [
            ("mean < 81", true),
            ("mean < 80", false),
            ("mean <= 80", true),
            ("mean <= 79.9", false),
            ("mean > 79", true),
            ("mean > 80", false),
            ("mean >= 80", true),
            ("mean >= 80.1", false),
            ("mean == 80", true),
            ("mean == 81", false),
            ("mean != 81", true),
            ("mean != 80", false),
        ];
        for (expression, expected) in cases {
            let verdict = threshold("vmaf", expression).evaluate(&registry);
            assert_eq!(verdict.passed, expected, "{expression}");
            assert_eq!(verdict.observed, Some(80.0));
        }
    }

    #[test]
    fn every_aggregation() {
        let registry = Registry::new();
        for v in 1..=100 {
            registry.add("psnr", &Tags::new(), f64::from(v));
        }
        registry.add_bool("segment_success", &Tags::new(), true);
        registry.add_bool("segment_success", &Tags::new(), false);
        registry.add("tickets_sent", &Tags::new(), 7.0);
        registry.add("payment_ev_error", &Tags::new(), 0.2);
        registry.add("payment_ev_error", &Tags::new(), 0.01);

        let observed = |selector: &str, expression: &str| {
            threshold(selector, expression)
                .evaluate(&registry)
                .observed
                .unwrap()
        };
        assert!((observed("psnr", "p(95) > 0") - 95.0).abs() < 0.1);
        assert_eq!(observed("psnr", "mean > 0"), 50.5);
        assert_eq!(observed("psnr", "avg > 0"), 50.5);
        assert!((observed("psnr", "med > 0") - 50.0).abs() < 0.1);
        assert_eq!(observed("psnr", "min > 0"), 1.0);
        assert_eq!(observed("psnr", "max > 0"), 100.0);
        assert_eq!(observed("psnr", "count > 0"), 100.0);
        assert_eq!(observed("segment_success", "rate > 0"), 0.5);
        assert_eq!(observed("segment_success", "count > 0"), 2.0);
        assert_eq!(observed("tickets_sent", "count > 0"), 7.0);
        assert!(observed("tickets_sent", "rate > 0") > 0.0);
        assert_eq!(observed("payment_ev_error", "value < 1"), 0.01);
        assert_eq!(observed("payment_ev_error", "max < 1"), 0.2);
        assert_eq!(observed("payment_ev_error", "min < 1"), 0.01);
    }

    #[test]
    fn units_convert_to_milliseconds_on_time_metrics() {
        let registry = Registry::new();
        registry.add_duration("latency", &Tags::new(), Duration::from_millis(3500));
        assert!(threshold("latency", "max < 4s").evaluate(&registry).passed);
        assert!(!threshold("latency", "max < 3s").evaluate(&registry).passed);
        assert!(
            threshold("latency", "max < 3501ms")
                .evaluate(&registry)
                .passed
        );
        assert!(
            threshold("latency", "max < 3501")
                .evaluate(&registry)
                .passed,
            "bare = ms"
        );
        assert!(
            threshold("latency", "max < 0.1m")
                .evaluate(&registry)
                .passed
        );
        assert!(
            !threshold("latency", "max < 3400000us")
                .evaluate(&registry)
                .passed
        );
        assert_eq!(
            threshold("latency", "p(99) < 1.5s").expression.limit,
            1500.0
        );
        assert_eq!(
            threshold("segment_success", "rate >= 99%").expression.limit,
            0.99
        );
    }

    #[test]
    fn tag_selectors_pick_series() {
        let registry = Registry::new();
        registry.add("latency", &tags([("rendition", "P240p30fps16x9")]), 1000.0);
        registry.add("latency", &tags([("rendition", "P360p30fps16x9")]), 5000.0);
        let p240 = threshold("latency{rendition=P240p30fps16x9}", "max < 2s").evaluate(&registry);
        assert!(p240.passed);
        assert_eq!(p240.observed, Some(1000.0));
        let p360 =
            threshold("latency{ rendition = P360p30fps16x9 }", "max < 2s").evaluate(&registry);
        assert!(!p360.passed);
        assert_eq!(p360.reason.as_deref(), Some("observed 5s is not < 2s"));
        assert!(!threshold("latency", "max < 2s").evaluate(&registry).passed);
    }

    #[test]
    fn no_data_fails() {
        let registry = Registry::new();
        registry.add("latency", &tags([("rendition", "P240p30fps16x9")]), 1000.0);
        for (selector, expression) in [
            ("vmaf", "mean > 0"),
            ("segment_success", "rate >= 0"),
            ("latency{rendition=P720p30fps16x9}", "p(95) < 100s"),
        ] {
            let verdict = threshold(selector, expression).evaluate(&registry);
            assert!(!verdict.passed, "{selector}");
            assert_eq!(verdict.observed, None);
            assert_eq!(verdict.reason.as_deref(), Some("no data"));
        }
    }

    #[test]
    fn malformed_expressions_say_what_is_wrong() {
        assert!(parse_err("latecny", "p(95) < 4s").contains("did you mean `latency`"));
        assert!(parse_err("latency", "p(95 < 4s").contains("closing `)`"));
        assert!(parse_err("latency", "p(150) < 4s").contains("outside 0..100"));
        assert!(parse_err("latency", "p(x) < 4s").contains("not a percentile"));
        assert!(parse_err("latency", "men < 4s").contains("did you mean `mean`"));
        assert!(parse_err("latency", "mean 4s").contains("expected a comparison"));
        assert!(parse_err("latency", "mean <").contains("expected a number"));
        assert!(parse_err("latency", "mean < 4parsecs").contains("unknown time unit `parsecs`"));
        assert!(parse_err("latency", "rate < 4s").contains("does not apply to `latency`"));
        assert!(parse_err("segment_success", "p(95) > 0.9").contains("does not apply"));
        assert!(parse_err("vmaf", "mean > 60s").contains("not a time metric"));
        assert!(parse_err("latency", "count < 4s").contains("remove the unit"));
        assert!(parse_err("vmaf", "mean > 60%").contains("`%` applies only"));
        assert!(parse_err("latency{rendtion=x}", "max < 1s").contains("did you mean `rendition`"));
        assert!(parse_err("latency{rendition}", "max < 1s").contains("key=value"));
        assert!(parse_err("latency{rendition=a", "max < 1s").contains("must end with `}`"));
        assert!(parse_err("latency", "").contains("expected an aggregation"));
        assert!(parse_err("latency", "mean < 1.2.3").contains("not a number"));
    }

    #[test]
    fn selector_parses_metric_and_tags() {
        let s = parse_selector("checks{check=resolution,rendition=P240p30fps16x9}").unwrap();
        assert_eq!(s.metric, metric("checks"));
        assert_eq!(
            s.tags,
            tags([("check", "resolution"), ("rendition", "P240p30fps16x9")])
        );
    }

    #[test]
    fn verdict_displays_observed_value() {
        let registry = Registry::new();
        registry.add("vmaf", &Tags::new(), 72.123456);
        let verdict = threshold("vmaf", "mean > 60").evaluate(&registry);
        assert_eq!(verdict.to_string(), "✓ vmaf mean > 60  (observed 72.12)");
    }

    #[test]
    fn a_count_of_a_time_metric_is_shown_as_a_number_not_a_time() {
        let registry = Registry::new();
        for latency_ms in [1500.0, 900.0, 2500.0] {
            registry.add("latency", &Tags::new(), latency_ms);
        }
        let count = threshold("latency", "count >= 4").evaluate(&registry);
        assert_eq!(count.to_string(), "✗ latency count >= 4  (observed 3)");
        assert_eq!(count.reason.as_deref(), Some("observed 3 is not >= 4"));
        let max = threshold("latency", "max < 2s").evaluate(&registry);
        assert_eq!(max.to_string(), "✗ latency max < 2s  (observed 2.5s)");
    }
}
