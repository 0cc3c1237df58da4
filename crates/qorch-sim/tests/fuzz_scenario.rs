//! Fuzzing on the stable toolchain: scenario TOML on arbitrary text and on structured
//! mutations of the built-in scenario. Whatever the input, parsing returns; a scenario it
//! accepts is within every limit of `docs/limits.md`.
//!
//! `PROPTEST_CASES` sets the cases per property (256 by default); `scripts/fuzz.sh MINUTES`
//! runs them longer.

use proptest::prelude::*;
use qorch_protocol::AgentId;
use qorch_sim::Scenario;

const NASTY: &[&str] = &[
    "0",
    "-1",
    "1",
    "1000000000000",
    "9223372036854775807",
    "18446744073709551615",
    "4294967296",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "-inf",
    "0.0",
    "1e-320",
    "\"\"",
    "\"qaoa\"",
    "[]",
    "{}",
    "true",
    "\"x\"",
];

/// Checks what an accepted scenario promises.
fn check(s: &Scenario) {
    let t = &s.topology;
    assert!((1..=Scenario::MAX_AGENTS).contains(&t.agents));
    assert!((1..=Scenario::MAX_POOLS).contains(&s.pools.count));
    assert!(s.total_rounds() >= 1 && s.total_rounds() <= Scenario::MAX_ROUNDS);
    let leaves = s.leaves();
    assert!(leaves >= 1 && leaves <= t.agents);
    let agents = u32::try_from(t.agents).unwrap();
    for a in [0, agents / 2, agents - 1] {
        let _ = s.home_leaf(AgentId(a));
    }
    let again = Scenario::from_toml_str(&s.to_toml()).expect("a printed scenario reads back");
    assert_eq!(&again, s);
}

proptest! {
    #[test]
    fn scenario_survives_arbitrary_text(text in "(?s).{0,300}") {
        if let Ok(s) = Scenario::from_toml_str(&text) {
            check(&s);
        }
    }

    #[test]
    fn scenario_survives_mutations(
        ms in proptest::collection::vec((any::<usize>(), 0..NASTY.len()), 1..4),
        drop in proptest::option::of(any::<usize>()),
    ) {
        let base = Scenario::default().to_toml();
        let mut lines: Vec<String> = base.lines().map(str::to_owned).collect();
        for (at, k) in ms {
            let len = lines.len();
            let line = &mut lines[at % len];
            if let Some((key, _)) = line.split_once(" = ") {
                *line = format!("{key} = {}", NASTY[k]);
            }
        }
        if let Some(d) = drop {
            let len = lines.len();
            lines.remove(d % len);
        }
        match Scenario::from_toml_str(&lines.join("\n")) {
            Ok(s) => check(&s),
            Err(e) => prop_assert!(e.to_string().len() < 2000, "{}", e),
        }
    }
}
