"""Is the reported confidence a probability? Calibration of `obs[key + '_confidence']` against
the annotated types of the labelled datasets in ../shared/data.

A cell counts as right when its annotated type is the most frequent type of its cluster
(clusters matched to types by majority). Expected calibration error (ECE): the cells are binned
by confidence (10 equal-width bins) and the gap between each bin's mean confidence and its share
of right cells is averaged, weighted by the bin's cells. For comparison, the same for the soft
assignment to the reported cluster (`obsm[key + '_probs']`, the confidence of earlier versions).
Per dataset: `tl.desc` at defaults and with the true k, `tl.scdcc` with the true k; three seeds,
median (min-max). Also where the wrong cells are: their share in clusters whose leading type
holds under 75% of the cells (clusters that join types), and the share right and the mean
confidence in those clusters and in the others. Writes benchmarks/results/calibration.{json,md}
and a reliability diagram of seed 0, calibration.png.

    python benchmarks/calibration.py [--datasets 10X_PBMC ...] [--seeds 0 1 2]
                                     [--tools desc scdcc]

`--tools` runs only those tools' rows; the other rows of the earlier results are kept.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from _common import (
    DATA,
    DATASETS,
    RESULTS,
    add_dataset_options,
    description,
    earlier_rows,
    lognorm_scaled,
    merged_rows,
    require_data,
    save_results,
)
from sklearn.metrics import adjusted_rand_score

import scdeepclust as sdc

N_BINS = 10
TARGET_ECE = 0.05  # issue 15
# A cluster whose leading type holds fewer of its cells than this joins annotated types.
MIXED_BELOW = 0.75
# What `mixed_clusters` measures per run, given per row as the median over the seeds.
MIXED = ("wrong_in_mixed", "mixed_right", "mixed_confidence", "other_right", "other_confidence")


def right_cells(truth: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """Whether each cell's type is the most frequent type of its cluster."""
    right = np.zeros(len(truth), bool)
    for cluster in np.unique(clusters):
        members = clusters == cluster
        types, counts = np.unique(truth[members], return_counts=True)
        right[members] = truth[members] == types[counts.argmax()]
    return right


def reliability(confidence: np.ndarray, right: np.ndarray) -> dict:
    """Per confidence bin: cells, mean confidence, share right; and the ECE."""
    bins = np.clip((confidence * N_BINS).astype(int), 0, N_BINS - 1)
    table = {"cells": [], "confidence": [], "right": []}
    ece = 0.0
    for b in range(N_BINS):
        members = bins == b
        n = int(members.sum())
        mean_conf = float(confidence[members].mean()) if n else float("nan")
        share = float(right[members].mean()) if n else float("nan")
        table["cells"].append(n)
        table["confidence"].append(mean_conf)
        table["right"].append(share)
        if n:
            ece += n / len(confidence) * abs(mean_conf - share)
    return {"ece": ece, "bins": table}


def mixed_clusters(clusters: np.ndarray, right: np.ndarray, confidence: np.ndarray) -> dict:
    """Where the wrong cells are: in clusters that join annotated types, or in the others.

    Returns the share of the wrong cells in clusters whose leading type holds under
    `MIXED_BELOW` of their cells, and the share right and the mean confidence in those
    clusters and in the others (NaN where there are none).
    """
    _, members = np.unique(clusters, return_inverse=True)
    purity = np.bincount(members, weights=right) / np.bincount(members)
    mixed = purity[members] < MIXED_BELOW
    wrong = ~right

    def mean(values, where):
        return float(values[where].mean()) if where.any() else float("nan")

    return {
        "mixed_clusters": int((purity < MIXED_BELOW).sum()),
        "wrong_in_mixed": mean(mixed.astype(float), wrong),
        "mixed_right": mean(right.astype(float), mixed),
        "mixed_confidence": mean(confidence, mixed),
        "other_right": mean(right.astype(float), ~mixed),
        "other_confidence": mean(confidence, ~mixed),
    }


def run(tool: str, adata, raw, k: int | None, seed: int) -> dict:
    if tool == "desc":
        out = sdc.tl.desc(adata, n_clusters=k, random_state=seed, progress=False, copy=True)
    else:
        out = sdc.tl.scdcc(raw, n_clusters=k, random_state=seed, progress=False, copy=True)
    truth = raw.obs["label"].astype(str).to_numpy()
    clusters = out.obs[tool].cat.codes.to_numpy()
    right = right_cells(truth, clusters)
    confidence = out.obs[f"{tool}_confidence"].to_numpy(np.float64)
    # a cluster is named after its column of the soft assignments; the codes count only the
    # clusters that hold cells, so where one emptied they point at other columns
    columns = out.obs[tool].astype(int).to_numpy()
    soft = out.obsm[f"{tool}_probs"][np.arange(out.n_obs), columns].astype(np.float64)
    calibrated, uncalibrated = reliability(confidence, right), reliability(soft, right)
    return {
        "seed": seed,
        "ari": adjusted_rand_score(truth, clusters),
        "right": float(right.mean()),
        "mean_confidence": float(confidence.mean()),
        "ece": calibrated["ece"],
        "ece_soft_assignment": uncalibrated["ece"],
        "mean_soft_assignment": float(soft.mean()),
        "bins": calibrated["bins"],
        "bins_soft_assignment": uncalibrated["bins"],
        **mixed_clusters(clusters, right, confidence),
    }


