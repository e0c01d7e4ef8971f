#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sshfleet_fuzzing::run("equinix_answers", data));
