//! CPU cost of the per-device hot path: ssh.cgi request encoding, response parsing (simd-json,
//! measured against serde_json on the bodies real cameras send), the Digest header, and the
//! inventory and report work around a scan.

use std::hint::black_box;
use std::io;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use http::{HeaderMap, HeaderValue};
use serde::Deserialize;

use sshfleet_axis::vapix::wire::{self, ApiVersion};
use sshfleet_core::secret::Secret;
use sshfleet_inventory as inventory;
use sshfleet_inventory::{InventoryOptions, Row};
use sshfleet_net::auth::{AuthSession, BasicOverHttp, Credentials, Transport};
use sshfleet_report as report;
use sshfleet_report::{DeviceRecord, Format, Method, Schema, SshState, Status};

/// Bodies exactly as the simulator (and the VAPIX page) shapes them.
const VERSIONS: &str = r#"{"apiVersion":"1.0","context":"sshfleet","method":"getSupportedVersions","data":{"apiVersions":["1.0","1.1"]}}"#;
const SSH_INFO: &str =
    r#"{"apiVersion":"1.1","context":"sshfleet","method":"getSshInfo","data":{"enabled":true}}"#;
const ERROR: &str = r#"{"apiVersion":"1.0","context":"sshfleet","method":"getSshInfo","error":{"code":4001,"message":"The specified version is not supported"}}"#;

/// An AXIS OS challenge as the simulator sends it (Apache-style nonce).
const CHALLENGE_MD5: &str = r#"Digest realm="AXIS_ACCC8E012345", nonce="RRgCC/JgBgA=59f9172a10d35d1e998b3272825c0aca8e195131", algorithm=MD5, qop="auth""#;
const CHALLENGE_SHA256: &str = r#"Digest realm="AXIS_ACCC8E012345", nonce="RRgCC/JgBgA=59f9172a10d35d1e998b3272825c0aca8e195131", algorithm=SHA-256, qop="auth""#;
const CHALLENGE_NO_QOP: &str = r#"Digest realm="AXIS_ACCC8E012345", nonce="RRgCC/JgBgA=59f9172a10d35d1e998b3272825c0aca8e195131", algorithm=MD5"#;

const V1_1: ApiVersion = ApiVersion { major: 1, minor: 1 };

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    group.throughput(Throughput::Elements(1));
    group.bench_function("getSupportedVersions", |b| {
        b.iter(|| black_box(wire::get_supported_versions()))
    });
    group.bench_function("getSshInfo", |b| {
        b.iter(|| wire::get_ssh_info(black_box(V1_1)))
    });
    group.bench_function("setSshConfiguration", |b| {
        b.iter(|| wire::set_ssh_configuration(black_box(V1_1), black_box(false)))
    });
    group.finish();
}

// The client's own wire shapes, so the serde_json comparison parses exactly the same.
use wire::{Envelope, SshInfoData, VersionsData};

/// What every parser must extract, so none of them can skip work.
fn digest_of<D>(e: Envelope<D>, data: impl FnOnce(D) -> usize) -> usize {
    let error = e.error.map_or(0, |e| {
        e.code.unwrap_or_default() as usize + e.message.map_or(0, |m| m.len())
    });
    error + e.data.map_or(0, data)
}

fn parse_body<D: for<'de> Deserialize<'de>>(
    c: &mut Criterion,
    name: &str,
    body: &str,
    library: fn(&mut [u8]) -> usize,
    data: fn(D) -> usize,
) {
    let mut group = c.benchmark_group(format!("parse/{name}"));
    group.throughput(Throughput::Bytes(body.len() as u64));
    let input = body.as_bytes().to_vec();
    // simd-json parses in place: every iteration gets a fresh copy, made outside the timing.
    group.bench_with_input(
        BenchmarkId::new("sshfleet_axis::vapix::wire", body.len()),
        &input,
        |b, input| b.iter_batched_ref(|| input.clone(), |buf| library(buf), BatchSize::SmallInput),
    );
    group.bench_with_input(
        BenchmarkId::new("simd_json::serde", body.len()),
        &input,
        |b, input| {
            b.iter_batched_ref(
                || input.clone(),
                |buf| {
                    simd_json::serde::from_slice::<Envelope<D>>(buf)
                        .map(|e| digest_of(e, data))
                        .unwrap_or_default()
                },
                BatchSize::SmallInput,
            )
        },
    );
    let mut buffers = simd_json::Buffers::default();
    group.bench_with_input(
        BenchmarkId::new("simd_json::serde+buffers", body.len()),
        &input,
        |b, input| {
            b.iter_batched_ref(
                || input.clone(),
                |buf| {
                    simd_json::serde::from_slice_with_buffers::<Envelope<D>>(buf, &mut buffers)
                        .map(|e| digest_of(e, data))
                        .unwrap_or_default()
                },
                BatchSize::SmallInput,
            )
        },
    );
    group.bench_with_input(
        BenchmarkId::new("serde_json", body.len()),
        &input,
        |b, input| {
            b.iter(|| {
                serde_json::from_slice::<Envelope<D>>(black_box(input))
                    .map(|e| digest_of(e, data))
                    .unwrap_or_default()
            })
        },
    );
    group.finish();
}

