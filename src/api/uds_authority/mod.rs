//! Makes requests of grpc-core clients on the Unix socket acceptable to h2.
//!
//! For a `unix:` target grpc-core (Python's grpcio, C++, Ruby, PHP, …) sends
//! the percent-encoded socket path as `:authority`, e.g.
//! `run%2Fsolo%2Fsolo.sock` (grpc/grpc#38142); grpc-go dialers such as
//! grpcurl's `-unix` send the raw path. h2 0.4, under tonic, parses
//! `:authority` with [`http::uri::Authority`], which allows `%` only in the
//! userinfo or an IPv6 literal and `/` not at all, so h2 resets every such
//! stream with `PROTOCOL_ERROR` before tonic sees it (hyperium/h2 PR 487,
//! still open; hyperium/tonic#243): every call, even
//! `grpc.health.v1.Health/Check`, fails with `INTERNAL: RST_STREAM`. Neither
//! the clients nor h2 can be changed from here, so [`UdsAuthority`] wraps
//! each accepted Unix-socket connection and edits what h2 reads.
//!
//! # Invariant
//!
//! h2 reads either exactly the bytes the client sent, or the same frames with
//! only the header blocks re-encoded and each unacceptable `:authority`
//! replaced by `localhost`; or the connection ends with an I/O error.
//!
//! - Until the first header block (HEADERS plus its CONTINUATIONs), bytes
//!   are forwarded as they arrive; frame headers once whole.
//! - The first header block decides. `:authority` absent or acceptable to
//!   [`http::uri::Authority`] (Solo's CLI, tonic, grpc-go's `unix:`
//!   resolver, a grpc-core client given `grpc.default_authority`): the block
//!   is forwarded as it came and the parser is dropped; the rest of the
//!   connection is a plain pass-through. A quick scan (`scan.rs`) settles
//!   this for the usual block without decoding it; what it cannot settle
//!   alone is decoded.
//! - Otherwise (rewrite mode) every header block of the connection is
//!   decoded with a decoder that mirrors the client's encoder (its dynamic
//!   table is bounded by [`HEADER_TABLE_SIZE`], the size h2 leaves in force),
//!   and re-encoded with no dynamic-table state (`hpack.rs`) into HEADERS and
//!   CONTINUATION frames of at most [`MAX_FRAME_SIZE`] bytes, keeping
//!   END_STREAM and the priority fields; padding is dropped. Every other
//!   frame passes byte for byte (DATA is not even copied).
//! - Hostile bytes cannot panic it, and it holds at most
//!   [`MAX_CONTINUATIONS`]` + 1` frames of a header block and decodes at most
//!   [`MAX_DECODED_LIST`] bytes of header list per block. Before the
//!   decision, bytes it cannot parse, or past a bound, turn it into a plain
//!   pass-through, so h2 answers exactly as without it; in rewrite mode they
//!   end the connection with an I/O error (each is a connection error for h2
//!   as well, and once a block is lost the HPACK state is too).

