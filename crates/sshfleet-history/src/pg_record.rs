//! Recording a run into the PostgreSQL history: one transaction from `begin_run` to
//! `finish`, the devices' writes gathered and sent in batches (an unchanged device extends
//! its period, a changed or new one opens a period), each batch a few array-bound
//! statements rather than a round trip per device.

use std::collections::HashMap;

use sshfleet_report::read::Observation;
use sshfleet_report::record::WaiverTag;
use sshfleet_report::{DeviceRecord, Summary};

use crate::pg::{Pg, SCOPE_LOCK};
use crate::spool::{run_uid, Kept, LostRun};
use crate::{Ending, HistoryError, RunInfo};

/// Devices gathered before a batch is sent.
const BATCH: usize = 20_000;

/// A period the run extends: the device's state is the one its period holds.
struct Extend {
    interval: i64,
    seen: String,
    name: String,
    site: String,
    waiver: Option<String>,
}

/// A period the run opens, for the device's track (known from the baseline) or its key.
struct Open {
    track: Option<i64>,
    key: String,
    seen: String,
    address: String,
    serial: Option<String>,
    name: String,
    site: String,
    status: String,
    ssh_enabled: Option<bool>,
    compliant: Option<bool>,
    waiver: Option<String>,
    ssh_host_key: Option<String>,
}

/// Records one run into PostgreSQL.
pub(crate) struct PgRecorder {
    pg: Pg,
    run: i64,
    scope: String,
    source: Source,
    extends: Vec<Extend>,
    opens: Vec<Open>,
    /// The first failure; recording stops there (the report goes on).
    error: Option<HistoryError>,
    finished: bool,
}

/// What a recorder records: a run of this process, or one pushed from a spool.
enum Source {
    /// Its devices held until its commit: should the store be lost before, the run is
    /// recorded from them into the spool (`None` once committed or taken).
    Live(Option<Box<LostRun>>),
    /// A spooled run: when it finished (else when it is closed).
    Pushed { finished_at: Option<String> },
}

/// Months of partitions made ready around a run's start (a run, or a spooled one pushed
/// later, spans at most these).
const PARTITION_MARGIN_MS: i64 = 32 * 24 * 3600 * 1000;

/// Where a run comes from: this process now, or a spool being pushed (its uid and times).
pub(crate) struct Origin {
    /// The command as the spool recorded it (else `RunInfo::command`).
    pub(crate) command: Option<String>,
    /// The uid (see [`run_uid`]).
    pub(crate) uid: String,
    /// The uid an earlier sshfleet gave a spooled run when it pushed it, looked for too.
    pub(crate) former_uid: Option<String>,
    pub(crate) started_at: String,
    pub(crate) finished_at: Option<String>,
}

/// A run begun: being recorded (with the previous run's observations), or there already.
pub(crate) enum Begun {
    Recording(Box<PgRecorder>, Vec<Observation>),
    /// A run of the same uid is in the store: its id there. Nothing was written.
    There(i64),
}

impl Pg {
    /// Starts recording a run: makes its partitions ready, opens its transaction, takes its
    /// scope's lock (refused as locked after a bounded wait while another run of the same
    /// scope is recording) and returns the previous completed run's observations.
    pub(crate) fn begin_run(
        self,
        info: &RunInfo,
    ) -> Result<(PgRecorder, Vec<Observation>), HistoryError> {
        let started_at = sshfleet_core::time::now_rfc3339();
        let started = started_at.clone();
        let origin = Origin {
            command: None,
            uid: run_uid(
                info.command,
                &info.scope,
                &info.inventory_fingerprint,
                info.shard.as_deref(),
                info.target.as_deref(),
                &started_at,
            ),
            former_uid: None,
            started_at,
            finished_at: None,
        };
        let location = self.location.clone();
        match self.begin(info, origin)? {
            Begun::Recording(mut recorder, baseline) => {
                recorder.source = Source::Live(Some(Box::new(LostRun {
                    info: info.clone(),
                    started_at: started,
                    // Sized once, as the previous run was: the run holds a few hundred
                    // bytes a device, and a vector grown by doubling would peak at twice.
                    devices: Vec::with_capacity(baseline.len()),
                })));
                Ok((*recorder, baseline))
            }
            Begun::There(run) => Err(HistoryError::Postgres {
                store: location,
                reason: format!("the run was not recorded: run {run} has its uid"),
            }),
        }
    }

