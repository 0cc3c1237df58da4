//! Fuzzing on the stable toolchain: the readers on arbitrary bytes and on structured
//! mutations of valid files. Whatever the input, a reader returns (no panic, no abort), and
//! a model it accepts has finite energies that a solver can minimize to a finite value.
//!
//! `PROPTEST_CASES` sets the cases per property (256 by default); `scripts/fuzz.sh MINUTES`
//! runs them longer.

use std::fmt::Write as _;

use proptest::prelude::*;
use qorch_qubo::{Budget, Qubo, SolveOptions, SolverKind, read_json, read_qubo_text, read_rudy};

/// Tokens that have broken readers somewhere: huge, tiny, non-finite, overflowing, empty.
const NASTY: &[&str] = &[
    "0",
    "-1",
    "1",
    "1e308",
    "-1e308",
    "1.7976931348623157e308",
    "1e100",
    "2.5e99",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "4000000000",
    "4294967295",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999",
    "1e-320",
    "0x10",
    "",
    "p",
    "qubo",
    "o",
    "c",
    "#",
    "%",
    "é",
    "\u{feff}",
    "99999999999999999999999999999999999999999999999999999999999999999999999999999999999999999",
];

/// A line-structured mutation.
#[derive(Debug, Clone)]
enum Mutation {
    Replace {
        line: usize,
        token: usize,
        nasty: usize,
    },
    Delete {
        line: usize,
    },
    Duplicate {
        line: usize,
        times: usize,
    },
    Insert {
        line: usize,
        bytes: Vec<u8>,
    },
    Swap {
        a: usize,
        b: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), any::<usize>(), 0..NASTY.len())
            .prop_map(|(line, token, nasty)| Mutation::Replace { line, token, nasty }),
        1 => any::<usize>().prop_map(|line| Mutation::Delete { line }),
        1 => (any::<usize>(), 1..5_usize).prop_map(|(line, times)| Mutation::Duplicate { line, times }),
        1 => (any::<usize>(), proptest::collection::vec(any::<u8>(), 0..12))
            .prop_map(|(line, bytes)| Mutation::Insert { line, bytes }),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Swap { a, b }),
    ]
}

/// Applies `mutations` to the lines of `text`.
fn mutate(text: &str, mutations: &[Mutation]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = text.lines().map(|l| l.as_bytes().to_vec()).collect();
    for m in mutations {
        if lines.is_empty() {
            lines.push(Vec::new());
        }
        let len = lines.len();
        match m {
            Mutation::Replace { line, token, nasty } => {
                let l = &mut lines[line % len];
                let text = String::from_utf8_lossy(l).into_owned();
                let mut toks: Vec<&str> = text.split_whitespace().collect();
                if toks.is_empty() {
                    toks.push("");
                }
                let k = token % toks.len();
                toks[k] = NASTY[*nasty];
                *l = toks.join(" ").into_bytes();
            }
            Mutation::Delete { line } => {
                lines.remove(line % len);
            }
            Mutation::Duplicate { line, times } => {
                let l = lines[line % len].clone();
                for _ in 0..*times {
                    lines.insert(line % len, l.clone());
                }
            }
            Mutation::Insert { line, bytes } => lines.insert(line % (len + 1), bytes.clone()),
            Mutation::Swap { a, b } => lines.swap(a % len, b % len),
        }
    }
    lines.join(&b'\n')
}

/// What every accepted model must satisfy.
fn check_model(q: &Qubo) {
    let n = q.num_vars();
    let sum = q.offset().abs()
        + q.linear().iter().map(|a| a.abs()).sum::<f64>()
        + q.interactions().map(|t| t.2.abs()).sum::<f64>();
    assert!(
        sum <= Qubo::MAX_ABS_SUM,
        "accepted a model summing to {sum:e}"
    );
    for x in [vec![false; n], vec![true; n]] {
        assert!(q.energy(&x).is_finite());
    }
    assert!(q.max_flip_magnitudes().iter().all(|m| m.is_finite()));
    if n <= 64 {
        for kind in [SolverKind::Sa, SolverKind::Tabu, SolverKind::Hybrid] {
            let sol = kind
                .build()
                .solve(q, &SolveOptions::new(Budget::sweeps(3), 1))
                .expect("a valid model solves");
            assert!(sol.energy.is_finite(), "{kind}: energy {}", sol.energy);
            let exact = q.energy(&sol.assignment);
            assert!(
                (sol.energy - exact).abs() <= 1e-9 * (1.0 + sum),
                "{kind}: energy {} but the assignment's is {exact}",
                sol.energy
            );
        }
    }
}

