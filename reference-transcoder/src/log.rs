//! libav's log, carried into `tracing` (target `libav`) instead of libav writing it to stderr.
//!
//! libav reports everything it meets in a bad input (a segment with no `tfhd`, a truncated packet)
//! on its own, straight to the terminal, where it tears through the progress display and says
//! nothing about which stream it came from. Every such input is already a recorded failure with
//! its reason, so libav's errors and warnings are diagnostics here: they go out at `debug`
//! (`LPT_LOG=libav=debug` shows them), and only a panic or fatal message at `error`.
//!
//! libav may write one line in several calls; the pieces are joined per thread until the line
//! ends (bounded: a line is cut at [`MAX_LINE`]), so each event is one whole line, tagged with the
//! component that wrote it (`mov,mp4,m4a,3gp,3g2,mj2`, `h264`, …).

use std::cell::RefCell;
use std::ffi::{CStr, c_char, c_int, c_void};

use ffmpeg_next::ffi;

/// A log line is cut here; libav's own limit is 1 KiB per call.
const MAX_LINE: usize = 4096;

/// How libav hands over its variadic arguments on this platform (what its callback type says).
#[cfg(target_arch = "x86_64")]
type VaList = *mut ffi::__va_list_tag;
#[cfg(not(target_arch = "x86_64"))]
type VaList = ffi::va_list;

/// Routes libav's log through `tracing` from now on, for the whole process.
pub(crate) fn install() {
    // SAFETY: the callback is a plain function that is valid for the life of the process, and
    // libav may call it from any thread, which it is written for.
    unsafe { ffi::av_log_set_callback(Some(forward)) };
}

thread_local! {
    /// The start of a line libav has not finished yet, and the component that began it.
    static PENDING: RefCell<(String, String)> = const { RefCell::new((String::new(), String::new())) };
}

/// libav's level, as tracing sees it: `None` drops the message.
fn tracing_level(av_level: c_int) -> Option<tracing::Level> {
    match av_level {
        l if l <= ffi::AV_LOG_FATAL => Some(tracing::Level::ERROR),
        l if l <= ffi::AV_LOG_WARNING => Some(tracing::Level::DEBUG),
        l if l <= ffi::AV_LOG_VERBOSE => Some(tracing::Level::TRACE),
        _ => None,
    }
}

fn enabled(level: tracing::Level) -> bool {
    match level {
        tracing::Level::ERROR => tracing::enabled!(target: "libav", tracing::Level::ERROR),
        tracing::Level::DEBUG => tracing::enabled!(target: "libav", tracing::Level::DEBUG),
        _ => tracing::enabled!(target: "libav", tracing::Level::TRACE),
    }
}

fn emit(level: tracing::Level, component: &str, line: &str) {
    match level {
        tracing::Level::ERROR => tracing::error!(target: "libav", component, "{line}"),
        tracing::Level::DEBUG => tracing::debug!(target: "libav", component, "{line}"),
        _ => tracing::trace!(target: "libav", component, "{line}"),
    }
}

/// The name of the libav component `context` is (its `AVClass`'s item name), if it has one.
///
/// # Safety
/// `context` is null or what libav passed as a log context: a struct whose first member is a
/// pointer to its `AVClass`.
unsafe fn component_name(context: *mut c_void) -> String {
    if context.is_null() {
        return String::new();
    }
    // SAFETY: per the contract above.
    unsafe {
        let class = *(context as *const *const ffi::AVClass);
        if class.is_null() {
            return String::new();
        }
        match (*class).item_name {
            Some(item_name) => {
                let name = item_name(context);
                if name.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(name).to_string_lossy().into_owned()
                }
            }
            None => String::new(),
        }
    }
}

unsafe extern "C" fn forward(
    context: *mut c_void,
    av_level: c_int,
    format: *const c_char,
    args: VaList,
) {
    if av_level > unsafe { ffi::av_log_get_level() } {
        return;
    }
    let Some(level) = tracing_level(av_level) else {
        return;
    };
    if !enabled(level) {
        return;
    }
    let mut buffer = [0 as c_char; 1024];
    // No prefix: the component is a field of its own.
    let mut print_prefix: c_int = 0;
    // SAFETY: `format` and `args` are libav's own, passed on once; the buffer's size is given.
    let written = unsafe {
        ffi::av_log_format_line2(
            context,
            av_level,
            format,
            args,
            buffer.as_mut_ptr(),
            buffer.len() as c_int,
            &mut print_prefix,
        )
    };
    if written < 0 {
        return;
    }
    // SAFETY: av_log_format_line2 always terminates the buffer.
    let text = unsafe { CStr::from_ptr(buffer.as_ptr()) }.to_string_lossy();
    // SAFETY: libav's log context, as the function's contract says.
    let component = unsafe { component_name(context) };
    PENDING.with(|pending| {
        let mut pending = pending.borrow_mut();
        let (line, started_by) = &mut *pending;
        if line.is_empty() {
            *started_by = component;
        }
        for piece in text.split_inclusive('\n') {
            let room = MAX_LINE.saturating_sub(line.len());
            line.extend(piece.chars().take(room));
            if piece.ends_with('\n') {
                let whole = line.trim_end();
                if !whole.is_empty() {
                    emit(level, started_by, whole);
                }
                line.clear();
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::layer::SubscriberExt;

    /// Collects formatted events.
    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_bad_input_is_logged_through_tracing_as_whole_lines_of_its_component() {
        crate::init_ffmpeg();
        let lines = Lines::default();
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false)
                .with_filter(tracing_subscriber::EnvFilter::new("libav=debug")),
        );
        use tracing_subscriber::Layer as _;
        tracing::subscriber::with_default(subscriber, || {
            // A `moof` whose `trun` names a track no `tfhd` introduced: what an fMP4 media
            // segment read without its init segment looks like to the demuxer.
            let mut segment = Vec::new();
            let trun = [
                0u8, 0, 0, 20, b't', b'r', b'u', b'n', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ];
            let moof_len = 8 + trun.len() as u32;
            segment.extend_from_slice(&moof_len.to_be_bytes());
            segment.extend_from_slice(b"moof");
            segment.extend_from_slice(&trun);
            segment.extend_from_slice(&[0, 0, 0, 8, b'm', b'd', b'a', b't']);
            let _ = crate::probe::probe_bytes(segment);
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert!(
            text.contains("DEBUG libav: trun track id unknown, no tfhd was found component=\"mov,mp4,m4a,3gp,3g2,mj2\""),
            "libav's message as one tracing event: {text:?}"
        );
        assert!(
            text.lines().all(|l| l.contains("component=")),
            "every event names its component: {text:?}"
        );
    }

    #[test]
    fn levels_map_errors_to_debug_and_fatal_to_error() {
        assert_eq!(
            tracing_level(ffi::AV_LOG_PANIC),
            Some(tracing::Level::ERROR)
        );
        assert_eq!(
            tracing_level(ffi::AV_LOG_FATAL),
            Some(tracing::Level::ERROR)
        );
        assert_eq!(
            tracing_level(ffi::AV_LOG_ERROR),
            Some(tracing::Level::DEBUG)
        );
        assert_eq!(
            tracing_level(ffi::AV_LOG_WARNING),
            Some(tracing::Level::DEBUG)
        );
        assert_eq!(tracing_level(ffi::AV_LOG_INFO), Some(tracing::Level::TRACE));
        assert_eq!(tracing_level(ffi::AV_LOG_DEBUG), None);
    }
}
