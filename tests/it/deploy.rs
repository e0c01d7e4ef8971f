//! The manifests in `deploy/` run sshfleet with arguments this binary accepts: every
//! container's `args` parse as a command line (flags, values and required arguments).

use clap::Parser as _;
use sshfleet::cli::Cli;

/// The `args:` lists of a manifest: the `- item` lines under each `args:` key.
fn container_args(text: &str) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() != "args:" {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let mut args = Vec::new();
        while let Some(next) = lines.peek() {
            let trimmed = next.trim_start();
            let deeper = next.len() - trimmed.len() >= indent;
            match trimmed.strip_prefix("- ") {
                Some(item) if deeper => {
                    args.push(item.trim().to_owned());
                    lines.next();
                }
                _ => break,
            }
        }
        all.push(args);
    }
    all
}

#[test]
fn every_manifest_runs_a_command_line_this_binary_accepts() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for args in container_args(&text) {
            let argv = std::iter::once("sshfleet".to_owned()).chain(args.iter().cloned());
            if let Err(e) = Cli::try_parse_from(argv) {
                panic!("{}: {args:?} does not parse:\n{e}", path.display());
            }
            checked += 1;
        }
    }
    // The scan Job, the merge Job, the two CronJobs, and the scan Job with a central history.
    assert_eq!(checked, 5, "container args found in deploy/");
}
