//! The shipped Grafana dashboard only queries metrics keyshift exports.

use std::collections::BTreeSet;

use serde_json::Value;

const DASHBOARD: &str = include_str!("../../dashboards/keyshift.json");

/// Suffixes Prometheus adds to a histogram's series.
const HISTOGRAM_SUFFIXES: [&str; 3] = ["_bucket", "_sum", "_count"];

/// Collects every `expr` string in the dashboard, however deep.
fn expressions(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("expr", Value::String(expr)) => found.push(expr.clone()),
                    _ => expressions(inner, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| expressions(v, found)),
        _ => {}
    }
}

/// Extracts identifiers starting with `keyshift_` from a PromQL query.
fn metric_names(expr: &str) -> Vec<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    expr.split(|c: char| !is_ident(c))
        .filter(|word| word.starts_with("keyshift_"))
        .map(str::to_owned)
        .collect()
}

fn exported(name: &str) -> bool {
    let base = HISTOGRAM_SUFFIXES
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .unwrap_or(name);
    keyshift::metrics::names().any(|n| n == name || n == base)
}

// Every keyshift_* metric the dashboard queries exists in metrics.rs.
#[test]
fn dashboard_queries_only_exported_metrics() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).expect("dashboard is not JSON");
    let mut exprs = Vec::new();
    expressions(&dashboard["panels"], &mut exprs);
    assert!(exprs.len() >= 10, "too few queries: {exprs:?}");

    let used: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    let unknown: Vec<&String> = used.iter().filter(|n| !exported(n)).collect();
    assert!(
        unknown.is_empty(),
        "dashboard uses unknown metrics {unknown:?}"
    );
}

// Every exported metric has at least one panel.
#[test]
fn dashboard_covers_every_metric() {
    let queried: Vec<String> = {
        let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
        let mut exprs = Vec::new();
        expressions(&dashboard["panels"], &mut exprs);
        exprs.iter().flat_map(|e| metric_names(e)).collect()
    };
    for name in keyshift::metrics::names() {
        let shown = queried.iter().any(|q| q.starts_with(name));
        assert!(shown, "no panel shows {name}");
    }
}

// The dashboard targets a recent schema and a ${datasource} variable.
#[test]
fn dashboard_uses_a_datasource_variable() {
    let dashboard: Value = serde_json::from_str(DASHBOARD).unwrap();
    assert!(dashboard["schemaVersion"].as_u64().unwrap() >= 39);
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    let datasource = variables
        .iter()
        .find(|v| v["name"] == "datasource")
        .unwrap();
    assert_eq!(datasource["query"], "prometheus");
    for panel in dashboard["panels"].as_array().unwrap() {
        assert_eq!(
            panel["datasource"]["uid"], "${datasource}",
            "{}",
            panel["title"]
        );
    }
}
