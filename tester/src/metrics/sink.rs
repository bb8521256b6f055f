//! One series' running aggregate, per metric type, and the aggregations thresholds read from it.
//!
//! Trend values are stored in an HDR histogram at a fixed resolution of 1/1000 of the metric's
//! unit (1 µs for time metrics) with three significant digits; negative values (a VMAF deficit can
//! be negative) go to a second histogram of magnitudes so percentiles stay correct across zero.
//! Count, sum, min and max are kept exactly beside the histogram.

use std::time::Duration;

use hdrhistogram::Histogram;

use observation::metric::{MetricKind, Unit};

/// Values are multiplied by this before going into a histogram (1/1000 of the unit).
const RESOLUTION: f64 = 1000.0;
const SIGNIFICANT_DIGITS: u8 = 3;

/// What a threshold reads from a sink.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Aggregation {
    /// `p(N)`: the N-th percentile, N in 0..=100.
    Percentile(f64),
    Mean,
    Median,
    Min,
    Max,
    Count,
    /// Rate metrics: fraction true; counters: sum per second.
    Rate,
    /// Gauges: the last value set.
    Value,
}

impl Aggregation {
    /// The unit of this aggregation's result over a metric measured in `unit`: a count or a rate
    /// is a plain number whatever the metric measures.
    pub fn result_unit(self, unit: Unit) -> Unit {
        match self {
            Aggregation::Count | Aggregation::Rate => Unit::Plain,
            _ => unit,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Sink {
    Counter {
        sum: f64,
        samples: u64,
    },
    Rate {
        passes: u64,
        total: u64,
    },
    Trend(Box<TrendSink>),
    Gauge {
        last: f64,
        min: f64,
        max: f64,
        samples: u64,
    },
}

#[derive(Debug, Clone)]
pub struct TrendSink {
    positive: Histogram<u64>,
    negative: Histogram<u64>,
    count: u64,
    sum: f64,
    min: f64,
    max: f64,
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new(SIGNIFICANT_DIGITS).expect("3 significant digits is a valid HDR configuration")
}

impl TrendSink {
    fn new() -> Self {
        TrendSink {
            positive: new_histogram(),
            negative: new_histogram(),
            count: 0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
        }
    }

    fn add(&mut self, value: f64) {
        let scaled = (value.abs() * RESOLUTION)
            .round()
            .min(u64::MAX as f64 / 4.0) as u64;
        let histogram = if value < 0.0 {
            &mut self.negative
        } else {
            &mut self.positive
        };
        // `record` grows an auto-resizing histogram (`saturating_record` would clamp instead); it
        // can only fail beyond the histogram's absolute range, where clamping is the right answer.
        if histogram.record(scaled).is_err() {
            histogram.saturating_record(scaled);
        }
        self.count += 1;
        self.sum += value;
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    fn merge(&mut self, other: &TrendSink) {
        // Both histograms auto-resize, so adding cannot fail on range.
        let _ = self.positive.add(&other.positive);
        let _ = self.negative.add(&other.negative);
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// The `percentile`-th percentile (0..=100), exact to three significant digits, clamped to the
    /// exact min and max so p(0) and p(100) are the true extremes.
    fn percentile(&self, percentile: f64) -> f64 {
        let negatives = self.negative.len() as f64;
        let positives = self.positive.len() as f64;
        let rank = (percentile / 100.0).clamp(0.0, 1.0) * (negatives + positives);
        // The r-th smallest value overall is, among negatives, the (n − r + 1)-th smallest magnitude.
        let value = if negatives > 0.0 && rank.ceil() <= negatives {
            let r = rank.ceil().max(1.0);
            let quantile_of_magnitude = (negatives - r + 1.0) / negatives;
            -(self.negative.value_at_quantile(quantile_of_magnitude) as f64) / RESOLUTION
        } else {
            let quantile = ((rank - negatives) / positives).clamp(0.0, 1.0);
            self.positive.value_at_quantile(quantile) as f64 / RESOLUTION
        };
        value.clamp(self.min, self.max)
    }
}

impl Sink {
    pub fn new(kind: MetricKind) -> Self {
        match kind {
            MetricKind::Counter => Sink::Counter {
                sum: 0.0,
                samples: 0,
            },
            MetricKind::Rate => Sink::Rate {
                passes: 0,
                total: 0,
            },
            MetricKind::Trend => Sink::Trend(Box::new(TrendSink::new())),
            MetricKind::Gauge => Sink::Gauge {
                last: 0.0,
                min: f64::INFINITY,
                max: f64::NEG_INFINITY,
                samples: 0,
            },
        }
    }

    pub fn kind(&self) -> MetricKind {
        match self {
            Sink::Counter { .. } => MetricKind::Counter,
            Sink::Rate { .. } => MetricKind::Rate,
            Sink::Trend(_) => MetricKind::Trend,
            Sink::Gauge { .. } => MetricKind::Gauge,
        }
    }

    pub fn add(&mut self, value: f64) {
        match self {
            Sink::Counter { sum, samples } => {
                *sum += value;
                *samples += 1;
            }
            Sink::Rate { passes, total } => {
                *total += 1;
                if value != 0.0 {
                    *passes += 1;
                }
            }
            Sink::Trend(trend) => trend.add(value),
            Sink::Gauge {
                last,
                min,
                max,
                samples,
            } => {
                *last = value;
                *min = min.min(value);
                *max = max.max(value);
                *samples += 1;
            }
        }
    }

    /// Folds another series of the same metric into this one. For gauges the other's last value
    /// wins, as when several series set one gauge.
    pub fn merge(&mut self, other: &Sink) {
        match (self, other) {
            (Sink::Counter { sum, samples }, Sink::Counter { sum: s, samples: n }) => {
                *sum += s;
                *samples += n;
            }
            (
                Sink::Rate { passes, total },
                Sink::Rate {
                    passes: p,
                    total: t,
                },
            ) => {
                *passes += p;
                *total += t;
            }
            (Sink::Trend(a), Sink::Trend(b)) => a.merge(b),
            (
                Sink::Gauge {
                    last,
                    min,
                    max,
                    samples,
                },
                Sink::Gauge {
                    last: l,
                    min: lo,
                    max: hi,
                    samples: n,
                },
            ) => {
                if *n > 0 {
                    *last = *l;
                }
                *min = min.min(*lo);
                *max = max.max(*hi);
                *samples += n;
            }
            (this, other) => panic!(
                "cannot merge a {:?} series into a {:?} series",
                other.kind(),
                this.kind()
            ),
        }
    }

    /// Number of samples added.
    pub fn samples(&self) -> u64 {
        match self {
            Sink::Counter { samples, .. } | Sink::Gauge { samples, .. } => *samples,
            Sink::Rate { total, .. } => *total,
            Sink::Trend(trend) => trend.count,
        }
    }

    /// The aggregation's value, or `None` when there are no samples ("no data") or the
    /// aggregation does not apply to this metric type (thresholds are type-checked before a run,
    /// so that only happens through a bug).
    pub fn aggregate(&self, aggregation: Aggregation, elapsed: Duration) -> Option<f64> {
        if self.samples() == 0 {
            return None;
        }
        use Aggregation as A;
        match (self, aggregation) {
            (Sink::Counter { sum, .. }, A::Count) => Some(*sum),
            (Sink::Counter { sum, .. }, A::Rate) => {
                Some(sum / elapsed.as_secs_f64().max(f64::MIN_POSITIVE))
            }
            (Sink::Rate { passes, total }, A::Rate) => Some(*passes as f64 / *total as f64),
            (Sink::Rate { total, .. }, A::Count) => Some(*total as f64),
            (Sink::Trend(t), A::Percentile(p)) => Some(t.percentile(p)),
            (Sink::Trend(t), A::Median) => Some(t.percentile(50.0)),
            (Sink::Trend(t), A::Mean) => Some(t.sum / t.count as f64),
            (Sink::Trend(t), A::Min) => Some(t.min),
            (Sink::Trend(t), A::Max) => Some(t.max),
            (Sink::Trend(t), A::Count) => Some(t.count as f64),
            (Sink::Gauge { last, .. }, A::Value) => Some(*last),
            (Sink::Gauge { min, .. }, A::Min) => Some(*min),
            (Sink::Gauge { max, .. }, A::Max) => Some(*max),
            _ => None,
        }
    }

    /// The aggregations the summary shows for this type, with their display names.
    pub fn summary_values(&self, elapsed: Duration) -> Vec<(String, f64)> {
        use Aggregation as A;
        let wanted: &[(&str, Aggregation)] = match self {
            Sink::Counter { .. } => &[("count", A::Count), ("rate", A::Rate)],
            Sink::Rate { .. } => &[("rate", A::Rate), ("count", A::Count)],
            Sink::Trend(_) => &[
                ("count", A::Count),
                ("mean", A::Mean),
                ("min", A::Min),
                ("p(50)", A::Percentile(50.0)),
                ("p(90)", A::Percentile(90.0)),
                ("p(95)", A::Percentile(95.0)),
                ("p(99)", A::Percentile(99.0)),
                ("max", A::Max),
            ],
            Sink::Gauge { .. } => &[("value", A::Value), ("min", A::Min), ("max", A::Max)],
        };
        let mut values: Vec<(String, f64)> = wanted
            .iter()
            .filter_map(|(name, agg)| self.aggregate(*agg, elapsed).map(|v| (name.to_string(), v)))
            .collect();
        if let Sink::Rate { passes, total } = self {
            values.push(("passes".into(), *passes as f64));
            values.push(("fails".into(), (*total - *passes) as f64));
        }
        values
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trend(values: impl IntoIterator<Item = f64>) -> Sink {
        let mut sink = Sink::new(MetricKind::Trend);
        for v in values {
            sink.add(v);
        }
        sink
    }

    fn close(a: f64, b: f64, relative: f64) -> bool {
        (a - b).abs() <= relative * b.abs().max(1e-9)
    }

    #[test]
    fn trend_percentiles_are_exact_to_three_significant_digits() {
        let sink = trend((1..=10_000).map(|i| i as f64));
        for (p, expected) in [
            (50.0, 5000.0),
            (90.0, 9000.0),
            (99.0, 9900.0),
            (99.9, 9990.0),
        ] {
            let got = sink
                .aggregate(Aggregation::Percentile(p), Duration::ZERO)
                .unwrap();
            assert!(
                close(got, expected, 1e-3),
                "p({p}) = {got}, expected ≈ {expected}"
            );
        }
        assert_eq!(sink.aggregate(Aggregation::Min, Duration::ZERO), Some(1.0));
        assert_eq!(
            sink.aggregate(Aggregation::Max, Duration::ZERO),
            Some(10_000.0)
        );
        assert_eq!(
            sink.aggregate(Aggregation::Mean, Duration::ZERO),
            Some(5000.5)
        );
        assert_eq!(
            sink.aggregate(Aggregation::Percentile(100.0), Duration::ZERO),
            Some(10_000.0)
        );
    }

    #[test]
    fn trend_handles_fractions_and_negative_values() {
        let sink = trend([-3.0, -1.0, 0.25, 2.5, 4.0]);
        let p = |q| {
            sink.aggregate(Aggregation::Percentile(q), Duration::ZERO)
                .unwrap()
        };
        assert_eq!(p(0.0), -3.0);
        assert!(close(p(20.0), -3.0, 1e-3), "{}", p(20.0));
        assert!(close(p(40.0), -1.0, 1e-3), "{}", p(40.0));
        assert!(close(p(60.0), 0.25, 1e-3), "{}", p(60.0));
        assert!(close(p(80.0), 2.5, 1e-3), "{}", p(80.0));
        assert_eq!(p(100.0), 4.0);
        assert_eq!(
            sink.aggregate(Aggregation::Median, Duration::ZERO),
            Some(p(50.0))
        );
    }

    #[test]
    fn rate_counter_and_gauge_aggregate() {
        let mut rate = Sink::new(MetricKind::Rate);
        for ok in [1.0, 1.0, 0.0, 1.0] {
            rate.add(ok);
        }
        assert_eq!(
            rate.aggregate(Aggregation::Rate, Duration::ZERO),
            Some(0.75)
        );
        assert_eq!(
            rate.aggregate(Aggregation::Count, Duration::ZERO),
            Some(4.0)
        );

        let mut counter = Sink::new(MetricKind::Counter);
        counter.add(3.0);
        counter.add(7.0);
        assert_eq!(
            counter.aggregate(Aggregation::Count, Duration::ZERO),
            Some(10.0)
        );
        assert_eq!(
            counter.aggregate(Aggregation::Rate, Duration::from_secs(5)),
            Some(2.0)
        );

        let mut gauge = Sink::new(MetricKind::Gauge);
        for v in [5.0, 2.0, 9.0, 4.0] {
            gauge.add(v);
        }
        assert_eq!(
            gauge.aggregate(Aggregation::Value, Duration::ZERO),
            Some(4.0)
        );
        assert_eq!(gauge.aggregate(Aggregation::Min, Duration::ZERO), Some(2.0));
        assert_eq!(gauge.aggregate(Aggregation::Max, Duration::ZERO), Some(9.0));
    }

    #[test]
    fn empty_sinks_have_no_data() {
        for kind in [
            MetricKind::Counter,
            MetricKind::Rate,
            MetricKind::Trend,
            MetricKind::Gauge,
        ] {
            assert_eq!(
                Sink::new(kind).aggregate(Aggregation::Count, Duration::ZERO),
                None
            );
        }
    }

    #[test]
    fn merged_trends_equal_one_trend_of_all_values() {
        let mut a = trend((1..=500).map(f64::from));
        let b = trend((501..=1000).map(f64::from));
        a.merge(&b);
        let whole = trend((1..=1000).map(f64::from));
        for p in [1.0, 50.0, 95.0, 99.0] {
            assert_eq!(
                a.aggregate(Aggregation::Percentile(p), Duration::ZERO),
                whole.aggregate(Aggregation::Percentile(p), Duration::ZERO)
            );
        }
    }
}
