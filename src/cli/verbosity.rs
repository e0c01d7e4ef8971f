//! How much a command says on stderr besides its errors: everything, or (`--quiet`) errors only.

use super::args::{ApiArgs, DemoArgs, OutputArgs, ReportHtmlArgs};

/// What a command says on stderr besides its errors. Errors are said at every verbosity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Verbosity {
    /// `--quiet`: no progress bar, no summary, no warnings; errors only.
    Quiet,
    /// Progress, summaries, warnings and the files written.
    Normal,
}

impl Verbosity {
    pub(super) fn is_quiet(self) -> bool {
        self == Verbosity::Quiet
    }
}

impl OutputArgs {
    pub(super) fn verbosity(&self) -> Verbosity {
        if self.quiet {
            Verbosity::Quiet
        } else {
            Verbosity::Normal
        }
    }
}

impl ReportHtmlArgs {
    pub(super) fn verbosity(&self) -> Verbosity {
        if self.quiet {
            Verbosity::Quiet
        } else {
            Verbosity::Normal
        }
    }
}

impl DemoArgs {
    pub(super) fn verbosity(&self) -> Verbosity {
        if self.quiet {
            Verbosity::Quiet
        } else {
            Verbosity::Normal
        }
    }
}

impl ApiArgs {
    pub(super) fn verbosity(&self) -> Verbosity {
        if self.quiet {
            Verbosity::Quiet
        } else {
            Verbosity::Normal
        }
    }
}
