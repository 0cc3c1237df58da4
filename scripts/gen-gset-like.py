#!/usr/bin/env python3
"""Write rudy-format graphs of the families the G-set is drawn from, for testing solvers on
instances they have never seen.

  gen-gset-like.py torus ROWS COLS SEED [--unit]   2D toroidal grid, weights +-1 (or +1)
  gen-gset-like.py random N DENSITY SEED [--pm]    G(n, p) graph, weights +1 (or +-1)
  gen-gset-like.py planar N DEGREE SEED [--pm]     random geometric graph (near-planar)
  gen-gset-like.py stacked N DENSITY SEED [--pm]   union of two random stacked triangulations
                                                   (the G14-G21, G35-G42, G51-G54 family)

For a +-1 torus the ground-state energy per spin of the 2D Edwards-Anderson model is about
-1.4017, so the maximum cut is about (W + 1.4017 n) / 2, W = sum of weights; the script prints
that estimate on stderr.
"""
import math
import random
import sys


def main():
    kind, a, b, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    flags = sys.argv[5:]
    rng = random.Random(seed)
    edges = []
    if kind == "torus":
        rows, cols = int(a), int(b)
        n = rows * cols
        for r in range(rows):
            for c in range(cols):
                v = r * cols + c
                for u in (r * cols + (c + 1) % cols, ((r + 1) % rows) * cols + c):
                    w = 1 if "--unit" in flags else rng.choice((-1, 1))
                    edges.append((v, u, w))
        if "--unit" not in flags:
            W = sum(e[2] for e in edges)
            print(f"estimated max cut ~ {(W + 1.4017 * n) / 2:.0f}", file=sys.stderr)
    elif kind == "random":
        n, p = int(a), float(b)
        for i in range(n):
            for j in range(i + 1, n):
                if rng.random() < p:
                    edges.append((i, j, rng.choice((-1, 1)) if "--pm" in flags else 1))
    elif kind == "planar":
        n, deg = int(a), float(b)
        pts = [(rng.random(), rng.random()) for _ in range(n)]
        radius = math.sqrt(deg / (math.pi * n))
        cell = {}
        for i, (x, y) in enumerate(pts):
            cell.setdefault((int(x / radius), int(y / radius)), []).append(i)
        for i, (x, y) in enumerate(pts):
            cx, cy = int(x / radius), int(y / radius)
            for dx in (-1, 0, 1):
                for dy in (-1, 0, 1):
                    for j in cell.get((cx + dx, cy + dy), []):
                        if j > i and (pts[j][0] - x) ** 2 + (pts[j][1] - y) ** 2 < radius ** 2:
                            edges.append((i, j, rng.choice((-1, 1)) if "--pm" in flags else 1))
        n = len(pts)
    elif kind == "stacked":
        # Each triangulation grows from a triangle by putting every new vertex into a face
        # drawn uniformly and joining it to the face's three corners; then a random
        # (100 - DENSITY)% of its edges are dropped. The two edge sets are merged.
        n, density = int(a), float(b)
        union = set()
        for _ in range(2):
            faces = [(0, 1, 2)]
            tri = [(0, 1), (0, 2), (1, 2)]
            for d in range(3, n):
                f = rng.randrange(len(faces))
                x, y, z = faces[f]
                tri += [(x, d), (y, d), (z, d)]
                faces[f] = (x, y, d)
                faces += [(x, z, d), (y, z, d)]
            rng.shuffle(tri)
            keep = int(density * 3 * (n - 2) / 100)
            union.update(tuple(sorted(e)) for e in tri[:keep])
        for i, j in sorted(union):
            edges.append((i, j, rng.choice((-1, 1)) if "--pm" in flags else 1))
    else:
        sys.exit(f"unknown kind {kind}")
    out = sys.stdout
    out.write(f"{n} {len(edges)}\n")
    for i, j, w in edges:
        out.write(f"{i + 1} {j + 1} {w}\n")


if __name__ == "__main__":
    main()
