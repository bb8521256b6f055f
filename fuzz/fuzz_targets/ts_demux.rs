#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lpt_fuzz::ts_demux::run(data));
