//! The credential check a platform runs when a user connects an account (elastic.io's
//! `verifyCredentials` service method), behind the `verify` subcommand and the
//! `verify_credentials` binary.
//!
//! A component chooses how: the [`Verifier`] trait, whose default, [`OAuth2Verifier`], is the
//! check below.
//! [`input`] reads and validates the config (file, `ELASTICIO_CFG` or stdin) and names what is
//! wrong with it; [`check`] makes the component's verification request (`GET verify_path`)
//! through the same [`crate::http::AuthClient`] every trigger uses, so an expired token is
//! refreshed exactly as in a flow, and turns the outcome into a [`Verification`] whose reason
//! tells the user what to do; [`result_url`] POSTs the answer in elastic.io's service-mode shape.

pub mod check;
pub mod input;
pub mod result_url;
pub mod verifier;

pub use check::{
    DEFAULT_TIMEOUT, DEFAULT_VERIFY_PATH, VERIFY_PATH_FIELD, Verification, VerifyOptions,
    verify_credentials,
};
pub use input::{CFG_ENV, ConfigError, ConfigSource, InputError, parse_config, parse_step_config};
pub use result_url::{POST_RESULT_URL_ENV, PostError, ResultUrl, service_error};
pub use verifier::{OAuth2Verifier, Verifier};
