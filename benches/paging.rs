//! Listing Equinix SSH users: concurrent pages after the first against one page at a time
//! (what every public client does), on the in-process mock with 10,000 users and 50 ms per
//! response, 100 users per page.

#![expect(
    clippy::expect_used,
    reason = "a bench that cannot set up has nothing to measure"
)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use sshfleet_core::secret::Secret;
use sshfleet_core::shutdown::Shutdown;
use sshfleet_equinix::client::Backoff;
use sshfleet_equinix::{
    ClientPolicy, Credentials, EquinixClient, ListFilter, PageFetcher, TokenSource,
};
use sshfleet_net::{ClientSettings, HttpClient};
use sshfleet_sim::{Fleet, SimConfig, EQUINIX_CLIENT_ID, EQUINIX_CLIENT_SECRET};

const USERS: usize = 10_000;
const LATENCY: Duration = Duration::from_millis(50);
const PAGE_SIZE: u64 = 100;

fn client(url: String, parallel: usize) -> Arc<EquinixClient> {
    let settings = ClientSettings {
        body_limit: 32 << 20,
        max_idle_per_host: parallel,
        ..ClientSettings::default()
    };
    let http = Arc::new(HttpClient::new(&settings).expect("HTTP client"));
    let credentials = Credentials::Client {
        id: EQUINIX_CLIENT_ID.to_owned(),
        secret: Secret::new(EQUINIX_CLIENT_SECRET),
    };
    let tokens = TokenSource::new(http.clone(), &url, credentials, Backoff::default());
    Arc::new(EquinixClient::new(
        http,
        url,
        Arc::new(tokens),
        ClientPolicy::default(),
    ))
}

/// One whole listing; returns the number of users delivered.
async fn list(client: Arc<EquinixClient>, concurrency: usize) -> u64 {
    let filter = ListFilter {
        verbose: true,
        ..ListFilter::default()
    };
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let fetcher = PageFetcher::new(client, filter, PAGE_SIZE, concurrency);
    let run = tokio::spawn(fetcher.run(tx, Shutdown::never()));
    let mut users = 0u64;
    while rx.recv().await.is_some() {
        users += 1;
    }
    let stats = run.await.expect("listing task");
    assert!(stats.error.is_none(), "{:?}", stats.error);
    users
}

fn paging(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fleet = runtime
        .block_on(Fleet::start(SimConfig {
            devices: 0,
            latency: LATENCY,
            equinix_users: Some(USERS),
            ..SimConfig::default()
        }))
        .expect("mock API");
    let url = fleet.equinix_url().expect("mock URL");
    let mut group = c.benchmark_group("equinix_list_10k_users_50ms");
    group
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(USERS as u64));
    for concurrency in [1, 8, 32] {
        // About ten listings per measurement: one page at a time takes ~5 s a listing.
        let pages_in_turn = (USERS as u64 / PAGE_SIZE).div_ceil(concurrency as u64) + 1;
        group.measurement_time(LATENCY * (pages_in_turn as u32) * 16);
        let client = client(url.clone(), concurrency);
        group.bench_with_input(
            BenchmarkId::new("page_concurrency", concurrency),
            &concurrency,
            |b, &concurrency| {
                b.iter(|| {
                    let users = runtime.block_on(list(client.clone(), concurrency));
                    assert_eq!(users, USERS as u64);
                    std::hint::black_box(users)
                });
            },
        );
    }
    group.finish();
    runtime.block_on(fleet.shutdown());
}

criterion_group!(benches, paging);
criterion_main!(benches);
