//! The one way the functions emit operational output: the tracing subscriber (lambda_runtime's,
//! which honours AWS_LAMBDA_LOG_LEVEL and AWS_LAMBDA_LOG_FORMAT) and CloudWatch Embedded Metric
//! Format lines. Only ids, counts, sizes, durations, token counts and error codes go through here.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

/// Installs the tracing subscriber. Call once, first thing in `main`, with the function's crate
/// name. `AWS_LAMBDA_LOG_LEVEL` (or a plain level in `RUST_LOG`) sets the level of promptseal's
/// own events; every dependency is capped at INFO whatever the setting, because the AWS SDK and
/// the HTTP stack put request and response bodies into their DEBUG and TRACE events.
/// `AWS_LAMBDA_LOG_FORMAT=JSON` gives JSON lines.
pub fn init(function_crate: &'static str) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::prelude::*;

    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|l| l.trim().parse::<LevelFilter>().ok())
        .unwrap_or(LevelFilter::INFO);
    let filter = Targets::new()
        .with_default(level.min(LevelFilter::INFO))
        .with_target(function_crate, level)
        .with_target("promptseal", level)
        .with_target("audit", level);
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    let layer = tracing_subscriber::fmt::layer()
        .with_target(false)
        .without_time()
        .with_writer(std::io::stdout);
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry.with(layer.json()).init();
    } else {
        registry.with(layer).init();
    }
}

/// A CloudWatch metric unit.
#[derive(Debug, Clone, Copy)]
pub enum Unit {
    Count,
    Milliseconds,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Self::Count => "Count",
            Self::Milliseconds => "Milliseconds",
        }
    }
}

/// One EMF record: metrics under one set of dimensions, plus searchable (non-dimension) properties.
pub struct MetricRecord<'a> {
    pub namespace: &'a str,
    pub dimensions: &'a [(&'a str, &'a str)],
    pub metrics: &'a [(&'a str, f64, Unit)],
    pub properties: &'a [(&'a str, Value)],
}

impl MetricRecord<'_> {
    /// The record as one line of EMF JSON.
    pub fn to_line(&self) -> String {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": millis,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [self.dimensions.iter().map(|(k, _)| *k).collect::<Vec<_>>()],
                    "Metrics": self.metrics.iter()
                        .map(|(name, _, unit)| json!({ "Name": name, "Unit": unit.as_str() }))
                        .collect::<Vec<_>>(),
                }],
            }),
        );
        for (k, v) in self.dimensions {
            root.insert((*k).into(), Value::from(*v));
        }
        for (k, v, _) in self.metrics {
            root.insert((*k).into(), Value::from(*v));
        }
        for (k, v) in self.properties {
            root.insert((*k).into(), v.clone());
        }
        Value::Object(root).to_string()
    }

    /// Writes the record to stdout, where the Lambda log agent picks EMF up.
    pub fn emit(&self) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{}", self.to_line());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_record_names_its_metrics_and_dimensions() {
        let line = MetricRecord {
            namespace: "promptseal",
            dimensions: &[("Function", "invoke"), ("Outcome", "ok")],
            metrics: &[
                ("Requests", 1.0, Unit::Count),
                ("Latency", 12.5, Unit::Milliseconds),
            ],
            properties: &[("tenant_id", json!("acme"))],
        }
        .to_line();
        let v: Value = serde_json::from_str(&line).unwrap();
        let cw = &v["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "promptseal");
        assert_eq!(cw["Dimensions"], json!([["Function", "Outcome"]]));
        assert_eq!(
            cw["Metrics"][1],
            json!({ "Name": "Latency", "Unit": "Milliseconds" })
        );
        assert_eq!(v["Outcome"], "ok");
        assert_eq!(v["Latency"], 12.5);
        assert_eq!(v["tenant_id"], "acme");
        assert!(v["_aws"]["Timestamp"].as_u64().unwrap() > 1_700_000_000_000);
        assert!(!line.contains('\n'));
    }
}
