//! Parsers of the command line's numeric knobs: each refuses zero, NaN, negative and
//! out-of-range values with a message naming the bound (`docs/limits.md` lists them all).

use std::time::Duration;

/// The longest time limit any subcommand accepts: 30 days. Longer runs are not what a time
/// limit is for, and the bound keeps every `Instant + limit` far from overflowing.
pub(crate) const MAX_TIME_LIMIT_S: f64 = 30.0 * 24.0 * 3600.0;

/// A time limit in seconds: a positive, finite number of at most [`MAX_TIME_LIMIT_S`].
pub(crate) fn seconds(s: &str) -> Result<Duration, String> {
    let t: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{}` is not a number of seconds", qorch_qubo::quote(s)))?;
    if !(t > 0.0 && t <= MAX_TIME_LIMIT_S) {
        return Err(format!(
            "{t} is not a time limit: give a positive number of seconds, at most \
             {MAX_TIME_LIMIT_S} (30 days)"
        ));
    }
    Duration::try_from_secs_f64(t).map_err(|e| e.to_string())
}

/// A finite number (not NaN, not infinite).
pub(crate) fn finite(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{}` is not a number", qorch_qubo::quote(s)))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{v} is not a finite number"))
    }
}

/// A parser of integers in `1..=max`.
pub(crate) fn count(max: u64) -> clap::builder::RangedU64ValueParser<u64> {
    clap::builder::RangedU64ValueParser::new().range(1..=max)
}

/// A parser of `usize` counts in `1..=max`.
pub(crate) fn count_usize(max: u64) -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..=max)
}

/// Threads a command may start: four per core the process may use, since more only add
/// switching (and each costs a stack).
pub(crate) fn max_threads() -> usize {
    4 * std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Checks a thread count against [`max_threads`].
pub(crate) fn check_threads(flag: &str, t: usize) -> anyhow::Result<()> {
    let max = max_threads();
    anyhow::ensure!(
        (1..=max).contains(&t),
        "{flag} {t} is out of range 1..={max} (four threads per available core)"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_limits_refuse_what_cannot_be_a_duration() {
        for bad in [
            "0", "-1", "NaN", "inf", "1e20", "1.8e19", "2592001", "x", "",
        ] {
            assert!(seconds(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(seconds("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(seconds("2592000"), Ok(Duration::from_secs(30 * 24 * 3600)));
        let long = "9".repeat(10_000);
        assert!(seconds(&format!("x{long}")).unwrap_err().len() < 200);
    }

    #[test]
    fn finite_refuses_nan_and_infinities() {
        for bad in ["NaN", "inf", "-inf", "1e400", "x"] {
            assert!(finite(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(finite("-2.5"), Ok(-2.5));
    }
}
