//! The bench's results: one row per configuration measured, printed as a
//! table and written as JSON for comparison across commits, and the
//! targets, each a ratio of two figures from the same run.

use serde_json::{json, Map, Value};

use super::load::Sample;

pub struct Row {
    pub name: String,
    pub sample: Sample,
    /// Figures beyond the load's own (sizes, memory, counters).
    pub extra: Map<String, Value>,
}

impl Row {
    pub fn new(name: &str, sample: Sample) -> Self {
        Self {
            name: name.to_owned(),
            sample,
            extra: Map::new(),
        }
    }

    pub fn with(mut self, figure: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(figure.to_owned(), value.into());
        self
    }

    pub fn to_json(&self) -> Value {
        let mut object = json!({
            "name": self.name,
            "requests": self.sample.requests,
            "rps": round(self.sample.rps(), 1),
            "p50_ms": round(self.sample.latency_ms(0.5), 3),
            "p99_ms": round(self.sample.latency_ms(0.99), 3),
            "errors": self.sample.errors,
        });
        object
            .as_object_mut()
            .expect("an object")
            .extend(self.extra.clone());
        object
    }
}

/// `value` to `places` decimals, as the report shows it.
pub fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<30} {:>10} {:>9} {:>9} {:>9} {:>7}  {}\n",
        "row", "rps", "p50 ms", "p99 ms", "requests", "errors", "more"
    );
    for row in rows {
        let extra: Vec<String> = row.extra.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out += &format!(
            "{:<30} {:>10.0} {:>9.3} {:>9.3} {:>9} {:>7}  {}\n",
            row.name,
            row.sample.rps(),
            row.sample.latency_ms(0.5),
            row.sample.latency_ms(0.99),
            row.sample.requests,
            row.sample.errors,
            extra.join(" ")
        );
    }
    out
}

/// A bound on one measured figure.
pub struct Target {
    pub what: String,
    pub value: f64,
    pub bound: Bound,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bound {
    AtLeast(f64),
    AtMost(f64),
}

impl Target {
    pub fn new(what: &str, value: f64, bound: Bound) -> Self {
        Self {
            what: what.to_owned(),
            value,
            bound,
        }
    }

    pub fn met(&self) -> bool {
        match self.bound {
            Bound::AtLeast(limit) => self.value >= limit,
            Bound::AtMost(limit) => self.value <= limit,
        }
    }

    pub fn to_json(&self) -> Value {
        let (relation, limit) = match self.bound {
            Bound::AtLeast(limit) => (">=", limit),
            Bound::AtMost(limit) => ("<=", limit),
        };
        json!({
            "name": format!("target: {}", self.what),
            "value": round(self.value, 3),
            "bound": format!("{relation} {limit}"),
            "met": self.met(),
        })
    }
}

pub fn targets_table(targets: &[Target]) -> String {
    let mut out = String::new();
    for target in targets {
        let (relation, limit) = match target.bound {
            Bound::AtLeast(limit) => ("≥", limit),
            Bound::AtMost(limit) => ("≤", limit),
        };
        out += &format!(
            "{:<52} {:>10.3} {relation} {:<9} {}\n",
            target.what,
            target.value,
            limit,
            if target.met() { "met" } else { "MISSED" }
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hdrhistogram::Histogram;

    use super::*;

    fn sample(requests: u64, latencies_us: &[u64]) -> Sample {
        let mut latency_us = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        for l in latencies_us {
            latency_us.record(*l).unwrap();
        }
        Sample {
            requests,
            errors: 2,
            elapsed: Duration::from_secs(4),
            latency_us,
        }
    }

    #[test]
    fn a_row_is_the_issue_s_figures_and_its_extras() {
        let row = Row::new("portcullis-hit", sample(1000, &[100, 200, 300, 400]))
            .with("wasm_bytes", 442_920);
        assert_eq!(
            row.to_json(),
            json!({
                "name": "portcullis-hit",
                "requests": 1000,
                "rps": 250.0,
                "p50_ms": 0.2,
                "p99_ms": 0.4,
                "errors": 2,
                "wasm_bytes": 442_920,
            })
        );
    }

    #[test]
    fn targets_hold_at_their_bound_and_miss_past_it() {
        assert!(Target::new("r", 0.95, Bound::AtLeast(0.95)).met());
        assert!(!Target::new("r", 0.949, Bound::AtLeast(0.95)).met());
        assert!(Target::new("r", 1.25, Bound::AtMost(1.25)).met());
        assert!(!Target::new("r", 1.26, Bound::AtMost(1.25)).met());
        assert_eq!(
            Target::new("p50 ratio", 1.1, Bound::AtMost(1.25)).to_json(),
            json!({"name": "target: p50 ratio", "value": 1.1, "bound": "<= 1.25", "met": true})
        );
    }
}
