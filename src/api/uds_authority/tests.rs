//! The adapter on real and hostile client bytes.
//!
//! `testdata/grpcio-1.85.1-unix.bin` is what grpcio 1.85.1 (grpc-c 58)
//! sent on `unix:///tmp/rf/p.sock`, recorded by a proxy in front of
//! `solo serve`: preface, SETTINGS, then Health/Check twice, a reflection
//! stream and Solo/List (with a forged token), each a literal or
//! dynamic-table HPACK block with `:authority: tmp%2Frf%2Fp.sock`.

use super::*;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const GRPCIO: &[u8] = include_bytes!("testdata/grpcio-1.85.1-unix.bin");
const BAD: &str = "tmp%2Fsolo%2Fsolo.sock";
const DATA: u8 = 0x0;
const SETTINGS: u8 = 0x4;
const WINDOW_UPDATE: u8 = 0x8;

/// Three requests as python-hpack 4.2 encodes them: Huffman-coded strings,
/// every field added to the dynamic table, later blocks mostly references.
/// `:authority` is [`BAD`]; paths Health/Check, Solo/List, Solo/Status.
const HUFFMAN_BLOCKS: [&str; 3] = [
    "83864495626b2b22f394742675fb857c651d099d8bd3949d7f41904d35aa2c283d075458507a0eba0e4ebf5f8b1d75d0620d263d4c4d65644082497f864d833505b11f40899acac8b24d494f6a7f826f77",
    "8386448d6107a0ebf70afb8f41d8ce6427c2c1c0578bba51d85b1441e838571c64",
    "8386448f6107a0ebf70afb8f41d8dc91a6d47fc4c3c2bf7f028469f7dfa7",
];

/// RFC 7541 C.4: three requests, Huffman-coded, sharing the dynamic table;
/// `:authority: www.example.com` (acceptable).
const RFC_C4: [&str; 3] = [
    "828684418cf1e3c2e5f23a6ba0ab90f4ff",
    "828684be5886a8eb10649cbf",
    "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf",
];

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s).expect("test vector is hex")
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    frame_header(&mut v, payload.len(), kind, flags, stream);
    v.extend_from_slice(payload);
    v
}

fn headers(stream: u32, block: &[u8]) -> Vec<u8> {
    frame(HEADERS, END_HEADERS, stream, block)
}

/// Preface, an empty SETTINGS, then `frames`.
fn session(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = PREFACE.to_vec();
    v.extend(frame(SETTINGS, 0, 0, &[]));
    for f in frames {
        v.extend_from_slice(f);
    }
    v
}

/// A block of literal fields that needs no table state.
fn literal(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut v = Vec::new();
    for (name, value) in fields {
        hpack::field(&mut v, name.as_bytes(), value.as_bytes());
    }
    v
}

fn grpc_request(path: &str, authority: &str) -> Vec<u8> {
    literal(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ])
}

/// A session already in rewrite mode (first block has a bad authority).
fn rewriting(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut all = vec![headers(1, &grpc_request("/grpc.health.v1.Health/Check", BAD))];
    all.extend_from_slice(frames);
    session(&all)
}

/// A frame or a decoded header block, as h2 would see it.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Frame(Vec<u8>),
    Block { stream: u32, flags: u8, priority: [u8; PRIORITY_LEN], fields: Vec<(String, String)> },
}

