"""What the benchmark scripts share: where the data and results live, and how results are saved."""

from __future__ import annotations

import json
import platform
from collections.abc import Callable
from pathlib import Path

import torch

import scdeepclust as sdc

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
DATASETS = {
    "10X_PBMC": "10X_PBMC_top2000.h5",
    "mouse_bladder": "mouse_bladder_cell_top2000.h5",
    "worm_neuron": "worm_neuron_cell_top2000.h5",
    "CITE_CBMC": "CITE_CBMC_counts_top2000.h5",
}


def require_data() -> None:
    if not DATA.exists():
        raise SystemExit(f"{DATA} not found: the benchmark needs the shared datasets.")


def save_results(
    name: str, rows: list[dict], header: list[str], format_row: Callable[[dict], list[str]], **meta
) -> str:
    """Write rows as results/<name>.json and a Markdown table results/<name>.md; return the
    table. Called after every row, so an interrupted run keeps what it measured."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "scdeepclust": sdc.__version__,
        **meta,
    }
    (RESULTS / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(format_row(r)) + " |" for r in rows]
    table = "\n".join(lines) + "\n"
    (RESULTS / f"{name}.md").write_text(table)
    return table
