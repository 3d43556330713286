//! `cargo bench --bench uds_authority`: what the Unix-socket `:authority`
//! adapter (`src/api/uds_authority/`) costs. One sample reads a whole
//! recorded grpcio 1.85.1 connection (preface, SETTINGS, four requests:
//! Health/Check twice, a reflection stream, Solo/List; 648 bytes) from
//! memory through the adapter, single thread, no h2 behind it:
//!
//! - `no adapter`: the bytes read as they are (the floor);
//! - `passthrough`: the same connection with an `:authority` h2 accepts
//!   (what Solo's CLI pays: the first block is decoded, then nothing);
//! - `rewrite`: the recording as grpcio sent it, `:authority` the socket
//!   path: every block decoded, rewritten and re-framed;
//! - `huffman`: three requests as python-hpack encodes them (Huffman
//!   strings, dynamic table; the blocks of the adapter's unit tests),
//!   rewritten. grpcio 1.85 sends no Huffman strings, other encoders do.
//!
//! Median and p99 of individually timed connections. Under `cargo test
//! --all-targets` (no `--bench` argument) it runs a few iterations only.

use solo::api::uds_authority::UdsAuthority;
use std::hint::black_box;
use std::time::Instant;
use tokio::io::AsyncReadExt;

const GRPCIO: &[u8] = include_bytes!("../src/api/uds_authority/testdata/grpcio-1.85.1-unix.bin");
const BAD: &[u8] = b"tmp%2Frf%2Fp.sock";
/// python-hpack 4.2, Huffman on: Health/Check, Solo/List, Solo/Status.
const HUFFMAN_BLOCKS: [&str; 3] = [
    "83864495626b2b22f394742675fb857c651d099d8bd3949d7f41904d35aa2c283d075458507a0eba0e4ebf5f8b1d75d0620d263d4c4d65644082497f864d833505b11f40899acac8b24d494f6a7f826f77",
    "8386448d6107a0ebf70afb8f41d8ce6427c2c1c0578bba51d85b1441e838571c64",
    "8386448f6107a0ebf70afb8f41d8dc91a6d47fc4c3c2bf7f028469f7dfa7",
];

fn measure(name: &str, iters: usize, requests: u128, mut f: impl FnMut()) {
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
    println!(
        "{name:<12} median {:>7} ns   p99 {:>7} ns   per request {:>6} ns   ({iters} connections)",
        at(0.5),
        at(0.99),
        at(0.5) / requests
    );
}

fn read(bytes: &[u8], adapter: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(4096);
    futures::executor::block_on(async {
        if adapter {
            UdsAuthority::new(bytes).read_to_end(&mut out).await
        } else {
            let mut plain = bytes;
            plain.read_to_end(&mut out).await
        }
    })
    .expect("read from memory");
    out
}

/// Preface, an empty SETTINGS, then each block as one HEADERS frame.
fn huffman_session() -> Vec<u8> {
    let mut v = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0".to_vec();
    for (stream, block) in [1u8, 3, 5].into_iter().zip(HUFFMAN_BLOCKS) {
        let block = hex::decode(block).expect("hex");
        let len = u8::try_from(block.len()).expect("short block");
        v.extend_from_slice(&[0, 0, len, 0x1, 0x4, 0, 0, 0, stream]);
        v.extend(block);
    }
    v
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let iters = if full { 100_000 } else { 200 };
    // The same connection with an acceptable authority of the same length.
    let at = GRPCIO.windows(BAD.len()).position(|w| w == BAD).expect("the recording holds the socket path");
    let mut good = GRPCIO.to_vec();
    good[at..at + BAD.len()].fill(b'a');
    assert_eq!(read(&good, true), good, "an acceptable authority passes through unchanged");
    assert_ne!(read(GRPCIO, true), GRPCIO, "the socket path is rewritten");

    let huffman = huffman_session();
    assert_ne!(read(&huffman, true), huffman, "the Huffman-coded socket path is rewritten");

    measure("no adapter", iters, 4, || {
        black_box(read(black_box(GRPCIO), false));
    });
    measure("passthrough", iters, 4, || {
        black_box(read(black_box(&good), true));
    });
    measure("rewrite", iters, 4, || {
        black_box(read(black_box(GRPCIO), true));
    });
    measure("huffman", iters, 3, || {
        black_box(read(black_box(&huffman), true));
    });
    if !full {
        println!("(smoke run: the figures mean something only from `cargo bench --bench uds_authority`)");
    }
}