/// Splits a client byte stream (after the preface) into frames and header
/// blocks. `fresh`: each block is decoded by a new decoder, which succeeds
/// only for blocks that need no dynamic-table state. An unfinished frame
/// or block at the end is left out. Also checks every frame is at most
/// [`MAX_FRAME_SIZE`].
fn items(bytes: &[u8], fresh: bool) -> Vec<Item> {
    assert_eq!(&bytes[..PREFACE.len()], PREFACE, "the preface comes first");
    let mut rest = &bytes[PREFACE.len()..];
    let mut decoder = loona_hpack::Decoder::new();
    let mut out = Vec::new();
    let mut open: Option<(u32, u8, [u8; PRIORITY_LEN], Vec<u8>)> = None;
    while rest.len() >= FRAME_HEADER_LEN {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        assert!(len <= MAX_FRAME_SIZE, "a frame of {len} bytes");
        if rest.len() < FRAME_HEADER_LEN + len {
            break;
        }
        let (kind, flags) = (rest[3], rest[4]);
        let stream = u32::from_be_bytes([rest[5], rest[6], rest[7], rest[8]]);
        let payload = &rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len];
        let whole = &rest[..FRAME_HEADER_LEN + len];
        rest = &rest[FRAME_HEADER_LEN + len..];
        let fragment = match kind {
            HEADERS => {
                let (priority, fragment) = strip_headers_payload(payload, flags).expect("well-formed HEADERS");
                open = Some((stream, flags & (END_STREAM | PRIORITY), priority.unwrap_or_default(), Vec::new()));
                fragment
            }
            CONTINUATION => payload,
            _ => {
                out.push(Item::Frame(whole.to_vec()));
                continue;
            }
        };
        let Some(block) = open.as_mut() else { panic!("CONTINUATION outside a block") };
        block.3.extend_from_slice(fragment);
        if flags & END_HEADERS != 0 {
            let Some((stream, flags, priority, fragment)) = open.take() else { unreachable!() };
            if fresh {
                decoder = loona_hpack::Decoder::new();
            }
            let fields = decoder.decode(&fragment).expect("the block decodes");
            let fields = fields
                .into_iter()
                .map(|(n, v)| (String::from_utf8_lossy(&n).into_owned(), String::from_utf8_lossy(&v).into_owned()))
                .collect();
            out.push(Item::Block { stream, flags, priority, fields });
        }
    }
    out
}

/// What h2 should see for `input`: its items with unacceptable authorities
/// replaced.
fn expected(input: &[u8]) -> Vec<Item> {
    let mut want = items(input, false);
    for item in &mut want {
        if let Item::Block { fields, .. } = item {
            for (name, value) in fields.iter_mut() {
                if name == ":authority" && value.parse::<http::uri::Authority>().is_err() {
                    *value = "localhost".to_owned();
                }
            }
        }
    }
    want
}

fn authorities(items: &[Item]) -> Vec<Option<String>> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Block { fields, .. } => Some(fields.iter().find(|(n, _)| n == ":authority").map(|(_, v)| v.clone())),
            Item::Frame(_) => None,
        })
        .collect()
}

/// The filter fed `chunk` bytes at a time, then the end of input.
fn run_filter(input: &[u8], chunk: usize) -> Result<Vec<u8>, String> {
    let mut f = Filter::new();
    let mut out = Vec::new();
    for c in input.chunks(chunk) {
        f.feed(c, &mut out).map_err(|e| e.to_string())?;
        assert_bounded(&f);
    }
    f.end(&mut out);
    Ok(out)
}

fn assert_bounded(f: &Filter) {
    let frames = MAX_CONTINUATIONS + 1;
    assert!(f.payload.len() <= MAX_FRAME_SIZE, "payload {}", f.payload.len());
    assert!(f.held.len() <= frames * (FRAME_HEADER_LEN + MAX_FRAME_SIZE), "held {}", f.held.len());
    let fragment = f.block.as_ref().map_or(0, |b| b.fragment.len());
    assert!(fragment <= frames * MAX_FRAME_SIZE, "fragment {fragment}");
}

/// A reader that hands out one byte per read, answering Pending in between.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    pending: bool,
}

impl AsyncRead for Trickle {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        self.pending = !self.pending;
        if self.pending {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        if let Some(&b) = self.data.get(self.pos) {
            buf.put_slice(&[b]);
            self.pos += 1;
        }
        Poll::Ready(Ok(()))
    }
}

/// The whole adapter over a one-byte-at-a-time reader.
fn run_trickle(input: &[u8]) -> Result<Vec<u8>, String> {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    rt.block_on(async {
        let mut conn = UdsAuthority::new(Trickle { data: input.to_vec(), pos: 0, pending: false });
        let mut out = Vec::new();
        conn.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
        Ok(out)
    })
}

