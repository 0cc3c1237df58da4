#!/usr/bin/env python3
"""Writes generalized assignment instances in OR-Library format (`gapinfo.txt`), following the
generation rules of Chu & Beasley (1997), "A genetic algorithm for the generalised assignment
problem", Computers & Operations Research 24(1), 17-23 (types A-D, minimization):

  type A: a_ij ~ U[5, 25], c_ij ~ U[10, 50] (integers),
          b_i = 9 (n / m) + 0.4 max_i sum_{j in J_i} a_ij, where J_i are the jobs whose
          cheapest agent is i (Martello & Toth's rule; the same for every agent)
  type B: a_ij, c_ij as type A, b_i = 70% of type A's capacity
  type C: a_ij, c_ij as type A, b_i = 0.8 sum_j a_ij / m
  type D: a_ij ~ U[1, 100], c_ij = 111 - a_ij + e_ij, e_ij ~ U[-10, 10] (costs inversely
          correlated with resource use), b_i = 0.8 sum_j a_ij / m

Capacities are truncated to integers. Type A's rule was checked against OR-Library's gapa:
it reproduces all six capacity vectors exactly (342, 671, 192, 365, 100, 199); the
0.8 sum_j a_ij / m rule of types C and D also appears in public GAP generators. These files
are *like* OR-Library's gapb/gapc/gapd (same rules and sizes), not the same numbers.

    scripts/gen-gap.py TYPE SEED [MxN ...] > FILE

TYPE is a, b, c or d; SEED an integer; the sizes default to OR-Library's six
(5x100 5x200 10x100 10x200 20x100 20x200). One file holds one problem per size.
"""
import sys

import numpy as np


def generate(kind, m, n, rng):
    if kind in "abc":
        a = rng.integers(5, 26, size=(m, n))
        c = rng.integers(10, 51, size=(m, n))
    elif kind == "d":
        a = rng.integers(1, 101, size=(m, n))
        c = 111 - a + rng.integers(-10, 11, size=(m, n))
    else:
        raise SystemExit(f"unknown type {kind!r}: expected a, b, c or d")
    if kind in "ab":
        cheapest = c.argmin(axis=0)
        loads = [int(a[i][cheapest == i].sum()) for i in range(m)]
        cap = 9 * n / m + 0.4 * max(loads)
        if kind == "b":
            cap *= 0.7
        b = np.full(m, int(cap))
    else:
        b = (0.8 * a.sum(axis=1) / m).astype(int)
    return c, a, b


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    kind = sys.argv[1].lower()
    seed = int(sys.argv[2])
    sizes = sys.argv[3:] or ["5x100", "5x200", "10x100", "10x200", "20x100", "20x200"]
    rng = np.random.default_rng(seed)
    out = [str(len(sizes))]
    for size in sizes:
        m, n = (int(x) for x in size.lower().split("x"))
        c, a, b = generate(kind, m, n, rng)
        out.append(f"{m} {n}")
        out.extend(" ".join(map(str, row)) for row in c)
        out.extend(" ".join(map(str, row)) for row in a)
        out.append(" ".join(map(str, b)))
    print("\n".join(out))


if __name__ == "__main__":
    main()