fn small_graph() -> impl Strategy<Value = String> {
    (1..12_usize)
        .prop_flat_map(|n| {
            (
                Just(n),
                proptest::collection::vec((1..=n, 1..=n, -1e6..1e6_f64), 0..20),
            )
        })
        .prop_map(|(n, edges)| {
            let mut s = format!("{n} {}\n", edges.len());
            for (i, j, w) in edges {
                let _ = writeln!(s, "{i} {j} {w}");
            }
            s
        })
}

fn small_qubo_text() -> impl Strategy<Value = String> {
    (1..12_usize)
        .prop_flat_map(|n| {
            (
                Just(n),
                proptest::collection::vec((0..n, -1e6..1e6_f64), 0..10),
                proptest::collection::vec((0..n, 0..n, -1e6..1e6_f64), 0..20),
            )
        })
        .prop_map(|(n, lin, quad)| {
            let quad: Vec<_> = quad.into_iter().filter(|(i, j, _)| i != j).collect();
            let mut s = format!("c fuzz\np qubo 0 {n} {} {}\n", lin.len(), quad.len());
            for (i, a) in lin {
                let _ = writeln!(s, "{i} {i} {a}");
            }
            for (i, j, b) in quad {
                let _ = writeln!(s, "{i} {j} {b}");
            }
            s.push_str("o 1.5\n");
            s
        })
}

fn json_number() -> impl Strategy<Value = String> {
    prop_oneof![
        20 => (-1e6..1e6_f64).prop_map(|v| format!("{v}")),
        1 => (0..NASTY.len()).prop_map(|k| NASTY[k].to_owned()),
    ]
}

fn json_text() -> impl Strategy<Value = String> {
    (
        // Mostly in range (12 or 13 variables, indices below 12), sometimes not.
        prop_oneof![
            6 => (12..14_u32).prop_map(|n| n.to_string()),
            1 => (0..12_u32).prop_map(|n| n.to_string()),
            1 => json_number(),
        ],
        proptest::collection::vec((0..12_u32, json_number()), 0..6),
        proptest::collection::vec((0..12_u32, 0..12_u32, json_number()), 0..8),
        json_number(),
        prop_oneof![
            8 => Just(None),
            1 => Just(Some("quadratc")),
            1 => Just(Some("lineal")),
            1 => Just(Some("num_vars")),
            1 => Just(Some("")),
        ],
    )
        .prop_map(|(n, lin, quad, offset, extra)| {
            let lin: Vec<String> = lin.iter().map(|(i, a)| format!("[{i}, {a}]")).collect();
            let quad: Vec<String> =
                quad.iter().map(|(i, j, b)| format!("[{i}, {j}, {b}]")).collect();
            let extra = extra.map(|k| format!(", \"{k}\": []")).unwrap_or_default();
            format!(
                "{{\"num_vars\": {n}, \"linear\": [{}], \"quadratic\": [{}], \"offset\": {offset}{extra}}}",
                lin.join(", "),
                quad.join(", ")
            )
        })
}

proptest! {
    #[test]
    fn rudy_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(g) = read_rudy(bytes.as_slice()) {
            check_model(&g.max_cut_qubo());
        }
    }

    #[test]
    fn rudy_survives_mutations(
        text in small_graph(),
        ms in proptest::collection::vec(mutation(), 0..6),
    ) {
        let input = mutate(&text, &ms);
        match read_rudy(input.as_slice()) {
            Ok(g) => {
                assert!(g.total_weight().is_finite());
                check_model(&g.max_cut_qubo());
            }
            Err(e) => prop_assert!(e.to_string().len() < 400, "{}", e),
        }
    }

    #[test]
    fn qubo_text_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut input = b"p qubo 0 4 1 1\n".to_vec();
        input.extend_from_slice(&bytes);
        for input in [bytes.as_slice(), input.as_slice()] {
            if let Ok(q) = read_qubo_text(input) {
                check_model(&q);
            }
        }
    }

    #[test]
    fn qubo_text_survives_mutations(
        text in small_qubo_text(),
        ms in proptest::collection::vec(mutation(), 0..6),
    ) {
        let input = mutate(&text, &ms);
        match read_qubo_text(input.as_slice()) {
            Ok(q) => check_model(&q),
            Err(e) => prop_assert!(e.to_string().len() < 400, "{}", e),
        }
    }

    #[test]
    fn json_survives_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(q) = read_json(bytes.as_slice()) {
            check_model(&q);
        }
    }

    #[test]
    fn json_survives_structured_inputs(
        text in json_text(),
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..2),
    ) {
        let mut input = text.clone().into_bytes();
        for (at, b) in flips {
            let len = input.len();
            input[at % len] = b;
        }
        match read_json(input.as_slice()) {
            Ok(q) => {
                prop_assert!(!text.contains("quadratc") && !text.contains("lineal"));
                check_model(&q);
            }
            Err(e) => prop_assert!(e.to_string().len() < 400, "{}", e),
        }
    }
}
