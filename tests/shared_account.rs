//! One credential, many processes: `component worker` replicas, a late replica started with
//! the original config, and credential checks share one account's token set through RabbitMQ
//! (the keys exchange, the last-keys queue and the lease), against the loopback provider that
//! rotates refresh tokens and revokes the grant when a rotated-away one comes back.

mod bed;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bed::{Bed, decrypt, header_text};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use sailor::StepConfig;
use sailor::amqp::account_keys::{AccountKeysConfig, DEFAULT_LEASE_WAIT};
use sailor::crypto::Encoding;
use sailor::settings::AmqpUri;
use sailor::verify::{VerifyOptions, verify_credentials};
use sandbox::{GrantState, Sandbox, SandboxOptions};
use serde_json::{Value, json};
use tokio::process::Child;

const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(2);

/// A sandbox whose access tokens live `access_token_ttl`, whose refresh tokens rotate on every use and
/// whose grant is revoked on reuse, answering token requests after `token_delay`.
async fn provider(access_token_ttl: Duration, token_delay: Duration) -> Sandbox {
    Sandbox::start(SandboxOptions {
        access_token_ttl,
        token_delay,
        ..SandboxOptions::default()
    })
    .await
    .unwrap()
}

/// The `request` step's config: `GET /echo/{n}`, refreshed when the token expires.
fn request_config(sandbox: &Sandbox, grant: GrantState) -> Value {
    sandbox.step_config(
        sandbox.issue_grant(grant),
        json!({"method": "GET", "path": "/echo/{n}", "expiry_skew_s": 0}),
    )
}

/// Runs `component worker` with `vars`; its log lines go to a file of their own.
fn spawn_worker(vars: &[(String, String)], name: &str) -> (Child, std::path::PathBuf) {
    let log = std::env::temp_dir().join(format!("shared-account-{name}.log"));
    let child = bed::spawn_worker_logging_to(vars, &log);
    (child, log)
}

