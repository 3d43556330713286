//! A quick look at the first header block of a connection: does it carry
//! no `:authority`, or only ones h2 accepts? Then the connection is passed
//! through without decoding the block (what Solo's CLI, tonic and grpc-go
//! send). loona-hpack builds a whole Huffman decoding table for every
//! Huffman-coded string it decodes, ~150 µs of the daemon's time for one
//! request of the CLI, on the path of every command.
//!
//! The scan parses the representations of RFC 7541 §6 and skips strings by
//! their length; it decodes only an `:authority` value (and a literal name
//! that is Huffman-coded), with one Huffman table built once. Whatever it
//! cannot settle alone (a reference to the dynamic table, the static
//! `:authority` with no value, a malformed block) answers `false`, and the
//! caller decodes the block as before: the scan only ever adds a shortcut
//! to the same decision.

use super::hpack::STATIC_TABLE;
use loona_hpack::huffman::HuffmanDecoder;
use std::borrow::Cow;
use std::sync::{LazyLock, Mutex};

/// The HPACK Huffman table, built once (it is immutable; `decode` takes
/// `&mut self` only by its signature).
static HUFFMAN: LazyLock<Mutex<HuffmanDecoder>> = LazyLock::new(|| Mutex::new(HuffmanDecoder::new()));

/// True when the block is well formed and every `:authority` in it is one
/// [`http::uri::Authority`] accepts (or there is none): the connection needs
/// no rewriting. False: decode it to decide.
pub(super) fn authority_acceptable(block: &[u8]) -> bool {
    scan(block).unwrap_or(false)
}

fn scan(block: &[u8]) -> Option<bool> {
    let mut pos = 0;
    while let Some(&first) = block.get(pos) {
        if first & 0x80 != 0 {
            // §6.1 indexed field: only static entries other than the
            // value-less `:authority` are settled here.
            let index = integer(block, &mut pos, 7)?;
            if index <= 1 || index > STATIC_TABLE.len() {
                return Some(false);
            }
            continue;
        }
        if first & 0xe0 == 0x20 {
            // §6.3 dynamic table size update.
            integer(block, &mut pos, 5)?;
            continue;
        }
        // §6.2 literal: with incremental indexing (01), without (0000) or
        // never indexed (0001).
        let prefix = if first & 0x40 != 0 { 6 } else { 4 };
        let authority = match integer(block, &mut pos, prefix)? {
            0 => &*text(string(block, &mut pos)?)? == b":authority",
            1 => true,
            i if i <= STATIC_TABLE.len() => false,
            // A name from the dynamic table: an entry added earlier in
            // this block, perhaps `:authority` itself.
            _ => return Some(false),
        };
        let value = string(block, &mut pos)?;
        if authority {
            let value = text(value)?;
            if http::uri::Authority::from_maybe_shared(bytes::Bytes::copy_from_slice(&value)).is_err() {
                return Some(false);
            }
        }
    }
    Some(true)
}

/// An integer with an `n`-bit prefix (RFC 7541 §5.1).
fn integer(block: &[u8], pos: &mut usize, n: u8) -> Option<usize> {
    let max = (1usize << n) - 1;
    let mut value = usize::from(*block.get(*pos)?) & max;
    *pos += 1;
    if value < max {
        return Some(value);
    }
    let mut shift = 0u32;
    loop {
        let b = *block.get(*pos)?;
        *pos += 1;
        if shift > 28 {
            return None;
        }
        value = value.checked_add(usize::from(b & 0x7f) << shift)?;
        shift += 7;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
}

/// A string literal (§5.2): whether it is Huffman-coded, and its octets.
fn string<'a>(block: &'a [u8], pos: &mut usize) -> Option<(bool, &'a [u8])> {
    let huffman = *block.get(*pos)? & 0x80 != 0;
    let len = integer(block, pos, 7)?;
    let end = pos.checked_add(len)?;
    let octets = block.get(*pos..end)?;
    *pos = end;
    Some((huffman, octets))
}

/// A string's text: as it is, or Huffman-decoded.
fn text((huffman, octets): (bool, &[u8])) -> Option<Cow<'_, [u8]>> {
    if !huffman {
        return Some(Cow::Borrowed(octets));
    }
    let mut decoder = HUFFMAN.lock().unwrap_or_else(|p| p.into_inner());
    decoder.decode(octets).ok().map(Cow::Owned)
}
