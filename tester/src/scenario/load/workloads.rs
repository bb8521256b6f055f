//! `[workloads.<name>]`: what runs, one executor per workload, each with its own keys.

use std::collections::BTreeSet;
use std::time::Duration;

use super::super::model::*;
use super::super::reader::{Reader, Table, join};
use super::{address, sub_table};
use crate::hint::closest;

/// The most streams one workload may run at once.
pub const MAX_STREAMS: i64 = 100_000;

/// The most browser players one stream may have: each is a Chromium tab decoding the stream.
pub const MAX_PLAYERS_PER_STREAM: i64 = 100;

const EXECUTORS: &[&str] = &[
    "constant-streams",
    "ramping-streams",
    "capacity",
    "direct-orchestrator",
    "soak",
    "ai",
];

pub(super) fn read(
    reader: &mut Reader<'_>,
    t: &Table<'_>,
    threshold_names: &BTreeSet<&str>,
    target: Option<&Target>,
) -> Vec<Workload> {
    let mut workloads = Vec::new();
    for (name, item) in t.table.iter() {
        let path = join(t.path(), name);
        let Some(w) = reader.as_table(item, &path) else {
            continue;
        };
        let executor = reader.choice(&w, "executor", EXECUTORS);
        let Some(executor) = reader.require(&w, "executor", "\"constant-streams\"", executor)
        else {
            continue;
        };
        let start_after = reader.duration(&w, "start_after").unwrap_or(Duration::ZERO);
        let players = reader
            .integer(&w, "players", 0, MAX_PLAYERS_PER_STREAM)
            .unwrap_or(0) as u32;
        let publishes = !matches!(executor, "direct-orchestrator" | "ai");
        if players > 0 && !publishes {
            reader.error_at(
                &w,
                "players",
                format!("players watch a workload's streams; `{executor}` publishes none"),
                Some("move `players` to a stream workload".into()),
            );
        }
        if publishes && matches!(target, Some(Target::Direct { .. })) {
            reader.error_at(
                &w,
                "executor",
                format!("`{executor}` publishes streams, which needs a stack: target.kind = \"direct\" has none"),
                Some("use target.kind = \"embedded\" or \"external\"".into()),
            );
        }
        let executor = reader.strict(&w, |reader| match executor {
            "constant-streams" | "soak" => read_constant(reader, &w, executor == "soak"),
            "ramping-streams" => Some(read_ramping(reader, &w)),
            "capacity" => Some(read_capacity(reader, &w, threshold_names)),
            "ai" => super::ai::read_workload(reader, &w),
            _ => read_direct(reader, &w, target),
        });
        if let Some(executor) = executor {
            workloads.push(Workload {
                name: name.to_owned(),
                start_after,
                executor,
                players,
            });
        }
    }
    if t.table.is_empty() {
        reader.errors.error(
            t.span.clone(),
            t.path(),
            "a scenario needs at least one workload",
            None,
        );
    }
    workloads
}

/// `constant-streams` and `soak`: a fixed number of streams for a duration.
fn read_constant(reader: &mut Reader<'_>, w: &Table<'_>, soak: bool) -> Option<Executor> {
    let streams = reader.integer(w, "streams", 1, MAX_STREAMS);
    let duration = reader.duration(w, "duration");
    let streams = reader.require(w, "streams", "2", streams);
    let duration = reader.require(w, "duration", "\"30s\"", duration);
    let (streams, duration) = (streams? as u32, duration?);
    Some(if soak {
        Executor::Soak { streams, duration }
    } else {
        Executor::ConstantStreams { streams, duration }
    })
}

/// `ramping-streams`: stages, each ramping to a stream count over its duration.
fn read_ramping(reader: &mut Reader<'_>, w: &Table<'_>) -> Executor {
    let start_streams = reader
        .integer(w, "start_streams", 0, MAX_STREAMS)
        .unwrap_or(0) as u32;
    let mut stages = Vec::new();
    let tables = reader.tables(w, "stages");
    let tables = reader.require(w, "stages", "[{ duration = \"30s\", target = 10 }]", tables);
    for (index, stage) in tables.unwrap_or_default().into_iter().enumerate() {
        let s = sub_table(stage, w, index, "stages");
        let stage = reader.strict(&s, |reader| {
            let duration = reader.duration(&s, "duration");
            let target = reader.integer(&s, "target", 0, MAX_STREAMS);
            let duration = reader.require(&s, "duration", "\"30s\"", duration);
            let target = reader.require(&s, "target", "10", target);
            Some(Stage {
                duration: duration?,
                target: target? as u32,
            })
        });
        stages.extend(stage);
    }
    Executor::RampingStreams {
        start_streams,
        stages,
    }
}

/// `capacity`: steps of streams until the threshold named by `until` fails.
fn read_capacity(
    reader: &mut Reader<'_>,
    w: &Table<'_>,
    threshold_names: &BTreeSet<&str>,
) -> Executor {
    let start_streams = reader
        .integer(w, "start_streams", 1, MAX_STREAMS)
        .unwrap_or(1) as u32;
    let step = reader.integer(w, "step", 1, 10_000).unwrap_or(1) as u32;
    let step_duration = reader
        .duration(w, "step_duration")
        .unwrap_or(Duration::from_secs(30));
    let max_streams = reader
        .integer(w, "max_streams", 1, MAX_STREAMS)
        .unwrap_or(64) as u32;
    let until = reader.string(w, "until");
    let until = reader.require(w, "until", "\"segment_success\"", until);
    if let Some(until) = &until
        && !threshold_names.contains(until.as_str())
    {
        let hint = closest(until, threshold_names.iter().copied())
            .map(|h| format!("did you mean `{h}`?"))
            .or_else(|| Some("add it under [thresholds]".into()));
        reader.error_at(
            w,
            "until",
            format!("`{until}` names no threshold of this scenario"),
            hint,
        );
    }
    if max_streams < start_streams {
        reader.error_at(
            w,
            "max_streams",
            "`max_streams` is below `start_streams`",
            None,
        );
    }
    Executor::Capacity(CapacitySearch {
        start_streams,
        step,
        step_duration,
        max_streams,
        until: until.unwrap_or_default(),
    })
}