fn signal(child: &Child, signal: &str) {
    let pid = child.id().expect("still running").to_string();
    let status = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Stops `child` with SIGTERM and checks it exits 0.
async fn stop(mut child: Child) {
    signal(&child, "-TERM");
    let status = tokio::time::timeout(Duration::from_secs(35), child.wait())
        .await
        .expect("the worker exits within its grace period")
        .unwrap();
    assert!(status.success(), "the worker exited with {status}");
}

/// `verify_credentials` as the platform runs it with the AMQP variables set, in this
/// process: its own connection and token cache, the step's original config.
async fn verify(bed: &Bed, config: &Value) -> sailor::verify::Verification {
    let config = StepConfig::from_value(config.clone()).unwrap();
    let keys = AccountKeysConfig {
        amqp_uri: AmqpUri::parse(bed::AMQP_URI).unwrap(),
        exchange: bed.keys_exchange(),
        account: config.account.clone().unwrap(),
        cipher: bed::cipher(),
        protocol: Encoding::Base64,
        lease_wait: DEFAULT_LEASE_WAIT,
    };
    let options = VerifyOptions::default()
        .with_timeout(Duration::from_secs(20))
        .with_account_keys(keys);
    verify_credentials(&config, &options).await
}

/// The `n` of a data event: the echoed path's last segment.
fn echoed_n(delivery: &lapin::message::Delivery, data_key: &str) -> Option<u64> {
    if delivery.routing_key.as_str() != data_key {
        return None;
    }
    let message = decrypt(delivery);
    let path = message.pointer("/body/body/path")?.as_str()?;
    path.rsplit('/').next()?.parse().ok()
}

/// What the provider saw: token requests, and how many of them were refused.
fn refused_token_requests(sandbox: &Sandbox) -> Vec<u16> {
    sandbox
        .token_log()
        .iter()
        .map(|record| record.status)
        .filter(|status| *status != 200)
        .collect()
}

fn logs(paths: &[std::path::PathBuf]) -> String {
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_a_late_one_and_credential_checks_share_one_token_set_without_a_reuse() {
    const MESSAGES: u64 = 600;
    let sandbox = provider(ACCESS_TOKEN_TTL, Duration::from_millis(200)).await;
    let config = request_config(&sandbox, GrantState::Valid);
    let bed = Bed::new().await;
    let vars = bed.vars("request", &config);
    let mut workers = Vec::new();
    let mut log_files = Vec::new();
    for replica in 0..3 {
        let (child, log) = spawn_worker(&vars, &format!("{}-{replica}", bed.id));
        workers.push(child);
        log_files.push(log);
    }
    let started = Instant::now();
    let mut verifications = Vec::new();
    // 600 messages over about 12 s: six token lifetimes.
    for n in 0..MESSAGES {
        bed.send(
            &json!({"body": {"n": n}}),
            Encoding::Base64,
            &format!("m-{n}"),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        if n == 150 || n == 450 {
            verifications.push(verify(&bed, &config).await);
        }
        if n == 300 {
            // A replica started late with the config the platform first gave the step.
            let (child, log) = spawn_worker(&vars, &format!("{}-late", bed.id));
            workers.push(child);
            log_files.push(log);
        }
    }
    let expected: BTreeSet<u64> = (0..MESSAGES).collect();
    let data_key = bed.key("data");
    let outputs = bed
        .collect_distinct(&expected, Duration::from_secs(20), |d| {
            echoed_n(d, &data_key)
        })
        .await;
    let elapsed = started.elapsed();
    verifications.push(verify(&bed, &config).await);
    let events = outputs.events.len();
    let errors = outputs
        .events
        .iter()
        .filter(|d| d.routing_key.as_str() == bed.key("error"))
        .count();
    for worker in workers {
        stop(worker).await;
    }
    let late = logs(&log_files[3..]);
    let logs = logs(&log_files);
    assert!(
        late.contains("The account's last published keys adopted."),
        "the late replica started from the newest keys, not its config's: {late}"
    );

    assert_eq!(
        refused_token_requests(&sandbox),
        Vec::<u16>::new(),
        "{logs}"
    );
    assert!(!logs.contains("invalid_grant"), "{logs}");
    assert_eq!(outputs.missing(&expected), Vec::<u64>::new(), "{logs}");
    assert_eq!(errors, 0, "{logs}");
    for verification in &verifications {
        assert!(verification.is_verified(), "{verification:?}");
    }
    // One refresh per token lifetime for the whole account, not one per process.
    let token_requests = sandbox.token_requests();
    let lifetimes = elapsed.as_secs_f64() / ACCESS_TOKEN_TTL.as_secs_f64();
    println!(
        "{token_requests} token requests in {elapsed:?} ({lifetimes:.1} token lifetimes), {events} events"
    );
    assert!(token_requests >= 3, "{token_requests} token requests");
    assert!(
        (token_requests as f64) <= lifetimes * 1.5 + 2.0,
        "{token_requests} token requests in {lifetimes:.1} token lifetimes"
    );
    // Every refreshed token set went to the platform too, once per refresh.
    let update_keys = outputs
        .events
        .iter()
        .filter(|d| header_text(d, "keysEvent").as_deref() == Some("updateKeys"))
        .count();
    assert!(update_keys <= token_requests, "{update_keys} updateKeys");
    bed.cleanup().await;
}

/// True when another connection owns the lease queue `lease`.
async fn lease_is_held(observer: &Connection, lease: &str) -> bool {
    let channel = observer.create_channel().await.unwrap();
    let declared = channel
        .queue_declare(
            lease.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await;
    match declared {
        Err(error) => error.to_string().contains("RESOURCE_LOCKED"),
        Ok(_) => panic!("the observer must not own the lease"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_while_it_holds_the_lease_mid_refresh_hands_over_to_the_others() {
    const MESSAGES: u64 = 40;
    // The token endpoint takes 3 s: the holder is killed while it waits for the answer.
    // Tokens live a minute, so that one refresh serves the rest of the run.
    let sandbox = provider(Duration::from_secs(60), Duration::from_millis(3000)).await;
    let config = request_config(&sandbox, GrantState::ExpiredKnown);
    let bed = Bed::new().await;
    let vars = bed.vars("request", &config);
    bed.send_numbered(0..1, |n| json!({ "n": n })).await;
    let (holder, holder_log) = spawn_worker(&vars, &format!("{}-holder", bed.id));

    // The lease is taken when its queue is another connection's.
    let lease = format!(
        "{}.lease.{}",
        bed.keys_exchange(),
        config["_account"].as_str().unwrap()
    );
    let observer = Connection::connect(bed::AMQP_URI, ConnectionProperties::default())
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lease_is_held(&observer, &lease).await {
        assert!(Instant::now() < deadline, "the holder takes the lease");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Still held a little later: the refresh, not the start-up read of the last keys.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(lease_is_held(&observer, &lease).await);
    // Two more replicas start while the lease is held, and wait for it.
    let mut others = Vec::new();
    let mut log_files = vec![holder_log];
    for replica in 0..2 {
        let (child, log) = spawn_worker(&vars, &format!("{}-{replica}", bed.id));
        others.push(child);
        log_files.push(log);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&holder, "-KILL");
    let mut holder = holder;
    holder.wait().await.unwrap();
    bed.send_numbered(1..MESSAGES, |n| json!({ "n": n })).await;

    let expected: BTreeSet<u64> = (0..MESSAGES).collect();
    let data_key = bed.key("data");
    let outputs = bed
        .collect_distinct(&expected, Duration::from_secs(25), |d| {
            echoed_n(d, &data_key)
        })
        .await;
    for worker in others {
        stop(worker).await;
    }
    let logs = logs(&log_files);
    assert_eq!(
        refused_token_requests(&sandbox),
        Vec::<u16>::new(),
        "{logs}"
    );
    assert_eq!(outputs.missing(&expected), Vec::<u64>::new(), "{logs}");
    let errors = outputs
        .events
        .iter()
        .filter(|d| d.routing_key.as_str() == bed.key("error"))
        .count();
    assert_eq!(errors, 0, "{logs}");
    // The killed holder's request never rotated the refresh token; one survivor refreshed.
    assert_eq!(sandbox.token_requests(), 1, "{logs}");
    bed.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_refuses_the_account_keys_leaves_the_worker_refreshing_on_its_own() {
    let sandbox = provider(Duration::from_secs(60), Duration::ZERO).await;
    let config = request_config(&sandbox, GrantState::ExpiredKnown);
    let bed = Bed::new().await;
    // The last-keys queue exists with other arguments: declaring it is refused for good.
    let last = format!("{}.last.sandbox-account", bed.keys_exchange());
    bed.channel
        .queue_declare(
            last.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    bed.send_numbered(0..5, |n| json!({ "n": n })).await;
    let (worker, log) = spawn_worker(
        &bed.vars("request", &config),
        &format!("{}-refused", bed.id),
    );
    let expected: BTreeSet<u64> = (0..5).collect();
    let data_key = bed.key("data");
    let outputs = bed
        .collect_distinct(&expected, Duration::from_secs(15), |d| {
            echoed_n(d, &data_key)
        })
        .await;
    stop(worker).await;
    let logs = logs(&[log]);
    assert_eq!(outputs.missing(&expected), Vec::<u64>::new(), "{logs}");
    assert_eq!(sandbox.token_requests(), 1, "{logs}");
    assert!(
        logs.contains("The broker refuses the account's keys"),
        "{logs}"
    );
    bed.cleanup().await;
}
