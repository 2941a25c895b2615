"""Time and memory of `tl.scdcc` and `tl.desc` against the number of cells, beside the floor
that the machine's matrix-multiply rate sets.

Simulated counts (`datasets.simulate`, 2,000 genes, 8 groups, sparse CSR with about 10% non-zero
entries) at each size; each (size, tool, device) runs in its own subprocess, so its peak
resident memory (from `os.wait4`, the rusage of that child alone) belongs to that run only;
as the simulator's temporaries dominate it, the child also resets its peak after simulating
and reports the tool's own peak (VmHWM after writing 5 to /proc/self/clear_refs, Linux).
scDCC gets the raw counts and the true number of groups (with `--scdcc-chooses-k`, none: it
chooses the number itself, as at its defaults); DESC gets normalize_total + log1p +
unit-variance scaling without centring (`sc.pp.scale(zero_center=False)`: the matrix stays
sparse; DESC does not z-score internally) and its defaults (Leiden).

The floor: one epoch's matrix multiplies (forward + backward, ~6 x cells x sum of in x out over
the linear layers actually trained in that stage) divided by the matmul rate measured
here with torch at the same thread count on representative shapes (the bfloat16 rate with
`--precision bfloat16`, where the tools run their layers in bfloat16). `x floor` is the measured
pretraining time over that floor.

    python benchmarks/scaling.py [--sizes 10000 100000 1000000] [--tools scdcc desc]
        [--max-pretrain-epochs N] [--max-epochs N] [--devices cpu cuda] [--cache DIR] [--seed N]
        [--precision bfloat16] [--scdcc-chooses-k]
    python benchmarks/scaling.py --prepare --sizes 1000000 --cache DIR

Writes benchmarks/results/scaling.{json,md} after every run. With `--cache`, the simulated
matrix of each size is written to DIR once and read back by later runs (simulating a million
cells takes minutes); `--prepare` only fills the cache.
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

N_GENES = 2000
N_GROUPS = 8
# mean_log_expression=-2.5 gives ~10.9% non-zero entries at 2,000 genes (-0.5, the default:
# ~40%; -3: ~7%), measured on 2,000 cells.
SIM = {"mean_log_expression": -2.5}


# --- floating-point work -------------------------------------------------------------------


def linear_shapes(module: torch.nn.Module) -> list[tuple[int, int]]:
    return [
        (m.in_features, m.out_features) for m in module.modules() if isinstance(m, torch.nn.Linear)
    ]


def epoch_flops(n_cells: int, shapes: list[tuple[int, int]]) -> float:
    """Matrix-multiply work of one training epoch: forward 2 x in x out per cell and layer,
    backward twice that."""
    return 6.0 * n_cells * sum(a * b for a, b in shapes)


def matmul_rate(
    device: str, n_genes: int = N_GENES, repeats: int = 20, precision: str = "float32"
) -> float:
    """Best matmul rate (FLOP/s) in `precision` over shapes like those of training: a minibatch
    of 256 through the wide first layer, the ZINB heads, and the weight-gradient product."""
    dev = torch.device(device)
    shapes = [(256, n_genes, 256), (256, 256, 3 * n_genes), (n_genes, 256, 256)]
    best = 0.0
    for m, k, n in shapes:
        a = torch.randn(m, k, device=dev, dtype=getattr(torch, precision))
        b = torch.randn(k, n, device=dev, dtype=getattr(torch, precision))
        for _ in range(3):
            a @ b
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(repeats):
            a @ b
        if dev.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, 2.0 * m * k * n * repeats / (time.perf_counter() - t0))
    return best


# --- the data ------------------------------------------------------------------------------


def simulated(size: int, cache: str | None):
    """The simulated counts of `size` cells; with `cache`, read from a file there, or simulated
    and written there first. A lock lets a run wait for another process that is writing it."""
    import scdeepclust as sdc

    if cache is None:
        return sdc.datasets.simulate(size, N_GENES, N_GROUPS, random_state=0, **SIM)
    folder = Path(cache)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"simulate_{size}x{N_GENES}_{N_GROUPS}groups.npz"
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            adata = sdc.datasets.simulate(size, N_GENES, N_GROUPS, random_state=0, **SIM)
            X = adata.X
            tmp = path.with_suffix(".partial.npz")
            np.savez(
                tmp,
                data=X.data,
                indices=X.indices,
                indptr=X.indptr,
                shape=np.asarray(X.shape),
                group=adata.obs["group"].cat.codes.to_numpy(),
                library_factor=adata.obs["library_factor"].to_numpy(),
            )
            os.replace(tmp, path)
            return adata
    return _from_cache(path)


def _from_cache(path: Path):
    """The AnnData `datasets.simulate` returns, rebuilt from the arrays in `path`."""
    import anndata as ad
    import pandas as pd
    from scipy import sparse

    stored = np.load(path)
    n_obs, n_vars = (int(v) for v in stored["shape"])
    X = sparse.csr_matrix((stored["data"], stored["indices"], stored["indptr"]), (n_obs, n_vars))
    obs = pd.DataFrame(
        {
            "group": pd.Categorical.from_codes(stored["group"], [str(i) for i in range(N_GROUPS)]),
            "library_factor": stored["library_factor"],
        },
        index=[f"cell{i}" for i in range(n_obs)],
    )
    adata = ad.AnnData(X, obs=obs, var=pd.DataFrame(index=[f"gene{i}" for i in range(n_vars)]))
    adata.layers["counts"] = adata.X
    return adata


def _sha1(*arrays: np.ndarray) -> str:
    import hashlib

    digest = hashlib.sha1()
    for array in arrays:  # fed in place: a million cells' indices are gigabytes
        digest.update(memoryview(np.ascontiguousarray(array)).cast("B"))
    return digest.hexdigest()


# --- one run, in a child process -----------------------------------------------------------


def worker(args) -> None:
    import scanpy as sc
    from _common import cpu_model
    from sklearn.metrics import adjusted_rand_score

    import scdeepclust as sdc

    t0 = time.perf_counter()
    adata = simulated(args.size, args.cache)
    X = adata.X
    row = {
        "n_cells": args.size,
        "tool": args.tool,
        "device": args.device,
        "density": X.nnz / (X.shape[0] * X.shape[1]),
        "csr_mb": (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20,
        "simulate_s": time.perf_counter() - t0,  # reading the cache, with --cache
    }
    del adata.layers["counts"]  # the same matrix as X; one copy is enough
    # What else could make two runs of the same code and seed differ: their input (a cache
    # written by another version), the thread count and the CPU (both move float rounding).
    row["input_sha1"] = _sha1(X.indptr, X.indices, X.data)
    row["threads"] = torch.get_num_threads()
    row["cpu"] = cpu_model()
    # The simulator's dense temporaries set the process's peak; reset the peak (Linux >= 4.0)
    # so that the tool's own peak can be read afterwards.
    gc.collect()
    row["rss_before_mb"] = _proc_status_mb("VmRSS")
    row["peak_reset"] = _reset_peak_rss()
    options = {"device": args.device, "progress": False, "random_state": args.seed}
    options["precision"] = args.precision
    if args.max_pretrain_epochs:
        options["pretrain_epochs"] = args.max_pretrain_epochs
    if args.max_epochs:
        options["max_epochs"] = args.max_epochs
    t0 = time.perf_counter()
    if args.tool == "scdcc":
        row["n_clusters_given"] = None if args.scdcc_chooses_k else N_GROUPS
        sdc.tl.scdcc(adata, row["n_clusters_given"], **options)
    else:
        sc.pp.normalize_total(adata)
        sc.pp.log1p(adata)
        sc.pp.scale(adata, zero_center=False)
        row["prep_s"] = time.perf_counter() - t0
        sdc.tl.desc(adata, **options)
    row["wall_s"] = time.perf_counter() - t0
    row["tool_peak_rss_mb"] = _proc_status_mb("VmHWM") if row["peak_reset"] else None
    uns = adata.uns[args.tool]
    row["ari"] = float(adjusted_rand_score(adata.obs["group"], adata.obs[args.tool]))
    # two runs of the same code, data and seed should match to the bit; these tell them apart
    row["labels_sha1"] = _sha1(adata.obs[args.tool].cat.codes.to_numpy())
    row["embedding_sha1"] = _sha1(adata.obsm[f"X_{args.tool}"])
    row["n_clusters"] = int(uns["n_clusters"])
    if "small_clusters" in uns:  # clusters under `min_cluster_size`, merged
        row["merged_clusters"] = len(uns["small_clusters"]["merged"])
        row["cluster_sizes"] = sorted(adata.obs[args.tool].value_counts().tolist(), reverse=True)
    row["pretrain_s"] = float(uns["timings"]["pretrain_s"])
    row["cluster_s"] = float(uns["timings"]["cluster_s"])
    # every phase the tool timed (initial clustering, neighbour lookup, ...), for the JSON
    row["timings"] = {name: float(seconds) for name, seconds in uns["timings"].items()}
    row["clustering_epochs"] = int(uns["clustering_epochs"])
    row["converged"] = bool(uns["converged"])
    n = args.size
    if args.tool == "scdcc":
        from scdeepclust.nn import ZINBAutoencoder

        model = ZINBAutoencoder(N_GENES)
        epochs = {"pretraining": int(uns["pretrain_epochs"])}
        shapes = {"pretraining": linear_shapes(model)}
    else:
        hidden = [int(h) for h in uns["params"]["hidden"]]
        widths = [N_GENES, *hidden]
        epochs = {k: int(v) for k, v in uns["pretrain_epochs"].items()}
        shapes = {
            f"layer{i + 1}": [(widths[i], widths[i + 1]), (widths[i + 1], widths[i])]
            for i in range(len(hidden))
        }
        shapes["autoencoder"] = [s for stage in list(shapes.values()) for s in stage]
    n_epochs = sum(epochs.values())
    # DESC's default pretraining draws a subset of the cells per epoch on large data
    epoch_cells = uns.get("pretrain_epoch_cells") or n
    row["pretrain_epoch_cells"] = int(epoch_cells)
    row["pretrain_epochs"] = n_epochs
    row["pretrain_s_per_epoch"] = row["pretrain_s"] / max(n_epochs, 1)
    row["cells_per_s"] = epoch_cells * n_epochs / row["pretrain_s"]
    row["pretrain_flop"] = sum(epoch_flops(epoch_cells, shapes[k]) * e for k, e in epochs.items())
    print("RESULT " + json.dumps(row), flush=True)


def _proc_status_mb(field: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def run_child(argv: list[str]) -> tuple[dict | None, float, str]:
    """Run this script as a worker; (result row, peak RSS in MiB, stderr tail)."""
    with open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", *argv],
            stdin=devnull,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = proc.stdout.read(), proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    peak_mb = usage.ru_maxrss / 1024  # KiB on Linux
    rows = [json.loads(line[7:]) for line in out.splitlines() if line.startswith("RESULT ")]
    return (rows[0] if rows else None), peak_mb, err[-2000:]


def fmt(row: dict) -> list[str]:
    if "error" in row:
        return [f"{row['n_cells']:,}", row["tool"], row["device"], "failed: " + row["error"]]
    return [
        f"{row['n_cells']:,}",
        f"`tl.{row['tool']}`" + (" (chose k)" if row.get("n_clusters_given", 0) is None else ""),
        row["device"],
        f"{row['csr_mb']:.0f}",
        f"{row['pretrain_epochs']}",
        f"{row['pretrain_s_per_epoch']:.2f}",
        f"{row['cells_per_s']:,.0f}",
        f"{row['floor_s_per_epoch']:.3f}",
        f"{row['x_floor']:.1f}",
        f"{row['clustering_epochs']}",
        f"{row['wall_s']:.1f}",
        f"{row['peak_rss_mb']:,.0f}",
        "n/a" if row.get("tool_peak_rss_mb") is None else f"{row['tool_peak_rss_mb']:,.0f}",
        f"{row['n_clusters']}",
        f"{row['ari']:.3f}",
    ]


HEADER = [
    "cells",
    "tool",
    "device",
    "CSR MiB",
    "pretrain epochs",
    "s / pretrain epoch",
    "cells / s",
    "floor s / epoch",
    "x floor",
    "clustering epochs",
    "end-to-end s",
    "process peak RSS MiB",
    "tool peak RSS MiB",
    "clusters",
    "ARI",
]


def main():
    parser = argparse.ArgumentParser(description=" ".join(__doc__.strip().split("\n\n")[0].split()))
    parser.add_argument("--sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--tools", nargs="*", default=["scdcc", "desc"], choices=["scdcc", "desc"])
    parser.add_argument(
        "--devices", nargs="*", default=None, help="default: cpu, and cuda if present"
    )
    parser.add_argument("--max-pretrain-epochs", type=int, default=None)
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--name", default="scaling", help="results file name")
    parser.add_argument("--cache", default=None, help="folder of simulated matrices to reuse")
    parser.add_argument(
        "--seed", type=int, default=0, help="the tools' random_state (the data stay the same)"
    )
    parser.add_argument(
        "--precision",
        choices=["float32", "bfloat16"],
        default="float32",
        help="the tools' precision; the floor is then that precision's matmul rate",
    )
    parser.add_argument(
        "--scdcc-chooses-k",
        action="store_true",
        help="scDCC gets no n_clusters and chooses the number itself (default: the true 8)",
    )
    parser.add_argument("--prepare", action="store_true", help="only simulate into --cache")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tool", help=argparse.SUPPRESS)
    parser.add_argument("--device", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    if args.prepare:
        if args.cache is None:
            parser.error("--prepare needs --cache")
        for size in args.sizes:
            t0 = time.perf_counter()
            simulated(size, args.cache)
            print(f"{size:,} cells in {args.cache} after {time.perf_counter() - t0:.1f} s")
        return

    sys.path.insert(0, str(Path(__file__).parent))
    from _common import RESULTS, earlier_rows, merged_rows, save_results

    cuda = torch.cuda.is_available()
    devices = args.devices or (["cpu", "cuda"] if cuda else ["cpu"])
    if not cuda and any(d.startswith("cuda") for d in devices):
        parser.error("--devices names cuda, but torch finds no CUDA device here")
    rates = {d: matmul_rate(d, precision=args.precision) for d in devices}
    for d, r in rates.items():
        print(f"{args.precision} matmul rate on {d}: {r / 1e9:.1f} GFLOP/s", flush=True)
    caps = []
    if args.max_pretrain_epochs:
        caps.append(f"pretraining capped at {args.max_pretrain_epochs} epochs per stage")
    if args.max_epochs:
        caps.append(f"clustering capped at {args.max_epochs} epochs")
    meta = {
        "matmul_gflops": {d: r / 1e9 for d, r in rates.items()},
        "cuda": torch.cuda.get_device_name(0) if cuda else "not available: CPU only",
        "epoch_caps": "; ".join(caps) or "none (defaults)",
        "simulate": {"n_genes": N_GENES, "n_groups": N_GROUPS, **SIM},
        "random_state": args.seed,
        "precision": args.precision,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "scdcc_chooses_k": args.scdcc_chooses_k,
    }
    # rows of other sizes, tools or devices stay, each with the settings it was measured with
    kept, rows = earlier_rows(args.name), []
    for size in args.sizes:
        for tool in args.tools:
            for device in devices:
                argv = ["--size", str(size), "--tool", tool, "--device", device]
                argv += ["--seed", str(args.seed), "--precision", args.precision]
                if args.scdcc_chooses_k:
                    argv += ["--scdcc-chooses-k"]
                if args.max_pretrain_epochs:
                    argv += ["--max-pretrain-epochs", str(args.max_pretrain_epochs)]
                if args.max_epochs:
                    argv += ["--max-epochs", str(args.max_epochs)]
                if args.cache:
                    argv += ["--cache", args.cache]
                print(f"{tool} on {size:,} cells ({device}) ...", flush=True)
                row, peak_mb, err = run_child(argv)
                if row is None:
                    row = {"n_cells": size, "tool": tool, "device": device}
                    row["error"] = err.strip().splitlines()[-1] if err.strip() else "no result"
                else:
                    row["peak_rss_mb"] = peak_mb
                    floor_s = row["pretrain_flop"] / rates[device]
                    row["floor_s_per_epoch"] = floor_s / max(row["pretrain_epochs"], 1)
                    row["x_floor"] = row["pretrain_s"] / floor_s
                row["settings"] = {
                    "matmul_gflops": rates[device] / 1e9,
                    "precision": args.precision,
                    "epoch_caps": meta["epoch_caps"],
                    "random_state": args.seed,
                    "scdcc_chooses_k": args.scdcc_chooses_k,
                }
                rows.append(row)
                every_row = merged_rows(kept, rows, ("n_cells", "tool", "device"))
                table = save_results(args.name, every_row, HEADER, fmt, **meta)
                print(table, flush=True)
    notes = [
        f"{args.precision} matmul: "
        f"{', '.join(f'{d} {r / 1e9:.1f} GFLOP/s' for d, r in rates.items())}; "
        f"CUDA: {meta['cuda']}; epoch caps: {meta['epoch_caps']}; random_state {args.seed}."
    ]
    if len(merged_rows(kept, rows, ("n_cells", "tool", "device"))) > len(rows):
        notes.append("Rows of earlier runs are kept; each row's settings are in the JSON.")
    print("\n".join(notes))
    with open(RESULTS / f"{args.name}.md", "a") as f:
        f.write("\n" + "\n".join(notes) + "\n")


if __name__ == "__main__":
    main()