/// The whole adapter read into a one-byte buffer at a time.
fn run_tiny_reads(input: &[u8]) -> Result<Vec<u8>, String> {
    futures::executor::block_on(async {
        let mut conn = UdsAuthority::new(input);
        let mut out = Vec::new();
        let mut byte = [0u8; 1];
        while conn.read(&mut byte).await.map_err(|e| e.to_string())? == 1 {
            out.push(byte[0]);
        }
        Ok(out)
    })
}

/// Runs `input` whole, a byte at a time, through the async wrapper from a
/// one-byte-at-a-time reader, and into one-byte reads; all must agree.
fn run(name: &str, input: &[u8]) -> Result<Vec<u8>, String> {
    let whole = run_filter(input, usize::MAX);
    assert_eq!(run_filter(input, 1), whole, "{name}: one byte at a time differs from all at once");
    assert_eq!(run_filter(input, 7), whole, "{name}: 7 bytes at a time differs from all at once");
    assert_eq!(run_trickle(input), whole, "{name}: the async wrapper differs from the filter");
    assert_eq!(run_tiny_reads(input), whole, "{name}: one-byte reads differ from the filter");
    whole
}

enum Want {
    /// h2 reads exactly the client's bytes.
    Same,
    /// Rewritten; the `:authority` of each block as h2 sees it.
    Rewritten(Vec<Option<&'static str>>),
    /// The connection ends with an I/O error naming this.
    Closed(&'static str),
}

fn cases() -> Vec<(&'static str, Vec<u8>, Want)> {
    let local = Some("localhost");
    let huffman: Vec<Vec<u8>> = HUFFMAN_BLOCKS.iter().map(|b| hex(b)).collect();
    let data = frame(DATA, END_STREAM, 1, b"\0\0\0\0\x05hello");
    let long = "v".repeat(20_000);
    let big_block = literal(&[(":method", "POST"), (":path", "/x"), (":authority", BAD), ("x-big", &long)]);
    let padded_priority = {
        let mut p = vec![3u8];
        p.extend_from_slice(&[0x80, 0, 0, 0, 16]);
        p.extend(grpc_request("/solo.v1.Solo/List", BAD));
        p.extend_from_slice(&[0, 0, 0]);
        frame(HEADERS, PADDED | PRIORITY | END_HEADERS | END_STREAM, 3, &p)
    };
    let bomb = {
        // One 4000-byte entry in the dynamic table, then 20 references to it.
        let mut b = literal(&[(":method", "POST"), (":authority", BAD)]);
        b.push(0x40);
        b.push(5);
        b.extend_from_slice(b"x-big");
        hpack::integer(&mut b, 0, 7, 4000);
        b.extend(std::iter::repeat_n(b'b', 4000));
        b.extend(std::iter::repeat_n(0xbe, 20));
        b
    };
    let continuations = |n: usize| {
        let mut v = vec![frame(HEADERS, 0, 5, &grpc_request("/a", BAD))];
        v.extend((0..n).map(|_| frame(CONTINUATION, 0, 5, &[])));
        v.push(frame(CONTINUATION, END_HEADERS, 5, &[]));
        v
    };
    let mut oversize = vec![0u8; FRAME_HEADER_LEN + MAX_FRAME_SIZE + 1];
    oversize[..FRAME_HEADER_LEN].copy_from_slice(&frame(DATA, 0, 1, &[])[..]);
    oversize[..3].copy_from_slice(&[0x00, 0x40, 0x01]);
    let mut truncated = rewriting(&[headers(3, &grpc_request("/b", BAD))]);
    truncated.extend_from_slice(&frame(HEADERS, 0, 5, &grpc_request("/c", BAD))[..12]);

    vec![
        ("grpcio 1.85.1 capture: dynamic table across four requests", GRPCIO.to_vec(), Want::Rewritten(vec![local; 4])),
        (
            "python-hpack: Huffman strings, dynamic references, END_STREAM, DATA between",
            session(&[
                frame(HEADERS, END_HEADERS, 1, &huffman[0]),
                data.clone(),
                frame(WINDOW_UPDATE, 0, 0, &[0, 0, 1, 0]),
                frame(HEADERS, END_HEADERS | END_STREAM, 3, &huffman[1]),
                frame(HEADERS, END_HEADERS | END_STREAM, 5, &huffman[2]),
            ]),
            Want::Rewritten(vec![local; 3]),
        ),
        (
            "RFC 7541 C.4 after a bad authority: good authorities are kept",
            session(&[
                headers(1, &grpc_request("/x", BAD)),
                headers(3, &hex(RFC_C4[0])),
                headers(5, &hex(RFC_C4[1])),
                headers(7, &hex(RFC_C4[2])),
            ]),
            Want::Rewritten(vec![local, Some("www.example.com"), Some("www.example.com"), Some("www.example.com")]),
        ),
        (
            "a Huffman block split over HEADERS and two CONTINUATIONs",
            session(&[
                frame(HEADERS, 0, 1, &huffman[0][..10]),
                frame(CONTINUATION, 0, 1, &huffman[0][10..40]),
                frame(CONTINUATION, END_HEADERS, 1, &huffman[0][40..]),
                frame(HEADERS, END_HEADERS, 3, &huffman[1]),
            ]),
            Want::Rewritten(vec![local; 2]),
        ),
        (
            "the raw socket path (grpc-go dialers, e.g. grpcurl -unix)",
            session(&[headers(1, &grpc_request("/solo.v1.Solo/List", "/run/solo/solo.sock"))]),
            Want::Rewritten(vec![local]),
        ),
        (
            "PADDED and PRIORITY: priority kept, padding dropped",
            session(&[padded_priority]),
            Want::Rewritten(vec![local]),
        ),
        (
            "a 20 KB header: more than one frame in and out",
            session(&[
                frame(HEADERS, 0, 1, &big_block[..MAX_FRAME_SIZE]),
                frame(CONTINUATION, END_HEADERS, 1, &big_block[MAX_FRAME_SIZE..]),
            ]),
            Want::Rewritten(vec![local]),
        ),
        (
            "trailers and an empty block in rewrite mode",
            rewriting(&[
                headers(1, &literal(&[("grpc-status", "0")])),
                frame(HEADERS, END_HEADERS | END_STREAM, 3, &[]),
            ]),
            Want::Rewritten(vec![local, None, None]),
        ),
        (
            "the partial block at the end of a rewritten connection is dropped",
            truncated,
            Want::Rewritten(vec![local; 2]),
        ),
        (
            "RFC 7541 C.4 (acceptable authority): passed through",
            session(&[headers(1, &hex(RFC_C4[0])), headers(3, &hex(RFC_C4[1])), headers(5, &hex(RFC_C4[2]))]),
            Want::Same,
        ),
        (
            "Solo's CLI authority: passed through, even if a later block has a bad one",
            session(&[
                headers(1, &grpc_request("/solo.v1.Solo/List", "[::]:50051")),
                data.clone(),
                headers(3, &huffman[0]),
            ]),
            Want::Same,
        ),
        ("no :authority at all", session(&[headers(1, &literal(&[(":method", "GET"), (":path", "/")]))]), Want::Same),
        ("HTTP/1.1, not HTTP/2", b"GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n".to_vec(), Want::Same),
        ("a frame over the size limit, undecided", session(&[oversize.clone()]), Want::Same),
        ("a frame over the size limit, rewriting", rewriting(&[oversize]), Want::Closed("over the 16384-byte limit")),
        ("too many CONTINUATIONs, undecided", session(&continuations(MAX_CONTINUATIONS + 1)), Want::Same),
        (
            "too many CONTINUATIONs, rewriting",
            rewriting(&continuations(MAX_CONTINUATIONS + 1)),
            Want::Closed("CONTINUATION frames"),
        ),
        (
            "most CONTINUATIONs allowed",
            rewriting(&continuations(MAX_CONTINUATIONS - 1)),
            Want::Rewritten(vec![local; 2]),
        ),
        ("a block that decodes to over 64 KiB, undecided", session(&[headers(1, &bomb)]), Want::Same),
        (
            "a block that decodes to over 64 KiB, rewriting",
            rewriting(&[headers(3, &bomb)]),
            Want::Closed("65536-byte limit"),
        ),
        (
            "more padding than payload, undecided",
            session(&[frame(HEADERS, PADDED | END_HEADERS, 1, &[9, 0x82])]),
            Want::Same,
        ),
        (
            "more padding than payload, rewriting",
            rewriting(&[frame(HEADERS, PADDED | END_HEADERS, 3, &[9])]),
            Want::Closed("padding"),
        ),
        ("bad HPACK (index 0), undecided", session(&[headers(1, &[0x80])]), Want::Same),
        ("bad HPACK (index 0), rewriting", rewriting(&[headers(3, &[0x80])]), Want::Closed("cannot decode")),
        (
            "table size over 4096, rewriting",
            rewriting(&[headers(3, &[0x3f, 0xe2, 0x1f, 0x82])]),
            Want::Closed("cannot decode"),
        ),
        (
            "DATA inside a header block, undecided",
            session(&[
                frame(HEADERS, 0, 1, &grpc_request("/a", BAD)),
                data.clone(),
                frame(CONTINUATION, END_HEADERS, 1, &[]),
            ]),
            Want::Same,
        ),
        (
            "DATA inside a header block, rewriting",
            rewriting(&[frame(HEADERS, 0, 3, &[0x82]), data.clone()]),
            Want::Closed("inside the header block"),
        ),
        (
            "CONTINUATION of another stream, rewriting",
            rewriting(&[frame(HEADERS, 0, 3, &[0x82]), frame(CONTINUATION, END_HEADERS, 5, &[])]),
            Want::Closed("inside the header block"),
        ),
        (
            "CONTINUATION without HEADERS, undecided",
            session(&[frame(CONTINUATION, END_HEADERS, 1, &[0x82])]),
            Want::Same,
        ),
        (
            "CONTINUATION without HEADERS, rewriting",
            rewriting(&[frame(CONTINUATION, END_HEADERS, 1, &[0x82])]),
            Want::Closed("outside a header block"),
        ),
        (
            "unfinished block at the end, undecided",
            session(&[frame(HEADERS, 0, 1, &grpc_request("/a", BAD))]),
            Want::Same,
        ),
    ]
}

#[test]
fn table_of_client_sessions() {
    for (name, input, want) in cases() {
        let got = run(name, &input);
        match want {
            Want::Same => {
                assert_eq!(got.as_deref(), Ok(&input[..]), "{name}: h2 must read the client's bytes unchanged")
            }
            Want::Closed(why) => {
                let err = got.expect_err(name);
                assert!(err.contains(why), "{name}: error {err:?} does not say {why:?}");
                assert!(err.starts_with("unix socket :authority adapter: "), "{name}: {err}");
            }
            Want::Rewritten(auths) => {
                let out = got.unwrap_or_else(|e| panic!("{name}: {e}"));
                assert_ne!(out, input, "{name}: nothing was rewritten");
                // Every block decodes on its own: h2 needs no table state.
                let seen = items(&out, true);
                assert_eq!(seen, expected(&input), "{name}: frames or fields differ from the client's");
                let want: Vec<Option<String>> = auths.iter().map(|a| a.map(str::to_owned)).collect();
                assert_eq!(authorities(&seen), want, "{name}: authorities h2 sees");
            }
        }
    }
}

#[test]
fn the_grpcio_capture_keeps_every_other_field_and_frame() {
    let out = run_filter(GRPCIO, usize::MAX).expect("rewrite");
    let seen = items(&out, true);
    let paths: Vec<&str> = seen
        .iter()
        .filter_map(|i| match i {
            Item::Block { fields, .. } => fields.iter().find(|(n, _)| n == ":path").map(|(_, v)| v.as_str()),
            Item::Frame(_) => None,
        })
        .collect();
    assert_eq!(
        paths,
        [
            "/grpc.health.v1.Health/Check",
            "/grpc.health.v1.Health/Check",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            "/solo.v1.Solo/List"
        ]
    );
    let Some(Item::Block { fields, .. }) = seen.iter().rfind(|i| matches!(i, Item::Block { .. })) else {
        panic!("no block")
    };
    assert!(fields.contains(&("authorization".into(), "Bearer solo1.e30.AAAA".into())), "{fields:?}");
    assert!(fields.iter().any(|(n, v)| n == "user-agent" && v.starts_with("grpc-python/1.85.1")), "{fields:?}");
    // Non-header frames are byte for byte the client's, in order.
    let frames = |items: Vec<Item>| items.into_iter().filter(|i| matches!(i, Item::Frame(_))).collect::<Vec<_>>();
    assert_eq!(frames(seen), frames(items(GRPCIO, false)));
}

#[test]
fn a_refused_connection_stays_refused() {
    let input = rewriting(&[headers(3, &[0x80]), headers(5, &grpc_request("/a", BAD))]);
    let mut f = Filter::new();
    let mut out = Vec::new();
    let at = input.len() - 20;
    assert!(f.feed(&input[..at], &mut out).is_err());
    let before = out.len();
    let again = f.feed(&input[at..], &mut out).expect_err("fed after the error");
    assert!(again.to_string().contains("already refused"), "{again}");
    assert_eq!(out.len(), before, "nothing reaches h2 after the error");
}

#[test]
fn a_valid_first_block_drops_the_parser() {
    let input = session(&[headers(1, &grpc_request("/solo.v1.Solo/List", "localhost"))]);
    let mut f = Filter::new();
    let mut out = Vec::new();
    f.feed(&input, &mut out).expect("feed");
    assert!(f.is_passthrough());
    assert_eq!(out, input);
}

/// Requests an h2 server accepts from `client_bytes`: (authority, path,
/// authorization header). A last request, `/end`, with an authority h2
/// accepts and literal fields, tells that h2 has read everything before it.
async fn h2_requests<T>(
    server: T,
    client_bytes: &[u8],
    mut client: tokio::io::DuplexStream,
) -> Vec<(String, String, String)>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let end = frame(HEADERS, END_HEADERS | END_STREAM, 99, &grpc_request("/end", "localhost"));
    client.write_all(client_bytes).await.expect("write the client's bytes");
    client.write_all(&end).await.expect("write the last request");
    let mut conn = h2::server::handshake(server).await.expect("h2 handshake");
    let mut seen = Vec::new();
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), conn.accept()).await;
        let Ok(Some(Ok((req, _respond)))) = next else { panic!("h2 ended before the last request: {next:?}") };
        if req.uri().path() == "/end" {
            break;
        }
        let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let authority = req.uri().authority().map(ToString::to_string).unwrap_or_default();
        seen.push((authority, req.uri().path().to_owned(), auth));
    }
    drop(client);
    seen
}