    /// [`Pg::begin_run`] for a run from `origin`, unless a run of its uid is there already
    /// (nothing is written then).
    pub(crate) fn begin(self, info: &RunInfo, origin: Origin) -> Result<Begun, HistoryError> {
        let at = sshfleet_core::time::parse_rfc3339_ms(&origin.started_at)
            .unwrap_or_else(sshfleet_core::time::now_unix_ms);
        let around = |ms: i64| sshfleet_core::time::format_rfc3339_millis(ms);
        // A month that cannot be made now (a long run holds the table) is made by a later
        // run; its periods meanwhile go to the default partition.
        if let Err(e) = self.ensure_partitions(
            &around(at.saturating_sub(PARTITION_MARGIN_MS)),
            &around(at.saturating_add(PARTITION_MARGIN_MS)),
        ) {
            tracing::warn!(error = %e, "history: a monthly partition was not made");
        }
        let client = &self.client;
        let opened = self.block(async {
            client
                .batch_execute("BEGIN; SET LOCAL lock_timeout = '2s'")
                .await?;
            let opened = open_run(client, info, &origin).await;
            if !matches!(opened, Ok(Opened::New(..))) {
                let _ = client.batch_execute("ROLLBACK").await;
            }
            opened
        });
        let (run, baseline) = match opened? {
            Opened::New(run, baseline) => (run, baseline),
            Opened::There(run) => return Ok(Begun::There(run)),
        };
        let recorder = PgRecorder {
            pg: self,
            run,
            scope: info.scope.clone(),
            source: Source::Pushed {
                finished_at: origin.finished_at,
            },
            extends: Vec::new(),
            opens: Vec::new(),
            error: None,
            finished: false,
        };
        Ok(Begun::Recording(Box::new(recorder), baseline))
    }
}

/// What [`open_run`] found: a new run row, or the run of the same uid.
enum Opened {
    New(i64, Vec<Observation>),
    There(i64),
}

/// The run that has one of these uids, if any.
async fn run_of_uid(
    client: &tokio_postgres::Client,
    uids: &[&str],
) -> Result<Option<i64>, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT id FROM runs WHERE uid = ANY($1) ORDER BY id LIMIT 1",
            &[&uids],
        )
        .await?;
    row.map(|r| r.try_get(0)).transpose()
}

/// Inside the run's transaction: the scope's lock, the run of the same uid if there is one,
/// else the baseline and the run's row.
async fn open_run(
    client: &tokio_postgres::Client,
    info: &RunInfo,
    origin: &Origin,
) -> Result<Opened, tokio_postgres::Error> {
    client
        .execute(
            &format!("SELECT pg_advisory_xact_lock({SCOPE_LOCK}, hashtext($1))"),
            &[&info.scope],
        )
        .await?;
    client.batch_execute("SET LOCAL lock_timeout = 0").await?;
    let mut uids = vec![origin.uid.as_str()];
    uids.extend(origin.former_uid.as_deref());
    if let Some(there) = run_of_uid(client, &uids).await? {
        return Ok(Opened::There(there));
    }
    let baseline = crate::pg_read::baseline(client, &info.scope).await?;
    let run = client
        .query_opt(
            "INSERT INTO runs (uid, command, scope, inventory_fingerprint, shard, target,
                               started_at)
             VALUES ($7, $1, $2, $3, $4, $5, $6)
             ON CONFLICT (uid) DO NOTHING
             RETURNING id",
            &[
                &origin.command.as_deref().unwrap_or(info.command),
                &info.scope,
                &info.inventory_fingerprint,
                &info.shard,
                &info.target,
                &origin.started_at,
                &origin.uid,
            ],
        )
        .await?;
    match run {
        Some(row) => Ok(Opened::New(row.try_get(0)?, baseline)),
        None => Ok(Opened::There(
            run_of_uid(client, &uids).await?.unwrap_or_default(),
        )),
    }
}

impl PgRecorder {
    pub(crate) fn run_id(&self) -> i64 {
        self.run
    }

