//! The single operations of `ssh-users`: get, available, and the writes (create,
//! set-password, attach, detach, and the bulk detach of one user from every device), each
//! planned without `--apply` and rate-limited with it.

use anyhow::bail;

use super::super::args::{
    AttachArgs, AvailableArgs, CreateArgs, DetachArgs, GetArgs, SetPasswordArgs, WriteArgs,
};
use super::super::{install_signal_handlers, Exit, Stopping};
use super::{connect, connect_until, fail, open_rows, read_password, write_rows};
use sshfleet_engine::equinix::bulk::{BulkDetach, Finished, Mode, Outcome};
use sshfleet_equinix::{Availability, EquinixClient, EquinixError, NewUser};
use sshfleet_report::ssh_users::{AvailabilityRow, ChangeRow, UserRow};

pub(super) async fn get(args: GetArgs) -> anyhow::Result<Exit> {
    let client = connect(&args.api, 1, None)?;
    let user = match client.get_user(&args.uuid).await {
        Ok(user) => user,
        Err(e) => return Ok(fail(&e)),
    };
    let row = UserRow::from(&user);
    write_rows(&args.api, std::slice::from_ref(&row))?;
    Ok(if row.flags.is_empty() {
        Exit::Clean
    } else {
        Exit::Findings
    })
}

