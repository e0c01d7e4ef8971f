//! Plumbing for the Equinix tests: a mock API in-process and library clients against it.

#![allow(dead_code, reason = "each test module uses a different part")]

use std::sync::Arc;
use std::time::Duration;

use sshfleet_core::secret::Secret;
use sshfleet_core::shutdown::Shutdown;
use sshfleet_equinix::client::Backoff;
use sshfleet_equinix::{
    ClientPolicy, Credentials, EquinixClient, ListFilter, ListingStats, PageFetcher, SshUser,
    TokenSource,
};
use sshfleet_net::{ClientSettings, HttpClient};
use sshfleet_sim::{EquinixFaults, EquinixMock, Fleet, SimConfig};

/// A fleet with no cameras and a mock Equinix API of `users` users.
pub(crate) async fn mock(users: usize, faults: EquinixFaults) -> Fleet {
    mock_with_latency(users, faults, Duration::ZERO).await
}

pub(crate) async fn mock_with_latency(
    users: usize,
    faults: EquinixFaults,
    latency: Duration,
) -> Fleet {
    Fleet::start(SimConfig {
        devices: 0,
        latency,
        equinix_users: Some(users),
        equinix_faults: faults,
        ..SimConfig::default()
    })
    .await
    .expect("mock starts")
}

pub(crate) fn api(fleet: &Fleet) -> &EquinixMock {
    fleet.equinix().expect("the fleet serves the mock API")
}

pub(crate) fn sim_credentials() -> Credentials {
    Credentials::Client {
        id: "sim-client".into(),
        secret: Secret::new("sim-secret"),
    }
}

pub(crate) fn client(fleet: &Fleet, credentials: Credentials) -> Arc<EquinixClient> {
    client_with(fleet, credentials, Backoff::default())
}

pub(crate) fn client_with(
    fleet: &Fleet,
    credentials: Credentials,
    backoff: Backoff,
) -> Arc<EquinixClient> {
    client_stopped_by(fleet, credentials, backoff, Shutdown::never())
}

/// A client whose waits between retries (API calls and token requests) end on `stop`.
pub(crate) fn client_stopped_by(
    fleet: &Fleet,
    credentials: Credentials,
    backoff: Backoff,
    stop: Shutdown,
) -> Arc<EquinixClient> {
    let url = fleet.equinix_url().expect("mock url");
    let settings = ClientSettings {
        timeout: Duration::from_secs(30),
        body_limit: 32 << 20,
        max_idle_per_host: 8,
        ..ClientSettings::default()
    };
    let http = Arc::new(HttpClient::new(&settings).expect("client"));
    let tokens = Arc::new(
        TokenSource::new(http.clone(), &url, credentials, backoff.clone()).with_stop(stop.clone()),
    );
    let policy = ClientPolicy {
        backoff,
        write_limiter: None,
        stop,
    };
    Arc::new(EquinixClient::new(http, url, tokens, policy))
}

/// Lists everything with `concurrency` pages at once; returns the users in delivery order.
pub(crate) async fn list_all(
    client: Arc<EquinixClient>,
    page_size: u64,
    concurrency: usize,
) -> (Vec<SshUser>, ListingStats) {
    let filter = ListFilter {
        verbose: true,
        ..ListFilter::default()
    };
    list_with(PageFetcher::new(client, filter, page_size, concurrency)).await
}

/// Runs `fetcher` to its end; returns the users in delivery order.
pub(crate) async fn list_with(fetcher: PageFetcher) -> (Vec<SshUser>, ListingStats) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let run = tokio::spawn(fetcher.run(tx, Shutdown::never()));
    let mut users = Vec::new();
    while let Some(user) = rx.recv().await {
        users.push(user);
    }
    (users, run.await.expect("listing task"))
}
