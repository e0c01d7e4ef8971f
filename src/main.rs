//! sshfleet binary: parse, run, map to an exit code. Everything else lives in the library.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    sshfleet::cli::main(sshfleet::cli::Cli::parse())
}
