//! Typed metrics with tags, aggregated while the run goes.
//!
//! Probes add samples to a [`Registry`]; each (metric, tag set) pair keeps one [`Sink`]. Trends keep
//! an HDR histogram, so percentiles stay exact to three significant digits and memory stays flat
//! however long the run. A threshold's tag selector merges every series whose tags include the
//! selector's, which is why sinks know how to [`Sink::merge`]. Which metrics exist, and their
//! types, is `observation::metric`'s table; a journal record's samples are fed through
//! [`Registry::add_record`], the same mapping `lpt compare` reads back from the journal.
//! [`prometheus`] serves the registry live (`lpt run --metrics-listen`).

pub mod prometheus;
mod sink;

pub use sink::{Aggregation, Sink};

use std::collections::{BTreeMap, HashMap};

use observation::metric;
use observation::record::RecordKind;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tags on a sample or a series, ordered so equal sets compare and hash equally.
pub type Tags = observation::sample::Tags;

/// Builds a tag set from pairs: `tags([("rendition", "P360p30fps16x9")])`.
pub fn tags<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Tags {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Every metric's series for one run. Cheap to share behind an `Arc`; adding a sample takes one
/// short lock.
pub struct Registry {
    started: Instant,
    series: Mutex<HashMap<&'static str, HashMap<Tags, Sink>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    pub fn new() -> Self {
        Registry {
            started: Instant::now(),
            series: Mutex::new(HashMap::new()),
        }
    }

    /// Time since the registry was created: the denominator of a counter's per-second rate.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Adds a sample. For rates, pass 1.0 (true) or 0.0 (false); for gauges, the new value.
    ///
    /// # Panics
    /// When `metric` is not in the catalogue, and (with debug assertions) when a tag is not one
    /// its definition lists: both are bugs in a probe, not a user's mistake.
    pub fn add(&self, metric: &str, tags: &Tags, value: f64) {
        let def = metric::lookup(metric)
            .unwrap_or_else(|| panic!("metric `{metric}` is not in the catalogue"));
        debug_assert!(
            tags.keys().all(|key| def.tags.contains(&key.as_str())),
            "metric `{metric}` is defined with tags {:?}, not {:?}",
            def.tags,
            tags.keys().collect::<Vec<_>>()
        );
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let by_tags = series.entry(def.name).or_default();
        match by_tags.get_mut(tags) {
            Some(sink) => sink.add(value),
            None => {
                let mut sink = Sink::new(def.kind);
                sink.add(value);
                by_tags.insert(tags.clone(), sink);
            }
        }
    }

    /// Adds every metric sample a journal record stands for
    /// (`observation::sample::journal_samples`), tagged with the record's tag columns and `extra`.
    pub fn add_record<R: RecordKind>(&self, record: &R, extra: &Tags) {
        let mut tags = observation::sample::record_tags(record);
        tags.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        for (def, value) in observation::sample::journal_samples(record) {
            self.add(def.name, &tags, value);
        }
    }

    /// Records a duration sample on a time metric.
    pub fn add_duration(&self, metric: &str, tags: &Tags, duration: Duration) {
        self.add(metric, tags, duration.as_secs_f64() * 1e3);
    }

    /// Records a true/false sample on a rate metric.
    pub fn add_bool(&self, metric: &str, tags: &Tags, ok: bool) {
        self.add(metric, tags, if ok { 1.0 } else { 0.0 });
    }

    /// Every series of `metric` whose tags include all of `selector`'s, merged into one sink;
    /// `None` when no series matches.
    pub fn merged(&self, metric: &str, selector: &Tags) -> Option<Sink> {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let by_tags = series.get(metric)?;
        let mut merged: Option<Sink> = None;
        for (tags, sink) in by_tags {
            if selector.iter().all(|(k, v)| tags.get(k) == Some(v)) {
                match &mut merged {
                    Some(m) => m.merge(sink),
                    None => merged = Some(sink.clone()),
                }
            }
        }
        merged
    }

    /// A copy of every series, metric by metric, for the summary.
    pub fn snapshot(&self) -> BTreeMap<&'static str, Vec<(Tags, Sink)>> {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        series
            .iter()
            .map(|(name, by_tags)| {
                let mut list: Vec<(Tags, Sink)> = by_tags
                    .iter()
                    .map(|(t, s)| (t.clone(), s.clone()))
                    .collect();
                list.sort_by(|a, b| a.0.cmp(&b.0));
                (*name, list)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selector_merges_matching_series_only() {
        let registry = Registry::new();
        let p240 = tags([("rendition", "P240p30fps16x9"), ("stream", "a")]);
        let p240b = tags([("rendition", "P240p30fps16x9"), ("stream", "b")]);
        let p360 = tags([("rendition", "P360p30fps16x9"), ("stream", "a")]);
        registry.add("latency", &p240, 100.0);
        registry.add("latency", &p240b, 300.0);
        registry.add("latency", &p360, 1000.0);

        let only_240 = registry
            .merged("latency", &tags([("rendition", "P240p30fps16x9")]))
            .unwrap();
        assert_eq!(
            only_240.aggregate(Aggregation::Count, Duration::ZERO),
            Some(2.0)
        );
        assert_eq!(
            only_240.aggregate(Aggregation::Mean, Duration::ZERO),
            Some(200.0)
        );
        let all = registry.merged("latency", &Tags::new()).unwrap();
        assert_eq!(
            all.aggregate(Aggregation::Max, Duration::ZERO),
            Some(1000.0)
        );
        assert!(
            registry
                .merged("latency", &tags([("stream", "zzz")]))
                .is_none()
        );
        assert!(registry.merged("vmaf", &Tags::new()).is_none());
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "is defined with tags")]
    fn a_tag_the_metric_table_does_not_list_is_a_programming_error() {
        Registry::new().add("streams", &tags([("rendition", "P240p30fps16x9")]), 1.0);
    }

    #[test]
    #[should_panic(expected = "not in the catalogue")]
    fn unknown_metric_is_a_programming_error() {
        Registry::new().add("no_such_metric", &Tags::new(), 1.0);
    }
}
