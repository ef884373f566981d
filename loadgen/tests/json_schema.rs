//! The JSON report parses and has the documented schema (docs/loadgen.md).

mod support;

use std::time::Duration;

use serde_json::Value;
use support::{echo_server, loadgen, read_json, temp_path, Fault};

fn assert_summary(v: &Value, name: &str) {
    for k in ["p50", "p90", "p99", "p999", "max", "min", "mean"] {
        assert!(
            v[name][k].is_f64(),
            "{name}.{k} is not a number: {}",
            v[name]
        );
    }
    assert!(v[name]["count"].is_u64(), "{name}.count");
    let p = |k: &str| v[name][k].as_f64().unwrap();
    assert!(p("p50") <= p("p90") && p("p90") <= p("p99") && p("p99") <= p("p999"));
    assert!(p("p999") <= p("max"), "{name}: p99.9 above max");
}

#[test]
fn json_report_matches_the_schema() {
    let addr = echo_server(Fault::None).to_string();
    let json = temp_path("schema.json");
    let run = loadgen(
        &[
            "echo",
            "--target",
            &addr,
            "--connections",
            "2",
            "--rate",
            "500",
            "--duration",
            "0.5s",
            "--warmup",
            "0.2s",
            "--json",
            json.to_str().unwrap(),
            "--quiet",
        ],
        Duration::from_secs(20),
    );
    assert_eq!(run.status, 0, "{}\n{}", run.stdout, run.stderr);
    let v = read_json(&json);
    // The schema is the type: the report reads back into `Report` (which denies unknown
    // fields) and writes out again as the same JSON.
    let report = loadgen::json::Report::read(&json).expect("the report has the schema's fields");
    assert_eq!(serde_json::to_value(&report).unwrap(), v);
    assert_eq!(v["schema"], loadgen::json::SCHEMA);
    assert_eq!(v["mode"], "echo");
    assert_eq!(v["target"], addr.as_str());
    assert_eq!(v["framing"], "raw");
    assert_eq!(v["size"], 64);
    assert_eq!(v["rate"], 500.0);
    assert!(v["duration_s"].as_f64().unwrap() > 0.49);
    assert!(v["throughput_rps"].as_f64().unwrap() > 400.0);
    assert_summary(&v, "latency_us");
    assert_summary(&v, "service_us");
    assert_summary(&v, "lag_us");
    assert!(v["errors"].is_object());
    assert_eq!(v["error_count"], 0);
    assert!(v["warnings"].is_array());
    assert!(v["loadgen"]["cpu_us_per_request"].as_f64().unwrap() > 0.0);
    let curve = v["percentiles_us"].as_array().unwrap();
    assert!(curve.len() > 5);
    let mut last = (-1.0, 0.0);
    for pt in curve {
        let (p, us) = (pt[0].as_f64().unwrap(), pt[1].as_f64().unwrap());
        assert!(
            p >= last.0 && us >= last.1,
            "percentile curve not monotonic at {pt}"
        );
        last = (p, us);
    }
    let _ = std::fs::remove_file(json);
}
