//! Human byte sizes: `256MiB`, `1G`, `512k`, `4096`.

/// Parses a byte size. Binary (`KiB`, `MiB`, `GiB`, `TiB`) and decimal
/// (`KB`, `MB`, `GB`, `TB`) suffixes are accepted; a bare `K`/`M`/`G`/`T`
/// means the binary unit, as in `ulimit` and systemd.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty size".into());
    }
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    if num.is_empty() {
        return Err(format!("'{s}' does not start with a number"));
    }
    let n: u64 = num.parse().map_err(|_| format!("'{num}' is not a number that fits in 64 bits"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => return Err(format!("unknown size unit '{other}' (use B, KiB, MiB, GiB, TiB)")),
    };
    n.checked_mul(mult).ok_or_else(|| format!("'{s}' overflows 64 bits"))
}

/// Formats bytes with the largest binary unit that divides evenly-ish.
pub fn format_bytes(n: u64) -> String {
    const UNITS: [(&str, u64); 4] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, size) in UNITS {
        if n >= size {
            let v = n as f64 / size as f64;
            return if n.is_multiple_of(size) { format!("{}{name}", n / size) } else { format!("{v:.1}{name}") };
        }
    }
    format!("{n}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("256MiB"), Ok(256 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("2kb"), Ok(2000));
        assert_eq!(parse_bytes(" 3 M "), Ok(3 << 20));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("MiB").is_err());
        assert!(parse_bytes("-5M").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
        assert!(parse_bytes("99999999999999T").is_err());
    }

    #[test]
    fn formats() {
        assert_eq!(format_bytes(256 << 20), "256MiB");
        assert_eq!(format_bytes(1536), "1.5KiB");
        assert_eq!(format_bytes(12), "12B");
    }
}
