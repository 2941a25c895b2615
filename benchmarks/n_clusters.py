"""The number of clusters chosen from the data: both tools without k, beside scanpy's Leiden and
beside the same tool given the true number, on the labelled datasets in ../shared/data and on
simulated data with 5, 10 and 20 groups (the last two with groups of 1-2% of the cells).

Per dataset and seed: scDCC on the raw counts and DESC on normalize_total + log1p + scale,
each at its defaults (Leiden at the tool's default resolution) and with the search
(``n_clusters=(2, 30)``); each tool given the true number where asked (``--true-k``); and
scanpy's PCA (50) -> neighbors (15) -> Leiden (1.0). Medians and min-max over seeds. Writes
benchmarks/results/<name>.{json,md}.

    python benchmarks/n_clusters.py [--datasets 10X_PBMC ... sim5 sim10 sim20] [--seeds 0 1 2]
        [--tools scdcc desc] [--true-k scdcc desc] [--name n_clusters]

`--tools` limits the runs without k to those tools (scanpy's Leiden always runs), `--true-k` the
runs given the true number; when either leaves a tool out, the rows of results/<name>.json that
this run did not measure are kept.
"""

from __future__ import annotations

import argparse
import inspect
import time

from _common import (
    DATA,
    DATASETS,
    add_dataset_options,
    description,
    earlier_rows,
    leiden_baseline,
    lognorm_scaled,
    median_min_max,
    merged_rows,
    require_data,
    save_results,
    score,
)

import scdeepclust as sdc
from scdeepclust.models._scdcc import DEFAULT_RESOLUTION as SCDCC_RESOLUTION

DESC_RESOLUTION = inspect.signature(sdc.tl.desc).parameters["resolution"].default

# Simulated designs: number of groups and their expected shares (None: equal).
SIMULATIONS = {
    "sim5": (5, None),
    "sim10": (10, [0.2, 0.15, 0.15, 0.12, 0.12, 0.1, 0.08, 0.05, 0.02, 0.01]),
    "sim20": (20, [0.1] * 4 + [0.06] * 6 + [0.04] * 4 + [0.02] * 4 + [0.01] * 2),
}


def load(name: str, seed: int):
    """(raw counts AnnData with obs['label'], seed the data depend on or None)."""
    if name in SIMULATIONS:
        n_groups, shares = SIMULATIONS[name]
        sim = sdc.datasets.simulate(
            2000, 500, n_groups, group_fractions=shares, random_state=100 + seed
        )
        sim.obs["label"] = sim.obs["group"]
        return sim
    return sdc.datasets.read_h5(DATA / DATASETS[name])


def run_tool(tool, raw, scaled, seed, **kwargs):
    adata = raw if tool == "scdcc" else scaled
    t0 = time.perf_counter()
    fn = sdc.tl.scdcc if tool == "scdcc" else sdc.tl.desc
    out = fn(adata, random_state=seed, progress=False, copy=True, **kwargs)
    wall = time.perf_counter() - t0
    uns = out.uns[tool]
    extra = {"clustering_epochs": int(uns["clustering_epochs"])}
    if "small_clusters" in uns:  # clusters under `min_cluster_size`, merged
        extra["merged_clusters"] = len(uns["small_clusters"]["merged"])
    if "n_clusters_search" in uns:
        search = uns["n_clusters_search"]
        extra.update(chosen=int(search["chosen"]), runner_up=int(search.get("runner_up", -1)))
    return {**score(raw.obs["label"].to_numpy(), out.obs[tool].to_numpy(), wall), **extra}


def methods(k: int, tools: list[str], true_k: list[str]) -> dict:
    out = {
        "scanpy Leiden (res. 1)": lambda raw, scaled, s: leiden_baseline(
            scaled, raw.obs["label"].to_numpy(), s
        ),
    }
    if "scdcc" in tools:
        out[f"scdcc (defaults: Leiden {SCDCC_RESOLUTION})"] = lambda raw, scaled, s: run_tool(
            "scdcc", raw, scaled, s
        )
        out["scdcc (search 2-30)"] = lambda raw, scaled, s: run_tool(
            "scdcc", raw, scaled, s, n_clusters=(2, 30)
        )
    if "desc" in tools:
        out[f"desc (defaults: Leiden {DESC_RESOLUTION})"] = lambda raw, scaled, s: run_tool(
            "desc", raw, scaled, s
        )
        out["desc (search 2-30)"] = lambda raw, scaled, s: run_tool(
            "desc", raw, scaled, s, n_clusters=(2, 30)
        )
    for tool in true_k:
        out[f"{tool} (true k)"] = lambda raw, scaled, s, tool=tool: run_tool(
            tool, raw, scaled, s, n_clusters=k
        )
    return out


def main():
    parser = argparse.ArgumentParser(description=description(__doc__))
    add_dataset_options(parser, extra=SIMULATIONS)
    parser.add_argument("--tools", nargs="*", default=["scdcc", "desc"], choices=["scdcc", "desc"])
    parser.add_argument("--true-k", nargs="*", default=["scdcc", "desc"], choices=["scdcc", "desc"])
    parser.add_argument("--name", default="n_clusters")
    args = parser.parse_args()
    if any(d in DATASETS for d in args.datasets):
        require_data([d for d in args.datasets if d in DATASETS])

    # rows of other datasets or tools stay; those measured again are replaced
    kept = earlier_rows(args.name)
    rows = []
    for name in args.datasets:
        per_method: dict[str, list] = {}
        k = None
        for seed in args.seeds:
            # simulated data are drawn anew for each seed; real data are the same file
            raw = load(name, seed)
            scaled = lognorm_scaled(raw)
            k = int(raw.obs["label"].nunique())
            for method, fn in methods(k, args.tools, args.true_k).items():
                per_method.setdefault(method, []).append({"seed": seed, **fn(raw, scaled, seed)})
                r = per_method[method][-1]
                print(
                    f"{name:14s} {method:28s} seed {seed} ARI {r['ari']:.3f} NMI {r['nmi']:.3f} "
                    f"k {r['n_clusters']} wall {r['wall_s']:.1f}s",
                    flush=True,
                )
        for method, runs in per_method.items():
            row = {"dataset": name, "method": method, "cells": raw.n_obs, "k": k, "runs": runs}
            row.update(median_min_max(runs, ("ari", "nmi", "n_clusters", "wall_s")))
            rows.append(row)
        table = save_results(
            args.name,
            merged_rows(kept, rows, ("dataset", "method")),
            HEADER,
            format_row,
            seeds=args.seeds,
        )
    print(table)


HEADER = [
    "dataset",
    "method",
    "cells",
    "true k",
    "ARI median (min-max)",
    "NMI median",
    "clusters median (min-max)",
    "wall s median",
]


def format_row(r: dict) -> list[str]:
    return [
        r["dataset"],
        r["method"],
        str(r["cells"]),
        str(r["k"]),
        f"{r['ari']:.3f} ({r['ari_min']:.3f}-{r['ari_max']:.3f})",
        f"{r['nmi']:.3f}",
        f"{r['n_clusters']:.0f} ({r['n_clusters_min']:.0f}-{r['n_clusters_max']:.0f})",
        f"{r['wall_s']:.1f}",
    ]


if __name__ == "__main__":
    main()
