//! `[[chaos]]`: what a run does to its embedded stack, and when, so the cost of a real failure
//! (recovery time, lost segments, lost payments) is measured rather than guessed.
//!
//! ```toml
//! [[chaos]]
//! at = "30s"                  # from the run's start
//! kind = "restart"            # kill | restart | chain_outage | chain_reorg | disk_full | network
//! target = "transcoder-0-0"   # kill/restart: broadcaster, orchestrator-N, transcoder-O-T, chain
//! down_for = "5s"             # restart only (default "0s": started again at once)
//! every = "60s"               # optional repeat period, with `times` (at least 2)
//! times = 3
//! ```
//!
//! `chain_outage` takes `duration`, `chain_reorg` takes `depth` (1..=64), `disk_full` a `target`
//! that keeps data on disk (the broadcaster's segment files, an orchestrator's ticket journal)
//! and a `duration`. `network` impairs the path between the broadcaster and its `target`, an
//! `orchestrator-N`, both ways for a `duration`, with at least one of:
//!
//! ```toml
//! partition = true    # every packet dropped; takes none of the keys below
//! loss = 0.02         # fraction of packets dropped at random: more than 0, at most 1
//! delay = "80ms"      # added one-way delay
//! jitter = "20ms"     # spread of `delay` (needs it, at most it)
//! bandwidth = "4mbit" # the path's rate: a number with kbit, mbit or gbit (1 kbit = 1000 bit/s)
//! ```
//!
//! Each entry is read under its `kind`, so the keys a kind takes are the keys it knows. The checks
//! after that need the whole file, and the engine that runs the timeline relies on them: the stack
//! has the node, every occurrence is over before the run is, and a node takes one event at a time.
//! So the engine never meets a node it cannot find, an event after the run, or two events fighting
//! over one node.

use std::collections::BTreeSet;
use std::time::Duration;

use super::super::describe::chaos_action;
use super::super::model::*;
use super::super::reader::{Reader, Table};
use super::sub_table;
use crate::duration::format_duration;

const KINDS: &[&str] = &[
    "kill",
    "restart",
    "chain_outage",
    "chain_reorg",
    "disk_full",
    "network",
];

/// The most occurrences one entry may have: enough for an event a minute over a week-long soak.
const MAX_TIMES: i64 = 10_080;

/// The deepest reorg a scenario may ask for: Ethereum finalises blocks after two epochs (64
/// slots), so a healthy chain never reorganises deeper.
const MAX_REORG_DEPTH: i64 = 64;

/// An entry read without errors, with the table it came from so later checks point back at it.
struct Entry<'a> {
    table: Table<'a>,
    event: ChaosEvent,
}

/// Every `[[chaos]]` entry of `root`, checked against the `target` stack and the run's length,
/// which the `workloads` set.
pub(super) fn read(
    reader: &mut Reader<'_>,
    root: &Table<'_>,
    target: Option<&Target>,
    workloads: &[Workload],
) -> Vec<ChaosEvent> {
    let Some(tables) = reader.tables(root, "chaos") else {
        return Vec::new();
    };
    let mut entries = Vec::new();
    for (index, table) in tables.into_iter().enumerate() {
        let c = sub_table(table, root, index, "chaos");
        if let Some(target) = target {
            check_target_is_embedded(reader, &c, target);
        }
        let line = reader.errors.line(c.span.clone());
        if let Some(event) = read_entry(reader, &c, line) {
            entries.push(Entry { table: c, event });
        }
    }
    if let Some(Target::Embedded(stack)) = target {
        for entry in &entries {
            check_node_exists(reader, entry, stack);
        }
    }
    if let Some(end) = RunEnd::of(workloads) {
        for entry in &entries {
            check_within_run(reader, entry, &end);
        }
    }
    check_overlaps(reader, &entries);
    entries.into_iter().map(|e| e.event).collect()
}

fn read_entry(reader: &mut Reader<'_>, c: &Table<'_>, line: usize) -> Option<ChaosEvent> {
    let kind = read_kind(reader, c)?;
    reader.strict(c, |reader| {
        let at = reader.duration(c, "at");
        let at = reader.require(c, "at", "\"30s\"", at);
        let action = match kind {
            "kill" => read_kill(reader, c),
            "restart" => {
                let node = read_node(reader, c);
                let down_for = reader.duration(c, "down_for").unwrap_or(Duration::ZERO);
                node.map(|node| ChaosAction::Restart { node, down_for })
            }
            "chain_outage" => {
                read_duration(reader, c).map(|duration| ChaosAction::ChainOutage { duration })
            }
            "disk_full" => {
                let node = read_disk_owner(reader, c);
                let duration = read_duration(reader, c);
                node.zip(duration)
                    .map(|(node, duration)| ChaosAction::DiskFull { node, duration })
            }
            "network" => read_network(reader, c),
            _ => {
                let depth = reader.integer(c, "depth", 1, MAX_REORG_DEPTH);
                let depth = reader.require(c, "depth", "3", depth);
                depth.map(|depth| ChaosAction::ChainReorg {
                    depth: depth as u64,
                })
            }
        };
        let (mut every, mut times) = read_repeat(reader, c, kind);
        let action = action?;
        if let Some(period) = every
            && !period_outlasts_event(reader, c, period, &action)
        {
            (every, times) = ONCE;
        }
        Some(ChaosEvent {
            at: at?,
            every,
            times,
            action,
            line,
        })
    })
}

/// `kind`, one of `KINDS`.
fn read_kind(reader: &mut Reader<'_>, c: &Table<'_>) -> Option<&'static str> {
    let kind = reader.choice(c, "kind", KINDS);
    reader.require(c, "kind", "\"restart\"", kind)
}

/// `kill`: any node but the chain, which the run needs to the end.
fn read_kill(reader: &mut Reader<'_>, c: &Table<'_>) -> Option<ChaosAction> {
    let node = read_node(reader, c)?;
    if node == StackNode::Chain {
        reader.error_at(
            c,
            "target",
            "`kill` of the chain is refused: the run cannot settle its payments without it (tickets are redeemed on it and reconciled from it)",
            Some("use `kind = \"restart\"` (anvil comes back with its state) or `kind = \"chain_outage\"`".into()),
        );
        return None;
    }
    Some(ChaosAction::Kill { node })
}

/// `duration`, required and longer than 0s.
fn read_duration(reader: &mut Reader<'_>, c: &Table<'_>) -> Option<Duration> {
    let duration = reader.duration(c, "duration");
    let duration = reader.require(c, "duration", "\"10s\"", duration);
    duration.filter(|d| !refuse_zero(reader, c, "duration", *d))
}

