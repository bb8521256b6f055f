//! A plain-language account of what a scenario would run (`lpt validate`): one paragraph, then
//! the chaos timeline, if any, one line per event in the order they start.

use std::time::Duration;

use super::model::*;
use crate::duration::format_duration;

pub fn describe(scenario: &Scenario) -> String {
    let mut parts = Vec::new();
    let title = match &scenario.description {
        Some(d) => format!(
            "Scenario `{}` ({}): {}",
            scenario.name,
            scenario.path.display(),
            d.trim()
        ),
        None => format!(
            "Scenario `{}` ({}).",
            scenario.name,
            scenario.path.display()
        ),
    };
    parts.push(ensure_period(title));

    // A run of AI requests alone uses neither the target, nor the source, nor the ladder.
    let only_ai = scenario
        .workloads
        .iter()
        .all(|w| matches!(w.executor, Executor::Ai(_)));
    if !only_ai {
        describe_video(scenario, &mut parts);
    }
    for w in &scenario.workloads {
        let start = if w.start_after.is_zero() {
            String::new()
        } else {
            format!(" after {}", format_duration(w.start_after))
        };
        let what = match &w.executor {
            Executor::ConstantStreams { streams, duration } => {
                format!(
                    "{streams} stream{} for {}",
                    plural(*streams),
                    format_duration(*duration)
                )
            }
            Executor::Soak { streams, duration } => {
                format!(
                    "a soak of {streams} stream{} for {}",
                    plural(*streams),
                    format_duration(*duration)
                )
            }
            Executor::RampingStreams {
                start_streams,
                stages,
            } => {
                let steps: Vec<String> = stages
                    .iter()
                    .map(|s| format!("{} over {}", s.target, format_duration(s.duration)))
                    .collect();
                format!(
                    "streams ramping from {start_streams} to {}",
                    steps.join(", then ")
                )
            }
            Executor::Capacity(search) => format!(
                "a capacity search from {} streams adding {} every {} up to {}, until `{}` breaks",
                search.start_streams,
                search.step,
                format_duration(search.step_duration),
                search.max_streams,
                search.until
            ),
            Executor::DirectOrchestrator {
                orchestrators,
                price_cap_wei_per_pixel,
                duration,
                region,
                ..
            } => {
                let who = match orchestrators {
                    OrchestratorList::Embedded => "every embedded orchestrator".to_owned(),
                    OrchestratorList::Uris(uris) => {
                        format!("{} orchestrator{}", uris.len(), plural(uris.len() as u32))
                    }
                    OrchestratorList::Chain { rpc, .. } => {
                        format!("orchestrators registered on {rpc}")
                    }
                };
                let cap = price_cap_wei_per_pixel
                    .map(|c| format!(", price cap {c} wei/pixel"))
                    .unwrap_or_default();
                format!(
                    "direct tests of {who} for {} each from region {region}{cap}",
                    format_duration(*duration)
                )
            }
            Executor::Ai(ai) => describe_ai(ai, &scenario.ai_worker),
        };
        let players = match w.players {
            0 => String::new(),
            n => format!(
                ", each watched by {n} browser player{} (hls.js in headless Chromium)",
                plural(n)
            ),
        };
        parts.push(format!(
            "Workload `{}` ({}){start}: {what}{players}.",
            w.name,
            w.executor.name()
        ));
    }

    let q = &scenario.quality;
    if q.enabled {
        let sampling = match q.sampling {
            Sampling::Auto => "a sample of segments sized to this machine".to_owned(),
            Sampling::Fraction(f) => format!("{:.0}% of segments", f * 100.0),
        };
        parts.push(format!(
            "Quality: VMAF ({}) and PSNR on {sampling}{}.",
            q.model,
            if q.reference {
                ", beside the reference transcoder's rendition"
            } else {
                ""
            }
        ));
    }
    if scenario.payments.enabled {
        parts.push("Payments: tickets, redemptions and fees are reconciled on chain.".into());
    }
    let thresholds: Vec<String> = scenario
        .thresholds
        .iter()
        .map(|t| {
            format!(
                "{} {}{}",
                t.selector_text,
                t.expression.text,
                if t.abort_on_fail { " (aborts)" } else { "" }
            )
        })
        .collect();
    parts.push(if thresholds.is_empty() {
        "No thresholds: the run passes whenever it completes.".into()
    } else {
        format!(
            "Thresholds ({}): {}.",
            thresholds.len(),
            thresholds.join("; ")
        )
    });
    let mut text = parts.join(" ");
    if let Some(timeline) = describe_chaos(&scenario.chaos) {
        text.push('\n');
        text.push_str(&timeline);
    }
    text
}

