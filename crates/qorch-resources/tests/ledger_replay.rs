//! Property: whatever sequence of operations a manager goes through (including refused ones),
//! replaying its ledger, in full or through any round, rebuilds its state exactly, also after
//! a serde round trip.

use proptest::prelude::*;
use qorch_resources::{
    AgentId, Allocation, ChangeContext, Grant, Ledger, PoolFilter, PoolId, PoolKind, Reason,
    ResourceKinds, ResourceManager, ResourceRequest, ResourceVector,
};

#[derive(Debug, Clone)]
enum Op {
    Request(u32, f64, f64),
    Grant(u32, u32, f64, f64),
    Release(u32, u32, f64),
    ReleaseAll(u32),
    Capacity(u32, f64),
    Apply(Vec<(u32, u32, f64)>),
    Withdraw(u32),
    NextRound,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..6_u32, 0.0..4.0_f64, 0.0..4.0_f64).prop_map(|(a, x, y)| Op::Request(a, x, y)),
        (0..6_u32, 0..4_u32, 0.0..3.0_f64, 0.0..3.0_f64)
            .prop_map(|(a, p, x, y)| Op::Grant(a, p, x, y)),
        (0..6_u32, 0..4_u32, 0.0..3.0_f64).prop_map(|(a, p, x)| Op::Release(a, p, x)),
        (0..6_u32).prop_map(Op::ReleaseAll),
        (0..4_u32, 0.0..12.0_f64).prop_map(|(p, c)| Op::Capacity(p, c)),
        proptest::collection::vec((0..6_u32, 0..4_u32, 0.0..3.0_f64), 0..6).prop_map(Op::Apply),
        (0..6_u32).prop_map(Op::Withdraw),
        Just(Op::NextRound),
    ]
}

fn v(x: f64, y: f64) -> ResourceVector {
    ResourceVector::from(vec![x, y])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn replay_rebuilds_the_state(ops in proptest::collection::vec(op(), 0..60)) {
        let mut m = ResourceManager::new(&ResourceKinds::from_names(["cpu", "mem"]));
        let setup = ChangeContext::new(0, 0, Reason::Configuration);
        for p in 0..3 {
            m.add_pool(format!("p{p}"), PoolKind::Node, &v(8.0, 8.0), &setup).unwrap();
        }
        let (mut round, mut at) = (1_u64, 10_u64);
        for op in ops {
            let ctx = ChangeContext::new(round, at, Reason::Rebalance).with_solution(1.0, "test");
            // Refused operations are part of the test: they must leave no trace.
            let _ = match op {
                Op::Request(a, x, y) => m.request(
                    AgentId(a),
                    ResourceRequest::new(v(x.min(y), x.min(y)), v(x, y.max(x.min(y))), 1.0, PoolFilter::Any)
                        .unwrap_or_else(|_| ResourceRequest::exact(v(x, x))),
                    &ctx,
                ),
                Op::Grant(a, p, x, y) => m.grant(AgentId(a), PoolId(p), &v(x, y), &ctx),
                Op::Release(a, p, x) => m.release(AgentId(a), PoolId(p), &v(x, 0.0), &ctx),
                Op::ReleaseAll(a) => m.release_all(AgentId(a), &ctx),
                Op::Capacity(p, c) => m.set_capacity(PoolId(p), &v(c, 8.0), &ctx),
                Op::Apply(gs) => {
                    let alloc: Allocation = gs
                        .into_iter()
                        .map(|(a, p, x)| (AgentId(a), Grant::new(PoolId(p), v(x, x / 2.0))))
                        .collect();
                    m.apply_allocation(&alloc, &ctx)
                }
                Op::Withdraw(a) => m.withdraw(AgentId(a), &ctx).map(drop),
                Op::NextRound => {
                    round += 1;
                    at += 7;
                    Ok(())
                }
            };
            // Invariant: nothing is ever over capacity.
            for pool in m.pools() {
                let used = m.used(pool.id).unwrap();
                prop_assert!(used.fits_within(&pool.capacity, 1e-6), "{:?} over {:?}", used, pool.capacity);
            }
        }
        let replayed = ResourceManager::replay(m.ledger()).unwrap();
        prop_assert_eq!(&replayed, &m);
        let json = serde_json::to_string(m.ledger()).unwrap();
        let ledger: Ledger = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&ledger, m.ledger());
        prop_assert_eq!(&ResourceManager::replay(&ledger).unwrap(), &m);
        // Every prefix through a round replays, and its last state matches that round's entries.
        for r in 0..=round {
            let prefix = m.ledger().through_round(r);
            let state = ResourceManager::replay_entries(prefix).unwrap();
            prop_assert_eq!(state.ledger().entries(), prefix);
        }
    }
}
