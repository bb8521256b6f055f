//! Playlist text read line by line, with line numbers: the one reader every checker uses, and
//! the HLS puller's reader of the low-latency tags (`crate::hls`), which m3u8-rs does not know.
//!
//! It is deliberately small and strict where RFC 8216 §4 is (tag names, attribute lists,
//! decimal-integers, dates) and never fails as a whole: every line is classified, every value
//! either parses or says why not, so a checker reports the line that is wrong and reads on.
//! Everything here is one pass over its input: no backtracking, and attribute names are checked
//! for repeats by sorting, so a line of a million attributes costs `n log n`, not `n²`.

use std::hash::{Hash, Hasher};

/// One line of a playlist, with its 1-based number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Line<'a> {
    pub number: u32,
    pub kind: LineKind<'a>,
}

/// What a line is (RFC 8216 §4.1: URI, blank, or starting with `#`; tags start with `#EXT`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum LineKind<'a> {
    Blank,
    Comment,
    /// `#EXT…`: its name without the `#` (`EXTINF`, `EXT-X-VERSION`) and what follows the `:`.
    Tag {
        name: &'a str,
        value: Option<&'a str>,
    },
    Uri(&'a str),
}

/// The lines of `text` (split on LF, a trailing CR dropped, surrounding blanks ignored; a leading
/// byte order mark is not part of the first line).
pub(crate) fn lines(text: &str) -> impl Iterator<Item = Line<'_>> {
    let text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    text.split('\n').enumerate().map(|(i, raw)| {
        let number = u32::try_from(i + 1).unwrap_or(u32::MAX);
        let line = raw.trim();
        let kind = if line.is_empty() {
            LineKind::Blank
        } else if line.starts_with("#EXT") {
            let tag = &line[1..];
            match tag.split_once(':') {
                Some((name, value)) => LineKind::Tag {
                    name,
                    value: Some(value),
                },
                None => LineKind::Tag {
                    name: tag,
                    value: None,
                },
            }
        } else if line.starts_with('#') {
            LineKind::Comment
        } else {
            LineKind::Uri(line)
        };
        Line { number, kind }
    })
}

/// A value of an attribute list (RFC 8216 §4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AttrValue<'a> {
    /// A quoted-string, without its quotes.
    Quoted(&'a str),
    /// Anything unquoted: a decimal-integer, a float, a resolution, an enumerated-string.
    Bare(&'a str),
}

impl<'a> AttrValue<'a> {
    /// The text of the value, quoted or not.
    pub fn text(self) -> &'a str {
        match self {
            AttrValue::Quoted(s) | AttrValue::Bare(s) => s,
        }
    }
}

/// A parsed attribute list.
#[derive(Debug, Default)]
pub(crate) struct Attrs<'a> {
    list: Vec<(&'a str, AttrValue<'a>)>,
}

impl<'a> Attrs<'a> {
    /// The value of attribute `name`.
    pub fn get(&self, name: &str) -> Option<AttrValue<'a>> {
        self.list.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }

    /// Whether attribute `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
}

/// Parses an attribute list: `NAME=value` pairs separated by commas, names of `[A-Z0-9-]`,
/// values quoted (no quote, CR or LF inside) or bare (up to the next comma). On a malformed list
/// it returns what it read so far and the reason, so the tag's other attributes are still judged.
pub(crate) fn attributes(text: &str) -> (Attrs<'_>, Option<String>) {
    let mut list = Vec::new();
    let mut rest = text;
    let mut problem = None;
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else {
            problem = Some(format!("`{}` has no `=value`", clip(rest)));
            break;
        };
        let name = &rest[..eq];
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-')
        {
            problem = Some(format!("`{}` is not an attribute name", clip(name)));
            break;
        }
        let after = &rest[eq + 1..];
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (AttrValue::Quoted(&quoted[..end]), &quoted[end + 1..]),
                None => {
                    problem = Some(format!("the quoted value of {name} is not closed"));
                    break;
                }
            }
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (AttrValue::Bare(&after[..end]), &after[end..])
        };
        if let AttrValue::Bare("") = value {
            problem = Some(format!("{name} has an empty value"));
            break;
        }
        list.push((name, value));
        match tail.strip_prefix(',') {
            Some(next) if !next.is_empty() => rest = next,
            Some(_) => {
                problem = Some("the list ends with a comma".to_string());
                break;
            }
            None if tail.is_empty() => break,
            None => {
                problem = Some(format!(
                    "`{}` follows the value of {name} without a comma",
                    clip(tail)
                ));
                break;
            }
        }
    }
    if problem.is_none() && list.len() > 1 {
        let mut names: Vec<&str> = list.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        if let Some(pair) = names.windows(2).find(|w| w[0] == w[1]) {
            problem = Some(format!("attribute {} is given twice", pair[0]));
        }
    }
    (Attrs { list }, problem)
}

