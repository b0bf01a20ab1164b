//! The operator's endpoint on `COMPONENT_METRICS_ADDR`: `GET /metrics` (Prometheus),
//! `GET /healthz` (liveness) and `GET /readyz` (readiness), served by axum on the worker's
//! own runtime, beside the consumer.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::health::Health;
use super::metrics;

/// The running endpoint; dropping it (or [`OpsServer::stop`]) stops serving.
#[derive(Debug)]
pub struct OpsServer {
    address: SocketAddr,
    task: JoinHandle<()>,
}

impl OpsServer {
    /// Binds `address` and serves the three routes from `health` and the process' metrics.
    pub async fn start(address: SocketAddr, health: Arc<Health>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let app = Router::new()
            .route("/metrics", get(metrics_text))
            .route("/healthz", get(liveness))
            .route("/readyz", get(readiness))
            .with_state(health);
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(message = "The metrics endpoint stopped.", %error);
            }
        });
        tracing::info!(message = "Serving metrics and health.", %address);
        Ok(Self { address, task })
    }

    /// The bound address (with the port chosen, when `:0` was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops serving.
    pub fn stop(self) {
        self.task.abort();
    }
}

impl Drop for OpsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn metrics_text() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::get().encode(),
    )
}

async fn liveness(State(health): State<Arc<Health>>) -> (StatusCode, String) {
    match health.check_live() {
        Ok(()) => (StatusCode::OK, "alive\n".to_owned()),
        Err(wedged) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("wedged: {wedged}\n"),
        ),
    }
}

async fn readiness(State(health): State<Arc<Health>>) -> (StatusCode, &'static str) {
    if health.is_ready() {
        (StatusCode::OK, "consuming\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not consuming\n")
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::clock::ManualClock;

    #[tokio::test]
    async fn the_three_routes_answer_from_the_health_state() {
        let clock = ManualClock::at(1_000);
        let health = Arc::new(Health::new(Duration::from_secs(5), Arc::new(clock.clone())));
        let server = OpsServer::start(SocketAddr::from(([127, 0, 0, 1], 0)), health.clone())
            .await
            .unwrap();
        let base = format!("http://{}", server.address());
        let client = reqwest::Client::new();
        let status = |path: &'static str| {
            let (client, base) = (client.clone(), base.clone());
            async move {
                client
                    .get(format!("{base}{path}"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            }
        };
        assert_eq!(status("/readyz").await, 503);
        assert_eq!(status("/healthz").await, 200);
        health.set_consuming(true);
        assert_eq!(status("/readyz").await, 200);
        let running = health.delivery_started();
        clock.advance(6);
        assert_eq!(status("/healthz").await, 503);
        drop(running);
        assert_eq!(status("/healthz").await, 200);
        let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(metrics.status(), 200);
        assert_eq!(
            metrics.headers()[header::CONTENT_TYPE],
            metrics::CONTENT_TYPE
        );
        assert!(
            metrics
                .text()
                .await
                .unwrap()
                .contains("process_start_time_seconds")
        );
        assert_eq!(status("/other").await, 404);
        server.stop();
    }
}
