//! Reads a scenario file into a [`Scenario`], reporting every problem at once.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::{Document, TableLike};

use super::diagnostics::{Collector, Diagnostics};
use super::model::*;
use super::reader::{Reader, Table, join};
use crate::hint::closest;
use crate::thresholds::Threshold;

/// Wei per `pixels_per_unit` pixels the embedded orchestrators ask when the scenario says nothing
/// (go-livepeer orchestrators on mainnet ask about a thousand wei per pixel).
pub const DEFAULT_PRICE_PER_UNIT: i64 = 1000;
/// The most streams one workload may run at once.
pub const MAX_STREAMS: i64 = 100_000;

const ROOT_KEYS: &[&str] = &[
    "name",
    "description",
    "target",
    "source",
    "ladder",
    "workloads",
    "quality",
    "payments",
    "thresholds",
];
const EXECUTORS: &[&str] = &[
    "constant-streams",
    "ramping-streams",
    "capacity",
    "direct-orchestrator",
    "soak",
];

/// Parses scenario `text`; `path` names the file in diagnostics.
pub fn parse(path: &Path, text: &str) -> Result<Scenario, Diagnostics> {
    let mut reader = Reader {
        errors: Collector::new(path, text),
    };
    let document = match Document::parse(text) {
        Ok(document) => document,
        Err(error) => {
            reader.errors.error(
                error.span(),
                "",
                format!("not valid TOML: {}", error.message()),
                None,
            );
            return Err(reader.errors.finish());
        }
    };
    let root = Table::new(document.as_table(), Some(0..0), String::new());
    reader.deny_unknown(&root, ROOT_KEYS);

    let name = reader.string(&root, "name").unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "scenario".into())
    });
    let description = reader.string(&root, "description");
    let target = section(&mut reader, &root, "target").and_then(|t| read_target(&mut reader, &t));
    if reader.item(&root, "target").is_none() {
        reader.require::<()>(&root, "target", "{ kind = \"embedded\" }", None);
    }
    let source = match section(&mut reader, &root, "source") {
        Some(t) => read_source(&mut reader, &t),
        None if reader.item(&root, "source").is_none() => Some(default_source()),
        None => None,
    };
    let ladder = section(&mut reader, &root, "ladder").and_then(|t| read_ladder(&mut reader, &t));
    if reader.item(&root, "ladder").is_none() {
        reader.require::<()>(&root, "ladder", "{ profiles = [\"P240p30fps16x9\"] }", None);
    }
    let quality = match section(&mut reader, &root, "quality") {
        Some(t) => read_quality(&mut reader, &t),
        None => Some(Quality {
            enabled: false,
            sampling: Sampling::Auto,
            model: "vmaf_v0.6.1".into(),
            reference: true,
            threads: 1,
            subsample: 1,
        }),
    };
    let payments = match section(&mut reader, &root, "payments") {
        Some(t) => read_payments(&mut reader, &t),
        None => Some(Payments {
            enabled: false,
            deposit_wei: DEFAULT_DEPOSIT_WEI,
            reserve_wei: DEFAULT_RESERVE_WEI,
        }),
    };
    let thresholds = match section(&mut reader, &root, "thresholds") {
        Some(t) => read_thresholds(&mut reader, &t, ladder.as_deref()),
        None => Vec::new(),
    };
    let threshold_names: BTreeSet<&str> = thresholds
        .iter()
        .map(|t| t.selector_text.as_str())
        .collect();
    let workloads = match section(&mut reader, &root, "workloads") {
        Some(t) => read_workloads(&mut reader, &t, &threshold_names, target.as_ref()),
        None => {
            reader.require::<()>(
                &root,
                "workloads",
                "{ main = { executor = \"constant-streams\", streams = 1, duration = \"30s\" } }",
                None,
            );
            Vec::new()
        }
    };

    if reader.errors.has_errors() {
        return Err(reader.errors.finish());
    }
    Ok(Scenario {
        name,
        description,
        path: path.to_owned(),
        text: text.to_owned(),
        target: target.expect("no errors means the target was read"),
        source: source.expect("no errors means the source was read"),
        ladder: ladder.expect("no errors means the ladder was read"),
        workloads,
        quality: quality.expect("no errors means quality was read"),
        payments: payments.expect("no errors means payments were read"),
        thresholds,
    })
}

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read scenario {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

/// Reads and parses a scenario file.
pub fn load(path: &Path) -> Result<Scenario, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text).map_err(LoadError::Invalid)
}