#[tokio::test]
async fn h2_accepts_grpcio_requests_only_through_the_adapter() {
    let (client, server) = tokio::io::duplex(1 << 20);
    let seen = h2_requests(UdsAuthority::new(server), GRPCIO, client).await;
    let want = [
        ("localhost", "/grpc.health.v1.Health/Check", ""),
        ("localhost", "/grpc.health.v1.Health/Check", ""),
        ("localhost", "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", ""),
        ("localhost", "/solo.v1.Solo/List", "Bearer solo1.e30.AAAA"),
    ]
    .map(|(a, p, t)| (a.to_owned(), p.to_owned(), t.to_owned()));
    assert_eq!(seen, want);

    // The defect itself: h2 resets every stream (hyperium/h2 PR 487).
    let (client, server) = tokio::io::duplex(1 << 20);
    assert_eq!(h2_requests(server, GRPCIO, client).await, vec![], "h2 now accepts a %-encoded authority");
}

#[tokio::test]
async fn h2_accepts_huffman_coded_requests_through_the_adapter() {
    let frames: Vec<Vec<u8>> = HUFFMAN_BLOCKS.iter().zip([1, 3, 5]).map(|(b, s)| headers(s, &hex(b))).collect();
    let (client, server) = tokio::io::duplex(1 << 20);
    let seen = h2_requests(UdsAuthority::new(server), &session(&frames), client).await;
    let paths: Vec<(&str, &str, &str)> = seen.iter().map(|(a, p, t)| (a.as_str(), p.as_str(), t.as_str())).collect();
    assert_eq!(
        paths,
        [
            ("localhost", "/grpc.health.v1.Health/Check", ""),
            ("localhost", "/solo.v1.Solo/List", "Bearer solo1.abc"),
            ("localhost", "/solo.v1.Solo/Status", "Bearer solo1.abc"),
        ]
    );
}

