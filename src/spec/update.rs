//! Update strategies as validated values: how a new revision replaces the
//! running one. Every default is resolved here and every refusal names the
//! request field (`rolling.max_unavailable`, `canary.percent`, …).

use super::validate::FieldError;
use serde::{Deserialize, Serialize};

/// How the new revision's instances replace the old ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Strategy {
    /// Replace instances a few at a time: at most `replicas + max_surge`
    /// instances at once, at least `replicas - max_unavailable` available.
    Rolling { max_surge: u32, max_unavailable: u32 },
    /// Start `percent` of the replicas (at least one) beside the old set,
    /// observe them for `window_ms`, then (or on `promote`, with `manual`
    /// only then) replace the rest as a rolling update would.
    Canary { percent: u32, window_ms: u32, manual: bool },
    /// Start the complete new set, then stop the old set from accepting at
    /// once (frozen), keep it `grace_ms` for an instant rollback, then stop it.
    BlueGreen { grace_ms: u32 },
}

impl Strategy {
    pub fn name(&self) -> &'static str {
        match self {
            Strategy::Rolling { .. } => "rolling",
            Strategy::Canary { .. } => "canary",
            Strategy::BlueGreen { .. } => "blue-green",
        }
    }
}

/// A validated update policy: the strategy and how long a new instance
/// must stay ready before it counts as available.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdatePolicy {
    pub strategy: Strategy,
    pub min_ready_ms: u32,
}

/// Which strategy a request names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StrategyKind {
    #[default]
    Rolling,
    Canary,
    BlueGreen,
}

impl StrategyKind {
    pub const NAMES: &'static str = "rolling, canary, blue-green";

    /// `rolling`, `canary` or `blue-green` (also `blue_green`, `bluegreen`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "rolling" => Some(StrategyKind::Rolling),
            "canary" => Some(StrategyKind::Canary),
            "blue-green" | "blue_green" | "bluegreen" => Some(StrategyKind::BlueGreen),
            _ => None,
        }
    }
}

/// A strategy as received: zero means "the default" except where an
/// `Option` says it was set.
#[derive(Debug, Clone, Default)]
pub struct RawStrategy {
    pub kind: StrategyKind,
    pub max_surge: Option<u32>,
    pub max_unavailable: Option<u32>,
    pub percent: u32,
    pub window_ms: u32,
    pub manual: bool,
    pub grace_ms: u32,
    pub min_ready_ms: u32,
}

pub const DEFAULT_MAX_SURGE: u32 = 1;
pub const DEFAULT_CANARY_PERCENT: u32 = 10;
pub const DEFAULT_CANARY_WINDOW_MS: u32 = 30_000;
pub const DEFAULT_GRACE_MS: u32 = 30_000;
pub const DEFAULT_MIN_READY_MS: u32 = 1_000;
/// Longest observation window or grace period (one hour).
pub const MAX_WINDOW_MS: u32 = 3_600_000;
pub const MAX_MIN_READY_MS: u32 = 600_000;

/// Validates `raw` for a new revision of `replicas` instances.
pub fn validate(raw: &RawStrategy, replicas: u32) -> Result<UpdatePolicy, FieldError> {
    let min_ready_ms = super::validate::zero_means_default(
        "min_ready_ms",
        raw.min_ready_ms,
        DEFAULT_MIN_READY_MS,
        MAX_MIN_READY_MS,
        " ms",
    )?;
    let strategy = match raw.kind {
        StrategyKind::Rolling => {
            let max_surge = raw.max_surge.unwrap_or(DEFAULT_MAX_SURGE);
            let max_unavailable = raw.max_unavailable.unwrap_or(0);
            if max_surge > super::ServiceSpec::MAX_REPLICAS {
                return Err(FieldError::invalid(
                    "rolling.max_surge",
                    format!("{max_surge} is more than the maximum of {}", super::ServiceSpec::MAX_REPLICAS),
                ));
            }
            if max_unavailable >= replicas {
                return Err(FieldError::invalid(
                    "rolling.max_unavailable",
                    format!(
                        "{max_unavailable} would let all {replicas} replica(s) be down at once, so the service could go to zero; at most {} for {replicas} replica(s)",
                        replicas - 1
                    ),
                ));
            }
            if max_surge == 0 && max_unavailable == 0 {
                return Err(FieldError::invalid(
                    "rolling.max_surge",
                    "0 together with max_unavailable 0 leaves no room to replace an instance: allow a surge (an extra instance) or an unavailable one",
                ));
            }
            Strategy::Rolling { max_surge, max_unavailable }
        }
        StrategyKind::Canary => {
            let percent = match raw.percent {
                0 => DEFAULT_CANARY_PERCENT,
                p if p > 100 => {
                    return Err(FieldError::invalid("canary.percent", format!("{p} is outside 1..=100")));
                }
                p => p,
            };
            let window_ms = super::validate::zero_means_default(
                "canary.window_ms",
                raw.window_ms,
                DEFAULT_CANARY_WINDOW_MS,
                MAX_WINDOW_MS,
                " ms",
            )?;
            Strategy::Canary { percent, window_ms, manual: raw.manual }
        }
        StrategyKind::BlueGreen => {
            let grace_ms = super::validate::zero_means_default(
                "blue_green.grace_ms",
                raw.grace_ms,
                DEFAULT_GRACE_MS,
                MAX_WINDOW_MS,
                " ms",
            )?;
            Strategy::BlueGreen { grace_ms }
        }
    };
    Ok(UpdatePolicy { strategy, min_ready_ms })
}

