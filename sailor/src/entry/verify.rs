//! `verify` and the `verify_credentials` binary: elastic.io's verifyCredentials service method.
//!
//! Reads the config (`--config FILE`, else `ELASTICIO_CFG`, else stdin), runs the component's
//! [`Verifier`], prints one JSON object on stdout and, when `ELASTICIO_POST_RESULT_URL` is set,
//! POSTs the answer there; with the `ELASTICIO_AMQP_*` variables set, refreshed keys are also
//! published as an `updateKeys` message and shared with the account's other processes, and
//! with the `ELASTICIO_API_*` ones and `_account` PUT to the platform API
//! (`COMPONENT_KEYS_DESTINATION` chooses). Exit 0
//! verified, 1 not verified (or the result could not be POSTed), 2 unusable input. Logs go to
//! stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser};
use serde_json::Value;

use crate::amqp::account_keys::{AccountKeysConfig, DEFAULT_LEASE_WAIT};
use crate::amqp::keys::VERIFY_FUNCTION;
use crate::event::chain_text as chain;
use crate::platform_keys::StandaloneKeys;
use crate::verify::check::REFRESH_GRACE;
use crate::verify::{
    CFG_ENV, ConfigSource, DEFAULT_TIMEOUT, POST_RESULT_URL_ENV, ResultUrl, Verification, Verifier,
    VerifyOptions, service_error,
};

/// Exit code: the credential works.
const EXIT_VERIFIED: u8 = 0;
/// Exit code: the credential does not work, or the answer could not be POSTed.
const EXIT_NOT_VERIFIED: u8 = 1;
/// Exit code: the input is unusable.
const EXIT_BAD_INPUT: u8 = 2;

/// The credential check's arguments.
#[derive(Args, Debug, Clone)]
#[command(
    after_help = "The config comes from --config, else ELASTICIO_CFG, else stdin. \
                  Exit 0: verified; 1: not verified, or the result could not be POSTed to \
                  ELASTICIO_POST_RESULT_URL; 2: unusable input."
)]
pub struct VerifyArgs {
    /// The credential config (JSON); overrides ELASTICIO_CFG and stdin.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Seconds the whole check may take before the answer is "not verified".
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_TIMEOUT.as_secs_f64(),
          value_parser = parse_timeout)]
    timeout: f64,
}

/// The standalone binary's command line: the check's arguments at the top level.
#[derive(Parser)]
#[command(
    version,
    about = "Checks a credential (elastic.io's verifyCredentials): prints {\"verified\": ...}."
)]
struct VerifyCli {
    #[command(flatten)]
    args: VerifyArgs,
}

impl Default for VerifyArgs {
    /// The config from `ELASTICIO_CFG` or stdin, the default timeout.
    fn default() -> Self {
        Self {
            config: None,
            timeout: DEFAULT_TIMEOUT.as_secs_f64(),
        }
    }
}

fn parse_timeout(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds > 0.0 && Duration::try_from_secs_f64(seconds).is_ok() => Ok(seconds),
        _ => Err(format!("`{text}` is not a positive number of seconds")),
    }
}

/// The whole `main` of a standalone credential-check binary such as `verify_credentials`:
/// the `verify` subcommand's arguments at the top level, checked by `verifier`.
pub fn verify_credentials_main(verifier: impl Verifier) -> ExitCode {
    let cli = VerifyCli::parse();
    super::init_logs("info");
    match super::async_runtime() {
        Ok(runtime) => runtime.block_on(run(cli.args, Arc::new(verifier))),
        Err(exit) => exit,
    }
}

/// Runs the check as the arguments and the environment say.
pub(super) async fn run(args: VerifyArgs, verifier: Arc<dyn Verifier>) -> ExitCode {
    let timeout = Duration::from_secs_f64(args.timeout);
    let result_url = match env_var(POST_RESULT_URL_ENV).and_then(|url| {
        url.map(|url| ResultUrl::parse(&url).map_err(|e| e.to_string()))
            .transpose()
    }) {
        Ok(url) => url,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };

    let config = match env_var(CFG_ENV).and_then(|env| {
        ConfigSource::choose(args.config, env)
            .load(verifier.as_ref())
            .map_err(|error| format!("the config is unusable: {}", chain(&error)))
    }) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            if let Some(url) = &result_url {
                post(url, &service_error(&error), timeout).await;
            }
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };

    // With the ELASTICIO_AMQP_* variables set, refreshed keys also go out as `updateKeys`;
    // with the platform API's variables set (and `_account`), they are PUT there too.
    let keys = match StandaloneKeys::from_env(config.account.as_deref(), VERIFY_FUNCTION) {
        Ok(keys) => keys,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_BAD_INPUT);
        }
    };
    let mut options = VerifyOptions::default().with_timeout(timeout);
    if let Some(sink) = keys.sink() {
        options = options.with_keys_sink(sink);
    }
    // With an account too, the check shares the account's keys with its other processes.
    if let (Some(settings), Some(account)) = (keys.settings.clone(), config.account.clone()) {
        options = options.with_account_keys(AccountKeysConfig {
            amqp_uri: settings.amqp_uri,
            exchange: settings.keys_exchange,
            account,
            cipher: settings.cipher,
            protocol: settings.protocol,
            lease_wait: timeout.min(DEFAULT_LEASE_WAIT),
        });
    }
    // Any verifier is bounded; the OAuth2 one bounds itself and may finish a refresh already
    // sent within the grace.
    let verification =
        match tokio::time::timeout(timeout + REFRESH_GRACE, verifier.verify(&config, &options))
            .await
        {
            Ok(verification) => verification,
            Err(_) => Verification::not_verified(format!(
                "The check did not finish within {} s.",
                timeout.as_secs_f64()
            )),
        };
    println!("{}", verification.to_json());
    keys.close().await;

    let mut code = if verification.is_verified() {
        EXIT_VERIFIED
    } else {
        EXIT_NOT_VERIFIED
    };
    if let Some(url) = &result_url
        && !post(url, &verification.service_result(), timeout).await
    {
        code = EXIT_NOT_VERIFIED;
    }
    ExitCode::from(code)
}

/// An env var's value; `None` when unset or empty, an error when not UTF-8.
pub(super) fn env_var(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

/// POSTs the answer; a failure is reported on stderr and returned as `false`.
async fn post(url: &ResultUrl, body: &Value, timeout: Duration) -> bool {
    match url.post(body, timeout).await {
        Ok(()) => true,
        Err(error) => {
            eprintln!(
                "error: the result could not be posted to {POST_RESULT_URL_ENV}: {}",
                chain(&error)
            );
            false
        }
    }
}
