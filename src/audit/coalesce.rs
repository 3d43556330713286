//! Coalescing of repeated records (denied syscalls, refused tokens): the
//! first occurrence of a key is recorded at once, so nothing is hidden;
//! repeats within a window are counted and recorded as one record with
//! the count and the first and last time. A hostile service cannot grow
//! the log faster than one record per key per window, and the number of
//! keys held is bounded.

use super::Record;
use std::collections::HashMap;

struct Entry {
    /// When the current window started (the last record written for the key).
    window_start: i64,
    /// Repeats not yet written, and their first and last time.
    count: u64,
    first_ms: i64,
    last_ms: i64,
    template: Record,
}

/// Counts repeats per key; see the module docs.
pub struct Coalescer {
    window_ms: i64,
    max_keys: usize,
    map: HashMap<String, Entry>,
}

impl Coalescer {
    pub fn new(window_ms: i64, max_keys: usize) -> Coalescer {
        Coalescer { window_ms, max_keys: max_keys.max(1), map: HashMap::new() }
    }

    /// Keys held (repeats pending or a window open).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// One occurrence of `r` under `key` at `now_ms`: returns what to
    /// write now (the first occurrence, or a count whose window is over).
    pub fn note(&mut self, key: &str, r: Record, now_ms: i64) -> Vec<Record> {
        let mut out = Vec::new();
        if let Some(e) = self.map.get_mut(key) {
            if e.count == 0 {
                e.first_ms = now_ms;
            }
            e.count += 1;
            e.last_ms = now_ms;
            if now_ms - e.window_start >= self.window_ms {
                out.push(summary(e));
                e.window_start = now_ms;
                e.count = 0;
            }
            return out;
        }
        if self.map.len() >= self.max_keys {
            out.extend(self.drain());
        }
        out.push(
            Record { at_ms: now_ms, ..r.clone() }.with("count", 1).with("first_ms", now_ms).with("last_ms", now_ms),
        );
        self.map.insert(key.to_owned(), Entry { window_start: now_ms, count: 0, first_ms: 0, last_ms: 0, template: r });
        out
    }

    /// Counts whose window is over; keys quiet for a whole window are
    /// forgotten (their next occurrence is recorded at once again).
    pub fn flush_due(&mut self, now_ms: i64) -> Vec<Record> {
        let mut out = Vec::new();
        self.map.retain(|_, e| {
            if now_ms - e.window_start < self.window_ms {
                return true;
            }
            if e.count > 0 {
                out.push(summary(e));
            }
            false
        });
        out.sort_by_key(|r| r.at_ms);
        out
    }

    /// Every pending count, now (shutdown, a full table).
    pub fn drain(&mut self) -> Vec<Record> {
        let mut out: Vec<Record> = self.map.drain().filter(|(_, e)| e.count > 0).map(|(_, e)| summary(&e)).collect();
        out.sort_by_key(|r| r.at_ms);
        out
    }
}

fn summary(e: &Entry) -> Record {
    let t = &e.template;
    Record {
        at_ms: e.last_ms,
        message: format!(
            "{} ({} more times over {:.1} s)",
            t.message,
            e.count,
            (e.last_ms - e.first_ms) as f64 / 1000.0
        ),
        ..t.clone()
    }
    .with("count", e.count)
    .with("first_ms", e.first_ms)
    .with("last_ms", e.last_ms)
}

#[cfg(test)]
mod tests {
    use super::super::Kind;
    use super::*;

    fn denied(call: &str) -> Record {
        Record::new(Kind::SyscallDenied, "svc").message(format!("denied {call}")).with("syscall", call)
    }

    fn count(r: &Record) -> u64 {
        r.detail["count"].as_u64().unwrap_or(0)
    }

    #[test]
    fn first_at_once_repeats_counted_per_window() {
        let mut c = Coalescer::new(1000, 16);
        let out = c.note("svc/ptrace", denied("ptrace"), 100);
        assert_eq!(out.len(), 1);
        assert_eq!((count(&out[0]), out[0].at_ms), (1, 100));
        for t in [200, 300, 400] {
            assert!(c.note("svc/ptrace", denied("ptrace"), t).is_empty());
        }
        // Another key is its own.
        assert_eq!(c.note("svc/bpf", denied("bpf"), 500).len(), 1);
        // The window ends with the next occurrence after it ...
        let out = c.note("svc/ptrace", denied("ptrace"), 1100);
        assert_eq!(out.len(), 1);
        assert_eq!(count(&out[0]), 4);
        assert_eq!(out[0].detail["first_ms"], 200);
        assert_eq!(out[0].detail["last_ms"], 1100);
        assert_eq!(out[0].message, "denied ptrace (4 more times over 0.9 s)");
        // ... or with a flush once it is over.
        c.note("svc/ptrace", denied("ptrace"), 1200);
        assert!(c.flush_due(1500).is_empty());
        let due = c.flush_due(2100);
        assert_eq!(due.len(), 1);
        assert_eq!(count(&due[0]), 1);
        // Both keys were quiet for a window: forgotten, so the next is at once.
        assert!(c.is_empty());
        assert_eq!(c.note("svc/ptrace", denied("ptrace"), 2200).len(), 1);
    }

    #[test]
    fn bounded_keys_and_drain() {
        let mut c = Coalescer::new(10_000, 2);
        c.note("a", denied("a"), 1);
        c.note("a", denied("a"), 2);
        c.note("b", denied("b"), 3);
        // A third key flushes what is pending and starts over.
        let out = c.note("c", denied("c"), 4);
        assert_eq!(out.len(), 2, "a's count and c's first");
        assert_eq!(count(&out[0]), 1);
        assert_eq!(c.len(), 1);
        c.note("c", denied("c"), 5);
        c.note("c", denied("c"), 6);
        let out = c.drain();
        assert_eq!(out.len(), 1);
        assert_eq!(count(&out[0]), 2);
        assert!(c.is_empty());
    }
}