fn section<'a>(reader: &mut Reader<'_>, parent: &Table<'a>, key: &str) -> Option<Table<'a>> {
    let item = reader.item(parent, key)?;
    reader.as_table(item, &join(parent.path(), key))
}

fn sub_table<'a>(
    table: &'a dyn TableLike,
    parent: &Table<'_>,
    index: usize,
    key: &str,
) -> Table<'a> {
    let span = parent
        .table
        .get(key)
        .and_then(|i| i.as_array_of_tables())
        .and_then(|a| a.get(index))
        .and_then(|t| t.span())
        .or_else(|| {
            parent
                .table
                .get(key)
                .and_then(|i| i.as_array())
                .and_then(|a| a.get(index))
                .and_then(|v| v.span())
        });
    Table::new(
        table,
        span,
        format!("{}[{index}]", join(parent.path(), key)),
    )
}

fn read_target(reader: &mut Reader<'_>, t: &Table<'_>) -> Option<Target> {
    let kind = reader.choice(t, "kind", &["embedded", "external", "direct"]);
    let kind = reader.require(t, "kind", "\"embedded\"", kind)?;
    match kind {
        "embedded" => {
            reader.deny_unknown(
                t,
                &[
                    "kind",
                    "orchestrators",
                    "transcoders_per_orchestrator",
                    "offline",
                    "price_per_unit",
                    "pixels_per_unit",
                    "prices",
                    "faults",
                ],
            );
            let orchestrators = reader.integer(t, "orchestrators", 1, 64).unwrap_or(2) as u32;
            let prices = read_prices(reader, t, orchestrators);
            let faults =
                section(reader, t, "faults").map(|f| read_faults(reader, &f, orchestrators));
            Some(Target::Embedded {
                faults,
                prices,
                orchestrators,
                transcoders_per_orchestrator: reader
                    .integer(t, "transcoders_per_orchestrator", 0, 16)
                    .unwrap_or(1) as u32,
                offline: reader.boolean(t, "offline").unwrap_or(false),
                price_per_unit: reader
                    .integer(t, "price_per_unit", 0, i64::MAX)
                    .unwrap_or(DEFAULT_PRICE_PER_UNIT) as u64,
                pixels_per_unit: reader
                    .integer(t, "pixels_per_unit", 1, i64::MAX)
                    .unwrap_or(1) as u64,
            })
        }
        "direct" => {
            reader.deny_unknown(t, &["kind", "payment"]);
            let payment = section(reader, t, "payment").and_then(|p| read_payment(reader, &p));
            Some(Target::Direct { payment })
        }
        _ => {
            reader.deny_unknown(
                t,
                &[
                    "kind",
                    "rtmp_url",
                    "playback_url",
                    "chain_rpc",
                    "ticket_broker",
                ],
            );
            let rtmp_url = url_template(reader, t, "rtmp_url", &["rtmp://", "rtmps://"]);
            let rtmp_url = reader.require(
                t,
                "rtmp_url",
                "\"rtmp://127.0.0.1:1935/live/{stream}\"",
                rtmp_url,
            );
            let playback_url = url_template(reader, t, "playback_url", &["http://", "https://"]);
            let playback_url = reader.require(
                t,
                "playback_url",
                "\"http://127.0.0.1:8935/stream/{stream}.m3u8\"",
                playback_url,
            );
            let chain_rpc = reader.string(t, "chain_rpc");
            let ticket_broker = address(reader, t, "ticket_broker");
            if ticket_broker.is_some() && chain_rpc.is_none() {
                reader.error_at(
                    t,
                    "ticket_broker",
                    "`ticket_broker` needs `chain_rpc` to be read",
                    None,
                );
            }
            Some(Target::External {
                rtmp_url: rtmp_url?,
                playback_url: playback_url?,
                chain_rpc,
                ticket_broker,
            })
        }
    }
}

