//! The Prometheus text exposition format (version 0.0.4): `# HELP` and
//! `# TYPE` once per family, then its samples. Label values are escaped
//! (backslash, double quote, newline); numbers are written the way
//! Prometheus parses them (`+Inf`, `NaN`).

use super::histogram::Snapshot;
use std::fmt::Write;

/// The content type a scrape answers with.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Counter,
    Gauge,
    Histogram,
    /// For names the seed fixed that a typed family may not carry
    /// (`solo_deployment_count`: `_count` is reserved for histograms).
    Untyped,
}

impl Type {
    fn as_str(self) -> &'static str {
        match self {
            Type::Counter => "counter",
            Type::Gauge => "gauge",
            Type::Histogram => "histogram",
            Type::Untyped => "untyped",
        }
    }
}

/// Builds one exposition.
#[derive(Default)]
pub struct Writer {
    out: String,
}

/// `3`, `0.25`, `+Inf`, `NaN`.
pub fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

fn escape(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

impl Writer {
    pub fn with_capacity(n: usize) -> Writer {
        Writer { out: String::with_capacity(n) }
    }

    /// Starts a family: its HELP and TYPE lines.
    pub fn family(&mut self, name: &str, kind: Type, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
    }

    /// One sample: `name{k="v",...} value`.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape(val, &mut self.out);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&number(v));
        self.out.push('\n');
    }

    /// A histogram's `_bucket`, `_sum` and `_count` samples.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], s: &Snapshot) {
        let bucket = format!("{name}_bucket");
        for (le, n) in &s.buckets {
            let le = number(*le);
            let mut l: Vec<(&str, &str)> = labels.to_vec();
            l.push(("le", &le));
            self.sample(&bucket, &l, *n as f64);
        }
        self.sample(&format!("{name}_sum"), labels, s.sum);
        self.sample(&format!("{name}_count"), labels, s.count as f64);
    }

    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::super::histogram::Histogram;
    use super::*;

    #[test]
    fn families_samples_and_escaping() {
        let mut w = Writer::default();
        w.family("solo_x_total", Type::Counter, "Things.");
        w.sample("solo_x_total", &[("service", "a\"b\\c\nd")], 3.0);
        w.sample("solo_x_total", &[], 0.25);
        let t = w.finish();
        assert_eq!(
            t,
            "# HELP solo_x_total Things.\n# TYPE solo_x_total counter\nsolo_x_total{service=\"a\\\"b\\\\c\\nd\"} 3\nsolo_x_total 0.25\n"
        );
    }

    #[test]
    fn histograms_end_with_inf_sum_and_count() {
        static B: [f64; 2] = [1.0, 2.5];
        let h = Histogram::new(&B);
        h.observe(2.0);
        let mut w = Writer::default();
        w.histogram("solo_h_ms", &[("method", "Deploy")], &h.snapshot());
        let t = w.finish();
        assert_eq!(
            t,
            "solo_h_ms_bucket{method=\"Deploy\",le=\"1\"} 0\nsolo_h_ms_bucket{method=\"Deploy\",le=\"2.5\"} 1\n\
             solo_h_ms_bucket{method=\"Deploy\",le=\"+Inf\"} 1\nsolo_h_ms_sum{method=\"Deploy\"} 2\nsolo_h_ms_count{method=\"Deploy\"} 1\n"
        );
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(1e20), "100000000000000000000");
    }
}
