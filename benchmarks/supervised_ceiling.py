"""How well can the shared datasets' labels be recovered at all? Supervised classifiers trained
on the true labels of a fraction of cells, scored (ARI / NMI) on the other cells.

A clustering target above what a supervised classifier reaches with many more labels is not
a target any clustering method can meet on that data: the labels are then not fully
determined by the expression profiles. Three seeds, median. Writes
benchmarks/results/supervised_ceiling.{json,md}.

    python benchmarks/supervised_ceiling.py [--datasets 10X_PBMC ...] [--fractions 0.1 0.8]
                                            [--classifiers "logistic regression" ...]
                                            [--max-value 10 | none] [--name supervised_ceiling]

`--max-value none` scales without clipping (the input the scDCC label prior's components read
before they were clipped; `--name supervised_ceiling_unclipped` keeps it apart).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import scanpy as sc
from _common import (
    DATA,
    DATASETS,
    add_dataset_options,
    description,
    earlier_rows,
    merged_rows,
    require_data,
    save_results,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier

import scdeepclust as sdc


def features(adata, max_value=10.0):
    """Scaled log-normalised genes and their first 50 principal components."""
    prepared = adata.copy()
    sc.pp.normalize_total(prepared)
    sc.pp.log1p(prepared)
    sc.pp.scale(prepared, max_value=max_value)
    sc.tl.pca(prepared, n_comps=50, random_state=0)
    return {"genes": np.asarray(prepared.X), "pca50": prepared.obsm["X_pca"]}


CLASSIFIERS = {
    "logistic regression": ("pca50", lambda seed: LogisticRegression(C=0.1, max_iter=2000)),
    "15-NN": ("pca50", lambda seed: KNeighborsClassifier(15)),
    "MLP (128)": ("genes", lambda seed: MLPClassifier((128,), max_iter=300, random_state=seed)),
}


def main():
    parser = argparse.ArgumentParser(description=description(__doc__))
    add_dataset_options(parser)
    parser.add_argument("--fractions", nargs="*", type=float, default=[0.1, 0.8])
    parser.add_argument("--classifiers", nargs="*", default=list(CLASSIFIERS))
    parser.add_argument(
        "--max-value",
        type=lambda v: None if v.lower() == "none" else float(v),
        default=10.0,
        help="sc.pp.scale's clip of the features ('none': unclipped)",
    )
    parser.add_argument("--name", default="supervised_ceiling", help="results file name")
    args = parser.parse_args()
    require_data(args.datasets)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    # rows of other datasets, fractions or classifiers stay; those measured again are replaced
    kept, rows = earlier_rows(args.name), []
    for name in args.datasets:
        adata = sdc.datasets.read_h5(DATA / DATASETS[name])
        truth = adata.obs["label"].to_numpy()
        feats = features(adata, args.max_value)
        for fraction in args.fractions:
            for clf_name in args.classifiers:
                feature, make = CLASSIFIERS[clf_name]
                runs = []
                for seed in args.seeds:
                    # The same cells as the 10%-labelled scDCC benchmark for fraction 0.1.
                    labelled = np.random.default_rng(1000 + seed).random(adata.n_obs) < fraction
                    model = make(seed).fit(feats[feature][labelled], truth[labelled])
                    pred = model.predict(feats[feature][~labelled])
                    runs.append(
                        {
                            "seed": seed,
                            "ari": adjusted_rand_score(truth[~labelled], pred),
                            "nmi": normalized_mutual_info_score(truth[~labelled], pred),
                        }
                    )
                row = {
                    "dataset": name,
                    "labelled": fraction,
                    "classifier": clf_name,
                    "features": feature,
                    "max_value": args.max_value,
                    "ari": float(np.median([r["ari"] for r in runs])),
                    "nmi": float(np.median([r["nmi"] for r in runs])),
                    "runs": runs,
                }
                rows.append(row)
                print(" | ".join(format_row(row)), flush=True)
                every_row = merged_rows(kept, rows, ("dataset", "labelled", "classifier"))
                table = save_results(args.name, every_row, HEADER, format_row, seeds=args.seeds)
    print(table)


HEADER = ["dataset", "cells labelled", "classifier", "features", "ARI (median)", "NMI"]


def format_row(r: dict) -> list[str]:
    return [
        r["dataset"],
        f"{r['labelled']:.0%}",
        r["classifier"],
        r["features"],
        f"{r['ari']:.3f}",
        f"{r['nmi']:.3f}",
    ]


if __name__ == "__main__":
    main()