/// `[target.payment]` of a direct target: the chain, its TicketBroker, and where the key is.
fn read_payment(reader: &mut Reader<'_>, p: &Table<'_>) -> Option<DirectPayment> {
    reader.deny_unknown(p, &["chain_rpc", "ticket_broker", "key_env", "key_file"]);
    let chain_rpc = reader.string(p, "chain_rpc");
    if let Some(url) = &chain_rpc
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        reader.error_at(
            p,
            "chain_rpc",
            format!("`{url}` must start with http:// or https://"),
            None,
        );
    }
    let chain_rpc = reader.require(
        p,
        "chain_rpc",
        "\"https://arb1.arbitrum.io/rpc\"",
        chain_rpc,
    );
    let ticket_broker = address(reader, p, "ticket_broker");
    let ticket_broker = reader.require(
        p,
        "ticket_broker",
        "\"0xa8bB618B1520E284046F3dFc448851A1Ff26e41B\"",
        ticket_broker,
    );
    let key_env = reader.string(p, "key_env");
    let key_file = reader.string(p, "key_file");
    let key = match (key_env, key_file) {
        (Some(var), None) if !var.is_empty() => Some(KeySource::Env(var)),
        (None, Some(file)) if !file.is_empty() => Some(KeySource::File(file.into())),
        (Some(_), Some(_)) => {
            reader.error_at(
                p,
                "key_file",
                "give `key_env` or `key_file`, not both",
                None,
            );
            None
        }
        _ => {
            reader.error_at(
                p,
                "key_env",
                "the sender's key is read from `key_env = \"VAR\"` (an environment variable holding the hex key) or `key_file = \"path\"`; a scenario never holds the key itself",
                None,
            );
            None
        }
    };
    Some(DirectPayment {
        chain_rpc: chain_rpc?,
        ticket_broker: ticket_broker?,
        key: key?,
    })
}

/// `prices = [1000, 5000]`: one price per orchestrator, in index order.
fn read_prices(reader: &mut Reader<'_>, t: &Table<'_>, orchestrators: u32) -> Vec<u64> {
    let Some(values) = reader.array(t, "prices") else {
        return Vec::new();
    };
    let mut prices = Vec::new();
    for value in &values {
        match value.as_integer() {
            Some(price) if price >= 0 => prices.push(price as u64),
            _ => reader.errors.error(
                value.span(),
                &join(t.path(), "prices"),
                "expected a price in wei per pixels_per_unit (a non-negative integer)",
                None,
            ),
        }
    }
    if values.len() != orchestrators as usize
        && let Some(first) = values.first()
    {
        reader.errors.error(
            first.span(),
            &join(t.path(), "prices"),
            format!(
                "{} prices for {orchestrators} orchestrators: give one per orchestrator",
                values.len()
            ),
            None,
        );
    }
    prices
}