pub(super) async fn available(args: AvailableArgs) -> anyhow::Result<Exit> {
    let client = connect(&args.api, 1, None)?;
    let answer = match client.availability(&args.username).await {
        Ok(answer) => answer,
        Err(e) => return Ok(fail(&e)),
    };
    let row = match answer {
        Availability::Available => AvailabilityRow {
            username: args.username.clone(),
            available: true,
            error_codes: Vec::new(),
            reason: None,
        },
        Availability::Unavailable(problems) => AvailabilityRow {
            username: args.username.clone(),
            available: false,
            error_codes: problems.iter().filter_map(|p| p.code.clone()).collect(),
            reason: Some(
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
            .filter(|r| !r.is_empty()),
        },
    };
    write_rows(&args.api, std::slice::from_ref(&row))?;
    Ok(if row.available {
        Exit::Clean
    } else {
        Exit::Findings
    })
}

pub(super) async fn create(args: CreateArgs) -> anyhow::Result<Exit> {
    let mut row = ChangeRow {
        action: "create",
        username: Some(args.username.clone()),
        device_uuid: Some(args.device.clone()),
        ..ChangeRow::default()
    };
    if !args.write.apply {
        return plan(&args.api, row);
    }
    let password = read_password(args.password_env.as_deref())?;
    let client = connect(&args.api, 1, Some(&args.write))?;
    let user = NewUser {
        username: args.username.clone(),
        password,
        device_uuid: args.device.clone(),
    };
    let outcome = client.create(&user).await.map(|uuid| {
        row.user_uuid = Some(uuid);
    });
    finish(&args.api, row, outcome)
}

pub(super) async fn set_password(args: SetPasswordArgs) -> anyhow::Result<Exit> {
    let row = ChangeRow {
        action: "set_password",
        user_uuid: Some(args.uuid.clone()),
        ..ChangeRow::default()
    };
    if !args.write.apply {
        return plan(&args.api, row);
    }
    let password = read_password(args.password_env.as_deref())?;
    let client = connect(&args.api, 1, Some(&args.write))?;
    let outcome = client.set_password(&args.uuid, &password).await;
    finish(&args.api, row, outcome)
}

pub(super) async fn attach(args: AttachArgs) -> anyhow::Result<Exit> {
    let row = ChangeRow {
        action: "attach",
        user_uuid: Some(args.user_uuid.clone()),
        device_uuid: Some(args.device_uuid.clone()),
        ..ChangeRow::default()
    };
    if !args.write.apply {
        return plan(&args.api, row);
    }
    let client = connect(&args.api, 1, Some(&args.write))?;
    let outcome = client.attach(&args.user_uuid, &args.device_uuid).await;
    finish(&args.api, row, outcome)
}

pub(super) async fn detach(args: DetachArgs) -> anyhow::Result<Exit> {
    if let Some(username) = args.username.clone().filter(|_| args.all_devices) {
        return detach_everywhere(&args, &username).await;
    }
    let (Some(user), Some(device)) = (args.user_uuid.clone(), args.device_uuid.clone()) else {
        anyhow::bail!("detach needs USER_UUID DEVICE_UUID, or --username U --all-devices");
    };
    if !args.write.apply {
        return plan(&args.api, planned_detach(&user, None, &device));
    }
    let client = connect(&args.api, 1, Some(&args.write))?;
    if !args.allow_user_deletion {
        refuse_if_last_device(&client, &user, &device).await?;
    }
    let outcome = match client.detach(&user, &device).await {
        Ok(done) => Outcome::Detached(done),
        Err(e) => Outcome::Failed(e),
    };
    let row = detach_row(planned_detach(&user, None, &device), outcome);
    let failed = row.error.is_some();
    write_rows(&args.api, &[row])?;
    Ok(if failed { Exit::Findings } else { Exit::Clean })
}

/// Lists the user's entries, then detaches each device under the write rate limit.
async fn detach_everywhere(args: &DetachArgs, username: &str) -> anyhow::Result<Exit> {
    let (_trigger, shutdown) = install_signal_handlers(args.api.verbosity(), Stopping::Detaches);
    let client = connect_until(&args.api, 4, Some(&args.write), shutdown.clone())?;
    let plan = match BulkDetach::plan(client.clone(), username).await {
        Ok(plan) => plan,
        Err(e) => return Ok(fail(&e)),
    };
    let accounts = plan
        .targets
        .iter()
        .map(|t| t.user_uuid.as_str())
        .collect::<std::collections::HashSet<_>>()
        .len();
    if !args.api.verbosity().is_quiet() {
        diagln!(
            "{username}: {} user entr{} on {} device(s){}",
            plan.entries,
            if plan.entries == 1 { "y" } else { "ies" },
            plan.targets.len(),
            if args.write.apply {
                ""
            } else {
                " (dry run: pass --apply to detach)"
            }
        );
    }
    if accounts > 0 {
        // Said even with -q: the API deletes a user with its last device.
        diagln!(
            "detaching {username} from every device deletes {accounts} account(s) with their passwords; no revert can restore them"
        );
        if args.write.apply && !args.allow_user_deletion {
            bail!("nothing was detached: pass --allow-user-deletion to delete the account(s)");
        }
    }
    // Each row is written and flushed as its detach completes: a crash keeps what was done.
    let mut out = open_rows::<ChangeRow>(&args.api)?;
    let finished = plan
        .run(&client, args.write.mode(), &shutdown, |target, outcome| {
            let planned = planned_detach(
                &target.user_uuid,
                Some(&target.username),
                &target.device_uuid,
            );
            out.write(&detach_row(planned, outcome))?;
            out.flush()
        })
        .await?;
    out.finish()?;
    Ok(match finished {
        Finished::Interrupted => Exit::Interrupted,
        Finished::Done { failed: 0 } => Exit::Clean,
        Finished::Done { failed } => {
            if !args.api.verbosity().is_quiet() {
                diagln!("{failed} detach(es) failed; see the error column");
            }
            Exit::Findings
        }
    })
}

impl WriteArgs {
    /// `--apply` sends the detaches; without it they are only listed.
    fn mode(&self) -> Mode {
        if self.apply {
            Mode::Apply
        } else {
            Mode::DryRun
        }
    }
}

/// Refuses (before anything is sent) a detach that would remove the user's last device, or
/// of a user whose devices cannot be read: the API deletes a user with its last device.
async fn refuse_if_last_device(
    client: &EquinixClient,
    user: &str,
    device: &str,
) -> anyhow::Result<()> {
    let read = client.get_user(user).await;
    let others = match &read {
        Ok(found) => found
            .device_uuids
            .as_ref()
            .map(|devices| devices.iter().filter(|d| *d != device).count()),
        Err(_) => None,
    };
    match others {
        Some(n) if n > 0 => Ok(()),
        Some(_) => bail!(
            "nothing was detached: {device} is the last device of user {user}, and the API deletes a user with its last device (its password cannot be restored); pass --allow-user-deletion to go on"
        ),
        None => bail!(
            "nothing was detached: the devices of user {user} could not be read ({}), so this detach may delete the user; pass --allow-user-deletion to go on",
            read.err().map_or_else(|| "no device list in the answer".to_owned(), |e| sshfleet_core::inert::message(&e.to_string()))
        ),
    }
}

/// The row of one detach: as planned, with what the API answered.
fn detach_row(mut row: ChangeRow, outcome: Outcome) -> ChangeRow {
    match outcome {
        Outcome::Planned => {}
        Outcome::Detached(done) => {
            row.applied = true;
            row.user_deleted = Some(done.user_deleted);
            row.association_deleted = Some(done.association_deleted);
        }
        Outcome::Failed(e) => row.error = Some(e.to_string()),
    }
    row
}

fn planned_detach(user: &str, username: Option<&str>, device: &str) -> ChangeRow {
    ChangeRow {
        action: "detach",
        user_uuid: Some(user.to_owned()),
        username: username.map(str::to_owned),
        device_uuid: Some(device.to_owned()),
        ..ChangeRow::default()
    }
}

/// A dry run: the planned change, not applied.
fn plan(api: &super::super::args::ApiArgs, row: ChangeRow) -> anyhow::Result<Exit> {
    if !api.verbosity().is_quiet() {
        diagln!("dry run: pass --apply to make this change");
    }
    write_rows(api, &[row])?;
    Ok(Exit::Clean)
}

fn finish(
    api: &super::super::args::ApiArgs,
    mut row: ChangeRow,
    outcome: Result<(), EquinixError>,
) -> anyhow::Result<Exit> {
    let exit = match &outcome {
        Ok(()) => {
            row.applied = true;
            Exit::Clean
        }
        Err(e) => {
            row.error = Some(e.to_string());
            fail(e)
        }
    };
    write_rows(api, &[row])?;
    Ok(exit)
}
