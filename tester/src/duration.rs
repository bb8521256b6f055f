//! Human durations as scenarios write them: `"30s"`, `"2m"`, `"1h30m"`, `"250ms"`, `"1.5s"`.
//!
//! A bare number is refused on purpose: `duration = 30` could mean seconds or minutes, and a
//! scenario that silently runs 60 times longer than intended is worse than an error. So is a
//! duration beyond [`MAX_DURATION`]: runs add durations to clock readings, and a value like
//! `"2600000000000000h"` would overflow them mid-run instead of failing validation.

use std::time::Duration;

/// The longest duration a scenario or a command line may give: 30 days, longer than any soak,
/// and far below what the clock arithmetic of a run (sums of a few durations added to `Instant`)
/// can hold.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// Parses a duration made of one or more `<number><unit>` parts, units `h`, `m`, `s`, `ms`, `us`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration; write e.g. \"30s\", \"2m\" or \"1h30m\"".into());
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(format!(
                "`{text}` is not a duration: expected a number at `{rest}`"
            ));
        }
        let (number, after) = rest.split_at(number_len);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("`{number}` in `{text}` is not a number"))?;
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let seconds_per_unit = match unit {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "" => {
                return Err(format!(
                    "`{text}` needs a unit: write e.g. \"{number}s\" (units: h, m, s, ms, us)"
                ));
            }
            other => {
                return Err(format!(
                    "unknown unit `{other}` in `{text}` (units: h, m, s, ms, us)"
                ));
            }
        };
        total += value * seconds_per_unit;
        rest = after;
    }
    let too_long = || {
        format!(
            "`{text}` is longer than the {} a duration may be",
            format_duration(MAX_DURATION)
        )
    };
    let duration = Duration::try_from_secs_f64(total).map_err(|_| too_long())?;
    if duration > MAX_DURATION {
        return Err(too_long());
    }
    Ok(duration)
}

/// Formats a duration the way scenarios write it (`1h30m`, `45s`, `250ms`).
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    if !millis.is_multiple_of(1000) {
        return if millis < 1000 {
            format!("{millis}ms")
        } else {
            format!("{}s", duration.as_secs_f64())
        };
    }
    let mut seconds = duration.as_secs();
    let mut out = String::new();
    for (unit, size) in [("h", 3600), ("m", 60), ("s", 1)] {
        if seconds >= size {
            out.push_str(&format!("{}{unit}", seconds / size));
            seconds %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_compound_durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m0.5s"), Ok(Duration::from_millis(60_500)));
    }

    #[test]
    fn refuses_ambiguous_or_malformed_durations() {
        assert!(parse_duration("30").unwrap_err().contains("needs a unit"));
        assert!(
            parse_duration("3d")
                .unwrap_err()
                .contains("unknown unit `d`")
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("1..2s").is_err());
    }

    #[test]
    fn refuses_durations_past_the_cap() {
        assert_eq!(parse_duration("720h"), Ok(MAX_DURATION));
        for text in [
            "720h1s",
            "2600000000000000h",
            "99999999999999999999999999999h",
        ] {
            let error = parse_duration(text).unwrap_err();
            assert!(
                error.contains("is longer than the 720h a duration may be"),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["1h30m", "45s", "250ms", "2m", "1h0m5s"] {
            let parsed = parse_duration(text).unwrap();
            assert_eq!(
                parse_duration(&format_duration(parsed)),
                Ok(parsed),
                "{text}"
            );
        }
        assert_eq!(format_duration(Duration::from_secs(5400)), "1h30m");
    }
}