fn read_faults(reader: &mut Reader<'_>, f: &Table<'_>, orchestrators: u32) -> Faults {
    reader.deny_unknown(
        f,
        &[
            "orchestrators",
            "drop_segments",
            "delay",
            "corrupt_renditions",
            "degrade_quality",
            "wrong_resolution",
            "overcharge",
            "stop_redeeming",
            "crash_after_segments",
        ],
    );
    let mut which = Vec::new();
    if let Some(values) = reader.array(f, "orchestrators") {
        for value in values {
            match value.as_integer() {
                Some(i) if (0..i64::from(orchestrators)).contains(&i) => which.push(i as u32),
                _ => reader.errors.error(
                    value.span(),
                    &join(f.path(), "orchestrators"),
                    format!(
                        "expected an orchestrator index from 0 to {}",
                        orchestrators.saturating_sub(1)
                    ),
                    None,
                ),
            }
        }
    }
    Faults {
        orchestrators: which,
        drop_segments: reader.number(f, "drop_segments", 0.0, 1.0).unwrap_or(0.0),
        delay: reader.duration(f, "delay"),
        corrupt_renditions: reader.boolean(f, "corrupt_renditions").unwrap_or(false),
        degrade_quality: reader.boolean(f, "degrade_quality").unwrap_or(false),
        wrong_resolution: reader.boolean(f, "wrong_resolution").unwrap_or(false),
        overcharge: reader.number(f, "overcharge", 1.0, 1000.0),
        stop_redeeming: reader.boolean(f, "stop_redeeming").unwrap_or(false),
        crash_after_segments: reader
            .integer(f, "crash_after_segments", 0, i64::from(u32::MAX))
            .map(|n| n as u32),
    }
}

fn url_template(
    reader: &mut Reader<'_>,
    t: &Table<'_>,
    key: &str,
    schemes: &[&str],
) -> Option<String> {
    let url = reader.string(t, key)?;
    if !schemes.iter().any(|s| url.starts_with(s)) {
        reader.error_at(
            t,
            key,
            format!("`{url}` must start with {}", schemes.join(" or ")),
            None,
        );
        return None;
    }
    if !url.contains("{stream}") {
        reader.error_at(
            t,
            key,
            format!("`{url}` has no `{{stream}}` placeholder for the stream key"),
            None,
        );
        return None;
    }
    Some(url)
}

fn address(reader: &mut Reader<'_>, t: &Table<'_>, key: &str) -> Option<String> {
    let text = reader.string(t, key)?;
    let hex = text.strip_prefix("0x").unwrap_or("");
    if hex.len() != 40 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        reader.error_at(
            t,
            key,
            format!("`{text}` is not a 0x-prefixed 20-byte address"),
            None,
        );
        return None;
    }
    Some(text)
}

fn default_source() -> Source {
    Source::Synthetic {
        width: 1280,
        height: 720,
        fps: 30,
        gop: Duration::from_secs(2),
        clip: Duration::from_secs(10),
    }
}

fn read_source(reader: &mut Reader<'_>, t: &Table<'_>) -> Option<Source> {
    let kind = reader
        .choice(t, "kind", &["synthetic", "file"])
        .unwrap_or("synthetic");
    let gop = reader.duration(t, "gop").unwrap_or(Duration::from_secs(2));
    if !(Duration::from_millis(100)..=Duration::from_secs(20)).contains(&gop) {
        reader.error_at(t, "gop", "a GOP must be between 100ms and 20s", None);
    }
    if kind == "file" {
        reader.deny_unknown(t, &["kind", "path", "gop"]);
        let path = reader.string(t, "path");
        let path = reader.require(t, "path", "\"clip.mp4\"", path)?;
        return Some(Source::File {
            path: PathBuf::from(path),
            gop,
        });
    }
    reader.deny_unknown(t, &["kind", "width", "height", "fps", "gop", "clip"]);
    let width = reader.integer(t, "width", 64, 7680).unwrap_or(1280) as u32;
    let height = reader.integer(t, "height", 64, 4320).unwrap_or(720) as u32;
    if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        reader.error_at(
            t,
            "width",
            format!("{width}×{height}: width and height must be even (4:2:0 video)"),
            None,
        );
    }
    let clip = reader
        .duration(t, "clip")
        .unwrap_or(Duration::from_secs(10));
    if clip < gop {
        reader.error_at(
            t,
            "clip",
            "the looped clip must be at least one GOP long",
            None,
        );
    }
    Some(Source::Synthetic {
        width,
        height,
        fps: reader.integer(t, "fps", 1, 120).unwrap_or(30) as u32,
        gop,
        clip,
    })
}

