#!/usr/bin/env python3
"""Solve an allocation round exactly (up to a time limit) with HiGHS, for side-by-side
comparison with `qorch bench scheduler` on the same problem.

    qorch bench scheduler --agents 200 --clusters 1 --subclusters 0 --pools 4 \
        --write-problem /tmp/p.json --json
    .venv-peers/bin/python scripts/alloc-mip.py /tmp/p.json [TIME_LIMIT_S]

The model is the scheduler's objective written as a mixed-integer program (our own
formulation, nothing of qorch's code): binary x[a,p] (agent a on pool p), continuous grants
g[a,p,r] in [min_r x, desired_r x], capacities per pool and kind, value
sum weight * size(g), migration for agents that leave their current pool (or stay unserved),
and for each affinity pair a split indicator s = 1 - sum_p z_p with z_p <= x[a,p], x[b,p].
Prints one JSON line: HiGHS's best objective, its dual bound, the gap, and the objective's
parts (value, migration, communication) for the best solution found.
"""
import json
import sys
import time

import highspy
import numpy as np


def agents_of(node):
    yield from node.get("agents", [])
    for s in node.get("subclusters", []):
        yield from agents_of(s)


def main():
    problem = json.load(open(sys.argv[1]))
    time_limit = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    pools = problem["pools"]
    pool_index = {q["id"]: i for i, q in enumerate(pools)}
    cap = np.array([q["capacity"] for q in pools], dtype=float)
    n_pools, kinds = cap.shape
    total = cap.sum(0)
    active = [r for r in range(kinds) if total[r] > 0]
    # size(v) = mean over kinds with capacity of v_r / (mean pool capacity of r)
    scale = np.zeros(kinds)
    for r in active:
        scale[r] = n_pools / total[r] / len(active)
    agents = [a for c in problem["clusters"] for a in agents_of(c)]
    index = {a["id"]: i for i, a in enumerate(agents)}
    migration_c = problem["costs"]["migration"]
    communication_c = problem["costs"]["communication"]

    cost, lower, upper, integer = [], [], [], []
    rows = []  # (columns, coefficients, lower, upper)
    inf = highspy.kHighsInf

    def column(c, lo, hi, is_int):
        cost.append(c)
        lower.append(lo)
        upper.append(hi)
        integer.append(is_int)
        return len(cost) - 1

    offset = 0.0
    x = {}
    grant_cols = []  # (agent, column, kind)
    capacity_rows = {}
    for i, a in enumerate(agents):
        req = a["request"]
        desired = np.array(req["desired"], dtype=float)
        minimum = np.array(req["min"], dtype=float)
        weight = req["weight"]
        allowed = list(range(n_pools))
        filt = req["pools"]
        if isinstance(filt, dict) and "except" in filt:
            banned = {pool_index[p] for p in filt["except"]}
            allowed = [p for p in allowed if p not in banned]
        elif isinstance(filt, dict) and "only" in filt:
            allowed = sorted(pool_index[p] for p in filt["only"])
        current = pool_index.get(a["current"]) if a["current"] is not None else None
        moving = migration_c * float(np.dot(desired, scale)) if current is not None else 0.0
        offset -= moving
        served = []
        for p in allowed:
            xc = column(moving if p == current else 0.0, 0, 1, True)
            x[i, p] = xc
            served.append(xc)
            for r in range(kinds):
                g = column(weight * scale[r], 0, desired[r], False)
                grant_cols.append((i, g, r))
                rows.append(([g, xc], [1.0, -minimum[r]], 0, inf))
                rows.append(([g, xc], [1.0, -desired[r]], -inf, 0))
                capacity_rows.setdefault((p, r), []).append(g)
        rows.append((served, [1.0] * len(served), -inf, 1))
    for (p, r), cols in capacity_rows.items():
        rows.append((cols, [1.0] * len(cols), -inf, cap[p, r]))
    split_cols = []
    for e in problem["affinity"]:
        a, b = index[e["a"]], index[e["b"]]
        w = e["weight"] * communication_c
        offset -= w
        for p in range(n_pools):
            if (a, p) in x and (b, p) in x:
                z = column(w, 0, 1, False)
                split_cols.append(z)
                rows.append(([z, x[a, p]], [1.0, -1.0], -inf, 0))
                rows.append(([z, x[b, p]], [1.0, -1.0], -inf, 0))

    lp = highspy.HighsLp()
    lp.num_col_ = len(cost)
    lp.num_row_ = len(rows)
    lp.col_cost_ = np.array(cost)
    lp.col_lower_ = np.array(lower, dtype=float)
    lp.col_upper_ = np.array(upper, dtype=float)
    lp.row_lower_ = np.array([r[2] for r in rows], dtype=float)
    lp.row_upper_ = np.array([r[3] for r in rows], dtype=float)
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.offset_ = offset
    # Row-wise matrix.
    start, idx, val = [0], [], []
    for cols, coefs, _, _ in rows:
        idx.extend(cols)
        val.extend(coefs)
        start.append(len(idx))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.array(start)
    lp.a_matrix_.index_ = np.array(idx)
    lp.a_matrix_.value_ = np.array(val)
    lp.integrality_ = [
        highspy.HighsVarType.kInteger if t else highspy.HighsVarType.kContinuous for t in integer
    ]
    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", time_limit)
    h.setOptionValue("threads", 1)
    h.passModel(lp)
    t0 = time.time()
    h.run()
    seconds = time.time() - t0
    info = h.getInfo()
    sol = h.getSolution().col_value
    value = sum(cost[g] * sol[g] for _, g, _ in grant_cols)
    where = {i: p for (i, p), c in x.items() if sol[c] > 0.5}
    migration = 0.0
    for i, a in enumerate(agents):
        if a["current"] is not None and where.get(i) != pool_index[a["current"]]:
            migration += migration_c * float(np.dot(a["request"]["desired"], scale))
    communication = 0.0
    for e in problem["affinity"]:
        pa, pb = where.get(index[e["a"]]), where.get(index[e["b"]])
        if pa is None or pa != pb:
            communication += e["weight"] * communication_c
    print(
        json.dumps(
            {
                "agents": len(agents),
                "pools": n_pools,
                "objective": info.objective_function_value,
                "dual_bound": info.mip_dual_bound,
                "gap": info.mip_gap,
                "value": value,
                "migration_cost": migration,
                "communication_cost": communication,
                "served": len(where),
                "seconds": seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
