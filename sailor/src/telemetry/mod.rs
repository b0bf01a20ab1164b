//! What an operator watches a worker by: Prometheus [`metrics`], the [`health`] behind the
//! orchestrator's probes, the [`server`] answering both on `COMPONENT_METRICS_ADDR`, and the
//! [`logs`]' line formats, written to stderr in [`batch`]es.

pub mod batch;
pub mod health;
pub mod logs;
pub mod metrics;
pub mod server;
