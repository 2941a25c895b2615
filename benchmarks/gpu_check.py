"""The Python steps of benchmarks/gpu_check.sh: the machine (`env`), both tools on 10X PBMC
(`pbmc`) and the summary of every step (`summary`). Each step writes JSON into the work folder
as it goes, so a step stopped at its time limit keeps what it measured.

    python benchmarks/gpu_check.py env --device cuda --work DIR
    python benchmarks/gpu_check.py pbmc --device cuda --work DIR [--dry-run] [--seed 0]
    python benchmarks/gpu_check.py summary --work DIR --out DIR
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
# The committed CPU figures that the GPU's are compared with.
REFERENCE = HERE / "results"
# Targets of issue 17 on one H200: end-to-end seconds on 10X PBMC at the CPU's ARI, and
# seconds per tool on a million cells x 2,000 genes.
PBMC_TARGET_S = {"scdcc": 10.0, "desc": 3.0}
MILLION_TARGET_S = 180.0
# The same calls with the network's layers in bfloat16 (`precision`), beside float32's.
BF16 = {"precision": "bfloat16"}
PACKAGES = [
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "scanpy",
    "anndata",
    "leidenalg",
    "igraph",
    "h5py",
    "numba",
    "zarr",
    "umap-learn",
]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str))


# --- env -----------------------------------------------------------------------------------


def env(args) -> None:
    """Versions, the device, and two ceilings measured here: the float32 matrix-multiply rate
    (as training runs it, TF32 off) and the host-to-device copy rate from pinned memory."""
    device = torch.device(args.device)
    info = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "cpu_threads": torch.get_num_threads(),
        "packages": {},
    }
    for name in PACKAGES:
        try:
            info["packages"][name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info["packages"][name] = None
    # What the tools import: a missing or broken carried wheel shows here, not in a tool run.
    import anndata  # noqa: F401
    import leidenalg  # noqa: F401
    import scanpy  # noqa: F401

    import scdeepclust

    info["scdeepclust"] = scdeepclust.__version__
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        free, total = torch.cuda.mem_get_info(device)
        info.update(
            gpu=props.name,
            capability=f"{props.major}.{props.minor}",
            multiprocessors=props.multi_processor_count,
            memory_total_gib=total / 2**30,
            memory_free_gib=free / 2**30,
            nvidia_smi=_nvidia_smi(),
        )
    info["matmul_fp32_tflops"] = _matmul_rate(device, 4096 if device.type == "cuda" else 512)
    if device.type == "cuda":
        info["h2d_pinned_gbps"] = _copy_rate(device)
    write_json(Path(args.work) / "env.json", info)
    print(json.dumps(info, indent=1, default=str))


def _nvidia_smi() -> str | None:
    query = "name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.SubprocessError) as err:
        return f"not available: {err}"


def _timed(device: torch.device, fn, repeats: int) -> float:
    """Median seconds of `fn()` over `repeats` runs after two warm-ups."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def _matmul_rate(device: torch.device, n: int) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    return 2 * n**3 / _timed(device, lambda: a @ b, 10) / 1e12


