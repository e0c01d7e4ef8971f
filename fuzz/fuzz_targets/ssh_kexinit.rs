#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sshfleet::fuzzing::run("ssh_kexinit", data));
