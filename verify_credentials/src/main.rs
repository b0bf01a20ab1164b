//! The `verify_credentials` binary: checks a credential when a user connects an account.
//!
//! The REST component's credential check is the runtime's default, [`sailor::OAuth2Verifier`]:
//! `GET verify_path` with the config's token set, refreshing on 401. The whole command line,
//! environment and exit codes are [`sailor::entry::verify_credentials_main`]'s (the same as
//! `component verify`): the config from `--config`, else `ELASTICIO_CFG`, else stdin; exit 0
//! verified, 1 not verified (or the result could not be POSTed), 2 unusable input.

fn main() -> std::process::ExitCode {
    sailor::entry::verify_credentials_main(sailor::OAuth2Verifier)
}
