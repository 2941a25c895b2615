"""Batch-effect correction of `tl.scdcc` and `tl.desc` (``batch_key=``), beside scanpy's ComBat,
Harmony and uncorrected Leiden clustering, on data with known cell types and known batch effects.

Designs (each drawn anew per seed; seeds 0, 1, 2 by default):

* ``sim2`` / ``sim4``: `datasets.simulate` (3,000 cells, 1,000 genes, 6 groups) with 2 or 4
  batches, ``batch_effect=0.5`` (per batch a gene-wise factor exp(N(0, 0.5)) and a library-size
  shift exp(N(0, 0.25))); cell types are shared by all batches. Undistorted reference: the same
  call with ``n_batches=1``, i.e. the same cells (groups, library factors) without the batch
  factors.
* ``pbmc``: 10X_PBMC_top2000.h5 (4,271 cells, 8 types) from ../shared/data, cells split at
  random into batches "a" and "b"; the counts of batch "b" are redrawn with a known gene-wise
  factor exp(N(0, 0.5)) and a library-size shift x0.6 (see `distort_counts`). Undistorted
  reference: the original counts, with the same batch labels.

Methods, on each design: `tl.scdcc` (raw counts, true k) with and without ``batch_key='batch'``;
`tl.desc` (normalize_total, log1p, scale; true k) with and without ``batch_key``; scanpy ComBat
on the log-normalised data, then scale -> PCA (50) -> neighbors (15) -> Leiden (1.0); Harmony
(`harmonypy.run_harmony`, its defaults: theta 2, min(cells / 30, 100) clusters, at most 10
iterations, stopping when its objective changes by less than 1%) on that PCA of the scaled
log-normalised data, then neighbors (15) on the corrected PCA -> Leiden (1.0); the same without
ComBat or Harmony. Every tool also runs on the undistorted reference without ``batch_key``
(ComBat's and Harmony's reference is plain Leiden there), which gives the "reference ARI".

Metrics: ARI and NMI against the true cell types; batch mixing in the method's embedding
(``obsm['X_scdcc']``, ``obsm['X_desc']``, ``obsm['X_pca']`` for the scanpy methods,
``obsm['X_pca_harmony']`` for Harmony): the mean over
cells of the entropy of the batch labels among the cell's 30 nearest neighbours, divided by the
entropy of the overall batch proportions (1 = perfectly mixed, 0 = no neighbour from another
batch); and the silhouette of the batch labels on the embedding (0 or below = mixed). Wall time
of each method (the tool call; for the scanpy methods ComBat, scale, PCA, Harmony, neighbours,
Leiden).

scIB metrics (the `scib-metrics` package, as its `Benchmarker` computes them; Luecken et al.
2022), on the same embeddings, all in [0, 1], higher better. One exact Euclidean search for the
90 nearest neighbours, the cell itself included as its first neighbour (the Benchmarker runs
pynndescent, an approximation of the same), cut to the first 15, 50 and 90 neighbours as the
Benchmarker does:

* iLISI (`ilisi_knn`, 90 neighbours, perplexity 30): the median over cells of the local inverse
  Simpson index of the batch labels, scaled to [0, 1] by (iLISI - 1) / (batches - 1);
* kBET (`kbet_per_label`, 50 neighbours): per cell type, the kBET acceptance rate (chi-square
  test of each neighbourhood's batch counts against the overall, alpha 0.05) on a diffusion-map
  neighbour graph of that type's cells; the mean over the types;
* graph connectivity (`graph_connectivity`, 15 neighbours): per cell type, the share of its
  cells in the largest connected component of the kNN graph restricted to that type; the mean;
* batch ASW (`silhouette_batch`): per cell type, 1 - |silhouette of the batch labels| over its
  cells, averaged per type, then over types;
* label ASW (`silhouette_label`): (silhouette of the cell types + 1) / 2 (cell types kept
  apart, a bio-conservation metric).

All cells are used (no subsampling); the seconds the five metrics took are in the ``scIB s``
column (the first run's include compiling scib-metrics' jax and numba code, about a minute).

Writes benchmarks/results/batch.{json,md}, the scIB metrics in a second table (``--quick``:
batch_quick.*, a small smoke test). Needs the benchmark extra: ``pip install scib-metrics
harmonypy`` (jax from PyPI, CPU).

    python benchmarks/batch.py [--designs sim2 sim4 pbmc] [--methods scdcc+batch scdcc ...]
                               [--seeds 0 1 2] [--quick] [--name NAME]

Runs of an earlier results file that this run does not repeat (other designs, methods or
seeds; a tool's undistorted reference is repeated with any of its methods) are kept, and the
tables are drawn from both.

The ablations ``scdcc+batch-unmixed`` / ``desc+batch-unmixed`` (``batch_key`` with
``batch_mixing=0``) run only when named in ``--methods``, e.g. (results in batch_unmixed.*)
``--designs pbmc --name batch_unmixed --methods scdcc+batch scdcc+batch-unmixed desc+batch
desc+batch-unmixed``.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

import numpy as np
import scanpy as sc
from _common import DATA, DATASETS, RESULTS, description, require_data, save_results
from scipy import sparse
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score, silhouette_score
from sklearn.neighbors import NearestNeighbors

import scdeepclust as sdc

# the benchmark extra, not a dependency of the package: imported by main after the options
# are read, so that --help shows them without it
harmonypy = scib_metrics = NeighborsResults = None


def import_benchmark_extra() -> None:
    global harmonypy, scib_metrics, NeighborsResults
    try:
        import harmonypy
        import scib_metrics
        from scib_metrics.nearest_neighbors import NeighborsResults
    except ImportError as err:
        raise SystemExit(
            f"{err}: benchmarks/batch.py needs scib-metrics and harmonypy (pip install "
            "scib-metrics harmonypy)."
        ) from err


DESIGNS = ["sim2", "sim4", "pbmc"]
# method -> (tool whose undistorted run is the reference, uses batch_key)
METHODS = {
    "scdcc+batch": ("scdcc", True),
    "scdcc": ("scdcc", False),
    "desc+batch": ("desc", True),
    "desc": ("desc", False),
    "combat-leiden": ("leiden", True),
    "harmony-leiden": ("leiden", True),
    "leiden": ("leiden", False),
    # ablations, run only when named in --methods: batch_key without the batch-mixing penalty
    "scdcc+batch-unmixed": ("scdcc", True),
    "desc+batch-unmixed": ("desc", True),
}
TOOL_OPTIONS = {
    "scdcc+batch-unmixed": {"batch_mixing": 0.0},
    "desc+batch-unmixed": {"batch_mixing": 0.0},
}
DEFAULT_METHODS = [m for m in METHODS if m not in TOOL_OPTIONS]
# the scanpy methods: batch correction before PCA-neighbors-Leiden
CORRECTION = {"combat-leiden": "combat", "harmony-leiden": "harmony", "leiden": None}
LABELS = {
    "scdcc+batch": "tl.scdcc",
    "scdcc": "tl.scdcc",
    "desc+batch": "tl.desc",
    "desc": "tl.desc",
    "combat-leiden": "ComBat + PCA-neighbors-Leiden",
    "harmony-leiden": "PCA-Harmony-neighbors-Leiden",
    "leiden": "PCA-neighbors-Leiden",
    "scdcc+batch-unmixed": "tl.scdcc, batch_mixing=0",
    "desc+batch-unmixed": "tl.desc, batch_mixing=0",
}
SIM = {"n_cells": 3000, "n_genes": 1000, "n_groups": 6, "batch_effect": 0.5}
SIM_QUICK = {"n_cells": 600, "n_genes": 200, "n_groups": 6, "batch_effect": 0.5}
PBMC_GENE_SD = 0.5
PBMC_LIBRARY_SHIFT = 0.6
QUICK_CELLS = 600
QUICK_TOOL_KWARGS = {"pretrain_epochs": 2, "max_epochs": 2}
N_NEIGHBORS_MIXING = 30
SILHOUETTE_SAMPLE = 3000
# scib-metrics' Benchmarker: one search for the largest, cut to each metric's neighbour count
SCIB_NEIGHBORS = {"graph_connectivity": 15, "kbet": 50, "ilisi": 90}
SCIB = ["ilisi", "kbet", "graph_connectivity", "batch_asw", "label_asw"]
SCIB_NAMES = {
    "ilisi": "iLISI",
    "kbet": "kBET",
    "graph_connectivity": "graph connectivity",
    "batch_asw": "batch ASW",
    "label_asw": "label ASW",
}
MIXING_TARGET = 0.9
DELTA_ARI_TARGET = 0.03


# --- metrics -------------------------------------------------------------------------------


def entropy(labels: np.ndarray) -> float:
    """Shannon entropy (natural log) of the label proportions in `labels`."""
    _, counts = np.unique(labels, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum())


def batch_mixing_entropy(
    embedding: np.ndarray, batches: np.ndarray, n_neighbors: int = N_NEIGHBORS_MIXING
) -> float:
    """Mean over cells of the entropy of the batch labels among each cell's `n_neighbors`
    nearest neighbours (Euclidean, the cell itself excluded) in `embedding`, divided by the
    entropy of the overall batch proportions.

    1 means every neighbourhood holds the batches in their overall proportions (perfect
    mixing), 0 that no cell has a neighbour from another batch. With unequal batch sizes a
    neighbourhood more even than the whole can score slightly above 1. NaN with one batch.
    """
    codes = np.unique(np.asarray(batches), return_inverse=True)[1].ravel()
    n_batches = codes.max() + 1
    overall = entropy(codes)
    if n_batches < 2 or overall == 0:
        return float("nan")
    k = min(n_neighbors, len(codes) - 1)
    # kneighbors() without a query: neighbours of the fitted points, each point not its own
    index = NearestNeighbors(n_neighbors=k).fit(np.asarray(embedding, dtype=np.float64))
    neighbours = index.kneighbors(return_distance=False)
    counts = np.zeros((len(codes), n_batches))
    np.add.at(counts, (np.repeat(np.arange(len(codes)), k), codes[neighbours].ravel()), 1.0)
    p = counts / k
    with np.errstate(divide="ignore", invalid="ignore"):
        local = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
    return float(local.mean() / overall)


def batch_silhouette(
    embedding: np.ndarray, batches: np.ndarray, sample_size: int = SILHOUETTE_SAMPLE, seed: int = 0
) -> float:
    """Silhouette of the batch labels on `embedding` (Euclidean), on a seeded random sample of
    at most `sample_size` cells. Near 0 or negative: batches well mixed; towards 1: batches
    separated. NaN with one batch."""
    batches = np.asarray(batches)
    if len(np.unique(batches)) < 2:
        return float("nan")
    size = sample_size if len(batches) > sample_size else None
    return float(
        silhouette_score(
            np.asarray(embedding, dtype=np.float64), batches, sample_size=size, random_state=seed
        )
    )


def cluster_scores(truth: np.ndarray, pred: np.ndarray) -> dict:
    """ARI and NMI of the clustering `pred` against the true cell types, and its cluster count."""
    return {
        "ari": float(adjusted_rand_score(truth, pred)),
        "nmi": float(normalized_mutual_info_score(truth, pred)),
        "n_clusters": int(len(np.unique(pred))),
    }


def scib_neighbors(embedding: np.ndarray, n_neighbors: int) -> NeighborsResults:
    """Exact Euclidean `n_neighbors` nearest neighbours of every cell of `embedding`, the cell
    itself first (distance 0), as scib-metrics' `NeighborsResults`."""
    x = np.asarray(embedding, dtype=np.float32)
    k = min(n_neighbors, len(x))
    distances, indices = NearestNeighbors(n_neighbors=k).fit(x).kneighbors(x)
    return NeighborsResults(indices=indices, distances=distances.astype(np.float32))


