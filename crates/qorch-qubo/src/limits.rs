//! Limits on what the readers and the model accept, each based on memory or on the range of
//! `f64`; `docs/limits.md` lists them all.

/// The largest input the readers accept, in bytes (1 GiB). A reader stops at this many bytes
/// and refuses the input ([`ReadError::InputTooLarge`](crate::ReadError::InputTooLarge))
/// instead of reading on: the largest G-set graph is under 1 MiB, and a model of 10 million
/// couplings in the text format is about 250 MB.
pub const MAX_INPUT_BYTES: u64 = 1 << 30;

/// Bytes a model and one solver's state need per variable (an estimate used before
/// allocating): the linear term and the CSR row start (16), the builder's copy (8), an
/// assignment, local fields and a best copy per replica (about 40).
pub const BYTES_PER_VARIABLE: u64 = 64;

/// Bytes a model needs per quadratic term while it is built and solved: the builder's
/// triplet (16), its merged copy (16), both CSR directions (32) and the reader's own copy
/// (16).
pub const BYTES_PER_TERM: u64 = 80;

/// The memory a model of `n` variables and `m` quadratic terms needs, by the estimates above.
pub fn model_bytes(n: usize, m: usize) -> u64 {
    (n as u64)
        .saturating_mul(BYTES_PER_VARIABLE)
        .saturating_add((m as u64).saturating_mul(BYTES_PER_TERM))
}

/// The memory the operating system reports as available for new allocations, in bytes:
/// `MemAvailable` from `/proc/meminfo`. `None` where that file does not exist or has no such
/// line (then only the fixed limits apply).
pub fn available_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let value: u64 = fields.next()?.parse().ok()?;
    let unit = fields.next().unwrap_or("B");
    let factor = match unit {
        "kB" | "KB" | "kiB" | "KiB" => 1024,
        "MB" | "MiB" => 1024 * 1024,
        "B" => 1,
        _ => return None,
    };
    value.checked_mul(factor)
}

/// The longest piece of an offending token an error message quotes, in characters.
pub const MAX_QUOTE_CHARS: usize = 80;

/// `token`, cut to [`MAX_QUOTE_CHARS`] characters with an ellipsis and its full length when
/// longer, for error messages.
pub fn quote(token: &str) -> String {
    match token.char_indices().nth(MAX_QUOTE_CHARS) {
        None => token.to_owned(),
        Some((cut, _)) => format!("{}... ({} bytes)", &token[..cut], token.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_cuts_long_tokens_on_a_char_boundary() {
        assert_eq!(quote("abc"), "abc");
        let long = "é".repeat(1000);
        let q = quote(&long);
        assert!(q.starts_with(&"é".repeat(MAX_QUOTE_CHARS)), "{q}");
        assert!(q.ends_with("... (2000 bytes)"), "{q}");
        assert!(q.chars().count() < MAX_QUOTE_CHARS + 20);
    }

    #[test]
    fn meminfo_is_parsed() {
        let text = "MemTotal:  24000000 kB\nMemAvailable:   20000000 kB\n";
        assert_eq!(parse_meminfo(text), Some(20_000_000 * 1024));
        assert_eq!(parse_meminfo("MemTotal: 5 kB\n"), None);
    }

    #[test]
    fn model_bytes_saturates() {
        assert_eq!(model_bytes(2, 1), 2 * BYTES_PER_VARIABLE + BYTES_PER_TERM);
        assert_eq!(model_bytes(usize::MAX, usize::MAX), u64::MAX);
    }
}
