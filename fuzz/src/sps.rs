//! `sps`: an H.264 sequence parameter set (NAL header byte included, emulation-prevention bytes
//! in place, as an AVCDecoderConfigurationRecord carries it) through
//! `node_broadcaster::sps::picture_size`. A size it returns must be a real picture size.

/// Feeds one input; panics are the findings.
pub fn run(data: &[u8]) {
    if let Some((width, height)) = node_broadcaster::sps::picture_size(data) {
        assert!(
            (1..=16384).contains(&width) && (1..=16384).contains(&height),
            "picture_size returned {width}x{height}"
        );
    }
}
