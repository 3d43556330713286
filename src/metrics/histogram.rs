//! A fixed-bucket histogram updated with atomics: observing is a binary
//! search and two relaxed adds, no lock, so the hot paths (every RPC,
//! every spawn) pay nanoseconds for it.

use std::sync::atomic::{AtomicU64, Ordering};

pub struct Histogram {
    /// Upper bounds of the buckets, ascending (the `le` labels).
    bounds: &'static [f64],
    /// Count per bucket (not cumulative); the last is `+Inf`.
    counts: Vec<AtomicU64>,
    /// Sum of observations, in millionths of the unit.
    sum_micros: AtomicU64,
}

/// A consistent-enough copy for rendering (cumulative counts).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// (`le`, cumulative count), the last with `f64::INFINITY`.
    pub buckets: Vec<(f64, u64)>,
    pub sum: f64,
    pub count: u64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum_micros: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, v: f64) {
        let v = if v.is_finite() && v > 0.0 { v } else { 0.0 };
        let i = self.bounds.partition_point(|b| *b < v);
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add((v * 1e6) as u64, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut cum = 0;
        let mut buckets = Vec::with_capacity(self.counts.len());
        for (i, c) in self.counts.iter().enumerate() {
            cum += c.load(Ordering::Relaxed);
            buckets.push((self.bounds.get(i).copied().unwrap_or(f64::INFINITY), cum));
        }
        Snapshot { buckets, sum: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6, count: cum }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_le_inclusive() {
        static B: [f64; 3] = [1.0, 5.0, 10.0];
        let h = Histogram::new(&B);
        for v in [0.5, 1.0, 3.0, 5.0, 7.0, 100.0, f64::NAN] {
            h.observe(v);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets, vec![(1.0, 3), (5.0, 5), (10.0, 6), (f64::INFINITY, 7)]);
        assert_eq!(s.count, 7);
        assert!((s.sum - 116.5).abs() < 1e-6, "{}", s.sum);
    }
}
