//! The option tables of `docs/guide/options.md` are every command's `--help`, generated from
//! the clap definition and pinned here: a flag or help text that changes without the page
//! fails with a diff. `SSHFLEET_BLESS=1` rewrites the page instead.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Command, CommandFactory as _};
use sshfleet::cli::Cli;

use crate::support::{args, code, run, stderr};

/// Help is rendered this wide whatever the terminal, so the page does not depend on it.
const WIDTH: usize = 100;

fn options_page() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/guide/options.md")
}

/// Every visible command, depth first: the root, then each subcommand in definition order.
fn commands() -> Vec<Command> {
    let mut root = Cli::command().term_width(WIDTH).max_term_width(WIDTH);
    root.build();
    let mut all = Vec::new();
    collect(&root, &mut all);
    all
}

fn collect(cmd: &Command, all: &mut Vec<Command>) {
    all.push(cmd.clone());
    for sub in cmd.get_subcommands() {
        // `help` is clap's own subcommand; hidden ones are internal (sim workers).
        if sub.get_name() != "help" && !sub.is_hide_set() {
            collect(sub, all);
        }
    }
}

fn title(cmd: &Command) -> String {
    cmd.get_bin_name().unwrap_or(cmd.get_name()).to_string()
}

/// What `--help` prints, without trailing blanks on its lines.
fn long_help(cmd: &mut Command) -> String {
    let text = cmd.render_long_help().to_string();
    let mut out: String = text
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

fn generate() -> String {
    let mut page = String::from(
        "# Options\n\n\
         <!-- Generated from the command-line definition (src/cli/args.rs) by the test \
         `usage` (tests/it/usage.rs); do not edit. Rewrite it with \
         `SSHFLEET_BLESS=1 cargo nextest run -E 'test(/usage/)'`. -->\n\n\
         Every command's `--help`, as the binary prints it. The guide's pages \
         ([scanning](scanning.md), [remediation](remediation.md), [reports](reports.md), \
         [Equinix](equinix.md)) say what the options do together; this page is the complete \
         list.\n\n",
    );
    let mut all = commands();
    for cmd in &all {
        let name = title(cmd);
        let anchor = name.replace(' ', "-");
        let _ = writeln!(page, "- [`{name}`](#{anchor})");
    }
    page.push('\n');
    for cmd in &mut all {
        let _ = write!(
            page,
            "## {}\n\n```text\n{}```\n\n",
            title(cmd),
            long_help(cmd)
        );
    }
    page.pop();
    page
}

/// The lines that differ, in a unified-diff-like form (`-` the file, `+` the binary), cut to
/// the first 60 so a big change stays readable.
fn diff(file: &str, generated: &str) -> String {
    let a: Vec<&str> = file.lines().collect();
    let b: Vec<&str> = generated.lines().collect();
    // Longest common subsequence, from the end, so the walk below goes forwards.
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if j < b.len() && (i == a.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out.push(format!("{:>5} + {}", j + 1, b[j]));
            j += 1;
        } else {
            out.push(format!("{:>5} - {}", i + 1, a[i]));
            i += 1;
        }
    }
    let total = out.len();
    out.truncate(60);
    if total > out.len() {
        out.push(format!("… and {} more changed line(s)", total - out.len()));
    }
    out.join("\n")
}

#[test]
fn options_page_is_every_commands_help() {
    let generated = generate();
    let path = options_page();
    if std::env::var_os("SSHFLEET_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let file = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        file == generated,
        "{} is not what the binary's --help says now (- the file, + the help):\n{}\n\n\
         If the change to the options is meant, rewrite the page with\n  \
         SSHFLEET_BLESS=1 cargo nextest run -E 'test(/usage/)'\nand commit it.",
        path.display(),
        diff(&file, &generated)
    );
}

/// The page covers every command a user can run, including the nested ones.
#[test]
fn options_page_lists_every_command() {
    let titles: Vec<String> = commands().iter().map(title).collect();
    for name in [
        "sshfleet",
        "sshfleet scan",
        "sshfleet remediate",
        "sshfleet history runs",
        "sshfleet history prune",
        "sshfleet report merge",
        "sshfleet report html",
        "sshfleet equinix ssh-users list",
        "sshfleet equinix ssh-users remediate",
        "sshfleet sim",
        "sshfleet demo",
    ] {
        assert!(
            titles.iter().any(|t| t == name),
            "{name} missing: {titles:?}"
        );
    }
}

/// What the real binary prints for `--help` is what the page shows, headings and all.
#[tokio::test]
async fn help_of_the_binary_is_grouped_by_heading() {
    let scan = run(&args(&["scan", "--help"]), &[]).await;
    assert_eq!(code(&scan), 0, "{}", stderr(&scan));
    let printed = String::from_utf8_lossy(&scan.stdout).into_owned();
    let mut page_scan = commands()
        .into_iter()
        .find(|c| title(c) == "sshfleet scan")
        .unwrap();
    let trimmed: String = printed
        .lines()
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    assert_eq!(trimmed.trim_end(), long_help(&mut page_scan).trim_end());
    for heading in [
        "Inventory:",
        "Connection:",
        "Credentials and trust:",
        "History and comparison:",
        "Output:",
    ] {
        assert!(
            printed.lines().any(|l| l == heading),
            "scan --help has no {heading}"
        );
    }
    let remediate = run(&args(&["remediate", "--help"]), &[]).await;
    let printed = String::from_utf8_lossy(&remediate.stdout);
    for heading in ["Change control:", "Limits:", "Waves and failure budget:"] {
        assert!(
            printed.lines().any(|l| l == heading),
            "remediate --help has no {heading}:\n{printed}"
        );
    }
    // A flag sits under its heading: --journal after "Change control:", before the next one.
    let section: Vec<&str> = printed
        .lines()
        .skip_while(|l| *l != "Change control:")
        .skip(1)
        .take_while(|l| !l.ends_with(':') || l.starts_with(' '))
        .collect();
    assert!(
        section
            .iter()
            .any(|l| l.trim_start().starts_with("--journal")),
        "{section:?}"
    );
}
