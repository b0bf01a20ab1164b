//! The `component` binary is the runtime's entry point plus `demo`: its command line, exit
//! codes and the `verify` subcommand that matches the `verify_credentials` binary.

use serde_json::json;
use std::process::Output;
use tokio::process::Command;

async fn component(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_component"))
        .args(args)
        .envs(env.iter().copied())
        .env("LOG_LEVEL", "warn")
        .output()
        .await
        .expect("the binary runs")
}

#[tokio::test]
async fn help_lists_the_runtimes_subcommands_and_the_components_own() {
    let output = component(&["--help"], &[]).await;
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8(output.stdout).unwrap();
    for subcommand in ["worker", "run", "validate", "verify", "demo"] {
        assert!(
            help.lines()
                .any(|line| line.trim_start().starts_with(subcommand)),
            "{subcommand} missing from:\n{help}"
        );
    }
    // The about line is component.json's title and description.
    assert!(help.starts_with("REST API"), "{help}");
    let output = component(&["--version"], &[]).await;
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        format!("component {}", env!("CARGO_PKG_VERSION"))
    );
}

#[tokio::test]
async fn usage_errors_exit_2_and_no_subcommand_shows_help() {
    let output = component(&["frobnicate"], &[]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8(output.stderr)
            .unwrap()
            .contains("frobnicate")
    );
    let output = component(&[], &[]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8(output.stderr).unwrap().contains("Usage"));
}

#[tokio::test]
async fn verify_answers_as_the_verify_credentials_binary_does() {
    // An unusable config: exit 2 and the field named, from both binaries.
    let config = json!({"oauth": {"access_token": "at"}}).to_string();
    let ours = component(&["verify"], &[("ELASTICIO_CFG", &config)]).await;
    let theirs =
        Command::new(env!("CARGO_BIN_EXE_component").replace("/component", "/verify_credentials"))
            .env("ELASTICIO_CFG", &config)
            .output()
            .await;
    assert_eq!(ours.status.code(), Some(2));
    let stderr = String::from_utf8(ours.stderr).unwrap();
    assert!(stderr.contains("api_base_url"), "{stderr}");
    // verify_credentials is built with the workspace; compare when it is there.
    if let Ok(theirs) = theirs {
        assert_eq!(theirs.status.code(), Some(2));
        assert_eq!(String::from_utf8(theirs.stderr).unwrap(), stderr);
    }
}

#[tokio::test]
async fn a_bad_thread_count_exits_2_naming_the_variable() {
    for bad in ["0", "two", "-1"] {
        let output = component(&["validate"], &[("TOKIO_WORKER_THREADS", bad)]).await;
        assert_eq!(output.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(
            stderr.contains(&format!(
                "TOKIO_WORKER_THREADS must be a positive number of threads, not \"{bad}\""
            )),
            "{stderr}"
        );
    }
    // A good count runs the subcommand on the multi-thread runtime.
    let output = component(&["validate"], &[("TOKIO_WORKER_THREADS", "2")]).await;
    assert_eq!(output.status.code(), Some(0));
}
