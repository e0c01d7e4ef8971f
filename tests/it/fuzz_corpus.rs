//! The fuzz targets (`crates/sshfleet-fuzzing`) on their seeds and on every input that once broke
//! one (`fuzz/regressions/TARGET/`), on the stable toolchain: a crash found by `cargo fuzz`
//! and fixed stays fixed.

use std::path::Path;

#[test]
fn every_saved_fuzz_input_runs_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut ran = 0;
    for target in sshfleet_fuzzing::TARGETS {
        let mut inputs = 0;
        for kind in ["seeds", "regressions"] {
            let dir = root.join(kind).join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| sshfleet_fuzzing::run(target, &data));
                assert!(outcome.is_ok(), "{target} fails on {}", path.display());
                inputs += 1;
            }
        }
        assert!(inputs > 0, "no saved inputs for fuzz target {target}");
        ran += inputs;
    }
    assert!(ran >= sshfleet_fuzzing::TARGETS.len());
}
