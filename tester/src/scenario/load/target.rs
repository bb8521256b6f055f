//! `[target]`: what the probes exercise (an embedded stack, a direct target or an external stack).

use super::super::model::*;
use super::super::reader::{Reader, Table, join};
use super::{address, faults, pool, section};

/// Wei per `pixels_per_unit` pixels the embedded orchestrators ask when the scenario says nothing
/// (go-livepeer orchestrators on mainnet ask about a thousand wei per pixel).
pub const DEFAULT_PRICE_PER_UNIT: i64 = 1000;

pub(super) fn read(reader: &mut Reader<'_>, t: &Table<'_>) -> Option<Target> {
    let kind = reader.choice(t, "kind", &["embedded", "external", "direct"]);
    let kind = reader.require(t, "kind", "\"embedded\"", kind)?;
    match kind {
        "embedded" => Some(reader.strict(t, |reader| read_embedded(reader, t))),
        "direct" => reader.strict(t, |reader| {
            let payment = section(reader, t, "payment").and_then(|p| read_payment(reader, &p));
            Some(Target::Direct { payment })
        }),
        _ => reader.strict(t, |reader| read_external(reader, t)),
    }
}

fn read_embedded(reader: &mut Reader<'_>, t: &Table<'_>) -> Target {
    let orchestrators = reader.integer(t, "orchestrators", 1, 64).unwrap_or(2) as u32;
    let transcoders_per_orchestrator = reader
        .integer(t, "transcoders_per_orchestrator", 0, 16)
        .unwrap_or(1) as u32;
    let offline = reader.boolean(t, "offline").unwrap_or(false);
    let price_per_unit = reader
        .integer(t, "price_per_unit", 0, i64::MAX)
        .unwrap_or(DEFAULT_PRICE_PER_UNIT) as u64;
    let pixels_per_unit = reader
        .integer(t, "pixels_per_unit", 1, i64::MAX)
        .unwrap_or(1) as u64;
    let prices = read_prices(reader, t, orchestrators);
    let faults = section(reader, t, "faults").map(|f| faults::read(reader, &f, orchestrators));
    let pool = section(reader, t, "pool").map(|p| pool::read_pool(reader, &p));
    let transcoder_faults = section(reader, t, "transcoders")
        .map(|f| pool::read_transcoders(reader, &f, orchestrators, transcoders_per_orchestrator))
        .unwrap_or_default();
    if (pool.is_some() || !transcoder_faults.is_empty()) && transcoders_per_orchestrator == 0 {
        reader.error_at(
            t,
            "transcoders_per_orchestrator",
            "a pool and its transcoders' faults need remote transcoders".to_string(),
            Some("set transcoders_per_orchestrator = 1 or more".into()),
        );
    }
    Target::Embedded(EmbeddedTarget {
        faults,
        pool,
        transcoder_faults,
        prices,
        orchestrators,
        transcoders_per_orchestrator,
        offline,
        price_per_unit,
        pixels_per_unit,
    })
}

fn read_external(reader: &mut Reader<'_>, t: &Table<'_>) -> Option<Target> {
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

/// `[target.payment]` of a direct target: the chain, its TicketBroker, and where the key is.
fn read_payment(reader: &mut Reader<'_>, p: &Table<'_>) -> Option<DirectPayment> {
    reader.strict(p, |reader| {
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

/// A URL at `key` starting with one of `schemes` and holding the `{stream}` placeholder.
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