/// `direct-orchestrator`: the tester pays orchestrators directly and checks what they return.
fn read_direct(
    reader: &mut Reader<'_>,
    w: &Table<'_>,
    target: Option<&Target>,
) -> Option<Executor> {
    let orchestrators = read_orchestrator_list(reader, w, target);
    let price_cap_wei_per_pixel = reader.number(w, "price_cap", 0.0, f64::MAX);
    let duration = reader.duration(w, "duration");
    let region = reader.string(w, "region").unwrap_or_else(|| "LOCAL".into());
    let concurrency = reader.integer(w, "concurrency", 1, 1000).unwrap_or(20) as u32;
    let duration = reader.require(w, "duration", "\"30s\"", duration);
    Some(Executor::DirectOrchestrator {
        orchestrators: orchestrators?,
        price_cap_wei_per_pixel,
        duration: duration?,
        region,
        concurrency,
    })
}

/// `orchestrators = "embedded"`, `"chain"` (with `chain_rpc` and `service_registry`) or a list
/// of service URIs.
fn read_orchestrator_list(
    reader: &mut Reader<'_>,
    w: &Table<'_>,
    target: Option<&Target>,
) -> Option<OrchestratorList> {
    let item = reader.item(w, "orchestrators");
    let registry = address(reader, w, "service_registry");
    let rpc = reader.string(w, "chain_rpc");
    let list = match item.and_then(|i| i.as_str()) {
        Some("embedded") => {
            if matches!(
                target,
                Some(Target::External { .. } | Target::Direct { .. })
            ) {
                reader.error_at(
                    w,
                    "orchestrators",
                    "\"embedded\" needs target.kind = \"embedded\"",
                    None,
                );
            }
            OrchestratorList::Embedded
        }
        Some("chain") => {
            let rpc = reader.require(w, "chain_rpc", "\"https://arb1.arbitrum.io/rpc\"", rpc);
            let registry = reader.require(
                w,
                "service_registry",
                "\"0xC92d3A360b8f9e083bA64DE15d95Cf8180897431\"",
                registry,
            );
            OrchestratorList::Chain {
                rpc: rpc?,
                service_registry: registry?,
            }
        }
        Some(other) => {
            reader.error_at(
                w,
                "orchestrators",
                format!("`{other}`: expected \"embedded\", \"chain\" or a list of service URIs"),
                None,
            );
            return None;
        }
        None => {
            let uris = reader.strings(w, "orchestrators");
            let uris = reader.require(w, "orchestrators", "[\"https://127.0.0.1:8935\"]", uris)?;
            for (uri, span) in &uris {
                if !uri.starts_with("https://") {
                    reader.errors.error(
                        span.clone(),
                        &join(w.path(), "orchestrators"),
                        format!("`{uri}` is not an https:// service URI"),
                        None,
                    );
                }
            }
            OrchestratorList::Uris(uris.into_iter().map(|(u, _)| u).collect())
        }
    };
    Some(list)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse;

    const STACK: &str = r#"[target]
kind = "embedded"

[ladder]
profiles = ["P240p30fps16x9"]
"#;

    #[test]
    fn players_are_read_per_stream_workload_and_default_to_none() {
        let text = format!(
            "{STACK}
[workloads.watched]
executor = \"constant-streams\"
streams = 2
duration = \"30s\"
players = 3

[workloads.unwatched]
executor = \"soak\"
streams = 1
duration = \"30s\"
"
        );
        let scenario = parse(Path::new("players.toml"), &text).unwrap_or_else(|d| panic!("{d}"));
        let players: Vec<(&str, u32)> = scenario
            .workloads
            .iter()
            .map(|w| (w.name.as_str(), w.players))
            .collect();
        assert_eq!(players, [("watched", 3), ("unwatched", 0)]);
    }

    #[test]
    fn players_of_a_direct_workload_or_past_the_cap_are_refused_where_written() {
        let text = format!(
            "{STACK}
[workloads.direct]
executor = \"direct-orchestrator\"
orchestrators = \"embedded\"
duration = \"30s\"
players = 1

[workloads.crowd]
executor = \"constant-streams\"
streams = 1
duration = \"30s\"
players = 101
"
        );
        let Err(diagnostics) = parse(Path::new("players.toml"), &text) else {
            panic!("accepted:\n{text}");
        };
        let errors: Vec<String> = diagnostics.0.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(
            errors[0].starts_with("players.toml:11:11: `workloads.direct.players`: players watch a workload's streams; `direct-orchestrator` publishes none"),
            "{errors:#?}"
        );
        assert!(
            errors[1].starts_with(
                "players.toml:17:11: `workloads.crowd.players`: 101 is out of range 0..=100"
            ),
            "{errors:#?}"
        );
    }
}
