//! The decisions of one device request's auth handshake and retries, as a pure function of
//! what the device answered. The session sends, sleeps and adopts challenges; this module
//! only says what comes next, so every rule can be checked row by row without a device.

use std::time::Duration;

use sshfleet_net::retry::MAX_RETRY_AFTER;
use sshfleet_net::HttpError;

use super::{CallError, Resend};

/// Unauthenticated 401s answered with credentials within one request: the normal challenge,
/// and one more for a device that challenges twice.
const MAX_CHALLENGES: u32 = 2;

/// Whether the request carried credentials (an `Authorization` header).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sent {
    Anonymous,
    Credentials,
}

/// Whether a 401's challenge says the nonce just used went stale (`stale=true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Nonce {
    Fresh,
    Stale,
}

/// Whether the credentials have been accepted on this device before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Account {
    Unproven,
    /// A later 401 means the account lacks a privilege, not that the password is wrong.
    Proven,
}

/// The one extra try a 401 after credentials may get within a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Rechallenge {
    Unused,
    Spent,
}

/// Where a device's conversation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct State {
    pub account: Account,
    /// Retries left for the whole device (throttling and transient failures share them).
    pub retries_left: u32,
    /// Unauthenticated 401s seen in the current request.
    pub challenges: u32,
    pub rechallenge: Rechallenge,
    /// The current request was sent again, once, after its connection closed behind a 401.
    pub resent: bool,
}

impl State {
    /// A device not yet spoken to, with the policy's retries.
    pub(super) fn new(retries: u32) -> State {
        State {
            account: Account::Unproven,
            retries_left: retries,
            challenges: 0,
            rechallenge: Rechallenge::Unused,
            resent: false,
        }
    }

    /// The state at the start of a new request: what the device taught stays, the counts
    /// of the last request's handshake do not.
    pub(super) fn for_request(self) -> State {
        State {
            challenges: 0,
            rechallenge: Rechallenge::Unused,
            resent: false,
            ..self
        }
    }

    fn auth_failed(self) -> CallError {
        CallError::AuthFailed {
            privilege: self.account == Account::Proven,
        }
    }

    /// Spends one retry, if any is left.
    fn take_retry(self) -> Option<State> {
        let retries_left = self.retries_left.checked_sub(1)?;
        Some(State {
            retries_left,
            ..self
        })
    }
}

/// What became of one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// 401.
    Unauthorized { sent: Sent, nonce: Nonce },
    /// 403, 429 or 503: the device blocks or throttles.
    Throttled {
        status: u16,
        /// What its `Retry-After` asked for.
        asked: Option<Duration>,
        /// The backoff that would be slept (jitter included).
        wait: Duration,
        /// Time left until the device's deadline.
        remaining: Duration,
    },
    /// Any other status: the device's answer to the request.
    Answered { sent: Sent },
    /// No response: the request failed in transit.
    Lost {
        error: HttpError,
        resend: Resend,
        /// The pause before sending it again (jitter included).
        pause: Duration,
    },
}

/// What the session does next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Step {
    /// Take the 401's challenge and send the request again at once.
    Rechallenge,
    /// Sleep this long, then send the request again: a retry has been spent.
    Backoff(Duration),
    /// Send the request again at once, on a new connection: the device never saw it, so no
    /// retry is spent.
    Resend,
    /// The response is the device's answer: hand it over.
    Done,
    /// Give up with this error.
    Fail(CallError),
    /// Take the 401's challenge — its realm still names the device, and a challenge that
    /// cannot be answered is the error then — and give up with this error.
    AdoptAndFail(CallError),
}

/// The next step after `answer`, and the state it leaves.
pub(super) fn on_answer(state: State, answer: Answer) -> (State, Step) {
    match answer {
        Answer::Answered { sent } => {
            let account = match sent {
                Sent::Credentials => Account::Proven,
                Sent::Anonymous => state.account,
            };
            (State { account, ..state }, Step::Done)
        }
        Answer::Unauthorized {
            sent: Sent::Anonymous,
            ..
        } => challenged(state),
        Answer::Unauthorized {
            sent: Sent::Credentials,
            nonce,
        } => rejected(state, nonce),
        Answer::Throttled {
            status,
            asked,
            wait,
            remaining,
        } => throttled(state, status, asked, wait, remaining),
        Answer::Lost {
            error,
            resend,
            pause,
        } => {
            let resendable = resend == Resend::IfTransient && error.is_transient();
            // A device that closes its connection after a 401 without saying so: the answer
            // to its challenge went out on that closing connection, and was never read.
            if resendable && state.challenges > 0 && !state.resent {
                let next = State {
                    resent: true,
                    ..state
                };
                return (next, Step::Resend);
            }
            match state.take_retry().filter(|_| resendable) {
                Some(next) => (next, Step::Backoff(pause)),
                None => (state, Step::Fail(error.into())),
            }
        }
    }
}