/// `disk_full`: a node that keeps data on disk, the broadcaster (its segment files) or an
/// orchestrator (its ticket journal).
fn read_disk_owner(reader: &mut Reader<'_>, c: &Table<'_>) -> Option<StackNode> {
    let node = read_node(reader, c)?;
    let why = match node {
        StackNode::Broadcaster | StackNode::Orchestrator(_) => return Some(node),
        StackNode::Transcoder(..) => {
            "a transcoder keeps nothing on disk (segments pass through its memory)"
        }
        StackNode::Chain => "anvil keeps the chain in memory",
    };
    reader.error_at(
        c,
        "target",
        format!("`disk_full` of {node} is refused: {why}"),
        Some("fill the disk of `broadcaster` or of an `orchestrator-N`".into()),
    );
    None
}

/// `network`: an orchestrator (the path between it and the broadcaster), a `duration`, and what
/// happens to the packets on that path.
fn read_network(reader: &mut Reader<'_>, c: &Table<'_>) -> Option<ChaosAction> {
    let node = read_network_end(reader, c);
    let duration = read_duration(reader, c);
    let impairment = read_impairment(reader, c);
    Some(ChaosAction::Network {
        node: node?,
        impairment: impairment?,
        duration: duration?,
    })
}

/// The orchestrator at the far end of a `network` path: lpt impairs the path segments and
/// results travel, and no other.
fn read_network_end(reader: &mut Reader<'_>, c: &Table<'_>) -> Option<StackNode> {
    let node = read_node(reader, c)?;
    if let StackNode::Orchestrator(_) = node {
        return Some(node);
    }
    reader.error_at(
        c,
        "target",
        format!(
            "`network` between the broadcaster and {node} is refused: lpt impairs the path segments and results travel, between the broadcaster and an orchestrator"
        ),
        Some("target an `orchestrator-N`".into()),
    );
    None
}

/// `partition`, `loss`, `delay`, `jitter` and `bandwidth`: a partition alone, or at least one of
/// the others.
fn read_impairment(reader: &mut Reader<'_>, c: &Table<'_>) -> Option<Impairment> {
    let partition = reader.boolean(c, "partition");
    let loss_ppm = read_loss(reader, c);
    let delay = reader.duration(c, "delay");
    let delay = delay.filter(|d| !refuse_zero(reader, c, "delay", *d));
    let jitter = reader.duration(c, "jitter");
    let bandwidth_bps = read_bandwidth(reader, c);
    let read = [
        ("partition", partition.is_some()),
        ("loss", loss_ppm.is_some()),
        ("delay", delay.is_some()),
        ("jitter", jitter.is_some()),
        ("bandwidth", bandwidth_bps.is_some()),
    ];
    let given: Vec<&str> = read
        .iter()
        .map(|(key, _)| *key)
        .filter(|key| reader.item(c, key).is_some())
        .collect();
    // A key given and not read has its error recorded already.
    let mut ok = read.iter().all(|(key, read)| *read || !given.contains(key));
    let unreadable_partition = given.contains(&"partition") && partition.is_none();
    let partition = partition == Some(true);
    if partition {
        ok &= partition_alone(reader, c, &given);
    } else if given.contains(&"jitter") {
        ok &= jitter_within_delay(reader, c, jitter, delay, given.contains(&"delay"));
    }
    let shapes = ["loss", "delay", "bandwidth"];
    if !partition && !unreadable_partition && !shapes.iter().any(|key| given.contains(key)) {
        reader.error_at(
            c,
            "kind",
            "`network` needs `partition = true` or at least one of `loss`, `delay` and `bandwidth`: without them the path is left as it is",
            Some("add e.g. `loss = 0.02`".into()),
        );
        ok = false;
    }
    ok.then(|| Impairment {
        partition,
        loss_ppm: loss_ppm.unwrap_or(0),
        delay: delay.unwrap_or_default(),
        jitter: jitter.unwrap_or_default(),
        bandwidth_bps,
    })
}

/// A partition drops every packet, so the keys that shape the packets it lets through have no
/// place beside it; false (after recording which are there) when some are.
fn partition_alone(reader: &mut Reader<'_>, c: &Table<'_>, given: &[&str]) -> bool {
    let others: Vec<String> = given
        .iter()
        .filter(|key| **key != "partition")
        .map(|key| format!("`{key}`"))
        .collect();
    let (keys, mean) = match others.as_slice() {
        [] => return true,
        [one] => (one.clone(), "means"),
        [init @ .., last] => (format!("{} and {last}", init.join(", ")), "mean"),
    };
    reader.error_at(
        c,
        "partition",
        format!("a partition drops every packet: {keys} {mean} nothing with it"),
        Some(format!(
            "remove {keys}, or `partition` to impair the path without cutting it"
        )),
    );
    false
}

/// `jitter` spreads `delay`, so it needs one at least as long; false (after recording why) when
/// it has none, or a shorter one.
fn jitter_within_delay(
    reader: &mut Reader<'_>,
    c: &Table<'_>,
    jitter: Option<Duration>,
    delay: Option<Duration>,
    delay_given: bool,
) -> bool {
    if !delay_given {
        reader.error_at(
            c,
            "jitter",
            "`jitter` needs `delay`: it spreads the added delay, and there is none",
            Some("add e.g. `delay = \"80ms\"`".into()),
        );
        return false;
    }
    let (Some(jitter), Some(delay)) = (jitter, delay) else {
        // The bad one has its error already.
        return true;
    };
    if jitter <= delay {
        return true;
    }
    reader.error_at(
        c,
        "jitter",
        format!(
            "`jitter` ({}) is longer than `delay` ({}): a packet is delayed by `delay` give or take `jitter`, and cannot be delayed by less than nothing",
            format_duration(jitter),
            format_duration(delay)
        ),
        Some("at most `delay`: a shorter `jitter` or a longer `delay`".into()),
    );
    false
}

/// `loss`, the fraction of packets dropped (more than 0, at most 1), in parts per million: at
/// least 1, so a loss given is never none.
fn read_loss(reader: &mut Reader<'_>, c: &Table<'_>) -> Option<u32> {
    let item = reader.item(c, "loss")?;
    let loss = match (item.as_float(), item.as_integer()) {
        (Some(f), _) => f,
        (_, Some(n)) => n as f64,
        _ => {
            // Records that it should have been a number.
            let _ = reader.number(c, "loss", 0.0, 1.0);
            return None;
        }
    };
    if loss > 0.0 && loss <= 1.0 {
        return Some(((loss * 1e6).round() as u32).max(1));
    }
    reader.error_at(
        c,
        "loss",
        format!("{loss} is out of range: `loss` is the fraction of packets dropped, more than 0 and at most 1"),
        Some("e.g. `loss = 0.02` for 2 %".into()),
    );
    None
}

/// The lowest `bandwidth`, in bits per second: 1000 bytes a second.
const MIN_BANDWIDTH_BPS: u64 = 8_000;

