//! Reading packets out of an FFmpeg encoder without losing its errors.

use ffmpeg_next::Packet;
use ffmpeg_next::encoder::Encoder;
use ffmpeg_next::util::error::EAGAIN;

/// Takes the encoder's next packet into `packet`: `Ok(true)` when there was one, `Ok(false)`
/// when the encoder needs more input (`EAGAIN`) or is fully flushed (`EOF`), and the encoder's
/// own error otherwise, so an encoding failure is never read as "no more packets".
pub fn receive_packet(
    encoder: &mut Encoder,
    packet: &mut Packet,
) -> Result<bool, ffmpeg_next::Error> {
    match encoder.receive_packet(packet) {
        Ok(()) => Ok(true),
        Err(ffmpeg_next::Error::Eof) => Ok(false),
        Err(ffmpeg_next::Error::Other { errno }) if errno == EAGAIN => Ok(false),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use ffmpeg_next::codec::{self, Id};
    use ffmpeg_next::format::Pixel;
    use ffmpeg_next::util::error::EINVAL;

    use super::*;

    #[test]
    fn an_encoder_that_fails_is_an_error_not_the_end_of_its_packets() {
        crate::init_ffmpeg();
        // Never opened: FFmpeg answers EINVAL, which `is_ok()` used to read as "no packet".
        let mut unopened = codec::Context::new().encoder();
        let mut packet = Packet::empty();
        assert_eq!(
            receive_packet(&mut unopened, &mut packet),
            Err(ffmpeg_next::Error::Other { errno: EINVAL })
        );
    }

    #[test]
    fn an_encoder_waiting_for_input_or_flushed_has_no_packet() {
        crate::init_ffmpeg();
        let mpeg4 = ffmpeg_next::encoder::find(Id::MPEG4).expect("FFmpeg's mpeg4 encoder");
        let mut video = codec::Context::new_with_codec(mpeg4)
            .encoder()
            .video()
            .unwrap();
        video.set_width(64);
        video.set_height(64);
        video.set_format(Pixel::YUV420P);
        video.set_time_base((1, 25));
        let mut encoder = video.open().unwrap();
        let mut packet = Packet::empty();
        assert_eq!(receive_packet(&mut encoder, &mut packet), Ok(false));
        encoder.send_eof().unwrap();
        assert_eq!(receive_packet(&mut encoder, &mut packet), Ok(false));
    }
}
