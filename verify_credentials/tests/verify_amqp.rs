//! `verify_credentials` with the `ELASTICIO_AMQP_*` variables set: refreshed keys also go to
//! the platform as an `updateKeys` message, on the real RabbitMQ.

use std::time::Duration;

use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties, ExchangeKind};
use sailor::crypto::{Encoding, MessageCipher};
use sailor::secret::Password;
use sandbox::{GrantState, Sandbox, SandboxOptions};
use serde_json::{Value, json};

const AMQP_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const PASSWORD: &str = "verify-crypto-password";
const IV: &str = "verify16bytes-IV";

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn verify(config: &Value, env: &[(&str, String)]) -> Output {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_verify_credentials"))
        .env_clear()
        .env("ELASTICIO_CFG", config.to_string())
        .env("LOG_LEVEL", "debug")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .await
        .unwrap();
    Output {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

fn text(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        _ => None,
    }
}

#[tokio::test]
async fn a_refresh_during_the_check_is_published_as_one_update_keys_message() {
    let connection = Connection::connect(AMQP_URI, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let prefix = format!("verify-{}", uuid::Uuid::new_v4().simple());
    let (exchange, queue, key) = (
        format!("{prefix}:exchange"),
        format!("{prefix}:keys"),
        format!("{prefix}.keys"),
    );
    channel
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();

    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::ExpiredUnknown), json!({}));
    let env = [
        ("ELASTICIO_AMQP_URI", AMQP_URI.to_owned()),
        ("ELASTICIO_PUBLISH_MESSAGES_TO", exchange.clone()),
        ("ELASTICIO_UPDATE_KEYS_ROUTING_KEY", key.clone()),
        ("ELASTICIO_MESSAGE_CRYPTO_PASSWORD", PASSWORD.to_owned()),
        ("ELASTICIO_MESSAGE_CRYPTO_IV", IV.to_owned()),
        ("ELASTICIO_PROTOCOL_VERSION", "2".to_owned()),
        ("ELASTICIO_WORKSPACE_ID", "workspace-9".to_owned()),
        ("COMPONENT_KEYS_EXCHANGE", format!("{prefix}:account-keys")),
    ];
    let run = verify(&config, &env).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let answer: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(answer["verified"], json!(true));
    assert_eq!(sandbox.token_requests(), 1);

    let message = channel
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("an updateKeys message");
    assert!(
        channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .is_none(),
        "exactly one"
    );
    let delivery = message.delivery;
    let headers = delivery.properties.headers().clone().unwrap();
    assert_eq!(
        text(&headers, "accountId").as_deref(),
        Some("sandbox-account")
    );
    assert_eq!(text(&headers, "keysEvent").as_deref(), Some("updateKeys"));
    assert_eq!(
        text(&headers, "function").as_deref(),
        Some("verifyCredentials")
    );
    assert_eq!(
        text(&headers, "workspaceId").as_deref(),
        Some("workspace-9")
    );
    let cipher = MessageCipher::new(&Password::new(PASSWORD), IV).unwrap();
    let published: Value =
        serde_json::from_slice(&cipher.decode(&delivery.data, Encoding::Raw).unwrap()).unwrap();
    assert_eq!(
        published, answer["updatedKeys"],
        "the message carries the same whole token set"
    );
    assert!(
        !run.stderr.contains(PASSWORD),
        "the crypto password stays out of the logs"
    );

    // The account's other processes get the same keys, versioned, from the last-keys queue.
    let last_keys = format!("{prefix}:account-keys.last.sandbox-account");
    let last = channel
        .basic_get(last_keys.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("the account's last keys")
        .delivery;
    let last_headers = last.properties.headers().clone().unwrap();
    assert_eq!(
        last_headers
            .inner()
            .get("keysVersion")
            .and_then(sailor::amqp::headers::int_of),
        Some(1)
    );
    let shared: Value =
        serde_json::from_slice(&cipher.decode(&last.data, Encoding::Raw).unwrap()).unwrap();
    assert_eq!(shared, answer["updatedKeys"]);
    channel
        .queue_delete(last_keys.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    channel
        .exchange_delete(
            format!("{prefix}:account-keys").as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await
        .unwrap();

    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    channel
        .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), connection.close(0, "done".into()))
        .await
        .ok();
}

#[tokio::test]
async fn an_incomplete_amqp_environment_is_unusable_input_naming_every_variable() {
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::Valid), json!({}));
    let run = verify(&config, &[("ELASTICIO_AMQP_URI", AMQP_URI.to_owned())]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stdout.is_empty());
    for missing in [
        "ELASTICIO_PUBLISH_MESSAGES_TO",
        "ELASTICIO_MESSAGE_CRYPTO_PASSWORD",
        "ELASTICIO_MESSAGE_CRYPTO_IV",
    ] {
        assert!(
            run.stderr.contains(&format!("{missing} is missing")),
            "{}",
            run.stderr
        );
    }
    assert!(
        !run.stderr.contains("guest:guest"),
        "the AMQP password stays out of the message"
    );
}