/// `bandwidth`, in bits per second.
fn read_bandwidth(reader: &mut Reader<'_>, c: &Table<'_>) -> Option<u64> {
    let text = reader.string(c, "bandwidth")?;
    let problem = match parse_rate(&text) {
        Some(bps) if bps >= MIN_BANDWIDTH_BPS => return Some(bps),
        Some(_) => format!("`{text}` is below the lowest rate, 8kbit"),
        None => format!("`{text}` is not a rate"),
    };
    reader.error_at(
        c,
        "bandwidth",
        problem,
        Some("a number with `kbit`, `mbit` or `gbit` (1 kbit = 1000 bit/s), at least 8kbit, e.g. \"4mbit\" or \"1.5mbit\"".into()),
    );
    None
}

/// Bits per second of `text`: a decimal number (`4`, `1.5`) and `kbit`, `mbit` or `gbit` in any
/// case, with 1 kbit = 1000 bit/s.
fn parse_rate(text: &str) -> Option<u64> {
    let text = text.to_ascii_lowercase();
    let (number, scale) = [("kbit", 1e3), ("mbit", 1e6), ("gbit", 1e9)]
        .into_iter()
        .find_map(|(unit, scale)| Some((text.strip_suffix(unit)?, scale)))?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, "0"));
    let digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        return None;
    }
    let number: f64 = number.parse().ok()?;
    Some((number * scale).round() as u64)
}

fn read_node(reader: &mut Reader<'_>, c: &Table<'_>) -> Option<StackNode> {
    let name = reader.string(c, "target");
    let name = reader.require(c, "target", "\"orchestrator-0\"", name)?;
    match name.parse() {
        Ok(node) => Some(node),
        Err(()) => {
            reader.error_at(
                c,
                "target",
                format!("`{name}` is not a node name"),
                Some(
                    "name one as `broadcaster`, `orchestrator-N`, `transcoder-O-T` or `chain`"
                        .into(),
                ),
            );
            None
        }
    }
}

/// A single occurrence: what `every` and `times` mean when absent, and when wrong, since the first
/// occurrence is there whatever the repeat says and the later checks can still judge it.
const ONCE: (Option<Duration>, u32) = (None, 1);

/// `every` and `times` (`ONCE` after an error).
fn read_repeat(reader: &mut Reader<'_>, c: &Table<'_>, kind: &str) -> (Option<Duration>, u32) {
    let has_every = reader.item(c, "every").is_some();
    let has_times = reader.item(c, "times").is_some();
    if !has_every {
        if has_times {
            reader.error_at(
                c,
                "times",
                "`times` needs `every`: without a period the event happens once",
                Some("add e.g. `every = \"60s\"`".into()),
            );
        }
        return ONCE;
    }
    if kind == "kill" {
        reader.error_at(
            c,
            "every",
            "a `kill` cannot repeat: the killed node stays down until the end of the run",
            Some("use `kind = \"restart\"` with `down_for`".into()),
        );
        return ONCE;
    }
    let every = reader.duration(c, "every");
    let times = reader.integer(c, "times", 2, MAX_TIMES);
    let times = reader.require(c, "times", "3", times);
    let every = every.filter(|d| !refuse_zero(reader, c, "every", *d));
    match (every, times) {
        (Some(every), Some(times)) => (Some(every), times as u32),
        _ => ONCE,
    }
}

/// Records an error when `duration` at `key` is zero; true when it did.
fn refuse_zero(reader: &mut Reader<'_>, c: &Table<'_>, key: &str, duration: Duration) -> bool {
    if !duration.is_zero() {
        return false;
    }
    reader.error_at(c, key, format!("`{key}` must be longer than 0s"), None);
    true
}

/// A repeated event must be over before it comes again, or it would overlap itself; false (after
/// recording why) when it is not.
fn period_outlasts_event(
    reader: &mut Reader<'_>,
    c: &Table<'_>,
    every: Duration,
    action: &ChaosAction,
) -> bool {
    let lasts = action.duration();
    if every >= lasts {
        return true;
    }
    reader.error_at(
        c,
        "every",
        format!(
            "`every` ({}) is shorter than each occurrence lasts ({}): they would overlap",
            format_duration(every),
            format_duration(lasts)
        ),
        None,
    );
    false
}

fn check_target_is_embedded(reader: &mut Reader<'_>, c: &Table<'_>, target: &Target) {
    let kind = match target {
        Target::Embedded(_) => return,
        Target::Direct { .. } => "direct",
        Target::External { .. } => "external",
    };
    reader.errors.error(
        c.span.clone(),
        c.path(),
        format!(
            "chaos needs `target.kind = \"embedded\"`: lpt only kills, restarts or cuts off the nodes it starts itself, and this scenario's target is `{kind}`"
        ),
        None,
    );
}

/// The node an entry acts on is one the embedded `stack` starts.
fn check_node_exists(reader: &mut Reader<'_>, entry: &Entry<'_>, stack: &EmbeddedTarget) {
    let (key, problem) = match &entry.event.action {
        ChaosAction::DiskFull {
            node: StackNode::Orchestrator(_),
            ..
        } if stack.offline => (
            "target",
            Some("an off-chain orchestrator keeps nothing on disk: its data directory holds its ticket journal, and this stack is off-chain (`target.offline = true`)".into()),
        ),
        ChaosAction::Kill { node }
        | ChaosAction::Restart { node, .. }
        | ChaosAction::DiskFull { node, .. }
        | ChaosAction::Network { node, .. } => ("target", missing_node(*node, stack)),
        ChaosAction::ChainOutage { .. } | ChaosAction::ChainReorg { .. } => (
            "kind",
            stack.offline.then(|| {
                format!(
                    "`{}` needs a chain: this stack is off-chain (`target.offline = true`)",
                    entry.event.action.kind()
                )
            }),
        ),
    };
    if let Some(problem) = problem {
        reader.error_at(&entry.table, key, problem, None);
    }
}

/// Why `stack` has no `node`, or `None` when it has it.
fn missing_node(node: StackNode, stack: &EmbeddedTarget) -> Option<String> {
    let orchestrators = stack.orchestrators;
    let per = stack.transcoders_per_orchestrator;
    match node {
        StackNode::Broadcaster => None,
        StackNode::Chain if stack.offline => {
            Some("no chain: this stack is off-chain (`target.offline = true`)".into())
        }
        StackNode::Chain => None,
        StackNode::Orchestrator(i) if i >= orchestrators => Some(format!(
            "no {node}: this stack has {}",
            node_range(
                StackNode::Orchestrator(0),
                StackNode::Orchestrator(orchestrators - 1),
                orchestrators
            )
        )),
        StackNode::Orchestrator(_) => None,
        StackNode::Transcoder(..) if per == 0 => Some(format!(
            "no {node}: this stack has no transcoder nodes (`transcoders_per_orchestrator = 0`: each orchestrator transcodes itself)"
        )),
        StackNode::Transcoder(o, t) if o >= orchestrators || t >= per => Some(format!(
            "no {node}: this stack has {} ({per} per orchestrator)",
            node_range(
                StackNode::Transcoder(0, 0),
                StackNode::Transcoder(orchestrators - 1, per - 1),
                orchestrators * per
            )
        )),
        StackNode::Transcoder(..) => None,
    }
}

