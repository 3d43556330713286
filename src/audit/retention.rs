//! Retention: how many old records may go, behind a signed checkpoint.

/// Keep records younger than `max_age_ms` and at most `max_records` of
/// them (either may be off); prune at most `batch` records per round so a
/// round never holds the store's writer long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub max_age_ms: Option<i64>,
    pub max_records: Option<u64>,
    pub batch: u64,
}

impl Retention {
    /// The last sequence number to prune this round, if any. `checkpoint`
    /// is the last pruned so far (0: none), `head` the newest record, and
    /// `aged` the newest record older than the age limit (if any). The head
    /// itself is always kept.
    pub fn cut(&self, checkpoint: u64, head: u64, aged: Option<u64>) -> Option<u64> {
        let by_age = if self.max_age_ms.is_some() { aged.unwrap_or(0) } else { 0 };
        let by_count = self.max_records.map_or(0, |m| head.saturating_sub(m.max(1)));
        let target = by_age.max(by_count).min(head.saturating_sub(1));
        let target = target.min(checkpoint.saturating_add(self.batch.max(1)));
        (target > checkpoint).then_some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_by_age_or_count_in_batches_and_keeps_the_head() {
        let r = Retention { max_age_ms: Some(1000), max_records: Some(100), batch: 50 };
        // 120 records, none too old: 20 over the count.
        assert_eq!(r.cut(0, 120, None), Some(20));
        // Age asks for more than count: batches of 50.
        assert_eq!(r.cut(0, 120, Some(90)), Some(50));
        assert_eq!(r.cut(50, 120, Some(90)), Some(90));
        assert_eq!(r.cut(90, 120, Some(90)), None);
        // Everything old: the head stays.
        assert_eq!(r.cut(90, 120, Some(120)), Some(119));
        let off = Retention { max_age_ms: None, max_records: None, batch: 50 };
        assert_eq!(off.cut(0, 1_000_000, Some(999_999)), None);
    }
}
