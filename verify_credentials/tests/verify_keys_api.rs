//! `verify_credentials` with the platform API's variables set: a refresh during the check
//! PUTs the rotated keys to `/v1/accounts/{_account}`, as sailor-nodejs' service methods
//! persist them (its `verifyCredentials` drops them; here they are kept).

#[path = "../../tests/platform_api/mod.rs"]
mod platform_api;

use platform_api::PlatformApi;
use sandbox::{GrantState, Sandbox, SandboxOptions};
use serde_json::{Value, json};

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn verify(config: &Value, env: &[(String, String)]) -> Output {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_verify_credentials"))
        .env_clear()
        .env("ELASTICIO_CFG", config.to_string())
        .env("LOG_LEVEL", "info")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .await
        .unwrap();
    Output {
        code: output.status.code().unwrap(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

#[tokio::test]
async fn a_refresh_during_the_check_is_put_to_the_account_once() {
    let api = PlatformApi::default();
    api.answer_with(&[502]);
    let base = api.serve().await;
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let config = sandbox.step_config(sandbox.issue_grant(GrantState::ExpiredUnknown), json!({}));
    let run = verify(&config, &PlatformApi::vars(&base)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let answer: Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(answer["verified"], json!(true));
    assert_eq!(sandbox.token_requests(), 1);

    let puts = api.puts();
    let statuses: Vec<u16> = puts.iter().map(|p| p.status).collect();
    assert_eq!(statuses, [502, 200], "retried once, then done");
    let put = &puts[1];
    assert_eq!(put.account, "sandbox-account");
    assert_eq!(
        put.authorization.as_deref(),
        Some(PlatformApi::expected_authorization().as_str())
    );
    assert_eq!(put.body, json!({ "keys": answer["updatedKeys"] }));
    assert!(!run.stderr.contains(platform_api::API_KEY));
}

#[tokio::test]
async fn without_an_account_nothing_is_put_and_api_mode_is_unusable_input() {
    let api = PlatformApi::default();
    let base = api.serve().await;
    let sandbox = Sandbox::start(SandboxOptions::default()).await.unwrap();
    let mut config =
        sandbox.step_config(sandbox.issue_grant(GrantState::ExpiredUnknown), json!({}));
    config.as_object_mut().unwrap().remove("_account");
    let run = verify(&config, &PlatformApi::vars(&base)).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(api.puts().len(), 0);

    let mut env = PlatformApi::vars(&base);
    env.push(("COMPONENT_KEYS_DESTINATION".into(), "api".into()));
    let run = verify(&config, &env).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("`_account`"), "{}", run.stderr);

    let mut env = PlatformApi::vars(&base);
    env.push(("COMPONENT_KEYS_DESTINATION".into(), "both".into()));
    let run = verify(&config, &env).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("needs the ELASTICIO_AMQP_* variables"),
        "{}",
        run.stderr
    );
    assert_eq!(api.puts().len(), 0);
}
