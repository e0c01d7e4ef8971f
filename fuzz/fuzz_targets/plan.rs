#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sshfleet_fuzzing::run("plan", data));
