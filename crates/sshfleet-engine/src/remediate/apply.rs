//! One planned device written: read again, journal the intent, wait for the permit, write,
//! read back, journal the outcome — every step under the device's one deadline, every way
//! out a record built from its finding.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::device::DeviceContext;
use crate::outcome::{Conclude, Finding};
use crate::remediate::{Outcome, PlannedWrite, Remediator};
use sshfleet_axis::vapix::{Connection, Failure, SshReading};
use sshfleet_core::shutdown::Shutdown;
use sshfleet_inventory::Device;
use sshfleet_report::{Action, DeviceRecord, Remediation, SshState};

pub(super) const JOURNAL_HALTED: &str = "not written: the journal cannot be written";
pub(super) const STOPPED: &str = "not written: the run was stopped";

/// What a write came to: the action taken, the state before it, and the state after (or
/// why it is not known).
struct Written {
    action: Action,
    before: Option<bool>,
    result: Result<bool, Failure>,
    /// Why an answered write is not verified, when the read-back does not say.
    unverified: Option<String>,
}

impl Remediator {
    pub(super) async fn apply_one(&self, planned: PlannedWrite, stop: Shutdown) -> DeviceRecord {
        let PlannedWrite {
            device,
            reading,
            record,
        } = planned;
        if self.halted.load(Ordering::SeqCst) {
            // Not even read again: the journal failed, so this device cannot be written.
            self.unwritten.fetch_add(1, Ordering::Relaxed);
            return not_written(record, reading.enabled, JOURNAL_HALTED);
        }
        let mut ctx = self.scanner.context(&device);
        // Read again right before writing: the state may have changed since the plan (or a
        // killed run's write may have landed), and the read authenticates the session so the
        // write itself goes out at once when its permit comes.
        let before = match ctx.read_back(&reading, Connection::KeepAlive).await {
            Ok(now) if now == self.target.is_enabled() => {
                let key = device.target.key();
                let outcome = Outcome {
                    after: Some(now),
                    verified: true,
                    error: None,
                };
                self.record_outcome(&key, &device.address, outcome);
                let written = Written {
                    action: Action::None,
                    before: Some(now),
                    result: Ok(now),
                    unverified: None,
                };
                return self.finish(record, &ctx, written);
            }
            Ok(now) => now,
            Err(failure) => return skipped(record, &failure),
        };
        match self.clear_to_write(&record, &device, before, stop).await {
            // The wait for the permit is the run's rate limit, not the device's time.
            Ok(waited) => ctx.excuse(waited),
            Err(held) => return held,
        }
        let written = self.write(&mut ctx, &reading, before).await;
        self.finish(record, &ctx, written)
    }

    /// Everything a write waits for: a journal that works, no stop request, the change
    /// window, its intent journaled, its permit. `Err` is the record of a device not written;
    /// `Ok` the time spent waiting for the permit.
    async fn clear_to_write(
        &self,
        record: &DeviceRecord,
        device: &Device,
        before: bool,
        mut stop: Shutdown,
    ) -> Result<Duration, DeviceRecord> {
        if self.halted.load(Ordering::SeqCst) {
            self.unwritten.fetch_add(1, Ordering::Relaxed);
            return Err(not_written(record.clone(), before, JOURNAL_HALTED));
        }
        if stop.is_triggered() {
            return Err(not_written(record.clone(), before, STOPPED));
        }
        if let Some(deferred) = self.outside_window(record) {
            return Err(deferred);
        }
        if let Err(e) = self.journal_intent(&device.target.key(), device) {
            let why = format!("not written: {e}");
            self.unwritten.fetch_add(1, Ordering::Relaxed);
            self.journal_failed(e);
            return Err(not_written(record.clone(), before, &why));
        }
        let waiting = tokio::time::Instant::now();
        tokio::select! {
            biased;
            _ = stop.wait() => return Err(not_written(record.clone(), before, STOPPED)),
            _ = self.permit(&device.site) => {}
        }
        // The wait for the permit may have outlasted the window. The intent stays without an
        // outcome: the next run reads the device again and writes it only if still wrong.
        if let Some(deferred) = self.outside_window(record) {
            return Err(deferred);
        }
        Ok(waiting.elapsed())
    }

