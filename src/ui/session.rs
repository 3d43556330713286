//! Sessions of the web view: a random cookie maps to the token the
//! operator logged in with (kept in memory only, never written or logged)
//! and to the usage history sampled with that token. Every gRPC call made
//! for a page presents the session's token, so a page shows exactly what
//! that token may see and can do exactly what it may do.

use crate::cli::Client;
use crate::proto::v1 as pb;
use rand::RngCore;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// How often a session samples usage (`List`: usage at most 2 s old).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// Samples kept per service: ten minutes.
pub const HISTORY: usize = 300;
/// A session unused this long is dropped (an open page keeps it alive).
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// At most this many sessions; the least recently used goes first.
pub const MAX_SESSIONS: usize = 32;
/// A one-time login code printed by `solo ui` is good this long.
pub const CODE_LIFE: Duration = Duration::from_secs(10 * 60);
/// Most services whose history one session keeps.
const MAX_TRACKED: usize = 2000;

/// One service's usage at one moment (summed over its instances).
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    pub cpu_usec: u64,
    pub memory_bytes: u64,
}

/// A logged-in browser.
pub struct Session {
    pub token: String,
    /// Sent back by the page's script on every action (`X-Solo-Csrf`).
    pub csrf: String,
    pub client: Client,
    last_seen: Mutex<Instant>,
    history: Mutex<BTreeMap<String, VecDeque<Sample>>>,
    sampler: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Session {
    pub fn touch(&self) {
        if let Ok(mut t) = self.last_seen.lock() {
            *t = Instant::now();
        }
    }

    fn idle(&self) -> Duration {
        self.last_seen.lock().map(|t| t.elapsed()).unwrap_or(IDLE)
    }

    /// The samples of `service`, oldest first.
    pub fn history(&self, service: &str) -> Vec<Sample> {
        self.history.lock().ok().and_then(|h| h.get(service).map(|d| d.iter().copied().collect())).unwrap_or_default()
    }

    fn record(&self, services: &[pb::ServiceStatus]) {
        let Ok(mut h) = self.history.lock() else { return };
        let now = Instant::now();
        let ids: std::collections::BTreeSet<&str> = services.iter().map(|s| s.id.as_str()).collect();
        h.retain(|id, _| ids.contains(id.as_str()));
        for s in services {
            if !h.contains_key(&s.id) && h.len() >= MAX_TRACKED {
                continue;
            }
            let usage = s.instances.iter().filter_map(|i| i.usage.as_ref());
            let (cpu_usec, memory_bytes) = usage.fold((0, 0), |(c, m), u| (c + u.cpu_usage_usec, m + u.memory_bytes));
            let d = h.entry(s.id.clone()).or_default();
            if d.len() == HISTORY {
                d.pop_front();
            }
            d.push_back(Sample { at: now, cpu_usec, memory_bytes });
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Some(h) = self.sampler.get_mut().ok().and_then(Option::take) {
            h.abort();
        }
    }
}

/// Every session, and the one-time login codes.
#[derive(Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Arc<Session>>>,
    codes: Mutex<HashMap<String, (String, Instant)>>,
}

/// 32 random bytes in hex: a session id, a CSRF token, a login code.
pub fn random_id() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Constant-time comparison of two secrets.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Sessions {
    /// A new session for `token` (already checked with the daemon), with its
    /// usage sampler running. Returns its cookie value.
    pub fn create(self: &Arc<Self>, token: String, channel: Channel) -> Result<String, String> {
        let client = crate::cli::with_token(channel, Some(&token)).map_err(|e| e.to_string())?;
        let id = random_id();
        let s = Arc::new(Session {
            token,
            csrf: random_id(),
            client,
            last_seen: Mutex::new(Instant::now()),
            history: Mutex::new(BTreeMap::new()),
            sampler: Mutex::new(None),
        });
        let weak = Arc::downgrade(&s);
        let handle = tokio::spawn(async move {
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tick.tick().await;
                let Some(s) = weak.upgrade() else { return };
                let mut c = s.client.clone();
                if let Ok(r) = c.list(pb::ListRequest::default()).await {
                    s.record(&r.into_inner().services);
                }
            }
        });
        if let Ok(mut h) = s.sampler.lock() {
            *h = Some(handle.abort_handle());
        }
        let mut map = self.by_id.lock().map_err(|_| "session store poisoned".to_owned())?;
        map.retain(|_, s| s.idle() < IDLE);
        while map.len() >= MAX_SESSIONS {
            let oldest = map.iter().max_by_key(|(_, s)| s.idle()).map(|(k, _)| k.clone());
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(id.clone(), s);
        Ok(id)
    }

    /// The live session of cookie value `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        let mut map = self.by_id.lock().ok()?;
        let s = map.iter().find(|(k, _)| same(k, id)).map(|(_, s)| s.clone())?;
        if s.idle() >= IDLE {
            map.retain(|k, _| !same(k, id));
            return None;
        }
        s.touch();
        Some(s)
    }

    pub fn remove(&self, id: &str) {
        if let Ok(mut map) = self.by_id.lock() {
            map.retain(|k, _| !same(k, id));
        }
    }

    /// A one-time code that logs in as `token` (what `solo ui` prints).
    pub fn code_for(&self, token: String) -> String {
        let code = random_id();
        if let Ok(mut c) = self.codes.lock() {
            c.retain(|_, (_, at)| at.elapsed() < CODE_LIFE);
            c.insert(code.clone(), (token, Instant::now()));
        }
        code
    }

    /// The token of a login code, which is used up.
    pub fn redeem(&self, code: &str) -> Option<String> {
        let mut c = self.codes.lock().ok()?;
        let key = c.keys().find(|k| same(k, code)).cloned()?;
        let (token, at) = c.remove(&key)?;
        (at.elapsed() < CODE_LIFE).then_some(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_compares_whole_strings() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "ab"));
        assert_eq!(random_id().len(), 64);
        assert_ne!(random_id(), random_id());
    }
}
