//! The refresh storm: `calls` concurrent calls through the runtime's authenticated client on a
//! token the API rejects (one refresh, one replay each), against as many on a valid token.
//! Each call's latency is counted from the storm's start to its answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sailor::auth::{RetryPolicy, TokenCache};
use sailor::clock;
use sailor::config::StepConfig;
use sailor::emitter::{CollectingSink, Emitter};
use sailor::http::AuthClient;
use sandbox::{GrantState, Sandbox, SandboxOptions};
use serde_json::json;

fn client(sandbox: &Sandbox, state: GrantState) -> anyhow::Result<AuthClient> {
    let grant = sandbox.issue_grant(state);
    let config = StepConfig::from_value(sandbox.step_config(grant, json!({})))?;
    let cache = TokenCache::from_config(&config, RetryPolicy::default(), clock::system())
        .ok_or_else(|| anyhow::anyhow!("the sandbox grant has no usable token set"))?;
    Ok(AuthClient::new(
        reqwest::Client::new(),
        cache,
        Emitter::new(Arc::new(CollectingSink::new())),
        Some(url::Url::parse(&sandbox.api_base_url())?),
    ))
}

/// Every call's latency, sorted.
async fn storm(client: &AuthClient, calls: usize) -> anyhow::Result<Vec<Duration>> {
    let start = Instant::now();
    let tasks: Vec<_> = (0..calls)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                let request = client.request(reqwest::Method::GET, "/me")?;
                let status = client.send(request).await?.status();
                anyhow::ensure!(status == 200, "a call got {status}");
                Ok(start.elapsed())
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(calls);
    for task in tasks {
        latencies.push(task.await??);
    }
    latencies.sort();
    Ok(latencies)
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the storm and prints its table; fails unless the expired storm made exactly one token
/// request and every call succeeded.
pub async fn run(calls: usize) -> anyhow::Result<()> {
    let sandbox = Sandbox::start(SandboxOptions::default()).await?;
    let valid = storm(&client(&sandbox, GrantState::Valid)?, calls).await?;
    let before = sandbox.token_requests();
    let expired = storm(&client(&sandbox, GrantState::ExpiredUnknown)?, calls).await?;
    let token_requests = sandbox.token_requests() - before;
    println!("\n## Refresh storm: {calls} concurrent calls, latency from the storm's start\n");
    println!("| token | token requests | p50 ms | p99 ms |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| valid | 0 | {:.1} | {:.1} |",
        ms(percentile(&valid, 50)),
        ms(percentile(&valid, 99))
    );
    println!(
        "| expired (401, refresh, replay) | {token_requests} | {:.1} | {:.1} |",
        ms(percentile(&expired, 50)),
        ms(percentile(&expired, 99))
    );
    println!(
        "\np99 expired / valid: {:.2}",
        ms(percentile(&expired, 99)) / ms(percentile(&valid, 99))
    );
    anyhow::ensure!(
        token_requests == 1,
        "{token_requests} token requests for one expiry"
    );
    Ok(())
}
