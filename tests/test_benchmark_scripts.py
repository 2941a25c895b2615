"""What the benchmark scripts share (benchmarks/_common.py): options, data checks, merging."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import _common  # noqa: E402


def _parser(extra=()):
    parser = argparse.ArgumentParser(prog="bench")
    _common.add_dataset_options(parser, extra=extra)
    return parser


def test_dataset_names_and_seeds_are_checked_by_the_parser(capsys):
    args = _parser(extra=["sim5"]).parse_args(["--datasets", "mouse_bladder", "sim5"])
    assert args.datasets == ["mouse_bladder", "sim5"] and args.seeds == [0, 1, 2]
    assert _parser().parse_args([]).datasets == list(_common.DATASETS)
    # a misspelt name, or none at all, failed deep inside with a KeyError / UnboundLocalError
    for argv in (["--datasets", "10x_pbmc"], ["--datasets"], ["--seeds"]):
        with pytest.raises(SystemExit):
            _parser().parse_args(argv)
    assert "invalid choice: '10x_pbmc'" in capsys.readouterr().err


def test_missing_data_stops_with_a_message(tmp_path, monkeypatch):
    monkeypatch.setattr(_common, "DATA", tmp_path / "absent")
    with pytest.raises(SystemExit, match="not found"):
        _common.require_data()
    monkeypatch.setattr(_common, "DATA", tmp_path)
    (tmp_path / _common.DATASETS["10X_PBMC"]).write_bytes(b"")
    _common.require_data(["10X_PBMC"])
    with pytest.raises(SystemExit, match=_common.DATASETS["worm_neuron"]):
        _common.require_data(["10X_PBMC", "worm_neuron"])


def test_a_partial_run_keeps_the_rows_it_does_not_measure():
    kept = [{"dataset": d, "method": m, "ari": 0.0} for d in ("a", "b") for m in ("x", "y")]
    measured = [{"dataset": "b", "method": "x", "ari": 1.0}, {"dataset": "c", "method": "x"}]
    merged = _common.merged_rows(kept, measured, ("dataset", "method"))
    assert [(r["dataset"], r["method"]) for r in merged] == [
        ("a", "x"),
        ("a", "y"),
        ("b", "x"),
        ("b", "y"),
        ("c", "x"),
    ]
    assert merged[2]["ari"] == 1.0


def test_help_shows_the_first_paragraph():
    doc = "First line of it,\ncontinued here.\n\nUsage: not this."
    assert _common.description(doc) == "First line of it, continued here."


def test_calibration_reads_the_soft_assignment_of_each_cells_own_cluster(monkeypatch):
    # clusters are named after their column of the soft assignments; the codes of the
    # categories count only clusters that hold cells, and read other columns where one emptied
    import anndata as ad
    import calibration
    import numpy as np
    import pandas as pd

    probs = np.array([[0.7, 0.1, 0.2], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8], [0.2, 0.1, 0.7]])
    out = ad.AnnData(np.zeros((4, 2), np.float32))
    out.obs["scdcc"] = pd.Categorical(["0", "0", "2", "2"], categories=["0", "2"])
    out.obs["scdcc_confidence"] = [0.9, 0.8, 0.9, 0.7]
    out.obsm["scdcc_probs"] = probs.astype(np.float32)
    raw = out.copy()
    raw.obs["label"] = ["a", "a", "b", "b"]
    monkeypatch.setattr(calibration.sdc.tl, "scdcc", lambda *args, **kwargs: out)
    row = calibration.run("scdcc", None, raw, 3, 0)
    assert row["mean_soft_assignment"] == pytest.approx(np.mean([0.7, 0.6, 0.8, 0.7]), abs=1e-6)


def test_targets_of_other_labelled_fractions_are_not_the_classifiers_at_10_percent():
    import scdcc_accuracy

    assert scdcc_accuracy._row_target("10X_PBMC", "10% labelled", []) == pytest.approx(0.821)
    assert scdcc_accuracy._row_target("10X_PBMC", "20% labelled", []) is None
    assert scdcc_accuracy._row_target("10X_PBMC", "unconstrained", []) is not None


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_a_memory_benchmark_of_other_sizes_keeps_the_rows_the_readme_quotes(tmp_path):
    """recipe_memory.py and wide_memory.py wrote their whole file anew: a small run lost the
    100,000-cell rows."""
    import json
    import os
    import shutil
    import subprocess

    shutil.copy(BENCHMARKS / "results" / "recipe_memory.json", tmp_path)
    before = json.loads((tmp_path / "recipe_memory.json").read_text())["rows"]
    subprocess.run(
        [sys.executable, str(BENCHMARKS / "recipe_memory.py"), "--cells", "300", "--genes", "60"],
        env={**os.environ, "SCDEEPCLUST_RESULTS": str(tmp_path), "OMP_NUM_THREADS": "1"},
        check=True,
        capture_output=True,
    )
    rows = json.loads((tmp_path / "recipe_memory.json").read_text())["rows"]
    # the earlier rows ran at the default --keep 0.2, which rows now record
    assert rows[: len(before)] == [{"keep": 0.2, **row} for row in before]
    assert all(row["keep"] == 0.2 for row in rows)
    assert [(r["cells"], r["scale"]) for r in rows[len(before) :]] == [(300, True), (300, False)]
    assert "| 300 |" in (tmp_path / "recipe_memory.md").read_text()


def test_the_batch_benchmark_shows_its_options_without_its_extra():
    import subprocess

    shown = subprocess.run(
        [sys.executable, str(BENCHMARKS / "batch.py"), "--help"], capture_output=True, text=True
    )
    assert shown.returncode == 0 and "--designs" in shown.stdout