#[test]
fn the_scan_settles_acceptable_blocks_and_leaves_the_rest_to_the_decoder() {
    let ok = grpc_request("/solo.v1.Solo/List", "localhost");
    assert!(scan::authority_acceptable(&ok));
    assert!(scan::authority_acceptable(&literal(&[(":method", "POST"), (":path", "/p")])), "no :authority");
    assert!(scan::authority_acceptable(&hex(RFC_C4[0])), "Huffman-coded www.example.com");
    assert!(!scan::authority_acceptable(&grpc_request("/p", BAD)), "a socket path");
    assert!(!scan::authority_acceptable(&hex(HUFFMAN_BLOCKS[0])), "a Huffman-coded socket path");
    assert!(!scan::authority_acceptable(&hex(RFC_C4[1])), "a dynamic-table reference is left to the decoder");
    assert!(!scan::authority_acceptable(&ok[..ok.len() - 1]), "a truncated block");
    assert!(!scan::authority_acceptable(&[0x81]), "the value-less static :authority");
    assert!(!scan::authority_acceptable(&[0x00, 0x88]), "a Huffman name cut short");
}

/// What tonic's client (hyper over h2), and so Solo's CLI, sends first is
/// settled by the scan: no decoding on the path of a command.
#[tokio::test]
async fn an_h2_clients_first_block_is_settled_by_the_scan() {
    let (client_io, mut server_io) = tokio::io::duplex(1 << 16);
    let (send, conn) = h2::client::handshake(client_io).await.expect("h2 client handshake");
    tokio::spawn(conn);
    let mut send = send.ready().await.expect("ready to send");
    let req = http::Request::post("http://localhost/solo.v1.Solo/Deploy")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", "Bearer solo1.eyJ0eXAiOiJzb2xvIn0.AAAAAAAAAAAAAAAAAAAA")
        .header("user-agent", "tonic/0.14.2")
        .body(())
        .expect("request");
    let (_response, _stream) = send.send_request(req, false).expect("send the request");
    let mut bytes = Vec::new();
    let block = loop {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), server_io.read(&mut buf))
            .await
            .expect("the client's bytes in time")
            .expect("read");
        assert!(n > 0, "the client closed before its HEADERS");
        bytes.extend_from_slice(&buf[..n]);
        if let Some(Item::Block { fields, .. }) =
            items(&bytes, true).into_iter().find(|i| matches!(i, Item::Block { .. }))
        {
            assert!(fields.iter().any(|(n, v)| n == ":authority" && v == "localhost"), "{fields:?}");
            break first_block(&bytes);
        }
    };
    assert!(block.iter().any(|b| b & 0x80 != 0), "h2 Huffman-codes or indexes something: {block:02x?}");
    assert!(scan::authority_acceptable(&block), "the scan settles h2's block: {block:02x?}");
    // Through the filter: passed through unchanged.
    let mut f = Filter::new();
    let mut out = Vec::new();
    f.feed(&bytes, &mut out).expect("feed");
    assert!(f.is_passthrough());
    assert_eq!(out, bytes);
}