/// Without credentials a 401 is the normal challenge: answer it, but not endlessly.
fn challenged(state: State) -> (State, Step) {
    let challenges = state.challenges.saturating_add(1);
    let next = State {
        challenges,
        ..state
    };
    if challenges <= MAX_CHALLENGES {
        (next, Step::Rechallenge)
    } else {
        (next, Step::Fail(state.auth_failed()))
    }
}

/// With credentials a 401 is final, except once for a nonce that went stale, or (on a device
/// where these credentials already worked) one that expired without saying so.
fn rejected(state: State, nonce: Nonce) -> (State, Step) {
    if state.rechallenge == Rechallenge::Spent {
        return (state, Step::Fail(state.auth_failed()));
    }
    let next = State {
        rechallenge: Rechallenge::Spent,
        ..state
    };
    if nonce == Nonce::Stale || state.account == Account::Proven {
        (next, Step::Rechallenge)
    } else {
        (next, Step::AdoptAndFail(state.auth_failed()))
    }
}

/// A wait past the device's deadline (or beyond what any device is given) would only end
/// as a timeout: say now what the device said. Otherwise back off while retries remain.
fn throttled(
    state: State,
    status: u16,
    asked: Option<Duration>,
    wait: Duration,
    remaining: Duration,
) -> (State, Step) {
    if wait >= remaining || asked.is_some_and(|a| a > MAX_RETRY_AFTER) {
        let error = CallError::Throttled {
            status,
            asked_secs: asked.map(|a| a.as_secs()),
        };
        return (state, Step::Fail(error));
    }
    match state.take_retry() {
        Some(next) => (next, Step::Backoff(wait)),
        None => {
            let error = CallError::Throttled {
                status,
                asked_secs: None,
            };
            (state, Step::Fail(error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    /// A device in the middle of a request: `challenges` anonymous 401s seen so far.
    fn state(
        account: Account,
        retries_left: u32,
        challenges: u32,
        rechallenge: Rechallenge,
    ) -> State {
        State {
            account,
            retries_left,
            challenges,
            rechallenge,
            resent: false,
        }
    }

    fn fresh() -> State {
        State::new(1)
    }

    fn throttled(status: u16, asked: Option<u64>, wait: u64, remaining: u64) -> Answer {
        Answer::Throttled {
            status,
            asked: asked.map(Duration::from_secs),
            wait: SECOND * u32::try_from(wait).unwrap_or(u32::MAX),
            remaining: SECOND * u32::try_from(remaining).unwrap_or(u32::MAX),
        }
    }

    fn lost(error: HttpError, resend: Resend) -> Answer {
        Answer::Lost {
            error,
            resend,
            pause: Duration::from_millis(230),
        }
    }

    fn auth_failed(privilege: bool) -> Step {
        Step::Fail(CallError::AuthFailed { privilege })
    }

    fn throttle_error(status: u16, asked_secs: Option<u64>) -> Step {
        Step::Fail(CallError::Throttled { status, asked_secs })
    }

    #[test]
    fn every_answer_leads_to_its_step() {
        use Account::{Proven, Unproven};
        use Rechallenge::{Spent, Unused};
        let reset = || HttpError::Reset("peer reset".into());
        let anonymous_401 = |nonce| Answer::Unauthorized {
            sent: Sent::Anonymous,
            nonce,
        };
        let rejected_401 = |nonce| Answer::Unauthorized {
            sent: Sent::Credentials,
            nonce,
        };
        // (why, state before, answer, state after, step)
        let rows: Vec<(&str, State, Answer, State, Step)> = vec![
            (
                "an anonymous answer proves nothing",
                fresh(),
                Answer::Answered {
                    sent: Sent::Anonymous,
                },
                fresh(),
                Step::Done,
            ),
            (
                "an answer to credentials proves the account",
                fresh(),
                Answer::Answered {
                    sent: Sent::Credentials,
                },
                state(Proven, 1, 0, Unused),
                Step::Done,
            ),
            (
                "a proven account stays proven",
                state(Proven, 0, 1, Spent),
                Answer::Answered {
                    sent: Sent::Anonymous,
                },
                state(Proven, 0, 1, Spent),
                Step::Done,
            ),
            (
                "the first challenge is answered",
                fresh(),
                anonymous_401(Nonce::Fresh),
                state(Unproven, 1, 1, Unused),
                Step::Rechallenge,
            ),
            (
                "a second challenge is answered",
                state(Unproven, 1, 1, Unused),
                anonymous_401(Nonce::Stale),
                state(Unproven, 1, 2, Unused),
                Step::Rechallenge,
            ),
            (
                "a third challenge is not",
                state(Unproven, 1, 2, Unused),
                anonymous_401(Nonce::Fresh),
                state(Unproven, 1, 3, Unused),
                auth_failed(false),
            ),
            (
                "a third challenge for a proven account: privilege",
                state(Proven, 1, 2, Unused),
                anonymous_401(Nonce::Fresh),
                state(Proven, 1, 3, Unused),
                auth_failed(true),
            ),
            (
                "wrong credentials: adopt the challenge, then fail",
                state(Unproven, 1, 1, Unused),
                rejected_401(Nonce::Fresh),
                state(Unproven, 1, 1, Spent),
                Step::AdoptAndFail(CallError::AuthFailed { privilege: false }),
            ),
            (
                "a stale nonce is answered once",
                state(Unproven, 1, 1, Unused),
                rejected_401(Nonce::Stale),
                state(Unproven, 1, 1, Spent),
                Step::Rechallenge,
            ),
            (
                "a stale nonce is not answered twice",
                state(Unproven, 1, 1, Spent),
                rejected_401(Nonce::Stale),
                state(Unproven, 1, 1, Spent),
                auth_failed(false),
            ),
            (
                "a proven account gets one more try, even without stale=true",
                state(Proven, 1, 0, Unused),
                rejected_401(Nonce::Fresh),
                state(Proven, 1, 0, Spent),
                Step::Rechallenge,
            ),
            (
                "a proven account refused twice lacks the privilege",
                state(Proven, 1, 0, Spent),
                rejected_401(Nonce::Fresh),
                state(Proven, 1, 0, Spent),
                auth_failed(true),
            ),
            (
                "throttled with a retry left: back off",
                fresh(),
                throttled(403, None, 12, 30),
                state(Unproven, 0, 0, Unused),
                Step::Backoff(SECOND * 12),
            ),
            (
                "throttled without retries: fail",
                state(Unproven, 0, 0, Unused),
                throttled(429, None, 12, 30),
                state(Unproven, 0, 0, Unused),
                throttle_error(429, None),
            ),
            (
                "a backoff ending at the deadline is not slept",
                fresh(),
                throttled(503, None, 30, 30),
                fresh(),
                throttle_error(503, None),
            ),
            (
                "a backoff ending past the deadline is not slept",
                fresh(),
                throttled(503, None, 31, 30),
                fresh(),
                throttle_error(503, None),
            ),
            (
                "Retry-After at the cap is honoured",
                fresh(),
                throttled(429, Some(60), 70, 100),
                state(Unproven, 0, 0, Unused),
                Step::Backoff(SECOND * 70),
            ),
            (
                "Retry-After beyond the cap fails at once, saying what was asked",
                fresh(),
                throttled(429, Some(61), 70, 1000),
                fresh(),
                throttle_error(429, Some(61)),
            ),
            (
                "Retry-After beyond the deadline fails at once, saying what was asked",
                fresh(),
                throttled(429, Some(30), 36, 20),
                fresh(),
                throttle_error(429, Some(30)),
            ),
            (
                "a read reset in transit is sent again",
                fresh(),
                lost(reset(), Resend::IfTransient),
                state(Unproven, 0, 0, Unused),
                Step::Backoff(Duration::from_millis(230)),
            ),
            (
                "not once the retries are spent",
                state(Unproven, 0, 0, Unused),
                lost(reset(), Resend::IfTransient),
                state(Unproven, 0, 0, Unused),
                Step::Fail(CallError::Http(reset())),
            ),
            (
                "a write is never sent again",
                fresh(),
                lost(reset(), Resend::Never),
                fresh(),
                Step::Fail(CallError::Http(reset())),
            ),
            (
                "a reset right after a challenge is sent again at once, no retry spent",
                state(Unproven, 0, 1, Unused),
                lost(reset(), Resend::IfTransient),
                State {
                    resent: true,
                    ..state(Unproven, 0, 1, Unused)
                },
                Step::Resend,
            ),
            (
                "but only once a request",
                State {
                    resent: true,
                    ..state(Unproven, 0, 1, Unused)
                },
                lost(reset(), Resend::IfTransient),
                State {
                    resent: true,
                    ..state(Unproven, 0, 1, Unused)
                },
                Step::Fail(CallError::Http(reset())),
            ),
            (
                "and never for a write",
                state(Unproven, 1, 1, Unused),
                lost(reset(), Resend::Never),
                state(Unproven, 1, 1, Unused),
                Step::Fail(CallError::Http(reset())),
            ),
            (
                "a timeout is not transient",
                fresh(),
                lost(HttpError::Timeout(SECOND), Resend::IfTransient),
                fresh(),
                Step::Fail(CallError::Http(HttpError::Timeout(SECOND))),
            ),
        ];
        for (why, before, answer, after, step) in rows {
            assert_eq!(on_answer(before, answer), (after, step), "{why}");
        }
    }

    #[test]
    fn a_new_request_starts_its_handshake_afresh_but_keeps_what_was_learned() {
        let spent = state(Account::Proven, 0, 2, Rechallenge::Spent);
        assert_eq!(
            spent.for_request(),
            state(Account::Proven, 0, 0, Rechallenge::Unused)
        );
        assert_eq!(
            State::new(3),
            state(Account::Unproven, 3, 0, Rechallenge::Unused)
        );
    }
}