mod hpack;
mod scan;
#[cfg(test)]
mod tests;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The SETTINGS_MAX_FRAME_SIZE the server advertises (hyper's default, set
/// explicitly by `server::serve` so the two cannot drift apart).
pub const MAX_FRAME_SIZE: usize = 16_384;
/// The SETTINGS_MAX_HEADER_LIST_SIZE the server advertises (likewise).
pub const MAX_HEADER_LIST_SIZE: usize = 16_384;
/// The HPACK dynamic table limit of the client's encoder: hyper sends no
/// SETTINGS_HEADER_TABLE_SIZE, so the initial 4096 of RFC 9113 §6.5.2 holds.
pub const HEADER_TABLE_SIZE: usize = 4_096;
/// CONTINUATION frames accepted after a HEADERS frame (h2 accepts 5 at
/// these settings, then answers ENHANCE_YOUR_CALM).
pub const MAX_CONTINUATIONS: usize = 16;
/// Decoded header-list size (names, values, 32 per field) past which a
/// block is refused: h2's own abuse limit, 4 × [`MAX_HEADER_LIST_SIZE`]. It
/// also bounds a re-encoded block (see `hpack.rs`), so one never needs more
/// than 5 frames.
pub const MAX_DECODED_LIST: usize = 4 * MAX_HEADER_LIST_SIZE;

/// What replaces an `:authority` h2 would refuse: the name grpc-go and
/// tonic's own client use for Unix sockets.
const REPLACEMENT_AUTHORITY: &[u8] = b"localhost";
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER_LEN: usize = 9;
const HEADERS: u8 = 0x1;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;
const PRIORITY_LEN: usize = 5;

/// A Unix-socket connection as h2 should read it (see the module doc).
/// Writes go straight to the socket.
pub struct UdsAuthority<S> {
    inner: S,
    /// `None`: plain pass-through from now on.
    filter: Option<Box<Filter>>,
    /// Bytes produced by the filter that h2 has not read yet.
    out: Vec<u8>,
    sent: usize,
}

impl<S> UdsAuthority<S> {
    pub fn new(inner: S) -> Self {
        UdsAuthority { inner, filter: Some(Box::new(Filter::new())), out: Vec::new(), sent: 0 }
    }

    /// True once the connection is a plain pass-through.
    pub fn is_passthrough(&self) -> bool {
        self.filter.is_none()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for UdsAuthority<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            if this.sent < this.out.len() {
                let n = buf.remaining().min(this.out.len() - this.sent);
                buf.put_slice(&this.out[this.sent..this.sent + n]);
                this.sent += n;
                if this.sent == this.out.len() {
                    this.out.clear();
                    this.sent = 0;
                    if this.filter.is_none() {
                        this.out = Vec::new();
                    }
                }
                return Poll::Ready(Ok(()));
            }
            let Some(filter) = this.filter.as_mut() else {
                return Pin::new(&mut this.inner).poll_read(cx, buf);
            };
            // The payload of a frame that passes unchanged goes straight
            // into h2's buffer.
            let forward = filter.forward_left().min(buf.remaining());
            if forward > 0 {
                let mut direct = ReadBuf::new(buf.initialize_unfilled_to(forward));
                std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut direct))?;
                let n = direct.filled().len();
                buf.advance(n);
                if n > 0 {
                    filter.forwarded(n);
                }
                return Poll::Ready(Ok(()));
            }
            let mut chunk = [0u8; 4096];
            let mut read = ReadBuf::new(&mut chunk);
            std::task::ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            if read.filled().is_empty() {
                filter.end(&mut this.out);
                this.filter = None;
                if this.out.is_empty() {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            filter.feed(read.filled(), &mut this.out)?;
            if filter.is_passthrough() {
                this.filter = None;
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for UdsAuthority<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for UdsAuthority<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No header block seen yet.
    Undecided,
    Rewrite,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// This many bytes of the client preface seen.
    Preface(usize),
    /// Collecting a frame header into `Filter::head`.
    FrameHeader,
    /// Forwarding the payload of a frame that passes unchanged.
    Forward(usize),
    /// Collecting the payload of a HEADERS or CONTINUATION frame.
    HeaderPayload(usize),
    Passthrough,
    /// Rewrite mode gave up: nothing more reaches h2.
    Closed,
}

/// A header block being collected.
struct Block {
    stream: u32,
    /// END_STREAM and PRIORITY of the HEADERS frame.
    flags: u8,
    priority: [u8; PRIORITY_LEN],
    fragment: Vec<u8>,
    continuations: usize,
}

/// The sans-I/O part of [`UdsAuthority`]: client bytes in, bytes for h2 out.
struct Filter {
    mode: Mode,
    stage: Stage,
    head: [u8; FRAME_HEADER_LEN],
    head_len: usize,
    /// The payload of the HEADERS or CONTINUATION frame being collected.
    payload: Vec<u8>,
    block: Option<Block>,
    /// Undecided: the raw frames of `block`, forwarded as they are if the
    /// connection turns out not to need rewriting.
    held: Vec<u8>,
    decoder: loona_hpack::Decoder<'static>,
}

/// What decoding a header block found.
struct Decoded {
    /// The block re-encoded without table state, bad authorities replaced.
    encoded: Vec<u8>,
    /// The first unacceptable `:authority`, for the log.
    bad_authority: Option<String>,
}

impl Filter {
    fn new() -> Self {
        let mut decoder = loona_hpack::Decoder::new();
        decoder.set_max_allowed_table_size(HEADER_TABLE_SIZE);
        Filter {
            mode: Mode::Undecided,
            stage: Stage::Preface(0),
            head: [0; FRAME_HEADER_LEN],
            head_len: 0,
            payload: Vec::new(),
            block: None,
            held: Vec::new(),
            decoder,
        }
    }

    fn is_passthrough(&self) -> bool {
        self.stage == Stage::Passthrough
    }

    /// Payload bytes of an unchanged frame the caller may copy directly.
    fn forward_left(&self) -> usize {
        match self.stage {
            Stage::Forward(left) => left,
            _ => 0,
        }
    }

    /// The caller copied `n <= forward_left()` bytes directly.
    fn forwarded(&mut self, n: usize) {
        if let Stage::Forward(left) = self.stage {
            let left = left.saturating_sub(n);
            self.stage = if left == 0 { Stage::FrameHeader } else { Stage::Forward(left) };
        }
    }

    /// The client closed: what h2 should still read. Undecided, the held
    /// frames go as they came (h2 reports the truncation); in rewrite mode
    /// an unfinished block cannot be re-encoded and is dropped.
    fn end(&mut self, out: &mut Vec<u8>) {
        if self.mode == Mode::Undecided && self.stage != Stage::Passthrough {
            out.append(&mut self.held);
        }
        self.stage = Stage::Passthrough;
    }

    /// Consumes `input`, appending what h2 should read to `out`.
    fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> io::Result<()> {
        while !input.is_empty() {
            match self.stage {
                Stage::Passthrough => {
                    out.extend_from_slice(input);
                    return Ok(());
                }
                Stage::Closed => return Err(closed("the connection was already refused")),
                Stage::Preface(seen) => {
                    let n = input.len().min(PREFACE.len() - seen);
                    if input[..n] != PREFACE[seen..seen + n] {
                        // Not HTTP/2 with prior knowledge: h2 answers it.
                        self.stage = Stage::Passthrough;
                        continue;
                    }
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.stage = if seen + n == PREFACE.len() { Stage::FrameHeader } else { Stage::Preface(seen + n) };
                }
                Stage::FrameHeader => {
                    let n = input.len().min(FRAME_HEADER_LEN - self.head_len);
                    self.head[self.head_len..self.head_len + n].copy_from_slice(&input[..n]);
                    self.head_len += n;
                    input = &input[n..];
                    if self.head_len == FRAME_HEADER_LEN {
                        self.head_len = 0;
                        self.frame_header(out)?;
                    }
                }
                Stage::Forward(left) => {
                    let n = input.len().min(left);
                    out.extend_from_slice(&input[..n]);
                    input = &input[n..];
                    self.forwarded(n);
                }
                Stage::HeaderPayload(left) => {
                    let n = input.len().min(left);
                    self.payload.extend_from_slice(&input[..n]);
                    if self.mode == Mode::Undecided {
                        self.held.extend_from_slice(&input[..n]);
                    }
                    input = &input[n..];
                    self.stage = Stage::HeaderPayload(left - n);
                    if left == n {
                        self.header_frame_done(out)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A whole frame header is in `self.head`.
    fn frame_header(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let h = self.head;
        let len = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
        let (kind, flags) = (h[3], h[4]);
        let stream = u32::from_be_bytes([h[5], h[6], h[7], h[8]]) & 0x7fff_ffff;
        if len > MAX_FRAME_SIZE {
            return self.give_up(out, true, format!("a frame of {len} bytes is over the {MAX_FRAME_SIZE}-byte limit"));
        }
        match (&mut self.block, kind) {
            (Some(block), CONTINUATION) if block.stream == stream => {
                block.continuations += 1;
                if block.continuations > MAX_CONTINUATIONS {
                    let why =
                        format!("header block of stream {stream} spans over {MAX_CONTINUATIONS} CONTINUATION frames");
                    return self.give_up(out, true, why);
                }
            }
            (Some(block), _) => {
                let why = format!(
                    "frame of type {kind} on stream {stream} inside the header block of stream {}",
                    block.stream
                );
                return self.give_up(out, true, why);
            }
            (None, CONTINUATION) => {
                return self.give_up(out, true, format!("CONTINUATION on stream {stream} outside a header block"));
            }
            (None, HEADERS) => {
                self.block =
                    Some(Block { stream, flags, priority: [0; PRIORITY_LEN], fragment: Vec::new(), continuations: 0 });
            }
            (None, _) => {
                out.extend_from_slice(&h);
                self.stage = if len == 0 { Stage::FrameHeader } else { Stage::Forward(len) };
                return Ok(());
            }
        }
        if self.mode == Mode::Undecided {
            self.held.extend_from_slice(&h);
        }
        self.payload.clear();
        self.stage = Stage::HeaderPayload(len);
        if len == 0 {
            self.header_frame_done(out)?;
        }
        Ok(())
    }

    /// The payload of a HEADERS or CONTINUATION frame is in `self.payload`.
    fn header_frame_done(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        self.stage = Stage::FrameHeader;
        let flags = self.head[4];
        let Some(block) = self.block.as_mut() else { return Ok(()) };
        if block.continuations == 0 {
            let Some((priority, fragment)) = strip_headers_payload(&self.payload, flags) else {
                let why = format!("HEADERS of stream {} has more padding than payload", block.stream);
                return self.give_up(out, false, why);
            };
            block.priority = priority.unwrap_or_default();
            block.fragment.extend_from_slice(fragment);
        } else {
            block.fragment.extend_from_slice(&self.payload);
        }
        if flags & END_HEADERS != 0 {
            self.block_done(out)?;
        }
        Ok(())
    }

    /// A whole header block is in `self.block`.
    fn block_done(&mut self, out: &mut Vec<u8>) -> io::Result<()> {
        let Some(block) = self.block.take() else { return Ok(()) };
        if self.mode == Mode::Undecided && scan::authority_acceptable(&block.fragment) {
            // Settled without decoding (see `scan.rs`): a pass-through.
            out.append(&mut self.held);
            self.stage = Stage::Passthrough;
            return Ok(());
        }
        let decoded = match decode(&mut self.decoder, &block.fragment) {
            Ok(d) => d,
            Err(why) => return self.give_up(out, false, why),
        };
        if self.mode == Mode::Undecided {
            let Some(authority) = decoded.bad_authority else {
                out.append(&mut self.held);
                self.stage = Stage::Passthrough;
                return Ok(());
            };
            tracing::debug!(
                %authority,
                "unix-socket client sent an :authority h2 refuses (grpc-core's socket path); rewriting it to localhost for this connection"
            );
            self.mode = Mode::Rewrite;
            self.held = Vec::new();
        }
        write_block(out, &block, &decoded.encoded);
        Ok(())
    }

    /// Bytes the adapter cannot handle. Undecided: everything held goes to
    /// h2 as it came (plus the current frame header when `with_head`, not
    /// yet held) and the connection becomes a pass-through. In rewrite mode
    /// the connection ends.
    fn give_up(&mut self, out: &mut Vec<u8>, with_head: bool, why: String) -> io::Result<()> {
        if self.mode == Mode::Rewrite {
            self.stage = Stage::Closed;
            self.block = None;
            return Err(closed(&why));
        }
        tracing::debug!(%why, "unix socket :authority adapter passes the connection through to h2");
        out.append(&mut self.held);
        if with_head {
            out.extend_from_slice(&self.head);
        }
        self.block = None;
        self.stage = Stage::Passthrough;
        Ok(())
    }
}

fn closed(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("unix socket :authority adapter: {why}; closing the connection"))
}

/// The priority fields and the header block fragment of a HEADERS payload
/// (RFC 9113 §6.2); `None` if the padding does not fit.
fn strip_headers_payload(payload: &[u8], flags: u8) -> Option<(Option<[u8; PRIORITY_LEN]>, &[u8])> {
    let (pad, mut rest) = if flags & PADDED != 0 {
        let (&pad, rest) = payload.split_first()?;
        (usize::from(pad), rest)
    } else {
        (0, payload)
    };
    let mut priority = None;
    if flags & PRIORITY != 0 {
        let p = rest.get(..PRIORITY_LEN)?;
        priority = Some([p[0], p[1], p[2], p[3], p[4]]);
        rest = &rest[PRIORITY_LEN..];
    }
    let end = rest.len().checked_sub(pad)?;
    Some((priority, &rest[..end]))
}

/// Decodes one header block with the connection's decoder and re-encodes it.
fn decode(decoder: &mut loona_hpack::Decoder<'static>, fragment: &[u8]) -> Result<Decoded, String> {
    let mut encoded = Vec::with_capacity(fragment.len().min(MAX_DECODED_LIST));
    let mut bad_authority = None;
    let mut list_size = 0usize;
    let res = decoder.decode_with_cb(fragment, |name, value| {
        // Past the limit the block is refused, but decoding goes on (the
        // callback cannot stop it); nothing more is kept.
        list_size = list_size.saturating_add(name.len() + value.len() + 32);
        if list_size > MAX_DECODED_LIST {
            return;
        }
        if &name[..] == b":authority"
            && http::uri::Authority::from_maybe_shared(bytes::Bytes::copy_from_slice(&value)).is_err()
        {
            bad_authority.get_or_insert_with(|| String::from_utf8_lossy(&value).into_owned());
            hpack::field(&mut encoded, &name, REPLACEMENT_AUTHORITY);
        } else {
            hpack::field(&mut encoded, &name, &value);
        }
    });
    res.map_err(|e| format!("cannot decode a header block: {e}"))?;
    if list_size > MAX_DECODED_LIST {
        return Err(format!("a header block decodes to {list_size} bytes, over the {MAX_DECODED_LIST}-byte limit"));
    }
    Ok(Decoded { encoded, bad_authority })
}

/// Appends `encoded` as a HEADERS frame and as many CONTINUATION frames as
/// it needs, none over [`MAX_FRAME_SIZE`].
fn write_block(out: &mut Vec<u8>, block: &Block, encoded: &[u8]) {
    let has_priority = block.flags & PRIORITY != 0;
    let room = MAX_FRAME_SIZE - if has_priority { PRIORITY_LEN } else { 0 };
    let (first, mut rest) = encoded.split_at(encoded.len().min(room));
    let mut flags = block.flags & (END_STREAM | PRIORITY);
    if rest.is_empty() {
        flags |= END_HEADERS;
    }
    let len = first.len() + if has_priority { PRIORITY_LEN } else { 0 };
    frame_header(out, len, HEADERS, flags, block.stream);
    if has_priority {
        out.extend_from_slice(&block.priority);
    }
    out.extend_from_slice(first);
    while !rest.is_empty() {
        let (chunk, tail) = rest.split_at(rest.len().min(MAX_FRAME_SIZE));
        frame_header(out, chunk.len(), CONTINUATION, if tail.is_empty() { END_HEADERS } else { 0 }, block.stream);
        out.extend_from_slice(chunk);
        rest = tail;
    }
}

fn frame_header(out: &mut Vec<u8>, len: usize, kind: u8, flags: u8, stream: u32) {
    let len = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    out.extend_from_slice(&len[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
}