/// `a`, `a and b`, or `a … z` for `count` nodes from `first` to `last`.
fn node_range(first: StackNode, last: StackNode, count: u32) -> String {
    match count {
        1 => first.to_string(),
        2 => format!("{first} and {last}"),
        _ => format!("{first} … {last}"),
    }
}

/// When the run ends: the latest end of its workloads.
struct RunEnd<'w> {
    at: Duration,
    workload: &'w str,
}

impl<'w> RunEnd<'w> {
    fn of(workloads: &'w [Workload]) -> Option<Self> {
        workloads
            .iter()
            .filter_map(|w| {
                let at = w.start_after.checked_add(w.executor.max_duration())?;
                Some(RunEnd {
                    at,
                    workload: &w.name,
                })
            })
            .max_by_key(|end| end.at)
    }
}

/// Every occurrence of `entry` starts before the run ends and is over by then.
fn check_within_run(reader: &mut Reader<'_>, entry: &Entry<'_>, end: &RunEnd<'_>) {
    let event = &entry.event;
    let lasts = event.action.duration();
    let late = event.occurrences().into_iter().enumerate().find(|(_, at)| {
        if lasts.is_zero() {
            *at >= end.at
        } else {
            at.checked_add(lasts).is_none_or(|over| over > end.at)
        }
    });
    let Some((index, at)) = late else {
        return;
    };
    let what = chaos_action(&event.action);
    let run_end = format!(
        "the run's end at {} (when workload `{}` ends)",
        format_duration(end.at),
        end.workload
    );
    let message = if lasts.is_zero() {
        format!(
            "the occurrence at {} of {what} is not before {run_end}",
            format_duration(at)
        )
    } else {
        format!(
            "the occurrence at {} of {what} ends at {}, after {run_end}",
            format_duration(at),
            format_duration(at + lasts)
        )
    };
    let (key, hint) = if index == 0 {
        ("at", None)
    } else {
        (
            "times",
            Some(format!(
                "it is occurrence {} of {}: fewer `times` or a shorter `every`",
                index + 1,
                event.times
            )),
        )
    };
    reader.error_at(&entry.table, key, message, hint);
}

/// One occurrence as a stretch of time on its node. An instant event holds its node for an
/// instant: `(at, 0)..(at, 1)` in (time, tie) order, so two at the same time overlap while one at
/// the very end of an outage does not.
struct Hold {
    node: StackNode,
    from: (Duration, u8),
    until: (Duration, u8),
    entry: usize,
    at: Duration,
}

/// Two events on one node at once: named by both entries' lines, once per pair of entries.
fn check_overlaps(reader: &mut Reader<'_>, entries: &[Entry<'_>]) {
    let mut holds: Vec<Hold> = entries
        .iter()
        .enumerate()
        .flat_map(|(entry, e)| holds(entry, &e.event))
        .collect();
    holds.sort_by_key(|h| (node_order(h.node), h.from, h.entry));
    let mut reported = BTreeSet::new();
    // Sorted by start, an occurrence overlaps an earlier one on its node exactly when it starts
    // before the latest end so far there.
    let mut latest: Option<&Hold> = None;
    for hold in &holds {
        if let Some(held) = latest.filter(|held| held.node == hold.node) {
            let pair = (held.entry.min(hold.entry), held.entry.max(hold.entry));
            if hold.from < held.until && held.entry != hold.entry && reported.insert(pair) {
                report_overlap(reader, entries, held, hold);
            }
            if hold.until <= held.until {
                continue;
            }
        }
        latest = Some(hold);
    }
}

/// An order that groups the occurrences of each node together.
fn node_order(node: StackNode) -> (u8, u32, u32) {
    match node {
        StackNode::Broadcaster => (0, 0, 0),
        StackNode::Orchestrator(i) => (1, i, 0),
        StackNode::Transcoder(o, t) => (2, o, t),
        StackNode::Chain => (3, 0, 0),
    }
}

fn holds(entry: usize, event: &ChaosEvent) -> Vec<Hold> {
    let node = event.action.node();
    let lasts = event.action.duration();
    event
        .occurrences()
        .into_iter()
        .map(|at| {
            let until = match &event.action {
                ChaosAction::Kill { .. } => (Duration::MAX, 0),
                _ if lasts.is_zero() => (at, 1),
                _ => (at.saturating_add(lasts), 0),
            };
            Hold {
                node,
                from: (at, 0),
                until,
                entry,
                at,
            }
        })
        .collect()
}