/// How many canaries `percent` of `replicas` is: rounded up, at least one,
/// at most every replica.
pub fn canary_instances(percent: u32, replicas: u32) -> u32 {
    (u64::from(percent) * u64::from(replicas)).div_ceil(100).clamp(1, u64::from(replicas.max(1))) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rolling(s: Option<u32>, u: Option<u32>) -> RawStrategy {
        RawStrategy { max_surge: s, max_unavailable: u, ..Default::default() }
    }

    #[test]
    fn defaults() {
        let p = validate(&RawStrategy::default(), 4).expect("valid");
        assert_eq!(
            p,
            UpdatePolicy { strategy: Strategy::Rolling { max_surge: 1, max_unavailable: 0 }, min_ready_ms: 1000 }
        );
        let c = validate(&RawStrategy { kind: StrategyKind::Canary, ..Default::default() }, 4).expect("valid");
        assert_eq!(c.strategy, Strategy::Canary { percent: 10, window_ms: 30_000, manual: false });
        let b = validate(&RawStrategy { kind: StrategyKind::BlueGreen, ..Default::default() }, 1).expect("valid");
        assert_eq!(b.strategy, Strategy::BlueGreen { grace_ms: 30_000 });
    }

    #[test]
    fn refusals_name_the_field() {
        let field = |r: RawStrategy, n: u32| validate(&r, n).map(|_| ()).expect_err("refused").field;
        assert_eq!(field(rolling(None, Some(2)), 2), "rolling.max_unavailable");
        assert_eq!(field(rolling(None, Some(1)), 1), "rolling.max_unavailable");
        assert_eq!(field(rolling(Some(0), Some(0)), 3), "rolling.max_surge");
        assert_eq!(field(rolling(Some(65), None), 3), "rolling.max_surge");
        let c = RawStrategy { kind: StrategyKind::Canary, percent: 150, ..Default::default() };
        assert_eq!(field(c, 3), "canary.percent");
        let c = RawStrategy { kind: StrategyKind::Canary, window_ms: MAX_WINDOW_MS + 1, ..Default::default() };
        assert_eq!(field(c, 3), "canary.window_ms");
        let b = RawStrategy { kind: StrategyKind::BlueGreen, grace_ms: u32::MAX, ..Default::default() };
        assert_eq!(field(b, 3), "blue_green.grace_ms");
        assert_eq!(field(RawStrategy { min_ready_ms: u32::MAX, ..Default::default() }, 3), "min_ready_ms");
        // In place (no surge) with one down at a time is fine.
        assert!(validate(&rolling(Some(0), Some(1)), 3).is_ok());
    }

    #[test]
    fn canary_count_rounds_up_and_stays_in_range() {
        assert_eq!(canary_instances(10, 4), 1);
        assert_eq!(canary_instances(25, 4), 1);
        assert_eq!(canary_instances(26, 4), 2);
        assert_eq!(canary_instances(100, 4), 4);
        assert_eq!(canary_instances(1, 1), 1);
        assert_eq!(canary_instances(50, 3), 2);
    }

    #[test]
    fn strategy_names_parse() {
        assert_eq!(StrategyKind::parse("blue-green"), Some(StrategyKind::BlueGreen));
        assert_eq!(StrategyKind::parse("yolo"), None);
    }
}
