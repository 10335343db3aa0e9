#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| polo_exporter::fuzzing::scrape_timeout(data));
