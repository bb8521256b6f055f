//! Capability bitstrings: which features a broadcaster needs and an orchestrator offers.
//!
//! Capability N is bit `N % 64` of word `N / 64` of `Capabilities.bitstring`; a broadcaster is
//! served by an orchestrator when every bit it sets is also set by the orchestrator, word by word.
//! Codes are a closed list in PROTOCOL.md §2, kept as an enum so a typo is a compile error, while
//! [`CapabilitySet`] still carries unknown bits from newer peers untouched.

use crate::net;

/// Capability codes from PROTOCOL.md §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Capability {
    /// H.264 decoding/encoding.
    H264 = 0,
    /// MPEG-TS container.
    Mpegts = 1,
    /// MP4 container.
    Mp4 = 2,
    /// Non-integer frame rates.
    FractionalFramerates = 3,
    /// Direct (O-local) storage.
    StorageDirect = 4,
    /// S3 storage.
    StorageS3 = 5,
    /// Google Cloud storage.
    StorageGcs = 6,
    /// H.264 Baseline profile.
    ProfileH264Baseline = 7,
    /// H.264 Main profile.
    ProfileH264Main = 8,
    /// H.264 High profile.
    ProfileH264High = 9,
    /// H.264 Constrained High profile.
    ProfileH264ConstrainedHigh = 10,
    /// Custom GOP length.
    Gop = 11,
    /// Session auth tokens.
    AuthToken = 12,
    /// MPEG-7 video signature.
    Mpeg7VideoSignature = 14,
    /// HEVC decoding.
    HevcDecode = 15,
    /// HEVC encoding.
    HevcEncode = 16,
    /// VP8 decoding.
    Vp8Decode = 17,
    /// VP9 decoding.
    Vp9Decode = 18,
    /// VP8 encoding.
    Vp8Encode = 19,
    /// VP9 encoding.
    Vp9Encode = 20,
    /// Transcoding part of a segment.
    SegmentSlicing = 26,
}

impl Capability {
    /// Numeric capability code.
    pub fn code(self) -> u32 {
        self as u32
    }
}

/// A capability bitstring, as carried in `Capabilities.bitstring`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapabilitySet {
    words: Vec<u64>,
}

impl CapabilitySet {
    /// The empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps the words of a received bitstring.
    pub fn from_words(words: Vec<u64>) -> Self {
        Self { words }
    }

    /// The bitstring words, ready for `Capabilities.bitstring`.
    pub fn words(&self) -> &[u64] {
        &self.words
    }

    /// Sets capability `code`.
    pub fn set(&mut self, code: u32) -> &mut Self {
        let (word, bit) = position(code);
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << bit;
        self
    }

    /// Whether capability `code` is set.
    pub fn has(&self, code: u32) -> bool {
        let (word, bit) = position(code);
        self.words.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// Whether an orchestrator offering `offered` can serve a broadcaster needing `self`: every
    /// needed bit is offered (missing offered words count as zero).
    pub fn compatible_with(&self, offered: &CapabilitySet) -> bool {
        self.words.iter().enumerate().all(|(i, need)| {
            let have = offered.words.get(i).copied().unwrap_or(0);
            need & have == *need
        })
    }

    /// A `Capabilities` message carrying this bitstring.
    pub fn to_message(&self) -> net::Capabilities {
        net::Capabilities {
            bitstring: self.words.clone(),
            ..Default::default()
        }
    }
}

impl FromIterator<Capability> for CapabilitySet {
    fn from_iter<I: IntoIterator<Item = Capability>>(iter: I) -> Self {
        let mut set = Self::new();
        for cap in iter {
            set.set(cap.code());
        }
        set
    }
}

impl From<&net::Capabilities> for CapabilitySet {
    fn from(caps: &net::Capabilities) -> Self {
        Self::from_words(caps.bitstring.clone())
    }
}

fn position(code: u32) -> (usize, u32) {
    ((code / 64) as usize, code % 64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_land_in_the_right_word() {
        let mut set = CapabilitySet::new();
        set.set(Capability::H264.code())
            .set(Capability::SegmentSlicing.code())
            .set(70);
        assert_eq!(set.words(), &[1 | (1 << 26), 1 << 6]);
        assert!(set.has(26) && set.has(70) && !set.has(1) && !set.has(1000));
    }

    #[test]
    fn compatibility_is_subset_word_by_word() {
        let b: CapabilitySet = [Capability::H264, Capability::Mpegts].into_iter().collect();
        let o: CapabilitySet = [Capability::H264, Capability::Mpegts, Capability::Mp4]
            .into_iter()
            .collect();
        assert!(b.compatible_with(&o));
        assert!(!o.compatible_with(&b));
        let mut high = CapabilitySet::new();
        high.set(65);
        assert!(!high.compatible_with(&o));
        assert!(CapabilitySet::new().compatible_with(&CapabilitySet::new()));
        assert_eq!(CapabilitySet::from(&o.to_message()), o);
    }
}