fn parse(c: &mut Criterion) {
    parse_body::<VersionsData>(
        c,
        "getSupportedVersions",
        VERSIONS,
        |buf| match wire::parse_supported_versions(buf) {
            Ok(wire::Reply::Data(v)) => v.len(),
            _ => 0,
        },
        |d| d.api_versions.len(),
    );
    parse_body::<SshInfoData>(
        c,
        "getSshInfo",
        SSH_INFO,
        |buf| matches!(wire::parse_ssh_info(buf), Ok(wire::Reply::Data(true))) as usize,
        |d| d.enabled as usize,
    );
    parse_body::<SshInfoData>(
        c,
        "error",
        ERROR,
        |buf| match wire::parse_ssh_info(buf) {
            Ok(wire::Reply::Error(e)) => e.message.len(),
            _ => 0,
        },
        |d| d.enabled as usize,
    );
}

fn creds() -> Credentials {
    Credentials {
        username: "root".into(),
        password: Secret::new("pass"),
    }
}

fn challenge(value: &'static str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static(value),
    );
    headers
}

fn digest(c: &mut Criterion) {
    let creds = creds();
    let mut group = c.benchmark_group("digest");
    group.throughput(Throughput::Elements(1));
    for (name, value) in [
        ("md5", CHALLENGE_MD5),
        ("sha256", CHALLENGE_SHA256),
        ("md5-no-qop", CHALLENGE_NO_QOP),
    ] {
        let headers = challenge(value);
        group.bench_with_input(BenchmarkId::new("adopt", name), &headers, |b, h| {
            let mut session = AuthSession::default();
            b.iter(|| {
                session.adopt(
                    black_box(h),
                    &creds,
                    Transport::Plain,
                    BasicOverHttp::Refuse,
                )
            })
        });
        let mut session = AuthSession::default();
        let adopted = session.adopt(&headers, &creds, Transport::Plain, BasicOverHttp::Refuse);
        assert!(adopted.is_ok(), "challenge {name} not adopted");
        group.bench_function(BenchmarkId::new("authorization", name), |b| {
            b.iter(|| session.authorization("POST", black_box(wire::SSH_CGI), &creds))
        });
    }
    group.finish();
}

