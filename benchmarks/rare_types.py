"""Rare cell types: are groups of 0.5%, 1% and 2% of the cells recovered at the true k?

Simulated counts (4,000 cells x 500 genes, `datasets.simulate`) with 10 groups whose shares run
from 25% down to 2%, 1% and 0.5% (20 cells). For scanpy's Leiden (resolution 1, its own k) and
both tools given the true k: ARI, and for each rare group the best F1 of any cluster for it
(recovered: F1 >= 0.8). Data are drawn anew for each seed; 3 seeds. Writes
benchmarks/results/rare_types.{json,md}.

    python benchmarks/rare_types.py [--seeds 0 1 2] [--cells 4000] [--pretrain-balance X]
                                    [--balance B] [--scdcc-init leiden] [--scdcc-refine R]
                                    [--methods leiden scdcc desc]

`--pretrain-balance X` passes `pretrain_balance=X` to `tl.scdcc` and writes
rare_types_balance<X>.{json,md} instead; `--balance B` passes `balance=B` (the cluster-frequency
exponent of DEC's target) and writes rare_types_target_balance<B>.{json,md}; `--scdcc-init I`
passes `init=I` and writes rare_types_scdcc_init_<I>.{json,md}; `--scdcc-refine R` passes
`refine=R` and writes rare_types_scdcc_refine<R>.{json,md}. Options given together write to
one file whose name has each part (rare_types_scdcc_init_<I>_scdcc_refine<R>). `--methods`
measures some methods only and keeps the other rows of the results file.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import (
    description,
    earlier_rows,
    lognorm_scaled,
    median_min_max,
    merged_rows,
    save_results,
    scanpy_leiden,
    score,
)

import scdeepclust as sdc

CELLS = 4000  # the simulation of the committed table
SHARES = [0.25, 0.2, 0.15, 0.12, 0.1, 0.08, 0.065, 0.02, 0.01, 0.005]
RARE = {"2%": 7, "1%": 8, "0.5%": 9}  # share -> group index
RECOVERED_F1 = 0.8


def best_f1(truth: np.ndarray, pred: np.ndarray, group) -> float:
    """The best F1 of any predicted cluster for the cells of `group`."""
    in_group = truth == group
    best = 0.0
    for cluster in np.unique(pred[in_group]):
        in_cluster = pred == cluster
        hit = np.sum(in_group & in_cluster)
        best = max(best, 2 * hit / (in_group.sum() + in_cluster.sum()))
    return float(best)


def run(method: str, raw, scaled, k: int, seed: int, scdcc_options: dict) -> np.ndarray:
    if method == "scanpy Leiden (res. 1)":
        return scanpy_leiden(scaled, seed)
    tool = method.split()[0]
    fn, data, options = (
        (sdc.tl.scdcc, raw, scdcc_options) if tool == "scdcc" else (sdc.tl.desc, scaled, {})
    )
    out = fn(data, n_clusters=k, random_state=seed, progress=False, copy=True, **options)
    return out.obs[tool].to_numpy()


METHOD_NAMES = {
    "leiden": "scanpy Leiden (res. 1)",
    "scdcc": "scdcc (true k)",
    "desc": "desc (true k)",
}
METHODS = list(METHOD_NAMES.values())


def main():
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--cells", type=int, default=CELLS)
    parser.add_argument("--pretrain-balance", type=float, help="tl.scdcc's pretrain_balance")
    parser.add_argument("--balance", type=float, help="tl.scdcc's balance")
    parser.add_argument(
        "--scdcc-init", choices=["kmeans", "leiden", "balanced-kmeans"], help="tl.scdcc's init"
    )
    parser.add_argument("--scdcc-refine", type=float, help="tl.scdcc's refine")
    parser.add_argument(
        "--methods", nargs="*", default=list(METHOD_NAMES), choices=list(METHOD_NAMES)
    )
    args = parser.parse_args()
    # Each option given adds its part to the results' name (see scdcc_accuracy.py).
    scdcc_options, suffixes = {}, []
    if args.pretrain_balance is not None:
        scdcc_options["pretrain_balance"] = args.pretrain_balance
        suffixes.append(f"balance{args.pretrain_balance:g}")
    if args.balance is not None:
        scdcc_options["balance"] = args.balance
        suffixes.append(f"target_balance{args.balance:g}")
    if args.scdcc_init is not None:
        scdcc_options["init"] = args.scdcc_init
        suffixes.append(f"scdcc_init_{args.scdcc_init}")
    if args.scdcc_refine is not None:
        scdcc_options["refine"] = args.scdcc_refine
        suffixes.append(f"scdcc_refine{args.scdcc_refine:g}")
    if args.cells != CELLS:  # other data: its own table
        suffixes.append(f"cells{args.cells}")
    name = "_".join(["rare_types", *suffixes])

    methods = [METHOD_NAMES[m] for m in args.methods]
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    for seed in args.seeds:
        raw = sdc.datasets.simulate(
            args.cells, 500, len(SHARES), group_fractions=SHARES, random_state=200 + seed
        )
        truth = raw.obs["group"].to_numpy()
        groups = np.asarray(raw.obs["group"].cat.categories)
        scaled = lognorm_scaled(raw)
        for method in methods:
            t0 = time.perf_counter()
            pred = run(method, raw, scaled, len(SHARES), seed, scdcc_options)
            r = {"seed": seed, **score(truth, pred, time.perf_counter() - t0)}
            for share, index in RARE.items():
                r[f"f1 {share}"] = best_f1(truth, pred, groups[index])
                r[f"cells {share}"] = int(np.sum(truth == groups[index]))
            runs[method].append(r)
            print(
                f"{method:24s} seed {seed} ARI {r['ari']:.3f} k {r['n_clusters']} "
                + " ".join(f"F1 {s} {r[f'f1 {s}']:.2f}" for s in RARE),
                flush=True,
            )
    rows = []
    for method, rs in runs.items():
        row = {"method": method, "runs": rs}
        row.update(median_min_max(rs, ("ari", "n_clusters", "wall_s", *(f"f1 {s}" for s in RARE))))
        for s in RARE:
            row[f"recovered {s}"] = int(sum(r[f"f1 {s}"] >= RECOVERED_F1 for r in rs))
        rows.append(row)
    if len(methods) < len(METHODS):
        rows = merged_rows(earlier_rows(name), rows, ("method",))
    table = save_results(
        name, rows, HEADER, format_row, seeds=args.seeds, cells=args.cells, shares=SHARES
    )
    print(table)


HEADER = [
    "method",
    "ARI median (min-max)",
    "clusters",
    *(f"F1 of the {s} group, median (min-max); runs with F1 >= {RECOVERED_F1}" for s in RARE),
    "wall s",
]


def format_row(r: dict) -> list[str]:
    def span(m, digits=3):
        return f"{r[m]:.{digits}f} ({r[m + '_min']:.{digits}f}-{r[m + '_max']:.{digits}f})"

    return [
        r["method"],
        span("ari"),
        f"{r['n_clusters']:.0f}",
        *(f"{span(f'f1 {s}', 2)}; {r[f'recovered {s}']}/{len(r['runs'])}" for s in RARE),
        f"{r['wall_s']:.1f}",
    ]


if __name__ == "__main__":
    main()
