//! `sshfleet diff OLD NEW`: the changes between two reports, and a summary of them.

use super::args::DiffArgs;
use super::{open_output, resolve_table_format, Exit};
use sshfleet_report::diff::{diff, write_rows};
use sshfleet_report::read::read_report;

pub(super) fn run(args: DiffArgs) -> anyhow::Result<Exit> {
    let format = resolve_table_format(&args.output.output, args.output.format)?;
    let old = read_report(&args.old)?;
    let new = read_report(&args.new)?;
    let (before, after) = (old.len(), new.len());
    let (rows, counts) = diff(old, &new);
    let written = write_rows(format, &rows, open_output(&args.output.output)?);
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            return Ok(Exit::Clean);
        }
        diagln!("error: cannot write the changes: {e}");
        return Ok(Exit::OutputFailed);
    }
    let exposure = rows.iter().filter(|r| r.is_new_exposure()).count() as u64;
    if !args.output.verbosity().is_quiet() {
        diagln!(
            "{before} devices before, {after} after: {}",
            counts.describe(exposure)
        );
    }
    Ok(if exposure > 0 {
        Exit::Findings
    } else {
        Exit::Clean
    })
}
