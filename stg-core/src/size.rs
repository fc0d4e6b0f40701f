//! Byte sizes for flags: `64M`, `1G`, `512K`, `1048576` (plain bytes). Units are binary
//! (`K` is 1024 bytes) and may be written `K` or `KiB`, upper or lower case; `MB`-style
//! decimal units are refused rather than guessed at.
//!
//! Taken by stg-restore (`--max-line-size`) and stg-dump (`--signature-part-size`).

/// Parses a size such as `64M`, `1G`, `1536K` or `1048576`.
pub fn parse(text: &str) -> Result<u64, String> {
    let input = text.trim();
    let digits = input.len() - input.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 {
        return Err(format!(
            "invalid size {input:?}: expected a number of bytes, optionally with K, M, G or T \
             (e.g. 64M, 1G)"
        ));
    }
    let number: u64 = input[..digits]
        .parse()
        .map_err(|_| format!("invalid size {input:?}: number too large"))?;
    let shift = match input[digits..].to_ascii_lowercase().as_str() {
        "" => 0,
        "k" | "kib" => 10,
        "m" | "mib" => 20,
        "g" | "gib" => 30,
        "t" | "tib" => 40,
        other => {
            return Err(format!(
                "invalid size {input:?}: unknown unit {other:?} (use K, M, G or T, all \
                 powers of 1024, or plain bytes)"
            ))
        }
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("invalid size {input:?}: too large"))
}

/// `67108864` -> `64 MiB`, `1000` -> `1000 bytes`: the largest unit that divides it.
#[must_use]
pub fn describe(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes % (1 << shift) == 0 {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_binary_and_plain_numbers_are_bytes() {
        assert_eq!(parse("64M").unwrap(), 64 << 20);
        assert_eq!(parse("1G").unwrap(), 1 << 30);
        assert_eq!(parse("1gib").unwrap(), 1 << 30);
        assert_eq!(parse("512K").unwrap(), 512 << 10);
        assert_eq!(parse("2T").unwrap(), 2 << 40);
        assert_eq!(parse("1048576").unwrap(), 1 << 20);
        assert_eq!(parse(" 7 ").unwrap(), 7);
    }

    #[test]
    fn bad_sizes_say_what_is_accepted() {
        assert!(parse("").unwrap_err().contains("expected a number"));
        assert!(parse("M").unwrap_err().contains("expected a number"));
        assert!(parse("64MB").unwrap_err().contains("unknown unit"));
        assert!(parse("1.5G").unwrap_err().contains("unknown unit"));
        assert!(parse("99999999999T").unwrap_err().contains("too large"));
    }

    #[test]
    fn sizes_are_described_in_the_largest_exact_unit() {
        assert_eq!(describe(64 << 20), "64 MiB");
        assert_eq!(describe(1 << 30), "1 GiB");
        assert_eq!(describe(1536 << 10), "1536 KiB");
        assert_eq!(describe(1000), "1000 bytes");
    }
}
