//! A load generator for the update tests and benchmarks: threads that GET
//! `/` over HTTP/1.0 in a loop on 127.0.0.1:PORT and record every request
//! (when it started, how long it took, the body or the error).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When it started (connect), since the load began.
    pub start: Duration,
    pub latency: Duration,
    /// The response body, or why the request failed.
    pub outcome: Result<String, String>,
}

impl Sample {
    /// The `revision N` the body names.
    pub fn revision(&self) -> Option<u64> {
        let body = self.outcome.as_ref().ok()?;
        body.split_whitespace().skip_while(|w| *w != "revision").nth(1)?.parse().ok()
    }
}

/// Requests in flight on `threads` threads until [`Hammer::stop`].
pub struct Hammer {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<Vec<Sample>>>,
    t0: Instant,
}

/// One GET; the body of a 200 answer, or why not.
pub fn get(addr: SocketAddr) -> Result<String, String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(20))).map_err(|e| e.to_string())?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| format!("write: {e}"))?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| format!("read: {e}"))?;
    if !out.starts_with("HTTP/1.0 200") && !out.starts_with("HTTP/1.1 200") {
        return Err(format!("not 200: {out:?}"));
    }
    Ok(out.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

impl Hammer {
    pub fn start(port: u16, threads: usize) -> Hammer {
        let stop = Arc::new(AtomicBool::new(false));
        let t0 = Instant::now();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let threads = (0..threads)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut v = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let start = Instant::now();
                        let outcome = get(addr);
                        v.push(Sample { start: start - t0, latency: start.elapsed(), outcome });
                    }
                    v
                })
            })
            .collect();
        Hammer { stop, threads, t0 }
    }

    /// Time since the load began (to compare with [`Sample::start`]).
    pub fn now(&self) -> Duration {
        self.t0.elapsed()
    }

    /// Stops and returns every request, in start order.
    pub fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all: Vec<Sample> = self.threads.into_iter().flat_map(|t| t.join().unwrap_or_default()).collect();
        all.sort_by_key(|s| s.start);
        all
    }
}

/// The `q` quantile (0..=1) of the latencies, in milliseconds.
pub fn quantile_ms(samples: &[&Sample], q: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut l: Vec<f64> = samples.iter().map(|s| s.latency.as_secs_f64() * 1000.0).collect();
    l.sort_by(|a, b| a.total_cmp(b));
    l[((l.len() - 1) as f64 * q).round() as usize]
}
