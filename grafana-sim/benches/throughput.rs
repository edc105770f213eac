//! Throughput and memory of the simulator (prints figures, asserts none).
//!
//! Run with `cargo bench -p grafana-sim`. Targets: over 5,000 requests/s
//! for a mixed read/write load on loopback, under 256 MiB resident for a
//! generated estate of 100,000 keys.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use grafana_sim::generate::{generate, GenerateConfig};
use grafana_sim::{start, Mutation, Profile, Role, SimConfig};

/// Concurrent clients of the load test.
const CLIENTS: usize = 8;

/// Sizes of one run: full under `cargo bench`, tiny under `cargo test`.
#[derive(Clone, Copy)]
struct Scale {
    orgs: usize,
    keys_per_org: usize,
    load_seconds: u64,
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not,
    // and then a smoke run keeps the test suite fast.
    let full = std::env::args().any(|a| a == "--bench");
    let scale = match full {
        true => Scale {
            orgs: 100,
            keys_per_org: 1000,
            load_seconds: 3,
        },
        false => Scale {
            orgs: 2,
            keys_per_org: 50,
            load_seconds: 1,
        },
    };
    memory(Profile::V10_4, scale).await;
    // 11.6 converts every key at start: 100,000 service accounts as well.
    memory(Profile::V11_6, scale).await;
    throughput(scale.load_seconds).await;
}

/// Resident memory for the scale's orgs × keys.
async fn memory(profile: Profile, scale: Scale) {
    let estate = generate(&GenerateConfig {
        orgs: scale.orgs,
        keys_per_org: scale.keys_per_org,
        seed: 1,
        now: Utc::now(),
    });
    let keys = estate.api_keys.len();
    let config = SimConfig::new(profile).with_estate(estate);
    let started = Instant::now();
    let sim = start(config).await.expect("simulator starts");
    let load = started.elapsed();
    let (rss, hwm) = memory_kib();
    println!(
        "memory ({profile}): {keys} keys loaded in {:.2}s; \
         VmRSS {:.1} MiB, VmHWM {:.1} MiB (process so far)",
        load.as_secs_f64(),
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    sim.shutdown().await;
}

fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        let line = status.lines().find(|l| l.starts_with(name));
        let digits = line.and_then(|l| l.split_whitespace().nth(1));
        digits.and_then(|d| d.parse().ok()).unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Mixed load: 3 reads for every create+delete pair of a token.
async fn throughput(load_seconds: u64) {
    let sim = start(SimConfig::new(Profile::V10_4))
        .await
        .expect("simulator starts");
    let create = Mutation::CreateServiceAccount {
        org: 1,
        name: "bench".into(),
        role: Role::Admin,
        disabled: false,
    };
    let sa = sim.mutate(create).expect("account").id.expect("id");
    let token = Mutation::CreateToken {
        service_account_id: sa,
        name: "bench-token".into(),
        seconds_to_live: None,
    };
    let secret = sim.mutate(token).expect("token").key.expect("secret");
    let count = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(load_seconds);
    let mut tasks = vec![];
    for client in 0..CLIENTS {
        let url = sim.url();
        let (secret, count) = (secret.clone(), count.clone());
        tasks.push(tokio::spawn(async move {
            run_client(&url, &secret, sa, client, deadline, &count).await
        }));
    }
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    }
    let total = count.load(Ordering::Relaxed);
    let rate = total as f64 / load_seconds as f64;
    println!(
        "throughput: {total} requests in {load_seconds}s = {rate:.0} requests/s \
              ({CLIENTS} clients, mixed read/write, keep-alive)"
    );
    println!("writes logged: {}", sim.write_count());
}

async fn run_client(
    url: &str,
    secret: &str,
    sa: i64,
    client: usize,
    deadline: Instant,
    count: &AtomicU64,
) {
    let http = reqwest::Client::new();
    let tokens = format!("{url}/api/serviceaccounts/{sa}/tokens");
    let mut i = 0u64;
    while Instant::now() < deadline {
        let reads = [
            format!("{url}/api/serviceaccounts/search?perpage=10"),
            format!("{url}/api/org"),
            tokens.clone(),
        ];
        for read in reads {
            let _ = http.get(read).bearer_auth(secret).send().await;
        }
        let body = serde_json::json!({"name": format!("t-{client}-{i}")});
        let created = http
            .post(&tokens)
            .bearer_auth(secret)
            .json(&body)
            .send()
            .await;
        let id = match created {
            Ok(resp) => resp.json::<serde_json::Value>().await.ok(),
            Err(_) => None,
        };
        let id = id.and_then(|v| v["id"].as_i64()).unwrap_or(0);
        let _ = http
            .delete(format!("{tokens}/{id}"))
            .bearer_auth(secret)
            .send()
            .await;
        count.fetch_add(5, Ordering::Relaxed);
        i += 1;
    }
}
