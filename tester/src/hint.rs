//! "Did you mean …?" suggestions for misspelt keys, names and presets.

/// The candidate closest to `given`, if it is close enough to be a plausible typo.
pub fn closest<'a>(given: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let given_lower = given.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&given_lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    #[test]
    fn suggests_near_misses_only() {
        assert_eq!(
            super::closest("laterncy", ["latency", "vmaf"]),
            Some("latency")
        );
        assert_eq!(
            super::closest("p240p30fps16x9", ["P240p30fps16x9"]),
            Some("P240p30fps16x9")
        );
        assert_eq!(super::closest("zzz", ["latency", "vmaf"]), None);
    }
}
