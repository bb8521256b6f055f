//! `[payments]`: whether the run pays with tickets, and the broadcaster's deposit and reserve.

use super::super::model::*;
use super::super::reader::{Reader, Table};

const DEFAULT_DEPOSIT_WEI: u128 = 1_000_000_000_000_000_000;
const DEFAULT_RESERVE_WEI: u128 = 1_000_000_000_000_000_000;

/// Payments of a scenario without `[payments]`: none.
pub(super) fn default() -> Payments {
    Payments {
        enabled: false,
        deposit_wei: DEFAULT_DEPOSIT_WEI,
        reserve_wei: DEFAULT_RESERVE_WEI,
    }
}

pub(super) fn read(reader: &mut Reader<'_>, t: &Table<'_>) -> Option<Payments> {
    reader.strict(t, |reader| {
        Some(Payments {
            enabled: reader.boolean(t, "enabled").unwrap_or(true),
            deposit_wei: amount(reader, t, "deposit").unwrap_or(DEFAULT_DEPOSIT_WEI),
            reserve_wei: amount(reader, t, "reserve").unwrap_or(DEFAULT_RESERVE_WEI),
        })
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