    /// The write and its read-back, then the outcome journaled.
    async fn write(
        &self,
        ctx: &mut DeviceContext<'_>,
        reading: &SshReading,
        before: bool,
    ) -> Written {
        let want = self.target.is_enabled();
        let write = ctx.write(reading, want).await;
        let after = ctx.read_back(reading, Connection::Close).await;
        let verified = matches!(after, Ok(now) if now == want);
        tracing::debug!(verified, "verification");
        let error = match (&write, &after) {
            (Err(f), _) | (Ok(()), Err(f)) => Some(f.to_string()),
            (Ok(()), Ok(now)) if !verified => Some(format!(
                "read-back shows SSH still {}",
                SshState::from_enabled(*now)
            )),
            _ => None,
        };
        let device = ctx.device();
        let now = after.as_ref().ok().copied();
        let outcome = Outcome {
            after: now,
            verified,
            error: error.clone(),
        };
        self.record_outcome(&device.target.key(), &device.address, outcome);
        let result = match write {
            Err(failure) if !verified => Err(failure),
            _ => after,
        };
        Written {
            action: Action::Set,
            before: Some(before),
            result,
            unverified: error.filter(|_| !verified),
        }
    }

    /// The device's record after its write (or after finding it already right): what this
    /// visit saw, what planning learned of its API and port, and the remediation.
    fn finish(
        &self,
        plan: DeviceRecord,
        ctx: &DeviceContext<'_>,
        written: Written,
    ) -> DeviceRecord {
        let mut record = ctx.record();
        record.expect = Some(self.target);
        record.method = plan.method;
        record.api_version = plan.api_version;
        record.supported_versions = plan.supported_versions;
        record.attempts += plan.attempts;
        // The port was probed with the planning read, before any write: it is reported as
        // seen then, and its agreement with a configuration since changed is not judged.
        record.ssh_port = plan.ssh_port;
        record.ssh_banner = plan.ssh_banner;
        record.ssh = plan.ssh;
        // The facts (--device-info) were read with the planning read too: the firmware, and
        // the advisories that apply to it, whose finding is judged on the state written.
        record.model = plan.model;
        record.firmware = plan.firmware;
        record.advisories = plan.advisories;
        let after = written.result.as_ref().ok().copied();
        match &written.result {
            Ok(now) => record.conclude(Finding::State(*now)),
            Err(failure) => record.conclude(Finding::Failed(failure)),
        }
        let verified = (written.action == Action::Set || after.is_some())
            .then_some(after == Some(self.target.is_enabled()));
        if verified == Some(false) && record.error.is_none() {
            // The write was taken but the read-back disagrees: the record must say why it is
            // unverified, as the journal does.
            record.error = written.unverified;
        }
        record.remediation = Some(Remediation {
            action: written.action,
            before: written.before,
            after,
            verified,
        });
        record
    }
}

/// A device that could not be read again before its write: skipped, with why.
fn skipped(mut record: DeviceRecord, failure: &Failure) -> DeviceRecord {
    record.conclude(Finding::Failed(failure));
    record.remediation = Some(Remediation {
        action: Action::Skip,
        before: None,
        after: None,
        verified: None,
    });
    record
}

/// A planned write held back: the device as read before it, and why.
pub(super) fn not_written(mut record: DeviceRecord, before: bool, why: &str) -> DeviceRecord {
    record.conclude(Finding::State(before));
    record.error = Some(why.to_owned());
    record.remediation = Some(Remediation {
        action: Action::Set,
        before: Some(before),
        after: None,
        verified: None,
    });
    record
}
