//! Small helpers shared by the writers: UTC time formatting without a date crate (only civil
//! dates from unix time are needed) and number formatting for tables.

/// `(year, month, day)` of a count of days since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    // Howard Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn parts(unix_ms: i64) -> (i64, u32, u32, i64, i64, i64, i64) {
    let secs = unix_ms.div_euclid(1000);
    let ms = unix_ms.rem_euclid(1000);
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    (y, mo, d, sod / 3600, (sod % 3600) / 60, sod % 60, ms)
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-22T01:02:03.456Z`.
pub fn iso_utc(unix_ms: i64) -> String {
    let (y, mo, d, h, mi, s, ms) = parts(unix_ms);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// Human UTC minute, e.g. `2026-11-22 01:02 UTC`.
pub fn human_utc(unix_ms: i64) -> String {
    let (y, mo, d, h, mi, _, _) = parts(unix_ms);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02} UTC")
}

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A number for a table: up to 3 significant decimals, `–` when absent.
pub fn fmt_num(v: Option<f64>) -> String {
    match v {
        None => "–".to_string(),
        Some(v) if !v.is_finite() => "–".to_string(),
        Some(v) if v.abs() >= 1000.0 || v == v.trunc() => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.3}"),
    }
}

/// A wei-per-pixel price with four significant digits at most (`250`, `1235`, `0.0375`):
/// prices range from fractions of a wei to thousands.
pub fn fmt_price(v: f64) -> String {
    if !v.is_finite() || v == 0.0 {
        return format!("{v}");
    }
    let magnitude = v.abs().log10().floor() as i32;
    let decimals = (3 - magnitude).clamp(0, 12) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A rate as a percentage, `–` when absent.
pub fn fmt_pct(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{:.2} %", v * 100.0),
        _ => "–".to_string(),
    }
}

/// Escapes text for HTML and XML content and attribute values.
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // XML 1.0 forbids most control characters even when escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Escapes a Markdown table cell.
pub fn escape_md_cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(iso_utc(0), "1970-01-01T00:00:00.000Z");
        // 2026-11-22T01:02:03.456Z
        assert_eq!(iso_utc(1_795_309_323_456), "2026-11-22T01:02:03.456Z");
        assert_eq!(human_utc(951_782_400_000), "2000-02-29 00:00 UTC");
    }

    #[test]
    fn prices_keep_four_significant_digits() {
        for (v, want) in [
            (250.0, "250"),
            (1234.56, "1235"),
            (12.346, "12.35"),
            (0.0375, "0.0375"),
            (0.123456, "0.1235"),
            (0.0, "0"),
        ] {
            assert_eq!(fmt_price(v), want, "{v}");
        }
    }
}
