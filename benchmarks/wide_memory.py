"""Peak memory of `tl.desc(scale=True)` and `tl.scdcc` on sparse data with many genes (no gene
selection), beside `sc.pp.scale` of the same matrix, which DESC's `scale=True` is there to avoid.

    python benchmarks/wide_memory.py [--cells 2000] [--genes 20000] [--pretrain-epochs N]
        [--name NAME]

`datasets.simulate` counts are kept in `layers['counts']`; X is normalize_total + log1p, sparse.
The AnnData is written to a temporary h5ad, and each tool runs in its own process: it reads the
file, notes its peak resident memory, runs the tool at its defaults (`--pretrain-epochs` caps
pretraining, which leaves the chunks and minibatches, and so the peak, as they are) and reports
its peak (Linux's VmHWM). The figure to read is the peak above the one after reading. Writes
benchmarks/results/wide_memory.{json,md} (`--name`: another name); a run of other sizes keeps
the rows of the others.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import description, earlier_rows, merged_rows, save_results
from recipe_memory import peak_mib


def run_tool(path: str, tool: str, pretrain_epochs: int | None) -> dict:
    """In a fresh process: read `path`, run `tool`, return the memory figures (MiB)."""
    import anndata as ad
    import scanpy as sc

    import scdeepclust as sdc

    adata = ad.read_h5ad(path)
    after_reading = peak_mib()
    # every gene, on purpose: the widths are what this measures
    options = {"mask_var": None}
    if pretrain_epochs is not None:
        options["pretrain_epochs"] = pretrain_epochs
    t0 = time.perf_counter()
    if tool == "desc":
        sdc.tl.desc(adata, scale=True, progress=False, **options)
    elif tool == "scdcc":
        sdc.tl.scdcc(adata, progress=False, **options)
    else:  # the dense route DESC's scale=True avoids
        sc.pp.scale(adata)
    return {
        "tool": tool,
        "read_mib": after_reading,
        "peak_mib": peak_mib(),
        "wall_s": time.perf_counter() - t0,
    }


def main():
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--cells", type=int, default=2000)
    parser.add_argument("--genes", type=int, default=20_000)
    parser.add_argument("--pretrain-epochs", type=int, help="cap each tool's pretraining")
    parser.add_argument("--name", default="wide_memory", help="results file name")
    args = parser.parse_args()

    import anndata as ad
    import scanpy as sc

    import scdeepclust as sdc

    sim = sdc.datasets.simulate(args.cells, args.genes, 6, random_state=0)
    sim.layers["counts"] = sim.X.copy()
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)
    density = sim.X.nnz / (args.cells * args.genes)
    dense_mib = args.cells * args.genes * 4 / 2**20
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "wide.h5ad")
        ad.AnnData(sim.X, layers={"counts": sim.layers["counts"]}).write_h5ad(path)
        del sim
        here = str(Path(__file__).resolve().parent)
        code = (
            "import json, sys; sys.path.insert(0, sys.argv[1]); import wide_memory; "
            "epochs = None if sys.argv[4] == 'None' else int(sys.argv[4]); "
            "print(json.dumps(wide_memory.run_tool(sys.argv[2], sys.argv[3], epochs)))"
        )
        for tool in ("sc.pp.scale", "desc", "scdcc"):
            done = subprocess.run(
                [sys.executable, "-c", code, here, path, tool, str(args.pretrain_epochs)],
                capture_output=True,
                text=True,
                check=True,
            )
            row = {
                "cells": args.cells,
                "genes": args.genes,
                "density": density,
                "dense_mib": dense_mib,
                "pretrain_epochs": args.pretrain_epochs,
            }
            row.update(json.loads(done.stdout.strip().splitlines()[-1]))
            rows.append(row)
            print(row, flush=True)
    # another size replaces its own rows and keeps the others (the README quotes them)
    every_row = merged_rows(
        earlier_rows(args.name), rows, ("cells", "genes", "pretrain_epochs", "tool")
    )
    print(save_results(args.name, every_row, HEADER, format_row))


HEADER = [
    "cells",
    "genes",
    "non-zero",
    "X dense would take MiB",
    "call",
    "MiB after reading",
    "peak MiB",
    "peak above reading",
    "wall s",
]


def format_row(r: dict) -> list[str]:
    call = {
        "desc": "`tl.desc(scale=True)`",
        "scdcc": "`tl.scdcc`",
        "sc.pp.scale": "`sc.pp.scale` (dense)",
    }[r["tool"]]
    return [
        f"{r['cells']:,}",
        f"{r['genes']:,}",
        f"{r['density']:.1%}",
        f"{r['dense_mib']:,.0f}",
        call,
        f"{r['read_mib']:,.0f}",
        f"{r['peak_mib']:,.0f}",
        f"{r['peak_mib'] - r['read_mib']:,.0f}",
        f"{r['wall_s']:.1f}",
    ]


if __name__ == "__main__":
    main()
