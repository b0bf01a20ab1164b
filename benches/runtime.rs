//! Benchmarks of the runtime's hot paths, printed as a table of ratios against a baseline run
//! in the same process (these machines are shared and noisy: absolute times mean little).
//!
//! `cargo bench --bench runtime`
//!
//! - authenticated call vs a plain reqwest call to the same loopback API;
//! - 100 concurrent calls whose token expired (one shared refresh) vs 100 with a valid token;
//! - encrypting a message for the wire (v1 and v2) vs serialising it to JSON alone.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use sailor::auth::{RetryPolicy, TokenCache};
use sailor::clock;
use sailor::config::StepConfig;
use sailor::crypto::{Encoding, MessageCipher};
use sailor::emitter::{CollectingSink, Emitter};
use sailor::http::AuthClient;
use sailor::secret::Password;
use sandbox::{GrantState, Sandbox, SandboxOptions};
use serde_json::{Value, json};

/// Median of `rounds` timings of `f`, each over `iterations` runs.
async fn median<F, Fut>(rounds: usize, iterations: usize, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..iterations {
            f().await;
        }
        samples.push(start.elapsed() / iterations as u32);
    }
    samples.sort();
    samples[rounds / 2]
}

fn client(sandbox: &Sandbox, grant: Value) -> AuthClient {
    let config = StepConfig::from_value(sandbox.step_config(grant, json!({}))).expect("config");
    let cache =
        TokenCache::from_config(&config, RetryPolicy::default(), clock::system()).expect("tokens");
    let base = url::Url::parse(&sandbox.api_base_url()).expect("url");
    AuthClient::new(
        reqwest::Client::new(),
        cache,
        Emitter::new(Arc::new(CollectingSink::new())),
        Some(base),
    )
}

async fn concurrent_calls(client: &AuthClient, n: usize) {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let request = client.request(Method::GET, "/me").expect("request");
                assert_eq!(client.send(request).await.expect("call").status(), 200);
            })
        })
        .collect();
    for call in calls {
        call.await.expect("task");
    }
}

struct Row {
    name: &'static str,
    baseline: &'static str,
    measured: Duration,
    base: Duration,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sandbox = Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox");
    let mut rows = Vec::new();

    // 1. The cost of the token lease and bearer injection on a call.
    let grant = sandbox.issue_grant(GrantState::Valid);
    let token = grant["access_token"].as_str().expect("token").to_owned();
    let plain = reqwest::Client::new();
    let url = format!("{}/me", sandbox.api_base_url());
    let authenticated = client(&sandbox, grant);
    let base = median(9, 200, || async {
        let response = plain
            .get(&url)
            .bearer_auth(&token)
            .send()
            .await
            .expect("call");
        black_box(response.status());
    })
    .await;
    let measured = median(9, 200, || async {
        let response = authenticated
            .send(authenticated.request(Method::GET, "/me").expect("request"))
            .await;
        black_box(response.expect("call").status());
    })
    .await;
    rows.push(Row {
        name: "authenticated call",
        baseline: "plain reqwest call",
        measured,
        base,
    });

    // 2. 100 concurrent calls on an expired token: one refresh, one replay each.
    let base = median(7, 1, || async {
        concurrent_calls(
            &client(&sandbox, sandbox.issue_grant(GrantState::Valid)),
            100,
        )
        .await;
    })
    .await;
    let measured = median(7, 1, || async {
        let expired = client(&sandbox, sandbox.issue_grant(GrantState::ExpiredUnknown));
        concurrent_calls(&expired, 100).await;
        assert_eq!(
            expired.cache().refresh_count(),
            1,
            "one refresh for all 100 calls"
        );
    })
    .await;
    rows.push(Row {
        name: "100 calls, token expired",
        baseline: "100 calls, token valid",
        measured,
        base,
    });

    // 3. Encrypting a 10 KiB message for the wire.
    let message = json!({"id": "m", "body": {"items": (0..100).map(|i| json!({"id": i, "name": "x".repeat(80)})).collect::<Vec<_>>()}});
    let cipher =
        MessageCipher::new(&Password::new("bench-password"), "bench16bytes--IV").expect("cipher");
    let base = median(9, 500, || async {
        black_box(serde_json::to_vec(black_box(&message)).expect("json"));
    })
    .await;
    for (name, encoding) in [
        ("encrypt v1 (base64)", Encoding::Base64),
        ("encrypt v2 (raw)", Encoding::Raw),
    ] {
        let measured = median(9, 500, || async {
            let json = serde_json::to_vec(black_box(&message)).expect("json");
            black_box(cipher.encode(&json, encoding));
        })
        .await;
        rows.push(Row {
            name,
            baseline: "JSON serialisation alone",
            measured,
            base,
        });
    }

    println!(
        "{:<28} {:<28} {:>12} {:>12} {:>7}",
        "measured", "baseline", "measured", "baseline", "ratio"
    );
    for row in rows {
        println!(
            "{:<28} {:<28} {:>12?} {:>12?} {:>7.2}",
            row.name,
            row.baseline,
            row.measured,
            row.base,
            row.measured.as_secs_f64() / row.base.as_secs_f64()
        );
    }
}