/// The fragment of the first header block in a client byte stream.
fn first_block(bytes: &[u8]) -> Vec<u8> {
    let mut rest = &bytes[PREFACE.len()..];
    while rest.len() >= FRAME_HEADER_LEN {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        let (kind, flags) = (rest[3], rest[4]);
        let payload = &rest[FRAME_HEADER_LEN..FRAME_HEADER_LEN + len];
        if kind == HEADERS {
            assert!(flags & END_HEADERS != 0, "one frame");
            return strip_headers_payload(payload, flags).expect("HEADERS").1.to_vec();
        }
        rest = &rest[FRAME_HEADER_LEN + len..];
    }
    panic!("no HEADERS frame")
}

/// Arbitrary frames: mostly well-formed headers, any type, flags, stream.
fn any_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![Just(HEADERS), Just(CONTINUATION), Just(DATA), Just(WINDOW_UPDATE), any::<u8>()],
        any::<u8>(),
        0u32..8,
        prop_oneof![proptest::collection::vec(any::<u8>(), 0..48), Just(grpc_request("/p", BAD))],
    )
        .prop_map(|(kind, flags, stream, payload)| frame(kind, flags, stream, &payload))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn the_scan_never_contradicts_the_decoder(block in proptest::collection::vec(any::<u8>(), 0..256)) {
        // Settled means: the decoder finds no bad :authority (or fails,
        // which also ends in a pass-through).
        if scan::authority_acceptable(&block) {
            if let Ok(d) = decode(&mut loona_hpack::Decoder::new(), &block) {
                prop_assert!(d.bad_authority.is_none(), "{:?}", d.bad_authority);
            }
        }
    }

    #[test]
    fn the_scan_agrees_with_the_decoder_on_literal_blocks(fields in proptest::collection::vec((
        prop_oneof![Just(":authority".to_owned()), Just(":path".to_owned()), Just("x-a".to_owned()), "[a-z:-]{1,12}"],
        prop_oneof![Just(BAD.to_owned()), Just("localhost".to_owned()), Just("[::1]:50051".to_owned()), "[ -~]{1,20}"],
    ), 0..8)) {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let block = literal(&fields);
        let d = decode(&mut loona_hpack::Decoder::new(), &block).expect("a literal block decodes");
        prop_assert_eq!(scan::authority_acceptable(&block), d.bad_authority.is_none());
    }

    #[test]
    fn arbitrary_bytes_never_panic(prefix in 0usize..3, body in proptest::collection::vec(any::<u8>(), 0..2048), chunk in 1usize..64) {
        let mut input = match prefix {
            0 => Vec::new(),
            1 => session(&[]),
            _ => rewriting(&[]),
        };
        input.extend(body);
        let _ = run_filter(&input, chunk);
    }

    #[test]
    fn arbitrary_frames_never_panic(rewrite in any::<bool>(), frames in proptest::collection::vec(any_frame(), 0..24), chunk in 1usize..300) {
        let input = if rewrite { rewriting(&frames) } else { session(&frames) };
        let whole = run_filter(&input, usize::MAX);
        prop_assert_eq!(run_filter(&input, chunk), whole);
    }

    #[test]
    fn any_split_of_the_grpcio_capture_gives_the_same_bytes(cuts in proptest::collection::vec(0usize..GRPCIO.len(), 0..12)) {
        let whole = run_filter(GRPCIO, usize::MAX).expect("rewrite");
        let mut cuts = cuts;
        cuts.sort_unstable();
        let mut f = Filter::new();
        let mut out = Vec::new();
        let mut at = 0;
        for cut in cuts.into_iter().chain([GRPCIO.len()]) {
            f.feed(&GRPCIO[at..cut], &mut out).expect("feed");
            at = cut;
        }
        f.end(&mut out);
        prop_assert_eq!(out, whole);
    }
}
