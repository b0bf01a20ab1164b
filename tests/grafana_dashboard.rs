//! `ops/grafana-dashboard.json` is a dashboard Grafana can import, over metrics the worker
//! really serves.

use std::collections::BTreeSet;

use sailor::telemetry::metrics::METRIC_NAMES;
use serde_json::Value;

const DASHBOARD: &str = include_str!("../ops/grafana-dashboard.json");

/// Every PromQL query in the dashboard: panel targets and template variables.
fn queries(dashboard: &Value) -> Vec<String> {
    let mut found = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            found.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(definition) = variable["definition"].as_str() {
            found.push(definition.to_owned());
        }
    }
    found
}

/// The metric names a query reads: its identifiers that name one of ours, a histogram's
/// series read by their base name.
fn metric_names(query: &str) -> BTreeSet<String> {
    query
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|word| word.starts_with("component_") || word.starts_with("process_"))
        .map(|word| {
            ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|suffix| word.strip_suffix(suffix))
                .unwrap_or(word)
                .to_owned()
        })
        .collect()
}

#[test]
fn the_dashboard_parses_and_queries_only_metrics_the_worker_serves() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "component-workers");
    let queries = queries(&dashboard);
    assert!(queries.len() >= 10, "{queries:?}");
    let served: BTreeSet<&str> = METRIC_NAMES.into_iter().collect();
    let mut used = BTreeSet::new();
    for query in &queries {
        let names = metric_names(query);
        assert!(!names.is_empty(), "no metric in {query}");
        for name in names {
            assert!(
                served.contains(name.as_str()),
                "{name} is not served (in {query})"
            );
            used.insert(name);
        }
    }
    let unused: Vec<&&str> = served
        .iter()
        .filter(|name| !used.contains(**name))
        .collect();
    assert!(unused.is_empty(), "metrics without a panel: {unused:?}");
}

#[test]
fn histogram_series_are_read_by_their_base_name() {
    assert_eq!(
        metric_names("histogram_quantile(0.5, rate(component_processing_seconds_bucket[5m]))"),
        BTreeSet::from(["component_processing_seconds".to_owned()])
    );
}