fn read_ladder(reader: &mut Reader<'_>, t: &Table<'_>) -> Option<Vec<Profile>> {
    reader.deny_unknown(t, &["profiles", "custom"]);
    let mut ladder = Vec::new();
    for (name, span) in reader.strings(t, "profiles").unwrap_or_default() {
        match Profile::preset(&name) {
            Ok(profile) => ladder.push(profile),
            Err(_) => {
                let hint = closest(&name, Profile::preset_names())
                    .map(|h| format!("did you mean `{h}`?"))
                    .or_else(|| Some("define it under [[ladder.custom]]".into()));
                reader.errors.error(
                    span,
                    &join(t.path(), "profiles"),
                    format!("unknown preset `{name}`"),
                    hint,
                );
            }
        }
    }
    for (index, custom) in reader
        .tables(t, "custom")
        .unwrap_or_default()
        .into_iter()
        .enumerate()
    {
        let c = sub_table(custom, t, index, "custom");
        if let Some(profile) = read_custom_profile(reader, &c) {
            ladder.push(profile);
        }
    }
    if reader.item(t, "profiles").is_none() && reader.item(t, "custom").is_none() {
        reader.require::<()>(
            t,
            "profiles",
            "[\"P240p30fps16x9\", \"P360p30fps16x9\"]",
            None,
        );
    }
    let mut seen = BTreeSet::new();
    for profile in &ladder {
        if !seen.insert(profile.name.clone()) {
            reader.error_at(
                t,
                "profiles",
                format!("profile `{}` appears twice", profile.name),
                None,
            );
        }
    }
    Some(ladder)
}

fn read_custom_profile(reader: &mut Reader<'_>, c: &Table<'_>) -> Option<Profile> {
    reader.deny_unknown(
        c,
        &[
            "name", "width", "height", "bitrate", "fps", "fps_den", "gop", "profile",
        ],
    );
    let name = reader.string(c, "name");
    let width = reader.integer(c, "width", 16, 7680);
    let height = reader.integer(c, "height", 16, 4320);
    let bitrate = bitrate(reader, c, "bitrate");
    let name = reader.require(c, "name", "\"P480p30fps16x9\"", name);
    let width = reader.require(c, "width", "854", width);
    let height = reader.require(c, "height", "480", height);
    let bitrate = reader.require(c, "bitrate", "\"1500k\"", bitrate);
    let h264_profile = match reader.choice(
        c,
        "profile",
        &["default", "baseline", "main", "high", "constrained-high"],
    ) {
        Some("baseline") => H264Profile::Baseline,
        Some("main") => H264Profile::Main,
        Some("high") => H264Profile::High,
        Some("constrained-high") => H264Profile::ConstrainedHigh,
        _ => H264Profile::None,
    };
    Some(Profile {
        name: name?,
        width: width? as u32,
        height: height? as u32,
        bitrate: bitrate?,
        fps_num: reader.integer(c, "fps", 0, 240).unwrap_or(0) as u32,
        fps_den: reader.integer(c, "fps_den", 1, 1001).unwrap_or(1) as u32,
        gop: reader
            .duration(c, "gop")
            .map_or(Gop::Default, |d| Gop::Seconds(d.as_secs_f64())),
        h264_profile,
    })
}

/// `600000`, `"600k"`, `"1.5M"` → bits per second.
fn bitrate(reader: &mut Reader<'_>, t: &Table<'_>, key: &str) -> Option<u64> {
    let item = reader.item(t, key)?;
    if let Some(n) = item.as_integer()
        && n > 0
    {
        return Some(n as u64);
    }
    let parsed = item.as_str().and_then(|text| {
        let text = text.trim();
        let (number, scale) = match text.char_indices().last()? {
            (i, 'k' | 'K') => (&text[..i], 1e3),
            (i, 'm' | 'M') => (&text[..i], 1e6),
            _ => (text, 1.0),
        };
        number
            .trim()
            .parse::<f64>()
            .ok()
            .map(|n| (n * scale).round())
    });
    match parsed {
        Some(bps) if bps >= 1.0 => Some(bps as u64),
        _ => {
            reader.error_at(
                t,
                key,
                "expected a bitrate such as 600000, \"600k\" or \"1.5M\"",
                None,
            );
            None
        }
    }
}

