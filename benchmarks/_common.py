"""What the benchmark scripts share: where the data and results live, and how results are saved."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch

import scdeepclust as sdc

ROOT = Path(__file__).resolve().parents[1]
# Overridable where the checkout travels without ../shared (benchmarks/gpu_check.sh on a lent
# GPU machine) or where a run must not touch the committed tables (its dry run).
DATA = Path(os.environ.get("SCDEEPCLUST_DATA", ROOT.parent / "shared" / "data"))
RESULTS = Path(os.environ.get("SCDEEPCLUST_RESULTS", ROOT / "benchmarks" / "results"))
DATASETS = {
    "10X_PBMC": "10X_PBMC_top2000.h5",
    "mouse_bladder": "mouse_bladder_cell_top2000.h5",
    "worm_neuron": "worm_neuron_cell_top2000.h5",
    "CITE_CBMC": "CITE_CBMC_counts_top2000.h5",
}


def require_data(names: Iterable[str] = ()) -> None:
    """Stop with a message when the shared data, or the file of one of `names`, is missing."""
    if not DATA.exists():
        raise SystemExit(
            f"{DATA} not found: the benchmark needs the shared datasets (or SCDEEPCLUST_DATA "
            "naming their folder)."
        )
    missing = [DATASETS[n] for n in names if not (DATA / DATASETS[n]).exists()]
    if missing:
        raise SystemExit(f"{DATA} lacks {', '.join(missing)}: leave those datasets out.")


def description(doc: str) -> str:
    """The first paragraph of a script's docstring, for its --help."""
    return " ".join(doc.strip().split("\n\n")[0].split())


def add_dataset_options(parser, extra: Iterable[str] = ()) -> None:
    """--datasets (named as in DATASETS, or `extra`; at least one) and --seeds (at least one)."""
    names = [*DATASETS, *extra]
    parser.add_argument(
        "--datasets",
        nargs="+",
        choices=names,
        default=names,
        metavar="NAME",
        help=f"any of {', '.join(names)} (default: all)",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])


def save_results(
    name: str, rows: list[dict], header: list[str], format_row: Callable[[dict], list[str]], **meta
) -> str:
    """Write rows as results/<name>.json and a Markdown table results/<name>.md; return the
    table. Called after every row, so an interrupted run keeps what it measured."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": platform.processor() or platform.machine(),
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "packages": _package_versions(),
        "threads": torch.get_num_threads(),
        "scdeepclust": sdc.__version__,
        # the run that wrote the file last (rows kept from earlier runs may come from others)
        "last_command": " ".join(["python", *sys.argv]),
        **meta,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(format_row(r)) + " |" for r in rows]
    table = "\n".join(lines) + "\n"
    (RESULTS / f"{name}.md").write_text(table)
    return table


def earlier_rows(name: str) -> list[dict]:
    """The rows of results/<name>.json, or none when it does not exist yet."""
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text())["rows"] if path.exists() else []


def merged_rows(kept: list[dict], measured: list[dict], keys: tuple[str, ...]) -> list[dict]:
    """The earlier rows in their order, each replaced by this run's with the same `keys`."""
    new = {tuple(r[k] for k in keys): r for r in measured}
    out = [new.pop(tuple(r[k] for k in keys), r) for r in kept]
    return out + list(new.values())


# Results can move with these and with the CPU: the same commit and seeds gave tl.desc at
# defaults on 10X PBMC 0.613 (0.612-0.616) in one session and 0.580 (0.573-0.617) on the next
# machine, whose package versions were not recorded then.
_VERSIONED = ("numpy", "scipy", "scikit-learn", "scanpy", "anndata", "leidenalg", "igraph")


def _package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in _VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def cpu_model() -> str:
    """The CPU's model name and its widest vector units (they decide float rounding)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    fields = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first processor's block is enough
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    name = fields.get("model name") or platform.machine()
    flags = set(fields.get("flags", "").split())
    units = [f for f in ("avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return " ".join([name, *units])


def lognorm_scaled(adata):
    """normalize_total, log1p and scale on a copy: the input of DESC and of the Leiden baseline."""
    import scanpy as sc

    adata = adata.copy()
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.scale(adata)
    return adata


def median_min_max(runs: list[dict], metrics) -> dict:
    """For each metric over the runs (seeds): median as `m`, range as `m_min`, `m_max`."""
    out = {}
    for m in metrics:
        values = [r[m] for r in runs]
        out[m] = float(np.median(values))
        out[f"{m}_min"], out[f"{m}_max"] = float(np.min(values)), float(np.max(values))
    return out


def score(truth, pred, wall: float) -> dict:
    """ARI, NMI, number of clusters and wall seconds of one run."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {
        "ari": adjusted_rand_score(truth, pred),
        "nmi": normalized_mutual_info_score(truth, pred),
        "n_clusters": int(len(np.unique(pred))),
        "wall_s": wall,
    }


def leiden_baseline(scaled, truth, seed: int) -> dict:
    """scanpy's usual clustering of scaled data: PCA (50) -> neighbors (15) -> Leiden (1.0)."""
    t0 = time.perf_counter()
    labels = scanpy_leiden(scaled, seed)
    return score(truth, labels, time.perf_counter() - t0)


def scanpy_leiden(scaled, seed: int, resolution: float = 1.0) -> np.ndarray:
    """Labels of scanpy's PCA (50) -> neighbors (15) -> Leiden on a copy of scaled data."""
    import scanpy as sc

    b = scaled.copy()
    sc.pp.pca(b, n_comps=50, random_state=seed)
    # Exact neighbours: scanpy's approximate default (pynndescent, above 4,096 cells) fails with
    # scipy >= 1.17 sparse arrays in scanpy 1.11 ('csr_array' has no 'getnnz').
    sc.pp.neighbors(b, n_neighbors=15, random_state=seed, transformer="sklearn")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        sc.tl.leiden(b, resolution=resolution, random_state=seed)
    return b.obs["leiden"].to_numpy()