    /// Gathers `rec`: extends the device's present period when its state is the one `before`
    /// (the previous run's) had, else opens a new period; sends a full batch.
    pub(crate) fn record(&mut self, rec: &DeviceRecord, before: Option<&Observation>) {
        if let Source::Live(Some(held)) = &mut self.source {
            held.devices.push(Kept::of(rec));
        }
        if self.error.is_some() {
            return;
        }
        let waiver = rec.waiver.as_ref().map(|w| WaiverTag::as_str(w).to_owned());
        let stored = before.and_then(|b| b.stored.map(|s| (b, s)));
        match stored {
            Some((before, stored)) if crate::same_state(before, rec) => {
                self.extends.push(Extend {
                    interval: stored.interval,
                    seen: rec.checked_at.clone(),
                    name: rec.name.clone(),
                    site: rec.site.clone(),
                    waiver,
                });
            }
            _ => self.opens.push(Open {
                track: stored.map(|(_, s)| s.track),
                key: match &rec.serial {
                    Some(serial) => format!("serial:{serial}"),
                    None => format!("address:{}", rec.address),
                },
                seen: rec.checked_at.clone(),
                address: rec.address.clone(),
                serial: rec.serial.clone(),
                name: rec.name.clone(),
                site: rec.site.clone(),
                status: rec.status.as_str().to_owned(),
                ssh_enabled: rec.ssh_enabled,
                compliant: rec.compliant,
                waiver,
                ssh_host_key: rec.ssh.host_key.clone(),
            }),
        }
        if self.extends.len().saturating_add(self.opens.len()) >= BATCH {
            self.flush();
        }
    }

    /// Sends what is gathered; a failure stops the recording (kept for `finish`).
    fn flush(&mut self) {
        let extends = std::mem::take(&mut self.extends);
        let opens = std::mem::take(&mut self.opens);
        let (client, run, scope) = (&self.pg.client, self.run, self.scope.as_str());
        let sent = self.pg.block(async move {
            extend(client, run, &extends).await?;
            open(client, run, scope, &opens).await
        });
        if let Err(e) = sent {
            tracing::warn!(error = %e, "history: recording stopped");
            self.error = Some(e);
        }
    }

    /// Closes the run with its counts and commits everything.
    pub(crate) fn finish(
        &mut self,
        summary: &Summary,
        ending: Ending,
    ) -> Result<i64, HistoryError> {
        if self.finished {
            return Ok(self.run);
        }
        self.finished = true;
        if self.error.is_none() {
            self.flush();
        }
        let client = &self.pg.client;
        if let Some(e) = self.error.take() {
            // A connection gone (or not answering) is not asked again: its session's end
            // rolls the transaction back.
            if !matches!(e, HistoryError::Unreachable { .. }) {
                let _ = self.pg.block(client.batch_execute("ROLLBACK"));
            }
            return Err(e);
        }
        let counts = crate::run_counts(summary);
        let finished = match &self.source {
            Source::Pushed {
                finished_at: Some(at),
            } => at.clone(),
            _ => sshfleet_core::time::now_rfc3339(),
        };
        let run = self.run;
        let done = self.pg.block(close(client, run, &finished, ending, counts));
        done?;
        // Committed: nothing is left to hold for the spool.
        if let Source::Live(held) = &mut self.source {
            *held = None;
        }
        Ok(self.run)
    }

    /// The run as held since its start, once its commit failed (the store lost meanwhile),
    /// for the spool; `None` for a run that holds none (pushed, or taken already).
    pub(crate) fn take_lost(&mut self) -> Option<LostRun> {
        match &mut self.source {
            Source::Live(held) => held.take().map(|held| *held),
            Source::Pushed { .. } => None,
        }
    }
}

/// Closes run `run` (its end, how it ended, its counts) and commits its transaction; rolls
/// it back should the close fail.
async fn close(
    client: &tokio_postgres::Client,
    run: i64,
    finished: &str,
    ending: Ending,
    counts: [i64; 8],
) -> Result<(), tokio_postgres::Error> {
    let interrupted = ending == Ending::Interrupted;
    let [devices, findings, compliant, non_compliant, not_checked, ssh, waived, regressed] = counts;
    let closed = client
        .execute(
            "UPDATE runs SET finished_at = $1, interrupted = $2, devices = $3,
                    findings = $4, compliant = $5, non_compliant = $6, not_checked = $7,
                    ssh_enabled = $8, waived = $9, regressed = $10
             WHERE id = $11",
            &[
                &finished,
                &interrupted,
                &devices,
                &findings,
                &compliant,
                &non_compliant,
                &not_checked,
                &ssh,
                &waived,
                &regressed,
                &run,
            ],
        )
        .await;
    match closed {
        Ok(_) => client.batch_execute("COMMIT").await,
        Err(e) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
    }
}