fn read_quality(reader: &mut Reader<'_>, t: &Table<'_>) -> Option<Quality> {
    reader.deny_unknown(
        t,
        &[
            "enabled",
            "sample",
            "model",
            "reference",
            "threads",
            "subsample",
        ],
    );
    let sampling = match reader.item(t, "sample") {
        Some(item) if item.as_str() == Some("auto") => Sampling::Auto,
        Some(item) if item.as_str().is_some() => {
            reader.error_at(
                t,
                "sample",
                "expected \"auto\" or a fraction of segments in 0..=1",
                None,
            );
            Sampling::Auto
        }
        Some(_) => Sampling::Fraction(reader.number(t, "sample", 0.0, 1.0).unwrap_or(1.0)),
        None => Sampling::Auto,
    };
    Some(Quality {
        enabled: reader.boolean(t, "enabled").unwrap_or(true),
        sampling,
        model: reader
            .choice(t, "model", &["vmaf_v0.6.1", "vmaf_4k_v0.6.1"])
            .unwrap_or("vmaf_v0.6.1")
            .to_owned(),
        reference: reader.boolean(t, "reference").unwrap_or(true),
        threads: reader.integer(t, "threads", 1, 256).unwrap_or(1) as u32,
        subsample: reader.integer(t, "subsample", 1, 1000).unwrap_or(1) as u32,
    })
}

pub(crate) const DEFAULT_DEPOSIT_WEI: u128 = 1_000_000_000_000_000_000;
pub(crate) const DEFAULT_RESERVE_WEI: u128 = 1_000_000_000_000_000_000;

fn read_payments(reader: &mut Reader<'_>, t: &Table<'_>) -> Option<Payments> {
    reader.deny_unknown(t, &["enabled", "deposit", "reserve"]);
    Some(Payments {
        enabled: reader.boolean(t, "enabled").unwrap_or(true),
        deposit_wei: amount(reader, t, "deposit").unwrap_or(DEFAULT_DEPOSIT_WEI),
        reserve_wei: amount(reader, t, "reserve").unwrap_or(DEFAULT_RESERVE_WEI),
    })
}

/// `"1 ETH"`, `"2.5 gwei"`, `"1000 wei"` or an integer number of wei.
fn amount(reader: &mut Reader<'_>, t: &Table<'_>, key: &str) -> Option<u128> {
    let item = reader.item(t, key)?;
    if let Some(n) = item.as_integer()
        && n >= 0
    {
        return Some(n as u128);
    }
    let parsed = item.as_str().and_then(|text| {
        let (number, unit) = text.trim().split_once(' ').unwrap_or((text.trim(), "wei"));
        let scale = match unit.trim().to_ascii_lowercase().as_str() {
            "eth" | "ether" => 1e18,
            "gwei" => 1e9,
            "wei" => 1.0,
            _ => return None,
        };
        let value = number.parse::<f64>().ok()? * scale;
        (0.0..1e38)
            .contains(&value)
            .then_some(value.round() as u128)
    });
    if parsed.is_none() {
        reader.error_at(
            t,
            key,
            "expected an amount such as \"1 ETH\", \"500 gwei\" or a number of wei",
            None,
        );
    }
    parsed
}