def _copy_rate(device: torch.device, nbytes: int = 2**30) -> float:
    host = torch.empty(nbytes // 4, dtype=torch.float32).pin_memory()
    dest = torch.empty_like(host, device=device)
    return nbytes / _timed(device, lambda: dest.copy_(host, non_blocking=True), 5) / 1e9


# --- pbmc ----------------------------------------------------------------------------------


def pbmc(args) -> None:
    """scDCC at the true k, DESC at its defaults and at the true k, on 10X PBMC, each timed end
    to end after a warm-up run on small simulated data (CUDA context, kernels, libraries)."""
    sys.path.insert(0, str(HERE))
    from _common import DATA, DATASETS, lognorm_scaled, require_data, score

    import scdeepclust as sdc

    require_data(["10X_PBMC"])
    device = torch.device(args.device)
    raw = sdc.datasets.read_h5(DATA / DATASETS["10X_PBMC"])
    caps = {}
    if args.dry_run:  # the same steps on a few hundred cells and a couple of epochs
        keep = np.sort(np.random.default_rng(0).choice(raw.n_obs, 600, replace=False))
        raw = raw[keep].copy()
        caps = dict(pretrain_epochs=2, max_epochs=2)
    k = raw.obs["label"].nunique()
    truth = raw.obs["label"].to_numpy()
    scaled = lognorm_scaled(raw)
    common = dict(device=args.device, progress=False, random_state=args.seed, copy=True, **caps)

    t0 = time.perf_counter()
    warm = sdc.datasets.simulate(300, 200, 3, random_state=0)
    sdc.tl.scdcc(warm, 3, **dict(common, pretrain_epochs=1, max_epochs=1))
    # given k: after one pretraining epoch Leiden at the default resolution may find one cluster
    warm_desc = dict(common, pretrain_epochs=1, max_epochs=1, n_clusters=3)
    sdc.tl.desc(lognorm_scaled(warm), **warm_desc)
    synchronize(device)
    result = {"device": args.device, "cells": raw.n_obs, "k": k, "seed": args.seed}
    result["warm_up_s"] = time.perf_counter() - t0
    result["dry_run"] = bool(args.dry_run)
    result["runs"] = []
    runs = [
        ("scdcc", "true k", sdc.tl.scdcc, raw, {"n_clusters": k}),
        ("desc", "defaults", sdc.tl.desc, scaled, {}),
        ("desc", "true k", sdc.tl.desc, scaled, {"n_clusters": k}),
        ("scdcc", "true k, bfloat16", sdc.tl.scdcc, raw, {"n_clusters": k, **BF16}),
        ("desc", "defaults, bfloat16", sdc.tl.desc, scaled, BF16),
    ]
    for tool, setting, fn, data, options in runs:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        synchronize(device)
        t0 = time.perf_counter()
        out = fn(data, **common, **options)
        synchronize(device)
        wall = time.perf_counter() - t0
        uns = out.uns[tool]
        row = {
            "tool": tool,
            "setting": setting,
            **score(truth, out.obs[tool].to_numpy(), wall),
            **{k_: float(v) for k_, v in uns["timings"].items()},
            "clustering_epochs": int(uns["clustering_epochs"]),
            "converged": bool(uns["converged"]),
            "target_s": PBMC_TARGET_S[tool],
            "cpu": cpu_reference(tool, options),
        }
        if device.type == "cuda":
            row["peak_gpu_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        result["runs"].append(row)
        write_json(Path(args.work) / "pbmc.json", result)
        cpu = row["cpu"]
        print(
            f"{tool} ({setting}): {wall:.1f} s (target {row['target_s']:.0f} s; CPU "
            f"{_num(cpu, 'wall_s')} s), ARI {row['ari']:.3f} (CPU median {_num(cpu, 'ari', '.3f')}"
            f", seeds {_num(cpu, 'ari_min', '.3f')}-{_num(cpu, 'ari_max', '.3f')}), "
            f"{row['n_clusters']} clusters",
            flush=True,
        )


def cpu_reference(tool: str, options: dict) -> dict | None:
    """The committed CPU figures of the same call (its `options`) on 10X PBMC: median and range
    of ARI over seeds, median wall seconds (results/scdcc_accuracy.json,
    results/desc_accuracy.json, or their `_bfloat16` runs)."""
    suffix = "_bfloat16" if options.get("precision") == "bfloat16" else ""
    if tool == "scdcc":
        path, key, value = REFERENCE / f"scdcc_accuracy{suffix}.json", "mode", "unconstrained"
    else:
        given_k = "n_clusters" in options
        method = "tl.desc (n_clusters = true k)" if given_k else "tl.desc (defaults)"
        path, key, value = REFERENCE / f"desc_accuracy{suffix}.json", "method", method
    if not path.exists():
        return None
    rows = json.loads(path.read_text())["rows"]
    row = next((r for r in rows if r["dataset"] == "10X_PBMC" and r.get(key) == value), None)
    if row is None:
        return None
    aris = [r["ari"] for r in row.get("runs", [])] or [row["ari"]]
    return {
        "ari": row["ari"],
        "ari_min": min(aris),
        "ari_max": max(aris),
        "wall_s": row["wall_s"],
        "source": path.name,
    }


# --- summary -------------------------------------------------------------------------------


def summary(args) -> None:
    work, out = Path(args.work), Path(args.out)
    steps = []
    steps_file = work / "steps.tsv"
    if steps_file.exists():
        for line in steps_file.read_text().splitlines():
            name, status, seconds, limit = line.split("\t")
            steps.append({"step": name, "status": status, "s": int(seconds), "limit_s": int(limit)})
    data = {"steps": steps, "meta": _read(work / "meta.json")}
    data["env"] = _read(work / "env.json")
    data["pbmc"] = _read(work / "pbmc.json")
    data["tests"] = _tests(out / "tests.log")
    data["scaling"] = [
        row
        for path in sorted((work / "results").glob("gpu_check_*.json"))
        for row in json.loads(path.read_text())["rows"]
    ]
    write_json(out / "summary.json", data)
    text = _markdown(data)
    (out / "summary.md").write_text(text)
    print(text)


def _read(path: Path):
    return json.loads(path.read_text()) if path.exists() else None


def _tests(log: Path) -> dict | None:
    """Counts and failing tests from pytest's output (-v): from its last line, or from the
    per-test lines when it was stopped before writing one."""
    if not log.exists():
        return None
    lines = log.read_text(errors="replace").strip().splitlines()
    final = next((ln for ln in reversed(lines) if re.search(r"\d+ (passed|failed)", ln)), "")
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (\w+)", final)}
    failing = [ln for ln in lines if ln.startswith(("FAILED", "ERROR"))]
    if not final:
        status = re.compile(r"\b(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)\b")
        for ln in lines:
            if (m := status.search(ln)) and "::" in ln:
                counts[m.group(1).lower()] = counts.get(m.group(1).lower(), 0) + 1
                if m.group(1) in ("FAILED", "ERROR"):
                    failing.append(ln)
        final = "stopped before the end: " + ", ".join(f"{n} {k}" for k, n in counts.items())
    return {"counts": counts, "final_line": final.strip("= "), "failing": failing}


def _num(mapping: dict | None, key: str, spec: str = ".1f") -> str:
    value = (mapping or {}).get(key)
    return "-" if value is None else format(value, spec)


def _markdown(data: dict) -> str:
    meta, env_ = data["meta"] or {}, data["env"] or {}
    packages = env_.get("packages") or {}
    lines = [
        f"# Device check ({'dry run' if meta.get('dry_run') else 'full'}), {meta.get('date', '?')}",
        "",
        f"- machine: {env_.get('gpu', 'no GPU')}; torch {env_.get('torch')} (CUDA "
        f"{env_.get('torch_cuda')}), Python {env_.get('python')}; commit {meta.get('commit')}",
        "- " + ", ".join(f"{name} {version}" for name, version in packages.items()),
        f"- fp32 matmul {_num(env_, 'matmul_fp32_tflops')} TFLOP/s; pinned host-to-device "
        f"{_num(env_, 'h2d_pinned_gbps')} GB/s; overrides: {meta.get('overrides') or 'none'}",
        "",
        "| step | status | s | limit s |",
        "|---|---|---|---|",
    ]
    lines += [f"| {s['step']} | {s['status']} | {s['s']} | {s['limit_s']} |" for s in data["steps"]]
    tests = data["tests"]
    if tests:
        lines += ["", f"Tests: {tests['final_line'] or 'no result line'}"]
        lines += [f"- {ln}" for ln in tests["failing"][:40]]
    pbmc_ = data["pbmc"]
    if pbmc_:
        lines += [
            "",
            f"10X PBMC ({pbmc_['cells']} cells, k = {pbmc_['k']}, seed {pbmc_['seed']}, "
            f"{pbmc_['device']}; warm-up {pbmc_['warm_up_s']:.1f} s):",
            "",
            "| tool | setting | wall s | target s | CPU wall s | ARI | CPU ARI median (range) "
            "| clusters | pretrain s | clustering s | peak GPU MiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in pbmc_["runs"]:
            cpu = r["cpu"]
            lines.append(
                f"| `tl.{r['tool']}` | {r['setting']} | {r['wall_s']:.1f} | {r['target_s']:.0f} "
                f"| {_num(cpu, 'wall_s')} | {r['ari']:.3f} | {_num(cpu, 'ari', '.3f')} "
                f"({_num(cpu, 'ari_min', '.3f')}-{_num(cpu, 'ari_max', '.3f')}) "
                f"| {r['n_clusters']} | {_num(r, 'pretrain_s')} | {_num(r, 'cluster_s')} "
                f"| {_num(r, 'peak_gpu_mib', '.0f')} |"
            )
    if data["scaling"]:
        lines += [
            "",
            f"Simulated cells x 2,000 genes (target {MILLION_TARGET_S:.0f} s per tool at 1M):",
            "",
            "| cells | tool | device | end-to-end s | pretrain s (epochs) | clustering s (epochs) "
            "| s / pretrain epoch | x matmul floor | ARI |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in data["scaling"]:
            if "error" in r:
                failed = f"failed: {r['error']}"
                lines.append(f"| {r['n_cells']:,} | {r['tool']} | {r['device']} | {failed} |")
                continue
            lines.append(
                f"| {r['n_cells']:,} | `tl.{r['tool']}` | {r['device']} | {r['wall_s']:.1f} "
                f"| {r['pretrain_s']:.1f} ({r['pretrain_epochs']}) | {r['cluster_s']:.1f} "
                f"({r['clustering_epochs']}) | {r['pretrain_s_per_epoch']:.2f} "
                f"| {r['x_floor']:.1f} | {r['ari']:.3f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.strip().split("\n\n")[0].split()))
    parser.add_argument("step", choices=["env", "pbmc", "summary"])
    parser.add_argument("--work", required=True, help="folder for the steps' JSON")
    parser.add_argument("--out", help="summary: where summary.md / summary.json go")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args()
    {"env": env, "pbmc": pbmc, "summary": summary}[args.step](args)


if __name__ == "__main__":
    main()