/// What a chaos action does, in the words of `lpt validate` and of the loader's messages.
pub(super) fn chaos_action(action: &ChaosAction) -> String {
    match action {
        ChaosAction::Kill { node } => format!("kill {node} (down until the end)"),
        ChaosAction::Restart { node, down_for } if down_for.is_zero() => {
            format!("restart {node} (started again at once)")
        }
        ChaosAction::Restart { node, down_for } => {
            format!("restart {node} (down {})", format_duration(*down_for))
        }
        ChaosAction::ChainOutage { duration } => {
            format!("chain outage for {}", format_duration(*duration))
        }
        ChaosAction::ChainReorg { depth } => {
            format!("chain reorg of depth {depth} after the next redemption")
        }
        ChaosAction::DiskFull { node, duration } => {
            format!("fill {node}'s disk for {}", format_duration(*duration))
        }
        ChaosAction::Network {
            node,
            impairment,
            duration,
        } => format!(
            "{} on the path between the broadcaster and {node} for {}",
            impairment_text(impairment),
            format_duration(*duration)
        ),
    }
}

/// What an impairment does, e.g. `2% loss, 4 Mbit/s`.
pub fn impairment_text(impairment: &Impairment) -> String {
    if impairment.partition {
        return "a partition (every packet dropped)".into();
    }
    let mut parts = Vec::new();
    if impairment.loss_ppm > 0 {
        parts.push(format!(
            "{}% loss",
            f64::from(impairment.loss_ppm) / 10_000.0
        ));
    }
    if !impairment.delay.is_zero() {
        let mut delay = format!("{} delay", format_duration(impairment.delay));
        if !impairment.jitter.is_zero() {
            delay += &format!(" ± {}", format_duration(impairment.jitter));
        }
        parts.push(delay);
    }
    if let Some(bps) = impairment.bandwidth_bps {
        parts.push(format!("{} Mbit/s", bps as f64 / 1e6));
    }
    parts.join(", ")
}

/// The timeline: one line per `[[chaos]]` entry with its occurrences, by first occurrence.
fn describe_chaos(chaos: &[ChaosEvent]) -> Option<String> {
    if chaos.is_empty() {
        return None;
    }
    let mut events: Vec<&ChaosEvent> = chaos.iter().collect();
    events.sort_by_key(|e| (e.at, e.line));
    let mut lines = vec![format!(
        "Chaos, from the run's start ({} event{}):",
        chaos.len(),
        plural(chaos.len() as u32)
    )];
    for event in events {
        lines.push(format!(
            "  at {}: {}",
            occurrence_times(event),
            chaos_action(&event.action)
        ));
    }
    Some(lines.join("\n"))
}

/// `30s`; `1m, 2m, 3m`; past a handful, the first three and the last: a soak's event every minute
/// would otherwise fill the screen.
fn occurrence_times(event: &ChaosEvent) -> String {
    const LISTED: usize = 5;
    let times = event.occurrences();
    let text = |at: &Duration| format_duration(*at);
    match (times.last(), event.every) {
        (Some(last), Some(every)) if times.len() > LISTED => {
            let first: Vec<String> = times[..3].iter().map(text).collect();
            format!(
                "{}, … {} ({} times, every {})",
                first.join(", "),
                text(last),
                times.len(),
                format_duration(every)
            )
        }
        _ => times.iter().map(text).collect::<Vec<_>>().join(", "),
    }
}

fn describe_faults(faults: &Faults) -> String {
    let switches = &faults.switches;
    let mut what = Vec::new();
    if switches.drop_fraction > 0.0 {
        what.push(format!(
            "drops {:.0}% of segments",
            switches.drop_fraction * 100.0
        ));
    }
    if switches.delay_ms > 0 {
        what.push(format!(
            "delays each segment by {}",
            format_duration(Duration::from_millis(switches.delay_ms))
        ));
    }
    if switches.corrupt_renditions {
        what.push("corrupts every rendition".into());
    }
    if switches.degrade_quality {
        what.push("encodes at a twentieth of the profile bitrate".into());
    }
    if switches.wrong_resolution {
        what.push("encodes at the wrong resolution".into());
    }
    if switches.overcharge_factor != FaultConfig::default().overcharge_factor {
        what.push(format!(
            "bills {}× the pixels it produced",
            switches.overcharge_factor
        ));
    }
    if switches.stop_redeeming {
        what.push("never redeems its tickets".into());
    }
    if let Some(n) = switches.crash_after_segments {
        what.push(format!("crashes after {n} segments"));
    }
    let who = if faults.orchestrators.is_empty() {
        "Every orchestrator".to_owned()
    } else {
        let list: Vec<String> = faults.orchestrators.iter().map(u32::to_string).collect();
        format!("Orchestrator {}", list.join(", "))
    };
    if what.is_empty() {
        String::new()
    } else {
        format!(" Fault injected: {who} {}.", what.join(", "))
    }
}

