"""Accuracy and speed of `scdeepclust.tl.desc` on the labelled datasets in ../shared/data,
beside scanpy's own Leiden clustering on the same preprocessing.

Per dataset: normalize_total, log1p, scale; then (a) `tl.desc` at defaults, (b) `tl.desc` with
the true number of clusters, (c) the scanpy baseline PCA (50) -> neighbors (15) -> Leiden (1.0).
Three seeds, median. Writes benchmarks/results/desc_accuracy.{json,md}.

    python benchmarks/desc_accuracy.py [--datasets 10X_PBMC ...] [--seeds 0 1 2]
                                       [--target-smoothing W] [--initial-label-weight A]
                                       [--alpha D] [--refine R]

`--target-smoothing W` passes `target_smoothing=W` to both `tl.desc` runs and writes
desc_accuracy_smoothing<W>.{json,md} instead; `--initial-label-weight A` passes
`initial_label_weight=A` and writes desc_accuracy_initial_label_weight<A>.{json,md};
`--alpha D` passes `alpha=D` (the Student's t kernel's degrees of freedom) and writes
desc_accuracy_alpha<D>.{json,md}; `--refine R` passes `refine=R` (0 keeps the clustering
stage's labels) and writes desc_accuracy_refine<R>.{json,md}. Options given together write to
one file whose name has each part (desc_accuracy_alpha3_refine0).

`--prepare recipe` prepares each dataset with `scdeepclust.pp.recipe(adata, "desc")` (what the
command line did before it left the scaling to DESC) instead of the scanpy steps above, and
writes desc_accuracy_recipe.{json,md};
`--target-sum T` and `--max-value V` pass those to the recipe (`none` for no clip) and add
`target_sum<T>` / `max_value<V>` to the name. `--prepare cli` is what the command line does
now: the recipe with `scale=False` (X stays log-normalised and sparse), then `tl.desc(...,
scale=True)`, which z-scores each gene as it reads the cells; it writes desc_accuracy_cli.*
(scanpy's baseline then runs its PCA on the log-normalised values).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import (
    DATA,
    DATASETS,
    add_dataset_options,
    description,
    earlier_rows,
    leiden_baseline,
    lognorm_scaled,
    merged_rows,
    require_data,
    save_results,
    score,
)

import scdeepclust as sdc


def run_desc(adata, seed, **kwargs):
    t0 = time.perf_counter()
    out = sdc.tl.desc(adata, random_state=seed, progress=False, copy=True, **kwargs)
    row = score(adata.obs["label"].to_numpy(), out.obs["desc"].to_numpy(), time.perf_counter() - t0)
    uns = out.uns["desc"]
    n_epochs = sum(int(v) for v in uns["pretrain_epochs"].values())
    row["pretrain_s_per_epoch"] = float(uns["timings"]["pretrain_s"]) / max(n_epochs, 1)
    row["clustering_epochs"] = int(uns["clustering_epochs"])
    if "refinement" in uns:  # share of the cells the refinement gave another cluster
        row["refined_share"] = int(uns["refinement"]["cells_moved"]) / adata.n_obs
    return row


def run_leiden(adata, seed):
    return leiden_baseline(adata, adata.obs["label"].to_numpy(), seed)


def main():
    parser = argparse.ArgumentParser(description=description(__doc__))
    add_dataset_options(parser)
    parser.add_argument("--target-smoothing", type=float, help="tl.desc's target_smoothing")
    parser.add_argument("--initial-label-weight", type=float, help="tl.desc's initial_label_weight")
    parser.add_argument("--alpha", type=float, help="tl.desc's alpha (the t kernel's freedom)")
    parser.add_argument("--refine", type=float, help="tl.desc's refine (0: the stage's labels)")
    parser.add_argument(
        "--prepare",
        choices=["scanpy", "recipe", "cli"],
        default="scanpy",
        help="normalize_total + log1p + scale (default), scdeepclust.pp.recipe, or the recipe "
        "without its scaling and tl.desc(scale=True) (the command line)",
    )
    parser.add_argument(
        "--target-sum", type=float, help="pp.recipe's target_sum (--prepare recipe)"
    )
    parser.add_argument("--max-value", help="pp.recipe's max_value, or none (--prepare recipe)")
    parser.add_argument(
        "--precision",
        choices=["float32", "bfloat16"],
        help="tl.desc's precision (default: the tool's float32)",
    )
    args = parser.parse_args()
    require_data(args.datasets)
    # Each option given adds its part to the results' name (see scdcc_accuracy.py).
    options, suffixes = {}, []
    if args.target_smoothing is not None:
        options["target_smoothing"] = args.target_smoothing
        suffixes.append(f"smoothing{args.target_smoothing:g}")
    if args.initial_label_weight is not None:
        options["initial_label_weight"] = args.initial_label_weight
        suffixes.append(f"initial_label_weight{args.initial_label_weight:g}")
    if args.alpha is not None:
        options["alpha"] = args.alpha
        suffixes.append(f"alpha{args.alpha:g}")
    if args.precision is not None:
        options["precision"] = args.precision
        suffixes.append(args.precision)
    if args.refine is not None:
        options["refine"] = args.refine
        suffixes.append(f"refine{args.refine:g}")
    recipe_options = {}
    if args.prepare in ("recipe", "cli"):
        suffixes.append(args.prepare)
        if args.prepare == "cli":
            recipe_options["scale"] = False
        if args.target_sum is not None:
            recipe_options["target_sum"] = args.target_sum
            suffixes.append(f"target_sum{args.target_sum:g}")
        if args.max_value is not None:
            if args.max_value.lower() == "none":
                recipe_options["max_value"] = None
                suffixes.append("max_valuenone")
            else:
                try:
                    recipe_options["max_value"] = float(args.max_value)
                except ValueError:
                    parser.error(f"--max-value takes a number or none, not {args.max_value!r}")
                suffixes.append(f"max_value{recipe_options['max_value']:g}")
    elif args.target_sum is not None or args.max_value is not None:
        parser.error("--target-sum and --max-value go with --prepare recipe or cli")
    if args.prepare == "cli" and recipe_options.get("max_value") is not None:
        parser.error("--max-value clips the recipe's scaling, which --prepare cli leaves out")
    desc_options = {**options, "scale": True} if args.prepare == "cli" else options
    results_name = "_".join(["desc_accuracy", *suffixes])

    # rows of other datasets stay; those measured again are replaced
    kept, rows = earlier_rows(results_name), []
    for name in args.datasets:
        raw = sdc.datasets.read_h5(DATA / DATASETS[name])
        k = raw.obs["label"].nunique()
        t0 = time.perf_counter()
        if args.prepare in ("recipe", "cli"):
            adata = raw.copy()
            sdc.pp.recipe(adata, "desc", **recipe_options)
        else:
            adata = lognorm_scaled(raw)
        prep_s = time.perf_counter() - t0
        methods = {
            "tl.desc (defaults)": (run_desc, desc_options),
            "tl.desc (n_clusters = true k)": (run_desc, {"n_clusters": k, **desc_options}),
            "scanpy PCA-neighbors-Leiden(1.0)": (run_leiden, {}),
        }
        for method, (fn, kwargs) in methods.items():
            runs = [{"seed": s, **fn(adata, s, **kwargs)} for s in args.seeds]
            row = {
                "dataset": name,
                "method": method,
                "cells": adata.n_obs,
                "k": k,
                "preprocess_s": prep_s,
            }
            for m in ("ari", "nmi", "n_clusters", "wall_s"):
                row[m] = float(np.median([r[m] for r in runs]))
            if "pretrain_s_per_epoch" in runs[0]:
                row["pretrain_s_per_epoch"] = float(
                    np.median([r["pretrain_s_per_epoch"] for r in runs])
                )
            row["runs"] = runs
            rows.append(row)
            print(
                f"{name:14s} {method:34s} ARI {row['ari']:.3f} NMI {row['nmi']:.3f} "
                f"clusters {row['n_clusters']:.0f} wall {row['wall_s']:.1f}s  per-seed ARI "
                f"{[round(r['ari'], 3) for r in runs]}",
                flush=True,
            )
            table = save_results(
                results_name,
                merged_rows(kept, rows, ("dataset", "method")),
                HEADER,
                format_row,
                seeds=args.seeds,
                prepare=args.prepare,
                **desc_options,
                **{f"recipe_{key}": value for key, value in recipe_options.items()},
            )

    print(table)


HEADER = [
    "dataset",
    "method",
    "cells",
    "true k",
    "ARI (median)",
    "NMI",
    "clusters",
    "wall s",
    "s / pretrain epoch",
]


def format_row(r: dict) -> list[str]:
    per_epoch = r.get("pretrain_s_per_epoch")
    return [
        r["dataset"],
        r["method"],
        str(r["cells"]),
        str(r["k"]),
        f"{r['ari']:.3f}",
        f"{r['nmi']:.3f}",
        f"{r['n_clusters']:.0f}",
        f"{r['wall_s']:.1f}",
        "-" if per_epoch is None else f"{per_epoch:.3f}",
    ]


if __name__ == "__main__":
    main()
