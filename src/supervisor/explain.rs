//! `AuditExplain`: one service as a reviewer asks about it, from the
//! registry, the capability tables and the audit log: what it runs under
//! (profile and hash, and every profile hash it ever started under), what
//! it holds and who granted it, which live tokens can act on it, and what
//! its filters denied.

use super::query::ServiceView;
use super::{Error, Supervisor};
use crate::audit::{Kind, Stored};
use crate::store::{AuditQuery, GrantRow, TokenRow};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Denied syscalls of one call and action, summed over the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenialSum {
    pub call: String,
    pub action: String,
    pub count: u64,
    pub first_ms: i64,
    pub last_ms: i64,
}

pub struct Explanation {
    pub view: ServiceView,
    pub profile_hashes_seen: Vec<String>,
    pub grants: Vec<GrantRow>,
    pub tokens: Vec<TokenRow>,
    pub denials: Vec<DenialSum>,
    pub recent: Vec<Stored>,
}

/// Records of the service scanned for start hashes and denials.
const SCAN: u32 = 100_000;
/// Latest records shown.
const RECENT: u32 = 15;

impl Supervisor {
    pub fn explain(&self, id: &str) -> Result<Explanation, Error> {
        let view = self.status(id)?;
        let of = |kinds: &[Kind], limit: u32| {
            let q = AuditQuery {
                service: Some(id.to_owned()),
                kinds: kinds.iter().map(|k| k.as_str().to_owned()).collect(),
                limit,
                ..Default::default()
            };
            self.store.audit_query(&q, |_| true)
        };
        let mut hashes: Vec<String> = Vec::new();
        let mut denials: BTreeMap<(String, String), DenialSum> = BTreeMap::new();
        for r in of(&[Kind::Start, Kind::SyscallDenied], SCAN)? {
            let d: serde_json::Value = serde_json::from_str(&r.detail).unwrap_or_default();
            let text = |k: &str| d.get(k).and_then(|v| v.as_str()).unwrap_or("").to_owned();
            if r.kind == Kind::Start.as_str() {
                let h = text("profile_sha256");
                if !h.is_empty() && !hashes.contains(&h) {
                    hashes.push(h);
                }
                continue;
            }
            let count = d.get("count").and_then(|v| v.as_u64()).unwrap_or(1);
            let first = d.get("first_ms").and_then(|v| v.as_i64()).unwrap_or(r.at_ms);
            let last = d.get("last_ms").and_then(|v| v.as_i64()).unwrap_or(r.at_ms);
            let key = (text("call"), text("action"));
            let e = denials.entry(key.clone()).or_insert(DenialSum {
                call: key.0,
                action: key.1,
                count: 0,
                first_ms: first,
                last_ms: last,
            });
            e.count += count;
            e.first_ms = e.first_ms.min(first);
            e.last_ms = e.last_ms.max(last);
        }
        let grants = self.store.grants()?.into_iter().filter(|g| g.service_id == id).collect();
        let mut denials: Vec<DenialSum> = denials.into_values().collect();
        denials.sort_by(|a, b| b.count.cmp(&a.count).then(a.call.cmp(&b.call)));
        Ok(Explanation {
            tokens: self.tokens_acting_on(id)?,
            recent: of(&[], RECENT)?,
            view,
            profile_hashes_seen: hashes,
            grants,
            denials,
        })
    }

    /// Issued tokens, unexpired and not revoked (nor any ancestor), whose
    /// resource covers service `id`.
    fn tokens_acting_on(&self, id: &str) -> Result<Vec<TokenRow>, Error> {
        let all = self.store.unexpired_tokens(crate::auth::now_secs())?;
        let revoked: HashSet<String> = self.store.revoked_ids()?.into_iter().collect();
        let parent: HashMap<&str, &str> = all.iter().map(|t| (t.id.as_str(), t.parent.as_str())).collect();
        let dead = |t: &TokenRow| {
            let mut cur = t.id.as_str();
            for _ in 0..crate::auth::MAX_DEPTH + 1 {
                if revoked.contains(cur) {
                    return true;
                }
                match parent.get(cur) {
                    Some(p) if !p.is_empty() => cur = p,
                    _ => return false,
                }
            }
            false
        };
        let target = super::tokens::service_resource(id);
        Ok(all.iter().filter(|t| crate::auth::resource_matches(&t.resource, &target) && !dead(t)).cloned().collect())
    }
}
