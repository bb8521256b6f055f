#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(seg) = lpt_fuzz::segment_header::run(data) {
        lpt_fuzz::orchestrator_steps::segment(&seg);
    }
});