def scib_scores(embedding: np.ndarray, batches: np.ndarray, labels: np.ndarray) -> dict:
    """iLISI, kBET, graph connectivity, batch ASW and label ASW of `embedding` with scib-metrics,
    on the neighbour counts of its Benchmarker (`SCIB_NEIGHBORS`); each in [0, 1], higher better,
    and the seconds they took (``scib_s``). NaN for the batch metrics with one batch."""
    t0 = time.perf_counter()
    x = np.asarray(embedding, dtype=np.float32)
    batches = np.asarray(batches).astype(str)
    labels = np.asarray(labels).astype(str)
    out = {"label_asw": float(scib_metrics.silhouette_label(x, labels))}
    if len(np.unique(batches)) < 2:
        out.update(dict.fromkeys(["ilisi", "kbet", "graph_connectivity", "batch_asw"], np.nan))
    else:
        nn = scib_neighbors(x, max(SCIB_NEIGHBORS.values()))
        cut = {m: nn.subset_neighbors(min(n, nn.n_neighbors)) for m, n in SCIB_NEIGHBORS.items()}
        out["ilisi"] = float(scib_metrics.ilisi_knn(cut["ilisi"], batches))
        out["kbet"] = float(scib_metrics.kbet_per_label(cut["kbet"], batches, labels))
        out["graph_connectivity"] = float(
            scib_metrics.graph_connectivity(cut["graph_connectivity"], labels)
        )
        out["batch_asw"] = float(scib_metrics.silhouette_batch(x, labels, batches))
    out = {m: out[m] for m in SCIB}
    out["scib_s"] = time.perf_counter() - t0
    return out


