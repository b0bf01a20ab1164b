//! One TLS configuration for every HTTP client of the process.
//!
//! reqwest builds a fresh certificate verifier for each client, and on Linux that reads the
//! whole system trust store (`/etc/ssl/certs`: hundreds of files opened, read and parsed).
//! A worker needs several clients (the module's API, the token endpoint, the platform API,
//! object storage), each with its own timeouts and redirect policy, so it paid for that
//! several times at start-up. [`client_builder`] hands every client the same verifier,
//! made on first use: the same checks as reqwest's own (the platform verifier over the
//! system's roots, TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`), read once.

use std::sync::{Arc, OnceLock};

use rustls::ClientConfig;

/// A `reqwest` client builder whose TLS is the process' shared configuration.
///
/// When the shared configuration cannot be made (no usable trust store), the builder keeps
/// reqwest's own TLS set-up, whose `build()` then reports the same problem as it always did.
pub fn client_builder() -> reqwest::ClientBuilder {
    let builder = reqwest::Client::builder();
    match shared() {
        Some(config) => builder.tls_backend_preconfigured(config.clone()),
        None => builder,
    }
}

/// The shared configuration, made on the first call.
fn shared() -> Option<&'static ClientConfig> {
    static CONFIG: OnceLock<Option<ClientConfig>> = OnceLock::new();
    CONFIG.get_or_init(|| make().ok()).as_ref()
}

/// What reqwest would build for a client with default TLS settings.
fn make() -> Result<ClientConfig, rustls::Error> {
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone())?;
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_configuration_is_made_once_and_reqwest_takes_it() {
        let first = shared().expect("the system trust store loads");
        let second = shared().expect("the system trust store loads");
        assert!(std::ptr::eq(first, second), "made once, then shared");
        assert_eq!(first.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        // A rustls version other than reqwest's would be refused here, at build time.
        client_builder()
            .build()
            .expect("reqwest accepts the shared configuration");
    }
}
