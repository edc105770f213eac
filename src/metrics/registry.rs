//! A small metrics registry rendered in Prometheus text format 0.0.4.
//!
//! Families are declared up front so a scrape shows every metric's HELP
//! and TYPE even before the first sample. Series are kept in ordered maps
//! so the output is stable, which keeps scrapes and tests diffable.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// The type of a metric family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A value that only goes up.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Observations counted into buckets.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric family as declared.
#[derive(Clone, Copy, Debug)]
pub struct Declaration {
    /// The metric name.
    pub name: &'static str,
    /// The HELP text.
    pub help: &'static str,
    /// Counter, gauge or histogram.
    pub kind: Kind,
}

/// Label pairs in declaration order; owned so they outlive the caller.
type Labels = Vec<(&'static str, String)>;

#[derive(Debug)]
enum Sample {
    Value(f64),
    Histogram(Histogram),
}

#[derive(Debug, Default)]
struct Histogram {
    /// Non-cumulative count per bucket; rendering accumulates.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

#[derive(Debug)]
struct Family {
    declaration: Declaration,
    series: BTreeMap<Labels, Sample>,
}

/// Holds every metric family of the process.
#[derive(Debug)]
pub struct Registry {
    families: Mutex<Vec<Family>>,
    buckets: &'static [f64],
}

impl Registry {
    /// Creates a registry with these families and histogram buckets.
    pub fn new(declarations: &[Declaration], buckets: &'static [f64]) -> Self {
        let families = declarations
            .iter()
            .map(|&declaration| Family {
                declaration,
                series: BTreeMap::new(),
            })
            .collect();
        Registry {
            families: Mutex::new(families),
            buckets,
        }
    }

    /// Adds `by` to a counter.
    pub fn add(&self, name: &str, labels: &[(&'static str, &str)], by: f64) {
        self.with_value(name, labels, |v| *v += by);
    }

    /// Sets a gauge.
    pub fn set(&self, name: &str, labels: &[(&'static str, &str)], value: f64) {
        self.with_value(name, labels, |v| *v = value);
    }

    /// Removes every series of a family, before setting a fresh snapshot.
    pub fn clear(&self, name: &str) {
        self.with_family(name, |family| family.series.clear());
    }

    /// Records one observation in a histogram.
    pub fn observe(&self, name: &str, labels: &[(&'static str, &str)], value: f64) {
        let bucket = self.buckets.iter().position(|&bound| value <= bound);
        let width = self.buckets.len();
        self.with_family(name, |family| {
            let sample = family
                .series
                .entry(owned(labels))
                .or_insert_with(|| Sample::Histogram(Histogram::default()));
            if let Sample::Histogram(h) = sample {
                h.counts.resize(width, 0);
                if let Some(i) = bucket {
                    h.counts[i] += 1;
                }
                h.sum += value;
                h.count += 1;
            }
        });
    }

    /// Renders every family in the text exposition format.
    pub fn render(&self) -> String {
        let families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        for family in families.iter() {
            let d = family.declaration;
            let _ = writeln!(out, "# HELP {} {}", d.name, d.help);
            let _ = writeln!(out, "# TYPE {} {}", d.name, d.kind.as_str());
            for (labels, sample) in &family.series {
                match sample {
                    Sample::Value(v) => line(&mut out, d.name, labels, None, *v),
                    Sample::Histogram(h) => self.render_histogram(&mut out, d.name, labels, h),
                }
            }
        }
        out
    }

    fn render_histogram(&self, out: &mut String, name: &str, labels: &Labels, h: &Histogram) {
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0;
        for (i, bound) in self.buckets.iter().enumerate() {
            cumulative += h.counts.get(i).copied().unwrap_or(0);
            let le = number(*bound);
            line(out, &bucket, labels, Some(&le), cumulative as f64);
        }
        line(out, &bucket, labels, Some("+Inf"), h.count as f64);
        line(out, &format!("{name}_sum"), labels, None, h.sum);
        line(out, &format!("{name}_count"), labels, None, h.count as f64);
    }

    fn with_value(&self, name: &str, labels: &[(&'static str, &str)], f: impl FnOnce(&mut f64)) {
        self.with_family(name, |family| {
            let sample = family
                .series
                .entry(owned(labels))
                .or_insert(Sample::Value(0.0));
            if let Sample::Value(v) = sample {
                f(v);
            }
        });
    }

    fn with_family(&self, name: &str, f: impl FnOnce(&mut Family)) {
        // A poisoned lock only means a panic elsewhere mid-update; the
        // numbers are still worth serving.
        let mut families = self.families.lock().unwrap_or_else(|e| e.into_inner());
        let family = families.iter_mut().find(|f| f.declaration.name == name);
        debug_assert!(family.is_some(), "undeclared metric {name}");
        if let Some(family) = family {
            f(family);
        }
    }
}

fn owned(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|&(k, v)| (k, v.to_owned())).collect()
}

/// Writes one `name{labels} value` line.
fn line(out: &mut String, name: &str, labels: &Labels, le: Option<&str>, value: f64) {
    out.push_str(name);
    let mut pairs: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.extend(le.map(|le| ("le", le)));
    if !pairs.is_empty() {
        let rendered: Vec<String> = pairs
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let _ = write!(out, "{{{}}}", rendered.join(","));
    }
    let _ = writeln!(out, " {}", number(value));
}

/// Escapes a label value as the format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Formats a sample value; Rust's `inf` is not what Prometheus reads.
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{value}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DECLARED: &[Declaration] = &[
        Declaration {
            name: "t_total",
            help: "A test counter.",
            kind: Kind::Counter,
        },
        Declaration {
            name: "t_seconds",
            help: "A test histogram.",
            kind: Kind::Histogram,
        },
    ];

    // Histogram buckets are cumulative and end with +Inf, sum and count.
    #[test]
    fn histogram_renders_cumulative_buckets() {
        let registry = Registry::new(DECLARED, &[0.1, 1.0]);
        for v in [0.05, 0.5, 0.7, 3.0] {
            registry.observe("t_seconds", &[("route", "/x")], v);
        }
        let text = registry.render();
        for expected in [
            "t_seconds_bucket{route=\"/x\",le=\"0.1\"} 1",
            "t_seconds_bucket{route=\"/x\",le=\"1\"} 3",
            "t_seconds_bucket{route=\"/x\",le=\"+Inf\"} 4",
            "t_seconds_sum{route=\"/x\"} 4.25",
            "t_seconds_count{route=\"/x\"} 4",
        ] {
            assert!(text.contains(expected), "missing {expected} in\n{text}");
        }
    }

    // Label values with quotes, backslashes and newlines are escaped.
    #[test]
    fn label_values_are_escaped() {
        let registry = Registry::new(DECLARED, &[]);
        registry.add("t_total", &[("k", "a\"b\\c\nd")], 2.0);
        let text = registry.render();
        assert!(text.contains(r#"t_total{k="a\"b\\c\nd"} 2"#), "{text}");
    }

    // Declared families appear with HELP and TYPE before any sample.
    #[test]
    fn empty_families_still_have_help_and_type() {
        let text = Registry::new(DECLARED, &[]).render();
        assert!(text.contains("# HELP t_total A test counter.\n# TYPE t_total counter\n"));
        assert!(text.contains("# TYPE t_seconds histogram\n"), "{text}");
    }

    // clear() drops series so a snapshot gauge loses stale labels.
    #[test]
    fn clear_drops_old_series() {
        let registry = Registry::new(DECLARED, &[]);
        registry.add("t_total", &[("k", "old")], 1.0);
        registry.clear("t_total");
        registry.add("t_total", &[("k", "new")], 1.0);
        let text = registry.render();
        assert!(
            !text.contains("old") && text.contains("k=\"new\""),
            "{text}"
        );
    }
}