# --- data ----------------------------------------------------------------------------------


def distort_counts(counts: np.ndarray, factor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Redraw integer counts with mean multiplied by `factor` (broadcast against `counts`).

    Poisson resampling, new ~ Poisson(count * factor): the expected count moves exactly by the
    factor whether it is below or above 1 (binomial thinning would be exact in distribution
    but can only lower counts), the counts stay integers, and a zero stays zero (a gene the
    cell did not capture is still not captured). The price is some extra Poisson noise in the
    distorted cells, itself a realistic difference between technical batches.
    """
    return rng.poisson(np.asarray(counts, dtype=np.float64) * factor).astype(np.float32)


def simulated_design(n_batches: int, seed: int, quick: bool):
    """Simulated counts with `n_batches` batches and the same call with one batch (the same
    cells' groups and library factors, no batch factors) with the batch labels copied."""
    kwargs = {**(SIM_QUICK if quick else SIM), "random_state": seed}
    distorted = sdc.datasets.simulate(**kwargs, n_batches=n_batches)
    reference = sdc.datasets.simulate(**kwargs, n_batches=1)
    for adata in (distorted, reference):
        adata.obs["label"] = adata.obs["group"]
    reference.obs["batch"] = distorted.obs["batch"].to_numpy()
    return distorted, reference


def pbmc_design(seed: int, quick: bool):
    """10X PBMC split at random into batches "a" and "b"; batch "b" redrawn with a gene-wise
    factor exp(N(0, PBMC_GENE_SD)) and a library-size shift PBMC_LIBRARY_SHIFT. Returns the
    distorted data and the original (same cells, same batch labels), and the factors."""
    original = sdc.datasets.read_h5(DATA / DATASETS["10X_PBMC"])
    rng = np.random.default_rng([seed, 7])
    if quick:
        keep = np.sort(rng.choice(original.n_obs, QUICK_CELLS, replace=False))
        original = original[keep].copy()
    batch = np.where(rng.random(original.n_obs) < 0.5, "a", "b")
    original.obs["batch"] = batch
    original.obs["batch"] = original.obs["batch"].astype("category")
    gene_factor = np.exp(rng.normal(0.0, PBMC_GENE_SD, original.n_vars))
    counts = original.layers["counts"]
    counts = counts.toarray() if sparse.issparse(counts) else np.asarray(counts)
    in_b = batch == "b"
    counts = counts.astype(np.float32)
    counts[in_b] = distort_counts(counts[in_b], gene_factor * PBMC_LIBRARY_SHIFT, rng)
    distorted = original.copy()
    distorted.X = sparse.csr_matrix(counts)
    distorted.layers["counts"] = distorted.X.copy()
    return distorted, original, gene_factor


def prepare(adata):
    """Counts in ``layers['counts']`` (scDCC), log-normalised counts in ``layers['lognorm']``
    (ComBat / Leiden) and the scaled log-normalised matrix in ``X`` (DESC)."""
    adata = adata.copy()
    adata.X = sparse.csr_matrix(adata.layers["counts"], dtype=np.float32)
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    adata.X = adata.X.toarray()  # dense: a few tens of MB here, and scale would densify anyway
    adata.layers["lognorm"] = adata.X.copy()
    sc.pp.scale(adata)
    return adata


# --- methods -------------------------------------------------------------------------------


def run_tool(tool, adata, k, seed, batch_key, quick, **options):
    """`tl.scdcc` or `tl.desc` with the true number of clusters (and `options`); labels and
    embedding."""
    kwargs = {"random_state": seed, "progress": False, "copy": True, "n_clusters": k, **options}
    if batch_key:
        kwargs["batch_key"] = batch_key
    if quick:
        kwargs.update(QUICK_TOOL_KWARGS)
    fn = sdc.tl.scdcc if tool == "scdcc" else sdc.tl.desc
    t0 = time.perf_counter()
    out = fn(adata, **kwargs)
    wall = time.perf_counter() - t0
    return out.obs[tool].to_numpy(), np.asarray(out.obsm[f"X_{tool}"]), wall


def run_leiden(adata, seed, correction=None):
    """Optionally ComBat (``correction='combat'``) on the log-normalised data, then scale ->
    PCA (50) -> (``correction='harmony'``: Harmony on the PCA) -> neighbors (15) -> Leiden
    (1.0); labels and the embedding (the PCA, or Harmony's corrected PCA)."""
    t0 = time.perf_counter()
    b = adata.copy()
    b.X = b.layers["lognorm"].copy()
    if correction == "combat":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sc.pp.combat(b, key="batch")
        # a gene constant within a batch gives ComBat a zero variance: no correction to make
        b.X = np.nan_to_num(np.asarray(b.X), nan=0.0, posinf=0.0, neginf=0.0)
    sc.pp.scale(b)
    sc.pp.pca(b, n_comps=min(50, min(b.shape) - 1), random_state=seed)
    rep = "X_pca"
    if correction == "harmony":
        b.obsm["X_pca_harmony"] = harmony(b.obsm["X_pca"], b.obs, seed)
        rep = "X_pca_harmony"
    # Exact neighbours: scanpy's approximate default (pynndescent, above 4,096 cells) fails with
    # scipy >= 1.17 sparse arrays in scanpy 1.11 ('csr_array' has no 'getnnz').
    sc.pp.neighbors(b, n_neighbors=15, use_rep=rep, random_state=seed, transformer="sklearn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        sc.tl.leiden(b, resolution=1.0, random_state=seed)
    wall = time.perf_counter() - t0
    return b.obs["leiden"].to_numpy(), np.asarray(b.obsm[rep]), wall


def harmony(pca: np.ndarray, obs, seed: int) -> np.ndarray:
    """Harmony's corrected PCA (cells x components) for the batches in ``obs['batch']``,
    harmonypy's defaults. Called directly: scanpy 1.11's `external.pp.harmony_integrate`
    transposes ``Z_corr``, which harmonypy 2 already returns as cells x components."""
    out = harmonypy.run_harmony(
        np.asarray(pca, dtype=np.float64), obs, "batch", random_state=seed, verbose=False
    )
    corrected = np.asarray(out.Z_corr)
    return corrected if corrected.shape[0] == len(obs) else corrected.T


def run_method(method, adata, k, seed, quick):
    tool, corrected = METHODS[method]
    if tool == "leiden":
        return run_leiden(adata, seed, CORRECTION[method])
    batch_key = "batch" if corrected else None
    return run_tool(tool, adata, k, seed, batch_key, quick, **TOOL_OPTIONS.get(method, {}))


def evaluate(adata, labels, embedding, seed) -> dict:
    """Every metric of one run on `adata` (true types in ``obs['label']``, batches in
    ``obs['batch']``)."""
    batches = adata.obs["batch"].to_numpy()
    truth = adata.obs["label"].to_numpy()
    return {
        **cluster_scores(truth, labels),
        "mixing_entropy": batch_mixing_entropy(embedding, batches),
        "batch_silhouette": batch_silhouette(embedding, batches, seed=seed),
        **scib_scores(embedding, batches, truth),
    }


# --- targets ---------------------------------------------------------------------------------


def better_than_combat(r: dict, combat: dict) -> bool:
    """Better batch mixing than a corrected baseline (ComBat or Harmony + Leiden) at equal or
    better ARI."""
    return r["mixing_entropy"] > combat["mixing_entropy"] and r["ari"] >= combat["ari"]


# the corrected scanpy baselines the tools are compared with, and their names in the notes
BASELINES = {"combat-leiden": "ComBat + Leiden", "harmony-leiden": "Harmony + Leiden"}


def target_notes(summary: list[dict], rows: list[dict]) -> list[str]:
    """Two lines per (design, tool), on the means over seeds (`summary`): with batch_key, mixing
    entropy >= MIXING_TARGET and ARI at most DELTA_ARI_TARGET below the same tool on the
    undistorted data; better mixing than ComBat + Leiden and than Harmony + Leiden at equal or
    better ARI, also counted seed by seed (`rows`). Then the scIB metrics: on how many of them
    the tool is at least as good as each baseline."""
    found = {(r["design"], r["method"]): r for r in summary if not r["reference"]}
    per_seed = {(r["design"], r["method"], r["seed"]): r for r in rows if not r["reference"]}
    notes = []
    for design in dict.fromkeys(r["design"] for r in summary):
        for method in ("scdcc+batch", "desc+batch"):
            r = found.get((design, method))
            if r is None:
                continue
            mixing = r["mixing_entropy"] >= MIXING_TARGET
            parts = [f"mixing {r['mixing_entropy']:.3f} >= {MIXING_TARGET}: {_yes(mixing)}"]
            if r["delta_ari"] is not None:
                close = r["delta_ari"] >= -DELTA_ARI_TARGET
                parts.append(f"ΔARI {r['delta_ari']:+.3f} >= -{DELTA_ARI_TARGET}: {_yes(close)}")
            scib = []
            for baseline, name in BASELINES.items():
                other = found.get((design, baseline))
                if other is None:
                    continue
                seeds = [
                    better_than_combat(per_seed[design, method, s], per_seed[c])
                    for s in r["seeds"]
                    if (c := (design, baseline, s)) in per_seed
                ]
                parts.append(
                    f"vs {name} (mixing {other['mixing_entropy']:.3f}, ARI "
                    f"{other['ari']:.3f}) better mixing at equal or better ARI: "
                    f"{_yes(better_than_combat(r, other))} (seed by seed: {sum(seeds)} of "
                    f"{len(seeds)})"
                )
                worse = [SCIB_NAMES[m] for m in SCIB if not r[m] >= other[m]]
                scib.append(
                    f"at least as good as {name} on {len(SCIB) - len(worse)} of {len(SCIB)}"
                    + (f" (not on {', '.join(worse)})" if worse else "")
                )
            notes.append(f"- {design}, {LABELS[method]} with batch_key: " + "; ".join(parts))
            values = ", ".join(f"{SCIB_NAMES[m]} {_num(r[m])}" for m in SCIB)
            notes.append(
                f"- {design}, {LABELS[method]} with batch_key, scIB: {values}"
                + (": " + "; ".join(scib) if scib else "")
            )
    return notes


def _yes(met: bool) -> str:
    return "met" if met else "NOT met"


MEANS = [
    "ari",
    "nmi",
    "mixing_entropy",
    "batch_silhouette",
    "reference_ari",
    "delta_ari",
    *SCIB,
    "scib_s",
]


def summarise(rows: list[dict]) -> list[dict]:
    """One row per (design, method, reference or not): the mean of each metric over the seeds
    run, the per-seed ARI and mixing, and the mean wall time; in the order first seen."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["design"], r["method"], r["reference"]), []).append(r)
    summary = []
    for runs in groups.values():
        row = {**runs[0], "seeds": [r["seed"] for r in runs]}
        del row["seed"]
        for key in MEANS:
            values = [r[key] for r in runs]
            row[key] = None if any(v is None for v in values) else float(np.mean(values))
        row["wall_s"] = float(np.mean([r["wall_s"] for r in runs]))
        row["n_clusters"] = "/".join(str(r["n_clusters"]) for r in runs)
        row["ari_per_seed"] = "/".join(f"{r['ari']:.3f}" for r in runs)
        row["mixing_per_seed"] = "/".join(f"{r['mixing_entropy']:.3f}" for r in runs)
        summary.append(row)
    return summary


# --- main ----------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--designs", nargs="*", choices=DESIGNS, default=DESIGNS)
    parser.add_argument("--methods", nargs="*", choices=list(METHODS), default=DEFAULT_METHODS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument(
        "--quick", action="store_true", help="small data and 2 epochs: a smoke test"
    )
    parser.add_argument(
        "--name", help="results file name (default: batch, or batch_quick with --quick)"
    )
    args = parser.parse_args()
    import_benchmark_extra()
    if "pbmc" in args.designs:
        require_data(["10X_PBMC"])
    name = args.name or ("batch_quick" if args.quick else "batch")

    kept = earlier_runs_not_repeated(name, args.designs, args.methods, args.seeds)
    rows: list[dict] = []
    references: dict = {}  # undistorted runs, shared by sim2 and sim4
    table = ""
    for design in args.designs:
        for seed in args.seeds:
            rows += run_design(design, seed, args.methods, args.quick, references)
            runs = in_table_order(kept + rows)
            summary = summarise(runs)
            notes = target_notes(summary, runs)
            table = save_results(
                name,
                summary,
                HEADER,
                format_row,
                seeds=args.seeds,
                quick=args.quick,
                targets=notes,
                runs=runs,
            )
            scib_table = markdown_table(summary, SCIB_HEADER, format_scib_row)
            (RESULTS / f"{name}.md").write_text(
                table
                + "\n"
                + scib_head()
                + scib_table
                + "\n"
                + note_head(args.seeds)
                + "\n".join(notes)
                + "\n"
            )

    print(table)
    print(scib_head() + scib_table)
    print(note_head(args.seeds) + "\n".join(target_notes(summarise(runs), runs)))


def tool_of(run: dict) -> str:
    """The tool behind a run: its method's, or the method itself for an undistorted reference."""
    return run["method"] if run["reference"] else METHODS[run["method"]][0]


def earlier_runs_not_repeated(
    name: str, designs: list[str], methods: list[str], seeds: list[int]
) -> list[dict]:
    """The runs of results/<name>.json that a run of `designs` x `methods` x `seeds` does not
    repeat (every method reruns its tool's undistorted reference)."""
    path = RESULTS / f"{name}.json"
    if not path.exists():
        return []
    tools = {METHODS[m][0] for m in methods}

    def repeated(run: dict) -> bool:
        base = run["design"].split()[0]
        method_repeated = tool_of(run) in tools if run["reference"] else run["method"] in methods
        if run["reference"] and base.startswith("sim"):  # shared by sim2 and sim4
            design_repeated = any(d.startswith("sim") for d in designs)
        else:
            design_repeated = base in designs
        return design_repeated and method_repeated and run["seed"] in seeds

    return [r for r in json.loads(path.read_text())["meta"]["runs"] if not repeated(r)]


def in_table_order(runs: list[dict]) -> list[dict]:
    """`runs` by design, seed, then tool (scDCC, DESC, the scanpy methods), its undistorted
    reference first, then method: the order of a full run."""
    tools = list(dict.fromkeys(tool for tool, _ in METHODS.values()))
    methods = list(METHODS)

    def key(run: dict) -> tuple:
        base = run["design"].split()[0]
        return (
            DESIGNS.index(base),
            run["seed"],
            tools.index(tool_of(run)),
            not run["reference"],
            methods.index(run["method"]),
        )

    return sorted(runs, key=key)


def run_design(
    design: str, seed: int, methods: list[str], quick: bool, references: dict
) -> list[dict]:
    """Every method in `methods` on the distorted data of `design` drawn with `seed`, and each
    tool on its undistorted reference unless `references` has that run already (sim2 and sim4
    share it: n_batches=1, the same other arguments); one row per run."""
    if design == "pbmc":
        distorted, reference, _gene_factor = pbmc_design(seed, quick)
        extra = {"gene_sd": PBMC_GENE_SD, "library_shift": PBMC_LIBRARY_SHIFT}
        ref_id = "pbmc"
    else:
        distorted, reference = simulated_design(int(design[3:]), seed, quick)
        extra = {"batch_effect": SIM["batch_effect"]}
        ref_id = "sim"
    distorted, reference = prepare(distorted), prepare(reference)
    k = int(distorted.obs["label"].nunique())
    info = {
        "design": design,
        "cells": distorted.n_obs,
        "genes": distorted.n_vars,
        "k": k,
        "n_batches": int(distorted.obs["batch"].nunique()),
        "seed": seed,
        **extra,
    }
    rows: list[dict] = []
    for method in methods:
        tool, corrected = METHODS[method]
        reference_method = "leiden" if tool == "leiden" else tool
        if (ref_id, seed, tool) not in references:
            run = run_method(reference_method, reference, k, seed, quick)
            references[ref_id, seed, tool] = run
            labels, embedding, wall = run
            rows.append(
                {
                    **info,
                    "design": f"{design} undistorted",
                    "method": reference_method,
                    "label": LABELS[reference_method],
                    "batch_key": None,
                    "reference": True,
                    **evaluate(reference, labels, embedding, seed),
                    "reference_ari": None,
                    "delta_ari": None,
                    "wall_s": wall,
                }
            )
        labels, embedding, wall = run_method(method, distorted, k, seed, quick)
        reference_ari = cluster_scores(
            reference.obs["label"].to_numpy(), references[ref_id, seed, tool][0]
        )["ari"]
        row = {
            **info,
            "method": method,
            "label": LABELS[method],
            "batch_key": "batch" if corrected else None,
            "reference": False,
            **evaluate(distorted, labels, embedding, seed),
            "reference_ari": reference_ari,
            "wall_s": wall,
        }
        row["delta_ari"] = row["ari"] - reference_ari
        rows.append(row)
        print(
            f"{design:5s} seed {seed} {method:14s} ARI {row['ari']:.3f} (reference "
            f"{reference_ari:.3f}) NMI {row['nmi']:.3f} mixing {row['mixing_entropy']:.3f} "
            f"batch silhouette {row['batch_silhouette']:.3f} wall {wall:.1f}s; scIB "
            + " ".join(f"{SCIB_NAMES[m]} {row[m]:.3f}" for m in SCIB)
            + f" ({row['scib_s']:.1f}s)",
            flush=True,
        )
    return rows


def note_head(seeds: list[int]) -> str:
    return (
        f"Each row: the mean over seeds {', '.join(map(str, seeds))} (the data drawn anew for "
        "each), with the per-seed ARI and mixing beside it. Targets: with batch_key, mixing "
        f"entropy >= {MIXING_TARGET} and ARI within {DELTA_ARI_TARGET} of the same tool on the "
        "undistorted data; both tools better than ComBat + Leiden and than Harmony + Leiden on "
        "mixing at equal or better ARI, and at least as good as both on the scIB metrics. "
        "Reference ARI: the same tool on the undistorted data without batch_key (for ComBat "
        "and Harmony: plain Leiden).\n\n"
    )


def scib_head() -> str:
    return (
        "scIB metrics (scib-metrics, as its Benchmarker computes them) on each method's "
        "embedding, means over the seeds; all in [0, 1], higher better: iLISI (90 neighbours), "
        "kBET per cell type (50), graph connectivity (15), batch ASW (1 - |batch silhouette| "
        "within each cell type), label ASW (cell-type silhouette, rescaled). scIB s: seconds "
        "the five took (the first includes compiling them).\n\n"
    )


def markdown_table(rows: list[dict], header: list[str], format_row) -> str:
    """`rows` as a Markdown table, as `_common.save_results` writes the first one."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(format_row(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _num(value, fmt=".3f"):
    return "-" if value is None or not np.isfinite(value) else format(value, fmt)


HEADER = [
    "design",
    "method",
    "batch_key",
    "ARI",
    "NMI",
    "mixing entropy",
    "batch silhouette",
    "reference ARI",
    "ΔARI",
    "ARI per seed",
    "mixing per seed",
    "clusters",
    "wall s",
]


def format_row(r: dict) -> list[str]:
    return [
        r["design"],
        r["label"],
        r["batch_key"] or "-",
        _num(r["ari"]),
        _num(r["nmi"]),
        _num(r["mixing_entropy"]),
        _num(r["batch_silhouette"]),
        _num(r["reference_ari"]),
        _num(r["delta_ari"], "+.3f"),
        r["ari_per_seed"],
        r["mixing_per_seed"],
        r["n_clusters"],
        f"{r['wall_s']:.1f}",
    ]


SCIB_HEADER = ["design", "method", "batch_key", "ARI", *SCIB_NAMES.values(), "scIB s"]


def format_scib_row(r: dict) -> list[str]:
    return [
        r["design"],
        r["label"],
        r["batch_key"] or "-",
        _num(r["ari"]),
        *(_num(r[m]) for m in SCIB),
        f"{r['scib_s']:.1f}",
    ]


if __name__ == "__main__":
    main()
