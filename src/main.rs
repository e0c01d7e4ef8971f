//! sshfleet binary: parse, run, map to an exit code. Everything else lives in the library.

use clap::Parser as _;

/// mimalloc rather than glibc's malloc: a scan allocates and frees small buffers on every
/// request from several threads, and glibc's per-thread arenas both cost more CPU there and
/// keep growing with the length of a run (see `docs/performance.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    sshfleet::cli::main(sshfleet::cli::Cli::parse_from(sshfleet::cli::argv(
        std::env::args_os(),
    )))
}
