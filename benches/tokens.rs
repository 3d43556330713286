//! `cargo bench --bench tokens`: what a token costs, per call, single
//! thread: verify of a root token and of a depth-4 chain (the work done on
//! every gRPC call), issue, and attenuate. Each figure is the median and p99
//! of individually timed calls (`Instant` around one call, so each sample
//! includes ~20-40 ns of clock reads).
//!
//! Under `cargo test --all-targets` (no `--bench` argument) it runs a few
//! iterations only, so the benchmark keeps building and working.

use solo::auth::{attenuate, issue, verify, Key, Perms, Restriction, Token};
use std::hint::black_box;
use std::time::Instant;

const NOW: u64 = 1_800_000_000;

fn measure(name: &str, iters: usize, mut f: impl FnMut()) {
    for _ in 0..iters / 10 {
        f();
    }
    let mut ns: Vec<u128> = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f();
        ns.push(t.elapsed().as_nanos());
    }
    ns.sort_unstable();
    let at = |q: f64| ns[((ns.len() - 1) as f64 * q).round() as usize];
    println!("{name:<26} median {:>7} ns   p99 {:>7} ns   ({iters} calls)", at(0.5), at(0.99));
}

fn chain(root: &Token, depth: usize) -> Token {
    let resources = ["service:agent-a-*", "service:agent-a-web-*", "service:agent-a-web-1"];
    let mut t = root.clone();
    for res in resources.iter().take(depth - 1) {
        let r = Restriction { resource: Some((*res).to_owned()), expires_at: Some(NOW + 3600), ..Default::default() };
        t = attenuate(&t, r, NOW).expect("attenuate");
    }
    t
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let iters = if full { 100_000 } else { 200 };
    let key = Key::generate();
    let perms = Perms::parse_list("deploy,status,kill,watch").expect("perms");
    let root = issue(&key, "agent-a", "service:*", perms, NOW - 60, 0).expect("issue");
    let deep = chain(&root, 4);
    assert_eq!(deep.chain().len(), 4);
    let (root_text, deep_text) = (root.encode(), deep.encode());
    println!("token sizes: root {} bytes, depth-4 chain {} bytes", root_text.len(), deep_text.len());

    measure("verify root", iters, || {
        black_box(verify(&key, black_box(&root_text), NOW, |id| black_box(id).is_empty()).expect("verify"));
    });
    measure("verify depth-4 chain", iters, || {
        black_box(verify(&key, black_box(&deep_text), NOW, |id| black_box(id).is_empty()).expect("verify"));
    });
    measure("issue", iters, || {
        black_box(issue(&key, black_box("agent-a"), "service:agent-a-*", perms, NOW, NOW + 3600).expect("issue"));
    });
    measure("attenuate (root -> child)", iters, || {
        let r = Restriction { resource: Some("service:agent-a-web".to_owned()), ..Default::default() };
        black_box(attenuate(black_box(&root), r, NOW).expect("attenuate"));
    });
    measure("encode depth-4 chain", iters, || {
        black_box(black_box(&deep).encode());
    });
    if !full {
        println!("(smoke run: the figures mean something only from `cargo bench --bench tokens`)");
    }
}