/// The pool terms and the transcoders' fault switches, when the scenario sets any.
fn describe_pool(stack: &EmbeddedTarget) -> String {
    let mut out = String::new();
    if let Some(pool) = &stack.pool {
        let checked = match (pool.check_fraction, pool.trust_after) {
            (f, _) if f >= 1.0 => "every answer".to_owned(),
            (f, 0) => format!("{:.0}% of the answers", f * 100.0),
            (f, n) => format!("the first {n} answers of each, then {:.0}%", f * 100.0),
        };
        out += &format!(
            " Each orchestrator checks {checked} of its transcoders against the source (a transcoder is dropped after {} refused), and pays them by the pixels it counts, less {:.0}% commission and {} wei per payout.",
            pool.drop_after_failures,
            pool.commission * 100.0,
            pool.payout_tx_cost_wei
        );
    }
    for ((o, t), faults) in &stack.transcoder_faults {
        let mut what = Vec::new();
        if faults.degrade_quality {
            what.push("encodes at a twentieth of the profile bitrate".to_owned());
        }
        if faults.wrong_stream {
            what.push("answers with its previous segment's renditions".to_owned());
        }
        if faults.inflate_pixels != 1.0 {
            what.push(format!("reports {}× its pixels", faults.inflate_pixels));
        }
        if let Some(ratio) = faults.realtime_ratio {
            what.push(format!("runs at {ratio}× real time"));
        }
        if let Some(n) = faults.disconnect_after {
            what.push(format!("disconnects mid-segment after every {n} answers"));
        }
        if !what.is_empty() {
            out += &format!(
                " Fault injected: {} {}.",
                StackNode::Transcoder(*o, *t),
                what.join(", ")
            );
        }
    }
    out
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn ensure_period(mut s: String) -> String {
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

/// What an `ai` workload asks, of whom, and how hard.
fn describe_ai(ai: &AiWorkload, worker: &node_ai_worker::AiWorkerConfig) -> String {
    let load = match &ai.load {
        AiLoadSpec::Rate {
            per_second,
            duration,
        } => format!("{per_second} requests/s for {}", format_duration(*duration)),
        AiLoadSpec::Sweep {
            levels,
            step_duration,
        } => format!(
            "concurrency {} for {} each",
            levels
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            format_duration(*step_duration)
        ),
        AiLoadSpec::Live {
            duration,
            target_fps,
        } => format!(
            "a stamped source streamed for {}, {target_fps} fps asked back",
            format_duration(*duration)
        ),
    };
    let whom = match &ai.gateway {
        Some(url) => format!("gateway {url}"),
        None => {
            let faults = node_ai_worker::describe_faults(&worker.faults);
            let faults = if faults.is_empty() {
                String::new()
            } else {
                format!("; its faults: {}", faults.join(", "))
            };
            format!(
                "the run's local AI worker (capacity {}{faults})",
                worker.capacity
            )
        }
    };
    if let AiLoadSpec::Live { .. } = &ai.load {
        let whom = if ai.gateway.is_none() {
            whom.replace(
                "(capacity",
                &format!("(live output {} fps, capacity", worker.live.output_fps),
            )
        } else {
            whom
        };
        return format!(
            "a `{}` job with `{}` on {whom}: {load}, its frame rate, latency and stalls measured",
            ai.pipeline.name(),
            ai.model,
        );
    }
    let determinism = if ai.check_determinism {
        ", each seed sent twice and the pixels compared"
    } else {
        ""
    };
    format!(
        "{} `{}` requests to {whom}, {load}, outputs validated{determinism}",
        ai.pipeline.name(),
        ai.model
    )
}

/// The stack or target, the source and the ladder: what the video workloads use.
fn describe_video(scenario: &Scenario, parts: &mut Vec<String>) {
    parts.push(match &scenario.target {

        Target::Embedded(stack) => format!(
            "It starts the embedded stack: {} orchestrator{} with {} transcoder{} each and a broadcaster{}.",
            stack.orchestrators,
            plural(stack.orchestrators),
            stack.transcoders_per_orchestrator,
            plural(stack.transcoders_per_orchestrator),
            if stack.offline {
                ", off-chain (price 0, no tickets)".to_owned()
            } else {
                let price = if stack.prices.is_empty() {
                    stack.price_per_unit.to_string()
                } else {
                    format!("{:?}", stack.prices)
                };
                format!(", paying {price} wei per {} pixel{} with tickets on a local anvil chain", stack.pixels_per_unit, plural(stack.pixels_per_unit as u32))
            }
        ) + &stack.faults.as_ref().map(describe_faults).unwrap_or_default()
            + &describe_pool(stack),
        Target::Direct { payment: None } => {
            "It starts no stack: the tester acts as a broadcaster itself, sending unpaid segments (off-chain orchestrators).".to_owned()
        }
        Target::Direct {
            payment: Some(payment),
        } => format!(
            "It starts no stack: the tester acts as a broadcaster itself, paying with tickets from its own deposit at TicketBroker {} on {} (key from {}).",
            payment.ticket_broker,
            payment.chain_rpc,
            match &payment.key {
                KeySource::Env(var) => format!("${var}"),
                KeySource::File(path) => path.display().to_string(),
            }
        ),
        Target::External {
            rtmp_url,
            playback_url,
            chain_rpc,
            ..
        } => format!(
            "It targets an external stack: publishing to {rtmp_url}, playing back {playback_url}{}.",
            chain_rpc.as_ref().map(|r| format!(", chain at {r}")).unwrap_or_default()
        ),
    });

    parts.push(match &scenario.source {
        Source::Synthetic(synthetic) => format!(
            "The source is a synthetic stamped {}×{} {} fps clip of {} with {} GOPs, encoded once and looped.",
            synthetic.width,
            synthetic.height,
            synthetic.fps,
            format_duration(synthetic.clip),
            format_duration(synthetic.gop)
        ),
        Source::File { path, gop } => format!(
            "The source is {}, stamped and re-encoded with {} GOPs.",
            path.display(),
            format_duration(*gop)
        ),
    });

    let ladder: Vec<String> = scenario
        .ladder
        .iter()
        .map(|p| {
            format!(
                "{} ({}×{}, {} kbps)",
                p.name,
                p.width,
                p.height,
                p.bitrate / 1000
            )
        })
        .collect();
    parts.push(format!("Ladder: {}.", ladder.join(", ")));
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse;
    use super::*;

    const SCENARIO: &str = r#"name = "chaos"

[target]
kind = "embedded"
orchestrators = 2

[ladder]
profiles = ["P240p30fps16x9"]

[workloads.main]
executor = "soak"
streams = 1
duration = "2h"
"#;

    fn timeline(chaos: &str) -> Vec<String> {
        let scenario = parse(Path::new("chaos.toml"), &format!("{SCENARIO}{chaos}")).unwrap();
        describe(&scenario)
            .lines()
            .skip(1)
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn the_chaos_timeline_has_a_line_per_event_in_the_order_they_start() {
        let lines = timeline(
            r#"
[[chaos]]
at = "1m30s"
kind = "restart"
target = "transcoder-0-0"
down_for = "5s"
every = "1m"
times = 3

[[chaos]]
at = "1m"
kind = "chain_outage"
duration = "10s"

[[chaos]]
at = "30s"
kind = "kill"
target = "orchestrator-0"

[[chaos]]
at = "45s"
kind = "chain_reorg"
depth = 3

[[chaos]]
at = "10m"
kind = "restart"
target = "broadcaster"
every = "1m"
times = 100
"#,
        );
        assert_eq!(
            lines,
            vec![
                "Chaos, from the run's start (5 events):",
                "  at 30s: kill orchestrator-0 (down until the end)",
                "  at 45s: chain reorg of depth 3 after the next redemption",
                "  at 1m: chain outage for 10s",
                "  at 1m30s, 2m30s, 3m30s: restart transcoder-0-0 (down 5s)",
                "  at 10m, 11m, 12m, … 1h49m (100 times, every 1m): restart broadcaster (started again at once)",
            ]
        );
    }

    #[test]
    fn a_scenario_without_chaos_is_described_in_one_paragraph() {
        assert_eq!(timeline(""), Vec::<String>::new());
    }
}