fn read_thresholds(
    reader: &mut Reader<'_>,
    t: &Table<'_>,
    ladder: Option<&[Profile]>,
) -> Vec<Threshold> {
    let mut thresholds = Vec::new();
    for (selector, item) in t.table.iter() {
        let path = join(t.path(), selector);
        let key_span = t.table.key(selector).and_then(|k| k.span());
        let entries: Vec<&toml_edit::Value> = match item.as_array() {
            Some(array) => array.iter().collect(),
            None => match item.as_value() {
                Some(value) => vec![value],
                None => {
                    reader.errors.error(
                        key_span,
                        &path,
                        "expected a list of threshold expressions",
                        None,
                    );
                    continue;
                }
            },
        };
        for (index, entry) in entries.into_iter().enumerate() {
            let entry_path = format!("{path}[{index}]");
            let (expression, abort_on_fail, delay) = if let Some(text) = entry.as_str() {
                (text.to_owned(), false, Duration::ZERO)
            } else if let Some(inline) = entry.as_inline_table() {
                let table = Table::new(inline, entry.span(), entry_path.clone());
                reader.deny_unknown(&table, &["threshold", "abort_on_fail", "delay_abort_eval"]);
                let text = reader.string(&table, "threshold");
                let Some(text) = reader.require(&table, "threshold", "\"p(95) < 4s\"", text) else {
                    continue;
                };
                (
                    text,
                    reader.boolean(&table, "abort_on_fail").unwrap_or(false),
                    reader
                        .duration(&table, "delay_abort_eval")
                        .unwrap_or(Duration::ZERO),
                )
            } else {
                reader.errors.error(
                    entry.span(),
                    &entry_path,
                    "expected an expression string or { threshold = \"...\", abort_on_fail = true }",
                    None,
                );
                continue;
            };
            match Threshold::parse(selector, &expression, abort_on_fail, delay) {
                Ok(threshold) => {
                    check_rendition_tag(reader, &threshold, ladder, key_span.clone(), &path);
                    thresholds.push(threshold);
                }
                Err(error) => {
                    // Selector problems belong to the key, expression problems to the value.
                    let span = if crate::thresholds::parse_selector(selector).is_err() {
                        key_span.clone()
                    } else {
                        entry.span()
                    };
                    reader.errors.error(span, &entry_path, error.message, None);
                }
            }
        }
    }
    thresholds
}