/// Extends the periods of unchanged devices to this run, in one statement.
async fn extend(
    client: &tokio_postgres::Client,
    run: i64,
    extends: &[Extend],
) -> Result<(), tokio_postgres::Error> {
    if extends.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = extends.iter().map(|e| e.interval).collect();
    let seen: Vec<&str> = extends.iter().map(|e| e.seen.as_str()).collect();
    let names: Vec<&str> = extends.iter().map(|e| e.name.as_str()).collect();
    let sites: Vec<&str> = extends.iter().map(|e| e.site.as_str()).collect();
    let waivers: Vec<Option<&str>> = extends.iter().map(|e| e.waiver.as_deref()).collect();
    client
        .execute(
            "UPDATE intervals i SET run_last = $1, last_seen = u.seen,
                    last_at = u.seen::timestamptz, name = u.name, site = u.site, waiver = u.waiver
             FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[])
                  AS u(id, seen, name, site, waiver)
             WHERE i.id = u.id",
            &[&run, &ids, &seen, &names, &sites, &waivers],
        )
        .await?;
    Ok(())
}

/// Opens the periods of new and changed devices: first the tracks of new devices (one per
/// key, the first device's time), then the periods, in the run's order.
async fn open(
    client: &tokio_postgres::Client,
    run: i64,
    scope: &str,
    opens: &[Open],
) -> Result<(), tokio_postgres::Error> {
    if opens.is_empty() {
        return Ok(());
    }
    let tracks = tracks_of(client, scope, opens).await?;
    let track: Vec<i64> = opens
        .iter()
        .map(|o| o.track.or_else(|| tracks.get(&o.key).copied()).unwrap_or(0))
        .collect();
    let text = |f: fn(&Open) -> &str| opens.iter().map(f).collect::<Vec<&str>>();
    let (seen, address, name, site, status) = (
        text(|o| &o.seen),
        text(|o| &o.address),
        text(|o| &o.name),
        text(|o| &o.site),
        text(|o| &o.status),
    );
    let serial: Vec<Option<&str>> = opens.iter().map(|o| o.serial.as_deref()).collect();
    let waiver: Vec<Option<&str>> = opens.iter().map(|o| o.waiver.as_deref()).collect();
    let ssh: Vec<Option<bool>> = opens.iter().map(|o| o.ssh_enabled).collect();
    let compliant: Vec<Option<bool>> = opens.iter().map(|o| o.compliant).collect();
    let host_key: Vec<Option<&str>> = opens.iter().map(|o| o.ssh_host_key.as_deref()).collect();
    client
        .execute(
            "INSERT INTO intervals (track, run_first, run_last, first_seen, last_seen, last_at,
                                    address, serial, name, site, status, ssh_enabled,
                                    compliant, waiver, ssh_host_key)
             SELECT u.track, $1, $1, u.seen, u.seen, u.seen::timestamptz, u.address, u.serial,
                    u.name, u.site, u.status, u.ssh, u.compliant, u.waiver, u.host_key
             FROM unnest($2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::text[], $9::bool[], $10::bool[], $11::text[],
                         $12::text[])
                  WITH ORDINALITY
                  AS u(track, seen, address, serial, name, site, status, ssh, compliant, waiver,
                       host_key, n)
             ORDER BY u.n",
            &[
                &run, &track, &seen, &address, &serial, &name, &site, &status, &ssh, &compliant,
                &waiver, &host_key,
            ],
        )
        .await?;
    Ok(())
}

/// The track of every key of `opens` without one (made when new), by key.
async fn tracks_of(
    client: &tokio_postgres::Client,
    scope: &str,
    opens: &[Open],
) -> Result<HashMap<String, i64>, tokio_postgres::Error> {
    let mut keys: Vec<&str> = Vec::new();
    let mut firsts: Vec<&str> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for o in opens.iter().filter(|o| o.track.is_none()) {
        if seen.insert(o.key.as_str()) {
            keys.push(&o.key);
            firsts.push(&o.seen);
        }
    }
    let mut tracks = HashMap::with_capacity(keys.len());
    if keys.is_empty() {
        return Ok(tracks);
    }
    let rows = client
        .query(
            "INSERT INTO tracks (scope, key, first_seen)
             SELECT $1, u.key, u.first_seen
             FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS u(key, first_seen, n)
             ORDER BY u.n
             ON CONFLICT (scope, key) DO UPDATE SET key = excluded.key
             RETURNING key, id",
            &[&scope, &keys, &firsts],
        )
        .await?;
    for row in rows {
        tracks.insert(row.try_get(0)?, row.try_get(1)?);
    }
    Ok(tracks)
}
