#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| polo_exporter::fuzzing::duration_text(data));
