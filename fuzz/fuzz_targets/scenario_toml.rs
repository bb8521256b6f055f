#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| lpt_fuzz::scenario_toml::run(data));