def main():
    parser = argparse.ArgumentParser(description=description(__doc__))
    add_dataset_options(parser)
    parser.add_argument("--tools", nargs="*", default=["desc", "scdcc"], choices=["desc", "scdcc"])
    args = parser.parse_args()
    require_data(args.datasets)

    kept = earlier_rows("calibration")
    rows = []
    for name in args.datasets:
        raw = sdc.datasets.read_h5(DATA / DATASETS[name])
        k = raw.obs["label"].nunique()
        scaled = lognorm_scaled(raw)
        for method, tool, n_clusters in (
            ("tl.desc (defaults)", "desc", None),
            ("tl.desc (true k)", "desc", k),
            ("tl.scdcc (true k)", "scdcc", k),
        ):
            if tool not in args.tools:
                continue
            runs = [run(tool, scaled, raw, n_clusters, s) for s in args.seeds]
            row = {"dataset": name, "method": method, "cells": raw.n_obs, "runs": runs}
            for m in ("ece", "ece_soft_assignment", "right", "mean_confidence", "ari", *MIXED):
                row[m] = float(np.nanmedian([r[m] for r in runs]))
            rows.append(row)
            print(
                f"{name:14s} {method:20s} ECE {row['ece']:.3f} (soft assignment "
                f"{row['ece_soft_assignment']:.3f}) right {row['right']:.3f} mean confidence "
                f"{row['mean_confidence']:.3f}",
                flush=True,
            )
            every_row = merged_rows(kept, rows, ("dataset", "method"))
            table = save_results("calibration", every_row, HEADER, format_row, seeds=args.seeds)
    plot_reliability(every_row, RESULTS / "calibration.png")
    print(table)


def _spread(row: dict, metric: str) -> str:
    values = [r[metric] for r in row["runs"]]
    return f"{np.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


HEADER = [
    "dataset",
    "method",
    "ECE of the confidence",
    "ECE of the soft assignment",
    "share right",
    "mean confidence",
    "ARI",
    f"share of the wrong cells in clusters under {MIXED_BELOW:.0%} one type",
    "there: right / confidence",
    "other clusters: right / confidence",
]


def format_row(r: dict) -> list[str]:
    return [
        r["dataset"],
        r["method"],
        _spread(r, "ece"),
        _spread(r, "ece_soft_assignment"),
        f"{r['right']:.3f}",
        f"{r['mean_confidence']:.3f}",
        f"{r['ari']:.3f}",
        _share(r.get("wrong_in_mixed")),
        f"{_share(r.get('mixed_right'))} / {_share(r.get('mixed_confidence'))}",
        f"{_share(r.get('other_right'))} / {_share(r.get('other_confidence'))}",
    ]


def _share(value: float | None) -> str:
    """A median over the seeds, or '-' (not measured by the run that wrote the row, or no
    such cluster on any seed)."""
    return "-" if value is None or np.isnan(value) else f"{value:.3f}"


def plot_reliability(rows: list[dict], path) -> None:
    """Share of right cells against mean confidence per bin, first seed of each row."""
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig, axes = plt.subplots(
        len(datasets),
        len(methods),
        figsize=(3.2 * len(methods), 3.0 * len(datasets)),
        squeeze=False,
    )
    for row in rows:
        ax = axes[datasets.index(row["dataset"]), methods.index(row["method"])]
        first = row["runs"][0]
        for bins, label, style in (
            (first["bins"], f"confidence (ECE {first['ece']:.2f})", "o-"),
            (
                first["bins_soft_assignment"],
                f"soft assignment (ECE {first['ece_soft_assignment']:.2f})",
                "s--",
            ),
        ):
            ax.plot(bins["confidence"], bins["right"], style, ms=3, label=label)
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.set(xlim=(0, 1), ylim=(0, 1), title=f"{row['dataset']}\n{row['method']}")
        ax.set_xlabel("mean confidence in bin", fontsize=8)
        ax.set_ylabel("share of right cells", fontsize=8)
        ax.legend(fontsize=6, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


if __name__ == "__main__":
    main()
