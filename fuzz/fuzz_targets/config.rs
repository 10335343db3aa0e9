#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| polo_exporter::fuzzing::config(data));