/// A decimal-integer (RFC 8216 §4.2): 1 to 20 digits, at most 2^64 − 1.
pub(crate) fn decimal_integer(text: &str) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A non-negative decimal-floating-point or decimal-integer (RFC 8216 §4.2: digits and at most
/// one `.`), finite.
pub(crate) fn decimal_float(text: &str) -> Option<f64> {
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    let dots = text.bytes().filter(|b| *b == b'.').count();
    if digits == 0 || dots > 1 || digits + dots != text.len() {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A decimal-resolution (RFC 8216 §4.2): `<width>x<height>`.
pub(crate) fn resolution(text: &str) -> Option<(u64, u64)> {
    let (w, h) = text.split_once('x')?;
    Some((decimal_integer(w)?, decimal_integer(h)?))
}

/// An ISO/IEC 8601 date-time with a time zone, as EXT-X-PROGRAM-DATE-TIME carries it
/// (`2026-11-22T01:02:03.456Z`, `…+01:00`, `…+0100`), as Unix milliseconds.
pub(crate) fn date_time_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        part.iter().try_fold(0i64, |n, d| {
            n.checked_mul(10)?.checked_add(i64::from(d - b'0'))
        })
    };
    let sep = |i: usize, c: &[u8]| b.get(i).is_some_and(|x| c.contains(x));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let mut i = 19;
    let mut millis = 0i64;
    if sep(i, b".") {
        let start = i + 1;
        let mut end = start;
        while b.get(end).is_some_and(u8::is_ascii_digit) {
            end += 1;
        }
        if end == start {
            return None;
        }
        // Milliseconds from the first three digits; the rest only adds precision we do not keep.
        let mut scale = 100;
        for d in &b[start..end.min(start + 3)] {
            millis += i64::from(d - b'0') * scale;
            scale /= 10;
        }
        i = end;
    }
    let offset_minutes = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) => {
            let (hh, mm) = match b.len() - i {
                6 if sep(i + 3, b":") => (num(i + 1..i + 3)?, num(i + 4..i + 6)?),
                5 => (num(i + 1..i + 3)?, num(i + 3..i + 5)?),
                3 => (num(i + 1..i + 3)?, 0),
                _ => return None,
            };
            if hh > 23 || mm > 59 {
                return None;
            }
            let m = hh * 60 + mm;
            if *sign == b'+' { m } else { -m }
        }
        _ => return None,
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A fixed 64-bit digest of a URI: what the media checker keeps instead of the text, so its
/// memory does not grow with the length of a hostile server's URIs.
pub(crate) fn digest(text: &str) -> u64 {
    // `DefaultHasher::new` has fixed keys: the same URI gives the same digest all run long.
    let mut h = std::hash::DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

/// At most 60 characters of `text`, for a violation's detail.
pub(crate) fn clip(text: &str) -> String {
    const MAX: usize = 60;
    match text.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

/// The path of a URL (or of a relative reference), without query or fragment.
pub(crate) fn url_path(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    match url.find("://") {
        Some(scheme_end) => {
            let rest = &url[scheme_end + 3..];
            rest.find('/').map_or("", |slash| &rest[slash..])
        }
        None => url,
    }
}

/// The media type of a Content-Type header, lower-cased, without parameters.
pub(crate) fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_numbered_and_classified() {
        let text = "\u{FEFF}#EXTM3U\r\n\n# a comment\n#EXT-X-VERSION:3\n#EXTINF:2.0,title\nseg 1.ts \n#EXT-X-ENDLIST";
        let got: Vec<_> = lines(text).map(|l| (l.number, l.kind)).collect();
        assert_eq!(
            got,
            [
                (
                    1,
                    LineKind::Tag {
                        name: "EXTM3U",
                        value: None
                    }
                ),
                (2, LineKind::Blank),
                (3, LineKind::Comment),
                (
                    4,
                    LineKind::Tag {
                        name: "EXT-X-VERSION",
                        value: Some("3")
                    }
                ),
                (
                    5,
                    LineKind::Tag {
                        name: "EXTINF",
                        value: Some("2.0,title")
                    }
                ),
                (6, LineKind::Uri("seg 1.ts")),
                (
                    7,
                    LineKind::Tag {
                        name: "EXT-X-ENDLIST",
                        value: None
                    }
                ),
            ]
        );
    }

    #[test]
    fn attribute_lists_parse_and_say_what_is_wrong() {
        let (a, problem) =
            attributes(r#"BANDWIDTH=1000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=640x360"#);
        assert_eq!(problem, None);
        assert_eq!(a.get("BANDWIDTH"), Some(AttrValue::Bare("1000")));
        assert_eq!(
            a.get("CODECS"),
            Some(AttrValue::Quoted("avc1.64001f,mp4a.40.2"))
        );
        assert_eq!(a.get("RESOLUTION").map(AttrValue::text), Some("640x360"));
        for (text, why) in [
            (
                "BANDWIDTH=1,BANDWIDTH=2",
                "attribute BANDWIDTH is given twice",
            ),
            (r#"URI="a.mp4"#, "the quoted value of URI is not closed"),
            ("bandwidth=1", "`bandwidth` is not an attribute name"),
            ("BANDWIDTH=", "BANDWIDTH has an empty value"),
            ("BANDWIDTH=1,", "the list ends with a comma"),
            (
                r#"URI="a"X=1"#,
                "`X=1` follows the value of URI without a comma",
            ),
            ("JUNK", "`JUNK` has no `=value`"),
        ] {
            assert_eq!(attributes(text).1.as_deref(), Some(why), "{text}");
        }
    }

    #[test]
    fn numbers_follow_the_rfc_types() {
        assert_eq!(decimal_integer("18446744073709551615"), Some(u64::MAX));
        assert_eq!(decimal_integer("18446744073709551616"), None);
        assert_eq!(decimal_integer("-1"), None);
        assert_eq!(decimal_integer("2.0"), None);
        assert_eq!(decimal_float("2.002"), Some(2.002));
        assert_eq!(decimal_float("10"), Some(10.0));
        assert_eq!(decimal_float("1e3"), None);
        assert_eq!(decimal_float("-2"), None);
        assert_eq!(decimal_float("."), None);
        assert_eq!(decimal_float(&"9".repeat(400)), None, "not finite");
        assert_eq!(resolution("1280x720"), Some((1280, 720)));
        assert_eq!(resolution("1280X720"), None);
    }

    #[test]
    fn program_date_times_become_unix_milliseconds() {
        assert_eq!(date_time_ms("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            date_time_ms("2026-11-22T01:02:03.456Z"),
            Some(1_795_309_323_456)
        );
        assert_eq!(
            date_time_ms("2026-11-22T02:02:03.456+01:00"),
            Some(1_795_309_323_456)
        );
        assert_eq!(
            date_time_ms("2026-11-22T00:02:03.4567-0100"),
            Some(1_795_309_323_456)
        );
        assert_eq!(
            date_time_ms("2024-02-29T00:00:00Z"),
            Some(1_709_164_800_000)
        );
        for bad in [
            "2023-02-29T00:00:00Z",
            "2026-11-22 01:02:03Z",
            "2026-11-22T01:02:03",
            "2026-11-22T25:02:03Z",
            "2026-11-22T01:02:03.Z",
            "2026-11-22T01:02:03Zjunk",
            "",
            "9999",
        ] {
            assert_eq!(date_time_ms(bad), None, "{bad}");
        }
    }

    #[test]
    fn url_paths_and_media_types() {
        assert_eq!(url_path("https://h:8/a/b.m3u8?x=1#f"), "/a/b.m3u8");
        assert_eq!(url_path("https://h"), "");
        assert_eq!(url_path("b/c.ts?x"), "b/c.ts");
        assert_eq!(
            media_type("Application/VND.Apple.mpegURL; charset=utf-8"),
            "application/vnd.apple.mpegurl"
        );
        assert_eq!(clip(&"é".repeat(100)).chars().count(), 61);
    }
}