/// The CPU work of one clean camera outside the HTTP stack: adopt the challenge, two
/// authenticated requests (header + body), two parses. Target: well under 5 µs.
fn device(c: &mut Criterion) {
    let creds = creds();
    let headers = challenge(CHALLENGE_MD5);
    let mut group = c.benchmark_group("device");
    group.throughput(Throughput::Elements(1));
    group.bench_function("hot_path", |b| {
        b.iter_batched_ref(
            || (VERSIONS.as_bytes().to_vec(), SSH_INFO.as_bytes().to_vec()),
            |(versions, info)| {
                let mut auth = AuthSession::default();
                let _ = auth.adopt(&headers, &creds, Transport::Plain, BasicOverHttp::Refuse);
                let first = auth.authorization("POST", wire::SSH_CGI, &creds);
                black_box((first, wire::get_supported_versions()));
                let listed = match wire::parse_supported_versions(versions) {
                    Ok(wire::Reply::Data(listed)) => listed,
                    _ => Vec::new(),
                };
                let version = wire::pick_version(&listed).unwrap_or(V1_1);
                let second = auth.authorization("POST", wire::SSH_CGI, &creds);
                black_box((second, wire::get_ssh_info(version)));
                wire::parse_ssh_info(info)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// An inventory like `sshfleet sim --inventory-out` writes, with a passthrough column.
fn inventory_csv(rows: usize) -> String {
    let mut csv = String::from("address,name,site,expect,owner\n");
    for i in 0..rows {
        let port = 20_000 + i % 40_000;
        let site = ["site-a", "site-b", "site-c"][i % 3];
        csv.push_str(&format!(
            "10.{}.{}.{}:{port},cam-{i:05},{site},disabled,team-{}\n",
            i / 65_536 % 256,
            i / 256 % 256,
            i % 256,
            i % 7
        ));
    }
    csv
}

fn inventory_parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("inventory_parse");
    for rows in [1_000usize, 10_000] {
        let csv = inventory_csv(rows);
        group.throughput(Throughput::Elements(rows as u64));
        group.bench_with_input(BenchmarkId::from_parameter(rows), &csv, |b, csv| {
            // Validated once at load, then each device parsed again as the scan takes it.
            b.iter(|| {
                inventory::parse(csv.as_bytes(), &InventoryOptions::default())
                    .map(|inv| inv.rows.into_iter().filter_map(Row::into_device).count())
                    .unwrap_or_default()
            })
        });
    }
    group.finish();
}

/// A clean scan's record, as the scanner produces it.
fn scan_record(i: usize) -> DeviceRecord {
    let mut rec = DeviceRecord::new(
        format!("127.0.0.1:{}", 30_000 + i),
        format!("cam-{i:05}"),
        "site-a".into(),
        Status::Ok,
    );
    rec.ssh_enabled = Some(i % 3 == 0);
    rec.expect = Some(SshState::Disabled);
    rec.judge();
    rec.method = Some(Method::SshCgi);
    rec.api_version = Some("1.1".into());
    rec.supported_versions = vec!["1.0".into(), "1.1".into()];
    rec.http_status = Some(200);
    rec.attempts = 1;
    rec.elapsed_ms = 3;
    rec.extra = vec!["team-1".into()];
    rec
}

fn writers(c: &mut Criterion) {
    const RECORDS: usize = 1_000;
    let records: Vec<DeviceRecord> = (0..RECORDS).map(scan_record).collect();
    let schema = Schema {
        remediation: false,
        extra_columns: vec!["owner".into()],
    };
    let mut group = c.benchmark_group("writers");
    group.throughput(Throughput::Elements(RECORDS as u64));
    for format in [Format::Csv, Format::Jsonl, Format::Json] {
        group.bench_with_input(
            BenchmarkId::from_parameter(format),
            &records,
            |b, records| {
                b.iter(|| {
                    let mut w = report::writer(format, &schema, Box::new(io::sink()));
                    for rec in records {
                        let _ = w.write(rec);
                    }
                    w.finish()
                })
            },
        );
    }
    group.finish();
}

/// An `SshUserPageResponse` as the API sends it: `users` verbose users on a page of 100.
fn equinix_page_body(users: usize) -> Vec<u8> {
    let data: Vec<String> = (0..users)
        .map(|i| {
            format!(
                r#"{{"uuid":"7d5f3e2a-1b4c-4d6e-8f90-{i:012x}","username":"netops{i:04}","deviceUuids":["3da0a663-20d9-4b8f-8c5d-d5cf706840c8","{i:08x}-9a1b-4c2d-8e3f-1029384756ab"],"metroStatusMap":{{"SV":{{"status":"ACTIVE"}},"DC":{{"status":"PENDING"}}}}}}"#
            )
        })
        .collect();
    format!(
        r#"{{"pagination":{{"offset":200,"limit":100,"total":2437,"next":"/ne/v1/sshUsers?offset=300&limit=100","previous":"/ne/v1/sshUsers?offset=100&limit=100"}},"data":[{}]}}"#,
        data.join(",")
    )
    .into_bytes()
}

fn equinix_page(c: &mut Criterion) {
    let mut group = c.benchmark_group("equinix_page");
    for users in [1usize, 10, 100] {
        let body = equinix_page_body(users);
        let parsed = sshfleet_equinix::wire::parse_page(&mut body.clone(), 0);
        assert_eq!(
            parsed.map(|p| p.users.len()).ok(),
            Some(users),
            "the page parses"
        );
        group.throughput(Throughput::Elements(users as u64));
        group.bench_with_input(BenchmarkId::from_parameter(users), &body, |b, body| {
            b.iter_batched_ref(
                || body.clone(),
                |body| {
                    let page = sshfleet_equinix::wire::parse_page(body, 0);
                    page.map(|p| p.users.len()).unwrap_or_default()
                },
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    encode,
    parse,
    digest,
    device,
    inventory_parse,
    equinix_page,
    writers
);
criterion_main!(benches);
