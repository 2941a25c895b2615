"""Peak memory of `pp.recipe(adata, "desc")` with and without its scaling (`scale=False`, what
`scdeepclust run` does before `tl.desc(scale=True)`), on simulated sparse counts read from an h5ad.

    python benchmarks/recipe_memory.py [--cells 100000] [--genes 2000] [--keep 0.2] [--name NAME]

The counts of `datasets.simulate` are thinned to the share `--keep` of their entries (0.2 gives
about 8% non-zero, as droplet data) and written to a temporary h5ad. Each preparation runs in
its own process: it reads the file, notes its peak resident memory, runs the recipe and reports
its peak (Linux's VmHWM), so the simulator's temporaries do not count. Writes
benchmarks/results/recipe_memory.{json,md} (`--name`: another name); a run of other sizes
keeps the rows of the others.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import description, earlier_rows, merged_rows, save_results


def peak_mib() -> float:
    """This process's peak resident memory since it started its program.

    Linux's VmHWM, which a new program starts afresh; ru_maxrss would keep the peak of the
    parent that forked it (the simulation's) on Linux.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(path: str, scale: bool) -> dict:
    """In a fresh process: read `path`, run the recipe, return the memory figures (MiB)."""
    import anndata as ad

    import scdeepclust as sdc

    adata = ad.read_h5ad(path)
    after_reading = peak_mib()
    sdc.pp.recipe(adata, "desc", scale=scale)
    return {
        "scale": scale,
        "x_type": type(adata.X).__name__,
        "read_mib": after_reading,
        "peak_mib": peak_mib(),
    }


def main():
    parser = argparse.ArgumentParser(description=description(__doc__))
    parser.add_argument("--cells", type=int, default=100_000)
    parser.add_argument("--genes", type=int, default=2000)
    parser.add_argument("--keep", type=float, default=0.2, help="share of the entries kept")
    parser.add_argument("--name", default="recipe_memory", help="results file name")
    args = parser.parse_args()

    import numpy as np
    from scipy import sparse

    import scdeepclust as sdc

    sim = sdc.datasets.simulate(args.cells, args.genes, 8, random_state=0)
    counts = sparse.csr_matrix(sim.layers.pop("counts"))
    rng = np.random.default_rng(0)
    counts.data[rng.random(counts.nnz) >= args.keep] = 0
    counts.eliminate_zeros()
    density = counts.nnz / (args.cells * args.genes)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "counts.h5ad")
        import anndata as ad

        ad.AnnData(counts).write_h5ad(path)
        del sim, counts
        for scale in (True, False):
            code = (
                "import json, sys; sys.path.insert(0, sys.argv[1]); import recipe_memory; "
                "print(json.dumps(recipe_memory.prepare(sys.argv[2], sys.argv[3] == 'True')))"
            )
            here = str(Path(__file__).resolve().parent)
            done = subprocess.run(
                [sys.executable, "-c", code, here, path, str(scale)],
                capture_output=True,
                text=True,
                check=True,
            )
            row = {"cells": args.cells, "genes": args.genes, "keep": args.keep, "density": density}
            row.update(json.loads(done.stdout.strip().splitlines()[-1]))
            rows.append(row)
            print(row, flush=True)
    # another size replaces its own rows and keeps the others (the README quotes them)
    # rows of runs before `keep` was recorded ran at its default (their meta.last_command)
    earlier = [{"keep": parser.get_default("keep"), **row} for row in earlier_rows(args.name)]
    every_row = merged_rows(earlier, rows, ("cells", "genes", "keep", "scale"))
    print(save_results(args.name, every_row, HEADER, format_row))


HEADER = ["cells", "genes", "non-zero", "recipe", "X after", "MiB after reading", "peak MiB"]


def format_row(r: dict) -> list[str]:
    return [
        f"{r['cells']:,}",
        str(r["genes"]),
        f"{r['density']:.1%}",
        "scale=True (default)" if r["scale"] else "scale=False (command line)",
        r["x_type"],
        f"{r['read_mib']:,.0f}",
        f"{r['peak_mib']:,.0f}",
    ]


if __name__ == "__main__":
    main()