/// A rendition selector that names no profile of the ladder can never see data.
fn check_rendition_tag(
    reader: &mut Reader<'_>,
    threshold: &Threshold,
    ladder: Option<&[Profile]>,
    span: Option<std::ops::Range<usize>>,
    path: &str,
) {
    let (Some(rendition), Some(ladder)) = (threshold.selector.tags.get("rendition"), ladder) else {
        return;
    };
    if ladder.iter().any(|p| &p.name == rendition) || rendition == "source" {
        return;
    }
    let hint = closest(rendition, ladder.iter().map(|p| p.name.as_str()))
        .map(|h| format!("did you mean `{h}`?"))
        .or_else(|| {
            Some(format!(
                "the ladder has {}",
                ladder
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        });
    reader.errors.error(
        span,
        path,
        format!(
            "rendition `{rendition}` is not in the ladder, so this threshold could never see data"
        ),
        hint,
    );
}

fn read_workloads(
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
        if executor != "direct-orchestrator" && matches!(target, Some(Target::Direct { .. })) {
            reader.error_at(
                &w,
                "executor",
                format!("`{executor}` publishes streams, which needs a stack: target.kind = \"direct\" has none"),
                Some("use target.kind = \"embedded\" or \"external\"".into()),
            );
        }
        let executor = match executor {
            "constant-streams" | "soak" => {
                reader.deny_unknown(&w, &["executor", "start_after", "streams", "duration"]);
                let streams = reader.integer(&w, "streams", 1, MAX_STREAMS);
                let duration = reader.duration(&w, "duration");
                let streams = reader.require(&w, "streams", "2", streams);
                let duration = reader.require(&w, "duration", "\"30s\"", duration);
                let (Some(streams), Some(duration)) = (streams, duration) else {
                    continue;
                };
                let streams = streams as u32;
                if executor == "soak" {
                    Executor::Soak { streams, duration }
                } else {
                    Executor::ConstantStreams { streams, duration }
                }
            }
            "ramping-streams" => {
                reader.deny_unknown(&w, &["executor", "start_after", "start_streams", "stages"]);
                let start_streams = reader
                    .integer(&w, "start_streams", 0, MAX_STREAMS)
                    .unwrap_or(0) as u32;
                let mut stages = Vec::new();
                let tables = reader.tables(&w, "stages");
                let tables = reader.require(
                    &w,
                    "stages",
                    "[{ duration = \"30s\", target = 10 }]",
                    tables,
                );
                for (index, stage) in tables.unwrap_or_default().into_iter().enumerate() {
                    let s = sub_table(stage, &w, index, "stages");
                    reader.deny_unknown(&s, &["duration", "target"]);
                    let duration = reader.duration(&s, "duration");
                    let target = reader.integer(&s, "target", 0, MAX_STREAMS);
                    let duration = reader.require(&s, "duration", "\"30s\"", duration);
                    let target = reader.require(&s, "target", "10", target);
                    if let (Some(duration), Some(target)) = (duration, target) {
                        stages.push(Stage {
                            duration,
                            target: target as u32,
                        });
                    }
                }
                Executor::RampingStreams {
                    start_streams,
                    stages,
                }
            }
            "capacity" => {
                reader.deny_unknown(
                    &w,
                    &[
                        "executor",
                        "start_after",
                        "start_streams",
                        "step",
                        "step_duration",
                        "max_streams",
                        "until",
                    ],
                );
                let until = reader.string(&w, "until");
                let until = reader.require(&w, "until", "\"segment_success\"", until);
                if let Some(until) = &until
                    && !threshold_names.contains(until.as_str())
                {
                    let hint = closest(until, threshold_names.iter().copied())
                        .map(|h| format!("did you mean `{h}`?"))
                        .or_else(|| Some("add it under [thresholds]".into()));
                    reader.error_at(
                        &w,
                        "until",
                        format!("`{until}` names no threshold of this scenario"),
                        hint,
                    );
                }
                let start_streams = reader
                    .integer(&w, "start_streams", 1, MAX_STREAMS)
                    .unwrap_or(1) as u32;
                let max_streams = reader
                    .integer(&w, "max_streams", 1, MAX_STREAMS)
                    .unwrap_or(64) as u32;
                if max_streams < start_streams {
                    reader.error_at(
                        &w,
                        "max_streams",
                        "`max_streams` is below `start_streams`",
                        None,
                    );
                }
                Executor::Capacity {
                    start_streams,
                    step: reader.integer(&w, "step", 1, 10_000).unwrap_or(1) as u32,
                    step_duration: reader
                        .duration(&w, "step_duration")
                        .unwrap_or(Duration::from_secs(30)),
                    max_streams,
                    until: until.unwrap_or_default(),
                }
            }
            _ => {
                reader.deny_unknown(
                    &w,
                    &[
                        "executor",
                        "start_after",
                        "orchestrators",
                        "service_registry",
                        "chain_rpc",
                        "price_cap",
                        "duration",
                        "region",
                        "concurrency",
                    ],
                );
                let orchestrators = read_orchestrator_list(reader, &w, target);
                let duration = reader.duration(&w, "duration");
                let duration = reader.require(&w, "duration", "\"30s\"", duration);
                let (Some(orchestrators), Some(duration)) = (orchestrators, duration) else {
                    continue;
                };
                Executor::DirectOrchestrator {
                    orchestrators,
                    price_cap_wei_per_pixel: reader.number(&w, "price_cap", 0.0, f64::MAX),
                    duration,
                    region: reader
                        .string(&w, "region")
                        .unwrap_or_else(|| "LOCAL".into()),
                    concurrency: reader.integer(&w, "concurrency", 1, 1000).unwrap_or(20) as u32,
                }
            }
        };
        workloads.push(Workload {
            name: name.to_owned(),
            start_after,
            executor,
        });
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

fn read_orchestrator_list(
    reader: &mut Reader<'_>,
    w: &Table<'_>,
    target: Option<&Target>,
) -> Option<OrchestratorList> {
    let item = reader.item(w, "orchestrators");
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
            let rpc = reader.string(w, "chain_rpc");
            let registry = address(reader, w, "service_registry");
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
