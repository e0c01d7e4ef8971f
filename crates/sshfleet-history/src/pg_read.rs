//! The drift baseline read from the PostgreSQL history, inside a run's transaction.

use sshfleet_report::read::{Observation, Stored};
use sshfleet_report::Status;
use tokio_postgres::{Client, Row};

/// The latest period of every device the scope's previous completed run saw (two, when two
/// devices claimed one serial), as the SQLite history reads it.
pub(crate) async fn baseline(
    client: &Client,
    scope: &str,
) -> Result<Vec<Observation>, tokio_postgres::Error> {
    let previous: Option<i64> = client
        .query_one(
            "SELECT max(id) FROM runs WHERE scope = $1 AND finished_at IS NOT NULL
             AND NOT interrupted",
            &[&scope],
        )
        .await?
        .try_get(0)?;
    let Some(previous) = previous else {
        return Ok(Vec::new());
    };
    let rows = client
        .query(
            "SELECT i.id, t.id, t.first_seen, i.first_seen, i.last_seen, i.address, i.serial,
                    i.name, i.site, i.status, i.ssh_enabled, i.compliant, i.waiver IS NOT NULL,
                    i.ssh_host_key
             FROM intervals i JOIN tracks t ON t.id = i.track
             WHERE t.scope = $1 AND i.run_last >= $2
               AND i.run_last = (SELECT max(run_last) FROM intervals WHERE track = t.id)",
            &[&scope, &previous],
        )
        .await?;
    rows.iter().map(observation).collect()
}

/// A stored time (RFC 3339 text) as Unix milliseconds; text that is not one is no time.
fn instant(r: &Row, column: usize) -> Result<Option<i64>, tokio_postgres::Error> {
    let text: Option<String> = r.try_get(column)?;
    Ok(text.and_then(|t| sshfleet_core::time::parse_rfc3339_ms(&t)))
}

fn observation(r: &Row) -> Result<Observation, tokio_postgres::Error> {
    let status: String = r.try_get(9)?;
    Ok(Observation {
        stored: Some(Stored {
            interval: r.try_get(0)?,
            track: r.try_get(1)?,
        }),
        first_seen: instant(r, 2)?,
        state_since: instant(r, 3)?,
        checked_at: instant(r, 4)?,
        address: r.try_get(5)?,
        serial: r.try_get(6)?,
        name: r.try_get(7)?,
        site: r.try_get(8)?,
        status: Status::parse(&status).unwrap_or(Status::ProtocolError),
        ssh_enabled: r.try_get(10)?,
        compliant: r.try_get(11)?,
        change: None,
        waived: r.try_get(12)?,
        ssh_host_key: r.try_get(13)?,
    })
}