fn report_overlap(reader: &mut Reader<'_>, entries: &[Entry<'_>], held: &Hold, hold: &Hold) {
    let (first, second) = (&entries[held.entry], &entries[hold.entry]);
    let message = format!(
        "overlaps the entry at line {} on {}: {} at {} (line {}) begins before {} at {} (line {}) is over; a node takes one event at a time",
        first.event.line,
        hold.node,
        chaos_action(&second.event.action),
        format_duration(hold.at),
        second.event.line,
        chaos_action(&first.event.action),
        format_duration(held.at),
        first.event.line,
    );
    reader.error_at(&second.table, "at", message, None);
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::parse;
    use super::*;

    /// A stack of 3 orchestrators with 2 transcoders each, and a run of 5 minutes; the chaos
    /// entries appended to it start at line 13.
    const STACK: &str = r#"[target]
kind = "embedded"
orchestrators = 3
transcoders_per_orchestrator = 2

[ladder]
profiles = ["P240p30fps16x9"]

[workloads.main]
executor = "constant-streams"
streams = 1
duration = "5m"
"#;

    fn chaos(entries: &str) -> Vec<ChaosEvent> {
        let text = format!("{STACK}{entries}");
        match parse(Path::new("chaos.toml"), &text) {
            Ok(scenario) => scenario.chaos,
            Err(diagnostics) => panic!("{diagnostics}"),
        }
    }

    /// Each error as `lpt validate` prints it.
    fn errors_in(text: &str) -> Vec<String> {
        match parse(Path::new("chaos.toml"), text) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(diagnostics) => diagnostics.0.iter().map(ToString::to_string).collect(),
        }
    }

    fn errors(entries: &str) -> Vec<String> {
        errors_in(&format!("{STACK}{entries}"))
    }

    #[test]
    fn every_kind_is_read_with_its_values_and_line() {
        let events = chaos(
            r#"[[chaos]]
at = "30s"
kind = "kill"
target = "orchestrator-2"

[[chaos]]
at = "1m"
kind = "restart"
target = "transcoder-0-1"
down_for = "5s"
every = "1m"
times = 3

[[chaos]]
at = "45s"
kind = "chain_outage"
duration = "10s"

[[chaos]]
at = "2m"
kind = "chain_reorg"
depth = 3

[[chaos]]
at = "4m"
kind = "restart"
target = "chain"

[[chaos]]
at = "10s"
kind = "restart"
target = "broadcaster"
down_for = "2s"
"#,
        );
        let s = Duration::from_secs;
        assert_eq!(
            events,
            vec![
                ChaosEvent {
                    at: s(30),
                    every: None,
                    times: 1,
                    action: ChaosAction::Kill {
                        node: StackNode::Orchestrator(2)
                    },
                    line: 13,
                },
                ChaosEvent {
                    at: s(60),
                    every: Some(s(60)),
                    times: 3,
                    action: ChaosAction::Restart {
                        node: StackNode::Transcoder(0, 1),
                        down_for: s(5)
                    },
                    line: 18,
                },
                ChaosEvent {
                    at: s(45),
                    every: None,
                    times: 1,
                    action: ChaosAction::ChainOutage { duration: s(10) },
                    line: 26,
                },
                ChaosEvent {
                    at: s(120),
                    every: None,
                    times: 1,
                    action: ChaosAction::ChainReorg { depth: 3 },
                    line: 31,
                },
                ChaosEvent {
                    at: s(240),
                    every: None,
                    times: 1,
                    action: ChaosAction::Restart {
                        node: StackNode::Chain,
                        down_for: Duration::ZERO
                    },
                    line: 36,
                },
                ChaosEvent {
                    at: s(10),
                    every: None,
                    times: 1,
                    action: ChaosAction::Restart {
                        node: StackNode::Broadcaster,
                        down_for: s(2)
                    },
                    line: 41,
                },
            ]
        );
        assert_eq!(events[1].occurrences(), vec![s(60), s(120), s(180)]);
    }

    #[test]
    fn a_scenario_without_chaos_has_an_empty_timeline() {
        assert_eq!(chaos(""), Vec::new());
    }

    #[test]
    fn chaos_on_a_target_other_than_embedded_is_refused_per_entry() {
        let text = r#"[target]
kind = "external"
rtmp_url = "rtmp://127.0.0.1:1935/live/{stream}"
playback_url = "http://127.0.0.1:8935/stream/{stream}.m3u8"

[ladder]
profiles = ["P240p30fps16x9"]

[workloads.main]
executor = "constant-streams"
streams = 1
duration = "5m"

[[chaos]]
at = "30s"
kind = "kill"
target = "orchestrator-0"
"#;
        assert_eq!(
            errors_in(text),
            vec![
                "chaos.toml:14:1: `chaos[0]`: chaos needs `target.kind = \"embedded\"`: lpt only kills, restarts or cuts off the nodes it starts itself, and this scenario's target is `external`"
            ]
        );
    }

    #[test]
    fn a_node_the_stack_lacks_is_named_with_the_nodes_it_has() {
        assert_eq!(
            errors(
                r#"[[chaos]]
at = "30s"
kind = "kill"
target = "orchestrator-3"

[[chaos]]
at = "30s"
kind = "restart"
target = "transcoder-0-2"

[[chaos]]
at = "30s"
kind = "restart"
target = "transcoder-3-0"

[[chaos]]
at = "30s"
kind = "kill"
target = "orchestrator-O"
"#
            ),
            vec![
                "chaos.toml:16:10: `chaos[0].target`: no orchestrator-3: this stack has orchestrator-0 … orchestrator-2",
                "chaos.toml:21:10: `chaos[1].target`: no transcoder-0-2: this stack has transcoder-0-0 … transcoder-2-1 (2 per orchestrator)",
                "chaos.toml:26:10: `chaos[2].target`: no transcoder-3-0: this stack has transcoder-0-0 … transcoder-2-1 (2 per orchestrator)",
                "chaos.toml:31:10: `chaos[3].target`: `orchestrator-O` is not a node name (hint: name one as `broadcaster`, `orchestrator-N`, `transcoder-O-T` or `chain`)",
            ]
        );
    }

    #[test]
    fn small_stacks_name_their_nodes_and_say_when_they_have_no_transcoders() {
        let text = r#"[target]
kind = "embedded"
orchestrators = 2
transcoders_per_orchestrator = 0

[ladder]
profiles = ["P240p30fps16x9"]

[workloads.main]
executor = "constant-streams"
streams = 1
duration = "5m"

[[chaos]]
at = "30s"
kind = "kill"
target = "orchestrator-2"

[[chaos]]
at = "30s"
kind = "kill"
target = "transcoder-0-0"
"#;
        assert_eq!(
            errors_in(text),
            vec![
                "chaos.toml:17:10: `chaos[0].target`: no orchestrator-2: this stack has orchestrator-0 and orchestrator-1",
                "chaos.toml:22:10: `chaos[1].target`: no transcoder-0-0: this stack has no transcoder nodes (`transcoders_per_orchestrator = 0`: each orchestrator transcodes itself)",
            ]
        );
    }

    #[test]
    fn chain_events_need_an_on_chain_stack() {
        let text = r#"[target]
kind = "embedded"
orchestrators = 1
offline = true

[ladder]
profiles = ["P240p30fps16x9"]

[workloads.main]
executor = "constant-streams"
streams = 1
duration = "5m"

[[chaos]]
at = "30s"
kind = "chain_outage"
duration = "10s"

[[chaos]]
at = "1m"
kind = "chain_reorg"
depth = 2

[[chaos]]
at = "2m"
kind = "restart"
target = "chain"

[[chaos]]
at = "2m"
kind = "kill"
target = "orchestrator-1"
"#;
        assert_eq!(
            errors_in(text),
            vec![
                "chaos.toml:16:8: `chaos[0].kind`: `chain_outage` needs a chain: this stack is off-chain (`target.offline = true`)",
                "chaos.toml:21:8: `chaos[1].kind`: `chain_reorg` needs a chain: this stack is off-chain (`target.offline = true`)",
                "chaos.toml:27:10: `chaos[2].target`: no chain: this stack is off-chain (`target.offline = true`)",
                "chaos.toml:32:10: `chaos[3].target`: no orchestrator-1: this stack has orchestrator-0",
            ]
        );
    }

    #[test]
    fn killing_the_chain_is_refused_and_restarting_it_is_not() {
        assert_eq!(
            errors(
                r#"[[chaos]]
at = "30s"
kind = "kill"
target = "chain"
"#
            ),
            vec![
                "chaos.toml:16:10: `chaos[0].target`: `kill` of the chain is refused: the run cannot settle its payments without it (tickets are redeemed on it and reconciled from it) (hint: use `kind = \"restart\"` (anvil comes back with its state) or `kind = \"chain_outage\"`)"
            ]
        );
        let restarted = chaos(
            r#"[[chaos]]
at = "30s"
kind = "restart"
target = "chain"
down_for = "3s"
"#,
        );
        assert_eq!(
            restarted[0].action,
            ChaosAction::Restart {
                node: StackNode::Chain,
                down_for: Duration::from_secs(3)
            }
        );
    }

    #[test]
    fn an_occurrence_past_the_run_end_names_itself_and_the_end() {
        assert_eq!(
            errors(
                r#"[[chaos]]
at = "4m55s"
kind = "chain_outage"
duration = "10s"

[[chaos]]
at = "3m"
kind = "restart"
target = "orchestrator-0"
down_for = "5s"
every = "1m"
times = 3

[[chaos]]
at = "5m"
kind = "kill"
target = "broadcaster"
"#
            ),
            vec![
                "chaos.toml:14:6: `chaos[0].at`: the occurrence at 4m55s of chain outage for 10s ends at 5m5s, after the run's end at 5m (when workload `main` ends)",
                "chaos.toml:24:9: `chaos[1].times`: the occurrence at 5m of restart orchestrator-0 (down 5s) ends at 5m5s, after the run's end at 5m (when workload `main` ends) (hint: it is occurrence 3 of 3: fewer `times` or a shorter `every`)",
                "chaos.toml:27:6: `chaos[2].at`: the occurrence at 5m of kill broadcaster (down until the end) is not before the run's end at 5m (when workload `main` ends)",
            ]
        );
    }

    #[test]
    fn the_run_ends_with_its_latest_workload() {
        let text = format!(
            r#"{STACK}
[workloads.late]
executor = "constant-streams"
streams = 1
duration = "1m"
start_after = "6m"

[[chaos]]
at = "6m30s"
kind = "restart"
target = "orchestrator-0"
"#
        );
        let scenario = parse(Path::new("chaos.toml"), &text).unwrap();
        assert_eq!(scenario.chaos[0].at, Duration::from_secs(390));
    }

    #[test]
    fn overlapping_events_on_one_node_name_both_lines() {
        assert_eq!(
            errors(
                r#"[[chaos]]
at = "30s"
kind = "chain_outage"
duration = "20s"

[[chaos]]
at = "45s"
kind = "chain_outage"
duration = "10s"

[[chaos]]
at = "1m"
kind = "kill"
target = "transcoder-1-0"

[[chaos]]
at = "2m"
kind = "restart"
target = "transcoder-1-0"
every = "1m"
times = 2

[[chaos]]
at = "40s"
kind = "chain_reorg"
depth = 1
"#
            ),
            vec![
                "chaos.toml:19:6: `chaos[1].at`: overlaps the entry at line 13 on chain: chain outage for 10s at 45s (line 18) begins before chain outage for 20s at 30s (line 13) is over; a node takes one event at a time",
                "chaos.toml:29:6: `chaos[3].at`: overlaps the entry at line 23 on transcoder-1-0: restart transcoder-1-0 (started again at once) at 2m (line 28) begins before kill transcoder-1-0 (down until the end) at 1m (line 23) is over; a node takes one event at a time",
                "chaos.toml:36:6: `chaos[4].at`: overlaps the entry at line 13 on chain: chain reorg of depth 1 after the next redemption at 40s (line 35) begins before chain outage for 20s at 30s (line 13) is over; a node takes one event at a time",
            ]
        );
    }

    #[test]
    fn events_on_other_nodes_or_back_to_back_do_not_overlap() {
        let events = chaos(
            r#"[[chaos]]
at = "30s"
kind = "chain_outage"
duration = "20s"

[[chaos]]
at = "50s"
kind = "chain_reorg"
depth = 2

[[chaos]]
at = "30s"
kind = "kill"
target = "orchestrator-0"

[[chaos]]
at = "30s"
kind = "restart"
target = "transcoder-0-0"
down_for = "10s"
every = "10s"
times = 5
"#,
        );
        assert_eq!(events.len(), 4);
    }

    #[test]
    fn two_instant_events_at_the_same_time_on_one_node_overlap() {
        assert_eq!(
            errors(
                r#"[[chaos]]
at = "1m"
kind = "restart"
target = "broadcaster"

[[chaos]]
at = "1m"
kind = "restart"
target = "broadcaster"
"#
            ),
            vec![
                "chaos.toml:19:6: `chaos[1].at`: overlaps the entry at line 13 on broadcaster: restart broadcaster (started again at once) at 1m (line 18) begins before restart broadcaster (started again at once) at 1m (line 13) is over; a node takes one event at a time"
            ]
        );
    }

    #[test]
    fn network_needs_an_orchestrator_and_disk_full_needs_a_disk() {
        assert_eq!(
            errors(
                r#"[[chaos]]
at = "30s"
kind = "network"
target = "broadcaster"
duration = "10s"
loss = 0.1

[[chaos]]
at = "30s"
kind = "disk_full"
target = "transcoder-0-1"
duration = "10s"

[[chaos]]
at = "1m"
kind = "disk_full"
target = "chain"
duration = "10s"

[[chaos]]
at = "2m"
kind = "disk_full"
target = "broadcaster"

[[chaos]]
at = "30s"
kind = "partition"
"#
            ),
            vec![
                "chaos.toml:16:10: `chaos[0].target`: `network` between the broadcaster and broadcaster is refused: lpt impairs the path segments and results travel, between the broadcaster and an orchestrator (hint: target an `orchestrator-N`)",
                "chaos.toml:23:10: `chaos[1].target`: `disk_full` of transcoder-0-1 is refused: a transcoder keeps nothing on disk (segments pass through its memory) (hint: fill the disk of `broadcaster` or of an `orchestrator-N`)",
                "chaos.toml:29:10: `chaos[2].target`: `disk_full` of chain is refused: anvil keeps the chain in memory (hint: fill the disk of `broadcaster` or of an `orchestrator-N`)",
                "chaos.toml:32:1: `chaos[3].duration`: missing required key `duration` in [chaos[3]] (hint: add e.g. `duration = \"10s\"`)",
                "chaos.toml:39:8: `chaos[4].kind`: `partition` is not a valid value (hint: one of: kill, restart, chain_outage, chain_reorg, disk_full, network)",
            ]
        );
    }

    #[test]
    fn disk_full_is_read_and_an_off_chain_orchestrator_has_no_disk_to_fill() {
        let events = chaos(
            r#"[[chaos]]
at = "20s"
kind = "disk_full"
target = "broadcaster"
duration = "10s"

[[chaos]]
at = "40s"
kind = "disk_full"
target = "orchestrator-1"
duration = "15s"
every = "1m"
times = 2
"#,
        );
        let s = Duration::from_secs;
        assert_eq!(
            events,
            vec![
                ChaosEvent {
                    at: s(20),
                    every: None,
                    times: 1,
                    action: ChaosAction::DiskFull {
                        node: StackNode::Broadcaster,
                        duration: s(10),
                    },
                    line: 13,
                },
                ChaosEvent {
                    at: s(40),
                    every: Some(s(60)),
                    times: 2,
                    action: ChaosAction::DiskFull {
                        node: StackNode::Orchestrator(1),
                        duration: s(15),
                    },
                    line: 19,
                },
            ]
        );
        assert_eq!(events[1].label(s(100)), "disk_full:orchestrator-1@1m40s");
        let offline = STACK.replace("orchestrators = 3\n", "orchestrators = 3\noffline = true\n");
        assert_eq!(
            errors_in(&format!(
                r#"{offline}[[chaos]]
at = "20s"
kind = "disk_full"
target = "orchestrator-0"
duration = "10s"
"#
            )),
            vec![
                "chaos.toml:17:10: `chaos[0].target`: an off-chain orchestrator keeps nothing on disk: its data directory holds its ticket journal, and this stack is off-chain (`target.offline = true`)",
            ]
        );
    }

    #[test]
    fn network_is_read_with_its_impairment_and_runs_off_chain() {
        let entries = r#"[[chaos]]
at = "20s"
kind = "network"
target = "orchestrator-1"
duration = "10s"
loss = 0.02
delay = "80ms"
jitter = "20ms"
bandwidth = "1.5Mbit"
every = "1m"
times = 3

[[chaos]]
at = "40s"
kind = "network"
target = "orchestrator-0"
duration = "5s"
partition = true

[[chaos]]
at = "1m"
kind = "network"
target = "orchestrator-2"
duration = "5s"
loss = 1
bandwidth = "8kbit"

[[chaos]]
at = "2m"
kind = "network"
target = "orchestrator-2"
duration = "5s"
loss = 0.0000001
delay = "1s"
jitter = "1s"
bandwidth = "2GBIT"
"#;
        let events = chaos(entries);
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(
            events[..2],
            [
                ChaosEvent {
                    at: s(20),
                    every: Some(s(60)),
                    times: 3,
                    action: ChaosAction::Network {
                        node: StackNode::Orchestrator(1),
                        impairment: Impairment {
                            partition: false,
                            loss_ppm: 20_000,
                            delay: ms(80),
                            jitter: ms(20),
                            bandwidth_bps: Some(1_500_000),
                        },
                        duration: s(10),
                    },
                    line: 13,
                },
                ChaosEvent {
                    at: s(40),
                    every: None,
                    times: 1,
                    action: ChaosAction::Network {
                        node: StackNode::Orchestrator(0),
                        impairment: Impairment {
                            partition: true,
                            ..Impairment::default()
                        },
                        duration: s(5),
                    },
                    line: 25,
                },
            ]
        );
        assert_eq!(events[0].label(s(20)), "network:orchestrator-1@20s");
        let impairment = |event: &ChaosEvent| match &event.action {
            ChaosAction::Network { impairment, .. } => impairment.clone(),
            other => panic!("not a network event: {other:?}"),
        };
        assert_eq!(
            impairment(&events[2]),
            Impairment {
                loss_ppm: 1_000_000,
                bandwidth_bps: Some(8_000),
                ..Impairment::default()
            }
        );
        assert_eq!(
            impairment(&events[3]),
            Impairment {
                loss_ppm: 1,
                delay: s(1),
                jitter: s(1),
                bandwidth_bps: Some(2_000_000_000),
                ..Impairment::default()
            }
        );
        let offline = STACK.replace("orchestrators = 3\n", "orchestrators = 3\noffline = true\n");
        let text = format!("{offline}{entries}");
        let actions =
            |events: Vec<ChaosEvent>| events.into_iter().map(|e| e.action).collect::<Vec<_>>();
        let scenario = parse(Path::new("chaos.toml"), &text).unwrap();
        assert_eq!(actions(scenario.chaos), actions(events));
    }

    #[test]
    fn network_needs_an_impairment_and_a_partition_takes_no_other() {
        assert_eq!(
            errors(
                r#"[[chaos]]
at = "30s"
kind = "network"
target = "transcoder-0-0"
duration = "10s"
loss = 0.1

[[chaos]]
at = "30s"
kind = "network"
target = "orchestrator-0"
duration = "10s"

[[chaos]]
at = "30s"
kind = "network"
target = "orchestrator-0"
duration = "10s"
partition = false
jitter = "10ms"

[[chaos]]
at = "30s"
kind = "network"
target = "orchestrator-0"
duration = "10s"
partition = true
loss = 0.5
delay = "10ms"
bandwidth = "1mbit"

[[chaos]]
at = "30s"
kind = "network"
target = "orchestrator-0"
duration = "10s"
partition = true
jitter = "0s"

[[chaos]]
at = "30s"
kind = "network"
target = "orchestrator-5"
duration = "10s"
partition = true

[[chaos]]
at = "30s"
kind = "network"
target = "orchestrator-0"
loss = 0.1

[[chaos]]
at = "30s"
kind = "network"
target = "orchestrator-0"
duration = "0s"
partition = true
from = "broadcaster"
"#
            ),
            vec![
                "chaos.toml:16:10: `chaos[0].target`: `network` between the broadcaster and transcoder-0-0 is refused: lpt impairs the path segments and results travel, between the broadcaster and an orchestrator (hint: target an `orchestrator-N`)",
                "chaos.toml:22:8: `chaos[1].kind`: `network` needs `partition = true` or at least one of `loss`, `delay` and `bandwidth`: without them the path is left as it is (hint: add e.g. `loss = 0.02`)",
                "chaos.toml:28:8: `chaos[2].kind`: `network` needs `partition = true` or at least one of `loss`, `delay` and `bandwidth`: without them the path is left as it is (hint: add e.g. `loss = 0.02`)",
                "chaos.toml:32:10: `chaos[2].jitter`: `jitter` needs `delay`: it spreads the added delay, and there is none (hint: add e.g. `delay = \"80ms\"`)",
                "chaos.toml:39:13: `chaos[3].partition`: a partition drops every packet: `loss`, `delay` and `bandwidth` mean nothing with it (hint: remove `loss`, `delay` and `bandwidth`, or `partition` to impair the path without cutting it)",
                "chaos.toml:49:13: `chaos[4].partition`: a partition drops every packet: `jitter` means nothing with it (hint: remove `jitter`, or `partition` to impair the path without cutting it)",
                "chaos.toml:55:10: `chaos[5].target`: no orchestrator-5: this stack has orchestrator-0 … orchestrator-2",
                "chaos.toml:59:1: `chaos[6].duration`: missing required key `duration` in [chaos[6]] (hint: add e.g. `duration = \"10s\"`)",
                "chaos.toml:69:12: `chaos[7].duration`: `duration` must be longer than 0s",
                "chaos.toml:71:1: `chaos[7].from`: unknown key `from` (hint: known keys here: kind, at, target, duration, partition, loss, delay, jitter, bandwidth, every, times)",
            ]
        );
    }

    #[test]
    fn network_loss_jitter_and_bandwidth_are_checked() {
        assert_eq!(
            errors(
                r#"[[chaos]]
at = "30s"
kind = "network"
target = "orchestrator-0"
duration = "10s"
loss = 0

[[chaos]]
at = "30s"
kind = "network"
target = "orchestrator-0"
duration = "10s"
loss = 2

[[chaos]]
at = "30s"
kind = "network"
target = "orchestrator-0"
duration = "10s"
loss = "2%"

[[chaos]]
at = "30s"
kind = "network"
target = "orchestrator-0"
duration = "10s"
delay = "20ms"
jitter = "30ms"

[[chaos]]
at = "30s"
kind = "network"
target = "orchestrator-0"
duration = "10s"
delay = "0s"
bandwidth = "4mb"

[[chaos]]
at = "30s"
kind = "network"
target = "orchestrator-0"
duration = "10s"
bandwidth = "7.9kbit"

[[chaos]]
at = "30s"
kind = "network"
target = "orchestrator-0"
duration = "10s"
bandwidth = 4000000

[[chaos]]
at = "30s"
kind = "network"
target = "orchestrator-0"
duration = "10s"
bandwidth = "1.mbit"
"#
            ),
            vec![
                "chaos.toml:18:8: `chaos[0].loss`: 0 is out of range: `loss` is the fraction of packets dropped, more than 0 and at most 1 (hint: e.g. `loss = 0.02` for 2 %)",
                "chaos.toml:25:8: `chaos[1].loss`: 2 is out of range: `loss` is the fraction of packets dropped, more than 0 and at most 1 (hint: e.g. `loss = 0.02` for 2 %)",
                "chaos.toml:32:8: `chaos[2].loss`: expected a number, found a string",
                "chaos.toml:40:10: `chaos[3].jitter`: `jitter` (30ms) is longer than `delay` (20ms): a packet is delayed by `delay` give or take `jitter`, and cannot be delayed by less than nothing (hint: at most `delay`: a shorter `jitter` or a longer `delay`)",
                "chaos.toml:47:9: `chaos[4].delay`: `delay` must be longer than 0s",
                "chaos.toml:48:13: `chaos[4].bandwidth`: `4mb` is not a rate (hint: a number with `kbit`, `mbit` or `gbit` (1 kbit = 1000 bit/s), at least 8kbit, e.g. \"4mbit\" or \"1.5mbit\")",
                "chaos.toml:55:13: `chaos[5].bandwidth`: `7.9kbit` is below the lowest rate, 8kbit (hint: a number with `kbit`, `mbit` or `gbit` (1 kbit = 1000 bit/s), at least 8kbit, e.g. \"4mbit\" or \"1.5mbit\")",
                "chaos.toml:62:13: `chaos[6].bandwidth`: expected a string, found an integer",
                "chaos.toml:69:13: `chaos[7].bandwidth`: `1.mbit` is not a rate (hint: a number with `kbit`, `mbit` or `gbit` (1 kbit = 1000 bit/s), at least 8kbit, e.g. \"4mbit\" or \"1.5mbit\")",
            ]
        );
    }

    #[test]
    fn every_and_times_go_together_and_a_kill_never_repeats() {
        assert_eq!(
            errors(
                r#"[[chaos]]
at = "30s"
kind = "restart"
target = "orchestrator-0"
times = 3

[[chaos]]
at = "30s"
kind = "restart"
target = "orchestrator-1"
every = "1m"

[[chaos]]
at = "30s"
kind = "restart"
target = "orchestrator-2"
every = "1m"
times = 1

[[chaos]]
at = "30s"
kind = "kill"
target = "orchestrator-3"
every = "1m"
times = 2

[[chaos]]
at = "30s"
kind = "restart"
target = "transcoder-0-0"
down_for = "1m"
every = "30s"
times = 2

[[chaos]]
at = "30s"
kind = "chain_reorg"
depth = 1
every = "0s"
times = 2
"#
            ),
            vec![
                "chaos.toml:17:9: `chaos[0].times`: `times` needs `every`: without a period the event happens once (hint: add e.g. `every = \"60s\"`)",
                "chaos.toml:19:1: `chaos[1].times`: missing required key `times` in [chaos[1]] (hint: add e.g. `times = 3`)",
                "chaos.toml:30:9: `chaos[2].times`: 1 is out of range 2..=10080",
                "chaos.toml:35:10: `chaos[3].target`: no orchestrator-3: this stack has orchestrator-0 … orchestrator-2",
                "chaos.toml:36:9: `chaos[3].every`: a `kill` cannot repeat: the killed node stays down until the end of the run (hint: use `kind = \"restart\"` with `down_for`)",
                "chaos.toml:44:9: `chaos[4].every`: `every` (30s) is shorter than each occurrence lasts (1m): they would overlap",
                "chaos.toml:51:9: `chaos[5].every`: `every` must be longer than 0s",
            ]
        );
    }

    #[test]
    fn required_keys_ranges_and_unknown_keys_are_reported_with_lines() {
        assert_eq!(
            errors(
                r#"[[chaos]]
kind = "chain_outage"

[[chaos]]
at = "30s"
kind = "chain_reorg"
depth = 65

[[chaos]]
at = "30s"
kind = "kill"
target = "orchestrator-0"
down_for = "5s"

[[chaos]]
at = 30
kind = "restart"
"#
            ),
            vec![
                "chaos.toml:13:1: `chaos[0].at`: missing required key `at` in [chaos[0]] (hint: add e.g. `at = \"30s\"`)",
                "chaos.toml:13:1: `chaos[0].duration`: missing required key `duration` in [chaos[0]] (hint: add e.g. `duration = \"10s\"`)",
                "chaos.toml:19:9: `chaos[1].depth`: 65 is out of range 1..=64",
                "chaos.toml:25:1: `chaos[2].down_for`: unknown key `down_for` (hint: known keys here: kind, at, target, every, times)",
                "chaos.toml:27:1: `chaos[3].target`: missing required key `target` in [chaos[3]] (hint: add e.g. `target = \"orchestrator-0\"`)",
                "chaos.toml:28:6: `chaos[3].at`: expected a duration string such as \"30s\", found an integer (hint: write it with a unit, e.g. \"30s\")",
            ]
        );
    }

    #[test]
    fn chaos_written_as_a_plain_table_is_refused() {
        assert_eq!(
            errors(
                r#"[chaos]
at = "30s"
"#
            ),
            vec!["chaos.toml:13:1: `chaos`: expected an array of tables, found a table"]
        );
    }
}
