//! The adapter's HPACK encoder: every field is written so that decoding it
//! needs no dynamic-table state (RFC 7541 §6.1 indexed static entries,
//! §6.2.2 literals without indexing, raw strings). That is what lets the
//! adapter re-encode any block of a connection on its own: h2's decoder
//! table stays empty and never disagrees with the client's.

/// The static table (RFC 7541 Appendix A); index `i + 1` is entry `i`.
pub(super) const STATIC_TABLE: [(&str, &str); 61] = [
    (":authority", ""),
    (":method", "GET"),
    (":method", "POST"),
    (":path", "/"),
    (":path", "/index.html"),
    (":scheme", "http"),
    (":scheme", "https"),
    (":status", "200"),
    (":status", "204"),
    (":status", "206"),
    (":status", "304"),
    (":status", "400"),
    (":status", "404"),
    (":status", "500"),
    ("accept-charset", ""),
    ("accept-encoding", "gzip, deflate"),
    ("accept-language", ""),
    ("accept-ranges", ""),
    ("accept", ""),
    ("access-control-allow-origin", ""),
    ("age", ""),
    ("allow", ""),
    ("authorization", ""),
    ("cache-control", ""),
    ("content-disposition", ""),
    ("content-encoding", ""),
    ("content-language", ""),
    ("content-length", ""),
    ("content-location", ""),
    ("content-range", ""),
    ("content-type", ""),
    ("cookie", ""),
    ("date", ""),
    ("etag", ""),
    ("expect", ""),
    ("expires", ""),
    ("from", ""),
    ("host", ""),
    ("if-match", ""),
    ("if-modified-since", ""),
    ("if-none-match", ""),
    ("if-range", ""),
    ("if-unmodified-since", ""),
    ("last-modified", ""),
    ("link", ""),
    ("location", ""),
    ("max-forwards", ""),
    ("proxy-authenticate", ""),
    ("proxy-authorization", ""),
    ("range", ""),
    ("referer", ""),
    ("refresh", ""),
    ("retry-after", ""),
    ("server", ""),
    ("set-cookie", ""),
    ("strict-transport-security", ""),
    ("transfer-encoding", ""),
    ("user-agent", ""),
    ("vary", ""),
    ("via", ""),
    ("www-authenticate", ""),
];

/// Appends one header field. Cost: at most 9 bytes beyond the name and
/// value (a 4-byte length for each of two strings, one representation
/// byte), below the 32 bytes per field that the header-list size counts,
/// so a re-encoded block is never larger than its decoded list.
pub(super) fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let mut name_index = None;
    for (i, (n, v)) in STATIC_TABLE.iter().enumerate() {
        if n.as_bytes() != name {
            continue;
        }
        if v.as_bytes() == value {
            // Indexed header field (§6.1), static entry: no table state.
            integer(out, 0x80, 7, i + 1);
            return;
        }
        name_index.get_or_insert(i + 1);
    }
    // Literal header field without indexing (§6.2.2): 0000 + name index.
    match name_index {
        Some(i) => integer(out, 0x00, 4, i),
        None => {
            out.push(0x00);
            string(out, name);
        }
    }
    string(out, value);
}

/// A string literal without Huffman coding (§5.2).
fn string(out: &mut Vec<u8>, s: &[u8]) {
    integer(out, 0x00, 7, s.len());
    out.extend_from_slice(s);
}

/// An integer with a `prefix`-bit prefix (§5.1); `flags` holds the bits
/// above the prefix of the first byte.
pub(super) fn integer(out: &mut Vec<u8>, flags: u8, prefix: u32, value: usize) {
    let max = (1usize << prefix) - 1;
    if value < max {
        out.push(flags | low_byte(value));
        return;
    }
    out.push(flags | low_byte(max));
    let mut rest = value - max;
    while rest >= 0x80 {
        out.push(0x80 | low_byte(rest & 0x7f));
        rest >>= 7;
    }
    out.push(low_byte(rest));
}

/// The low 8 bits of `v` (callers pass values below 256).
fn low_byte(v: usize) -> u8 {
    v.to_le_bytes()[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(block: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
        loona_hpack::Decoder::new().decode(block).expect("decode the re-encoded block")
    }

    #[test]
    fn static_table_matches_the_rfc_as_a_decoder_knows_it() {
        let mut d = loona_hpack::Decoder::new();
        for (i, (name, value)) in STATIC_TABLE.iter().enumerate() {
            let index = u8::try_from(i + 1).expect("61 entries");
            let got = d.decode(&[0x80 | index]).expect("indexed static entry");
            assert_eq!(got, vec![(name.as_bytes().to_vec(), value.as_bytes().to_vec())], "static entry {}", i + 1);
        }
        assert!(d.decode(&[0x80 | 62]).is_err(), "entry 62 is dynamic; the table has 61 static entries");
    }

    #[test]
    fn fields_round_trip_through_a_fresh_decoder() {
        let long = vec![b'x'; 70_000];
        let cases: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"POST"),
            (b":method", b"PATCH"),
            (b":authority", b"localhost"),
            (b":authority", b""),
            (b"te", b"trailers"),
            (b"grpc-timeout", b"5S"),
            (b"x-empty", b""),
            (b"x-long", &long),
            (&long, b"v"),
            (b"x-binary-bin", &[0, 0xff, 0x80, 0x7f]),
        ];
        for (name, value) in cases {
            let mut out = Vec::new();
            field(&mut out, name, value);
            assert_eq!(decode(&out), vec![(name.to_vec(), value.to_vec())]);
            assert!(out.len() <= name.len() + value.len() + 9, "{} bytes for a field of {}", out.len(), name.len());
        }
    }

    #[test]
    fn exact_static_matches_are_one_byte() {
        let mut out = Vec::new();
        field(&mut out, b":method", b"POST");
        field(&mut out, b":scheme", b"http");
        assert_eq!(out, [0x83, 0x86]);
    }

    #[test]
    fn integers_cross_the_prefix_boundary() {
        // RFC 7541 C.1.2: 1337 with a 5-bit prefix.
        let mut out = Vec::new();
        integer(&mut out, 0, 5, 1337);
        assert_eq!(out, [0x1f, 0x9a, 0x0a]);
        let mut out = Vec::new();
        integer(&mut out, 0x80, 7, 127);
        assert_eq!(out, [0xff, 0x00]);
        let mut out = Vec::new();
        integer(&mut out, 0x00, 4, 14);
        assert_eq!(out, [0x0e]);
    }
}
