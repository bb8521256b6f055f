#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    lpt_fuzz::m3u8::run(data);
});
