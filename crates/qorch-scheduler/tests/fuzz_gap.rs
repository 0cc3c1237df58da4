//! Fuzzing on the stable toolchain: the GAP reader on arbitrary bytes and on structured
//! mutations of valid files. Whatever the input, the reader returns; an instance it accepts
//! becomes a problem (or a typed error) and evaluates without overflow.
//!
//! `PROPTEST_CASES` sets the cases per property (256 by default); `scripts/fuzz.sh MINUTES`
//! runs them longer.

use proptest::prelude::*;
use qorch_scheduler::{AssignmentSolution, GapInstance, GapSense, read_gap};

const NASTY: &[&str] = &[
    "0",
    "-1",
    "1",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "4611686018427387904",
    "9007199254740993",
    "100000",
    "10000000",
    "10001",
    "1e3",
    "NaN",
    "",
    "x",
    "99999999999999999999999999999999999999999999999999999999999999999999999999999999999999999",
];

fn gap_text() -> impl Strategy<Value = String> {
    (1..4_usize, 1..6_usize)
        .prop_flat_map(|(m, n)| {
            (
                Just((m, n)),
                proptest::collection::vec(-100..100_i64, 2 * m * n),
                proptest::collection::vec(0..100_i64, m),
            )
        })
        .prop_map(|((m, n), entries, cap)| {
            let mut s = format!("1\n{m} {n}\n");
            for row in entries.chunks(n) {
                let row: Vec<String> = row.iter().map(|v| v.abs().to_string()).collect();
                s.push_str(&row.join(" "));
                s.push('\n');
            }
            let cap: Vec<String> = cap.iter().map(ToString::to_string).collect();
            s.push_str(&cap.join(" "));
            s.push('\n');
            s
        })
}

fn check(instances: &[GapInstance]) {
    for inst in instances {
        inst.check_bounds(1).expect("the reader checks the bounds");
        for sense in [GapSense::Max, GapSense::Min] {
            if let Ok(problem) = inst.to_problem(sense) {
                let solution = AssignmentSolution {
                    choices: (0..inst.jobs)
                        .map(|j| (problem.num_options_of(j) > 0).then_some(0))
                        .collect(),
                };
                let _ = inst.evaluate(&problem, &solution);
            }
        }
    }
}

proptest! {
    #[test]
    fn gap_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(instances) = read_gap(bytes.as_slice()) {
            check(&instances);
        }
    }

    #[test]
    fn gap_survives_mutations(
        text in gap_text(),
        ms in proptest::collection::vec((any::<usize>(), 0..NASTY.len()), 0..4),
        cut in proptest::option::of(any::<usize>()),
    ) {
        let mut toks: Vec<&str> = text.split_whitespace().collect();
        for (at, k) in ms {
            let len = toks.len();
            toks[at % len] = NASTY[k];
        }
        if let Some(c) = cut {
            let len = toks.len();
            toks.truncate(c % (len + 1));
        }
        let input = toks.join(" ");
        match read_gap(input.as_bytes()) {
            Ok(instances) => check(&instances),
            Err(e) => prop_assert!(e.to_string().len() < 400, "{}", e),
        }
    }
}
