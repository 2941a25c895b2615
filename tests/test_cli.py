"""The command line, through `python -m scdeepclust` as a user runs it."""

import io
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from scipy import sparse

import scdeepclust as sdc
from scdeepclust._cli import main
from scdeepclust.train import DEFAULT_MIN_CLUSTER_SIZE

TINY = ["--pretrain-epochs", "1", "--max-epochs", "1", "--quiet"]


@pytest.fixture(autouse=True)
def _signals_as_in_a_terminal():
    """The command leaves alone a signal its caller ignores, as `nohup` (SIGHUP) or a shell's
    background job (SIGINT) do; the suite may run so, and its tests of the command's own
    handling start where a terminal's user starts."""
    import signal

    names = [n for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)]
    saved = {n: signal.getsignal(getattr(signal, n)) for n in names}
    for name in names:
        default = signal.default_int_handler if name == "SIGINT" else signal.SIG_DFL
        signal.signal(getattr(signal, name), default)
    yield
    for name, handler in saved.items():
        signal.signal(getattr(signal, name), handler)


def cli(*args, cwd=None):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "scdeepclust", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("scdeepclust: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.fixture
def scdcc_h5(tmp_path):
    """A small file in the scDCC layout: counts in X, integer labels in Y."""
    sim = sdc.datasets.simulate(
        n_cells=150, n_genes=80, n_groups=3, de_fraction=0.3, de_log_fold=2.0, random_state=2
    )
    path = tmp_path / "sim.h5"
    with h5py.File(path, "w") as f:
        f["X"] = sim.X.toarray()
        f["Y"] = sim.obs["group"].cat.codes.to_numpy().astype(np.float64)
    return path


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["run", "absent.h5ad", "-m", "desc", "-o", "o.h5ad"], ["not found", "absent.h5ad"]),
        (["run", "x.h5ad", "-m", "kmeans", "-o", "o.h5ad"], ["invalid choice: 'kmeans'"]),
        (["run", "x.h5ad", "-m", "desc", "-o", "o.h5ad", "--bogus"], ["--bogus"]),
        (["run", "x.h5ad", "-m", "scdcc", "-k", "many", "-o", "o.h5ad"], ["not an integer"]),
        (["run", "x.h5ad", "-m", "scdcc"], ["-o/--output"]),
        (["run", "x.h5ad", "-m", "desc", "-o", "o.h5ad", "--init", "gmm"], ["invalid choice"]),
        (["run", "x.h5ad", "-m", "desc", "-o", "o.h5ad", "--seed", "-1"], ["-1 is not an int"]),
        # what the tools take: refused here, not after reading and preparing the data
        (["run", "x.h5ad", "-m", "desc", "-o", "o.h5ad", "--seed", 2**32], ["0..2**32 - 1"]),
        (["run", "x.h5ad", "-m", "desc", "-o", "o.h5ad", "--batch-size", "1"], ["at least 2"]),
        (["run", "x.h5ad", "-m", "desc", "-o", "o.h5ad", "--resolution", "inf"], ["finite"]),
        (["run", "x.h5ad", "-m", "desc", "-o", "o.h5ad", "--device", "gpu"], ["'gpu' is not"]),
        (["run", "x.csv", "-m", "desc", "-o", "o.h5ad"], ["not found"]),
        (["frobnicate"], ["invalid choice"]),
        ([], ["COMMAND"]),
    ],
)
def test_usage_errors_are_one_line(args, fragments, tmp_path):
    assert_one_line_error(cli(*args, cwd=tmp_path), *fragments)


def test_errors_from_the_data_are_one_line(tmp_path):
    lognorm = ad.AnnData(np.log1p(np.random.default_rng(0).random((30, 10), dtype=np.float32)))
    path = tmp_path / "lognorm.h5ad"
    lognorm.write_h5ad(path)
    # scDCC refuses data without raw counts: a ValueError raised inside the package
    assert_one_line_error(cli("run", path, "-m", "scdcc", "-o", tmp_path / "o.h5ad"), "raw counts")


def test_output_paths_are_checked_before_reading_the_data(scdcc_h5, tmp_path, capsys):
    """The input as output, a folder, or a path below a file: refused at once (no "reading")."""
    (tmp_path / "folder.h5ad").mkdir()
    (tmp_path / "a_file").write_text("")
    h5ad = tmp_path / "in.h5ad"
    sdc.datasets.simulate(40, 20, 2, random_state=0).write_h5ad(h5ad)
    before = h5ad.read_bytes()
    cases = [
        (["run", h5ad, "-m", "desc", "-o", h5ad], "is the input file"),
        (["run", scdcc_h5, "-m", "desc", "-o", tmp_path / "folder.h5ad"], "is a folder"),
        (  # a folder without the suffix: named as a folder, with a file in it to give instead
            ["run", scdcc_h5, "-m", "desc", "-o", tmp_path],
            f"is a folder; give a file in it, e.g. {tmp_path / 'result.h5ad'}",
        ),
        (
            ["run", scdcc_h5, "-m", "desc", "-o", tmp_path / "a_file" / "o.h5ad"],
            "cannot be written",
        ),
        (
            ["run", scdcc_h5, "-m", "desc", "-o", tmp_path / "o.h5ad", "--plot"]
            + [tmp_path / "a_file" / "u.png"],
            "--plot",
        ),
    ]
    for args, fragment in cases:
        assert main([*map(str, args), *TINY]) == 2
        captured = capsys.readouterr()
        assert fragment in captured.err and "reading" not in captured.out
    assert h5ad.read_bytes() == before
    # a run that fails after the check leaves no folders of the output path behind
    out = tmp_path / "new" / "sub" / "o.h5ad"
    assert main(["run", str(h5ad), "-m", "scdcc", "-o", str(out), "--label-key", "no"]) != 0
    assert "no" in capsys.readouterr().err and not (tmp_path / "new").exists()


def test_a_new_output_folder_removed_by_another_run_is_made_again(tmp_path, monkeypatch):
    # Two runs writing into the same new folder: the first one's check removed the folder it
    # made between the second one's mkdir and its scratch file, which then refused the path.
    import tempfile

    from scdeepclust import _cli

    real, calls = tempfile.TemporaryFile, []

    def removed_once(*args, dir=None, **kwargs):
        calls.append(dir)
        if len(calls) == 1:
            Path(dir).rmdir()
            raise FileNotFoundError(2, "No such file or directory", dir)
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(_cli.tempfile, "TemporaryFile", removed_once)
    _cli._check_writable(tmp_path / "new" / "o.h5ad", "-o/--output")
    assert len(calls) == 2 and not (tmp_path / "new").exists()


@pytest.mark.parametrize(
    "options, fragment",
    [
        (["-m", "scdcc", "-k", "3-5", "--resolution", "0.1"], "-m scdcc with -k LO-HI"),
        (["-m", "scdcc", "-k", "3", "--init", "kmeans", "--resolution", "5"], "--init kmeans"),
        (["-m", "desc", "--init", "kmeans"], "--init says how a given number"),
        (["-m", "scdcc", "--init", "balanced-kmeans"], "--init says how a given number"),
        # without -k it is --init that does nothing, not --resolution
        (["-m", "desc", "--init", "kmeans", "--resolution", "1"], "--init says how a given"),
        (
            ["-m", "scdcc", "--label-key", "label", "--init", "kmeans", "--resolution", "1"],
            "--init",
        ),
        (  # not "--init balanced-kmeans balances it": the known classes start them
            ["-m", "scdcc", "--label-key", "label", "--init", "kmeans"],
            "k-means; with --label-key the known classes start the clusters)",
        ),
        (["-m", "desc", "--label-key", "label"], "--label-key (known labels of some cells) is for"),
        (["-m", "scdcc", "-k", "3-5", "--init", "leiden"], "--init leiden has no effect on a"),
        (
            ["-m", "scdcc", "-k", "3", "--init", "balanced-kmeans", "--resolution", "5"],
            "--resolution has no effect with -k and --init balanced-kmeans",
        ),
    ],
)
def test_options_that_would_change_nothing_are_refused_before_reading(
    scdcc_h5, tmp_path, capsys, options, fragment
):
    # they were accepted and recorded in params (and named in warnings) as if they were used
    assert main(["run", str(scdcc_h5), "-o", str(tmp_path / "o.h5ad"), *options, *TINY]) == 2
    captured = capsys.readouterr()
    assert fragment in captured.err and "reading" not in captured.out


def test_the_files_labels_as_label_key_are_not_also_the_truth(scdcc_h5, tmp_path, capsys):
    # obs['label'] of an scDCC-layout file is the default truth: with --label-key label no cell
    # was left to score, and the run was refused with advice to leave out a --truth never given
    with h5py.File(scdcc_h5, "r+") as f:
        labels = f["Y"][:]
        labels[np.arange(len(labels)) % 5 != 0] = np.nan
        f["Y"][:] = labels
    out = tmp_path / "o.h5ad"
    args = ["run", str(scdcc_h5), "-m", "scdcc", "-k", "3", "--label-key", "label", "-o", str(out)]
    assert main([*args, *TINY]) == 0
    assert "used as truth" not in capsys.readouterr().out
    assert "scdcc" in ad.read_h5ad(out).obs


def test_an_interrupted_write_leaves_the_earlier_output_and_no_partial_file(
    sim, tmp_path, capsys, monkeypatch
):
    # The result was written straight onto the output path: interrupted there, it left a file
    # anndata could not read ("'obs' doesn't exist") in place of the earlier result.
    path, out = tmp_path / "sim.h5ad", tmp_path / "o.h5ad"
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "scdcc", "-k", "3", "-o", str(out), *TINY]
    assert main([*args, "--layer", "spliced"]) == 2  # a mistake: usage status, before training
    assert "--layer 'spliced' is not a layer" in capsys.readouterr().err
    out.write_bytes(b"an earlier result")

    def interrupted(self, filename, **kwargs):
        Path(filename).write_bytes(b"the first bytes")
        raise KeyboardInterrupt

    monkeypatch.setattr(ad.AnnData, "write_h5ad", interrupted)
    assert main(args) == 130
    assert out.read_bytes() == b"an earlier result"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.h5ad", "sim.h5ad"]


def test_run_scdcc_layout_file(scdcc_h5, tmp_path):
    out = tmp_path / "res" / "out.h5ad"
    result = cli("run", scdcc_h5, "-m", "scdcc", "-k", 3, "-o", out, *TINY)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    text = result.stdout
    assert "150 cells x 80 genes" in text
    assert "obs['label']" in text and "raw counts from layers['counts']" in text
    assert "scdcc: 3 clusters" in text and "against label: ARI" in text
    adata = ad.read_h5ad(out)
    assert set(adata.obs["scdcc"].cat.categories) == {"0", "1", "2"}
    assert "counts" in adata.layers and "X_scdcc" in adata.obsm


def test_run_key_added_and_batch_size(scdcc_h5, tmp_path, capsys):
    """The options that the tools' messages name (`key_added`, `batch_size`) exist here too."""
    out = tmp_path / "out.h5ad"
    args = ["run", str(scdcc_h5), "-m", "scdcc", "-k", "3", "-o", str(out), *TINY]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "--batch-size 256 is larger than the number of cells" in captured.out + captured.err
    assert main([*args, "--key-added", "mine", "--batch-size", "32"]) == 0
    captured = capsys.readouterr()
    assert "--batch-size 256" not in captured.out + captured.err
    assert re.search(r"^mine: \d clusters in ", captured.out, re.MULTILINE)
    adata = ad.read_h5ad(out)
    assert "mine" in adata.obs and "X_mine" in adata.obsm and "scdcc" not in adata.obs
    assert adata.uns["mine"]["params"]["batch_size"] == 32
    # the file's labels are the truth: clusters written over them would score themselves
    assert main([*args, "--key-added", "label"]) == 2
    captured = capsys.readouterr()
    assert "--key-added 'label' would write the clusters over the --truth column" in captured.err
    assert "training" not in captured.out


def test_run_plots_a_numeric_truth_as_classes_and_writes_it_as_it_came(sim, tmp_path, monkeypatch):
    """Cell types coded as numbers: ARI reads them as classes, and so does the UMAP (it drew a
    colour bar); the file keeps the column numeric, without colours of its own."""
    sim.obs["type"] = sim.obs["group"].cat.codes.astype(np.int64) + 1
    path, out, plot = tmp_path / "sim.h5ad", tmp_path / "d.h5ad", tmp_path / "umap.png"
    sim.write_h5ad(path)
    drawn = []
    umap = sdc.pl.umap

    def recording(adata, key, **kwargs):
        drawn.append(adata.obs[kwargs["color"]].dtype)
        return umap(adata, key, **kwargs)

    monkeypatch.setattr(sdc.pl, "umap", recording)
    args = ["run", str(path), "-m", "desc", "-k", "3", "-o", str(out), "--plot", str(plot)]
    assert main([*args, "--truth", "type", *TINY]) == 0
    assert drawn == ["category"] and plot.stat().st_size > 0
    result = ad.read_h5ad(out)
    assert result.obs["type"].dtype == np.int64 and "type_colors" not in result.uns
    np.testing.assert_array_equal(result.obs["type"], sim.obs["type"])


def test_truth_with_nothing_left_to_score_names_the_cause(sim, tmp_path, capsys):
    """Every cell labelled ('unknown' for the unlabelled): the labels, not --truth, are at fault."""
    sim.obs["known"] = np.where(np.arange(sim.n_obs) % 10 == 0, sim.obs["group"], "unknown")
    sim.obs["empty_truth"] = np.nan
    path, out = tmp_path / "sim.h5ad", tmp_path / "o.h5ad"
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "scdcc", "-k", "3", "-o", str(out), "--label-key", "known"]
    assert main([*args, "--truth", "group", *TINY]) == 2
    err = capsys.readouterr().err
    assert "--label-key 'known' labels every cell" in err
    assert "a value such as 'unknown' is a class of its own" in err
    assert main([*args, "--truth", "empty_truth", *TINY]) == 2  # the truth's own fault
    assert "--truth 'empty_truth' has no label for any cell" in capsys.readouterr().err
    assert not out.exists()


def test_run_desc_with_plot_in_process(sim, tmp_path, capsys):
    path, out, plot = tmp_path / "sim.h5ad", tmp_path / "d.h5ad", tmp_path / "fig" / "umap.png"
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "desc", "-k", "3", "-o", str(out), "--plot", str(plot)]
    assert main([*args, "--truth", "group", *TINY]) == 0
    text = capsys.readouterr().out
    assert "X: normalize_total (each cell to the median total) + log1p" in text
    # DESC z-scores the genes as it reads the cells: X stays sparse and log-normalised
    assert (
        "X: left log-normalised, not scaled, as the file written keeps it: DESC z-scores each "
        "gene as it reads the cells"
        in text
        and "against group: ARI" in text
        and "scale=" not in text
    )
    assert plot.stat().st_size > 0
    result = ad.read_h5ad(out)
    assert "desc" in result.obs and "X_umap_desc" in result.obsm
    assert sparse.issparse(result.X) and result.X.min() >= 0
    assert result.uns["desc"]["params"]["scale"]
    # -k 3 reached from Leiden's clusters (by merging or by splitting off a separate part)
    assert result.uns["desc"]["init_method"].startswith("leiden")
    assert result.obs["desc"].nunique() <= 3
    # a mistake found after reading: one line, exit status 2, before training
    assert main([*args, "--truth", "cell_type"]) == 2
    assert capsys.readouterr().err.startswith("scdeepclust: error: --truth 'cell_type' is not")
    sim.obs["unknown"] = np.nan
    sim.write_h5ad(path)
    assert main([*args, "--truth", "unknown", *TINY]) == 2
    captured = capsys.readouterr()
    assert "--truth 'unknown' has no label for any cell" in captured.err
    assert "training" not in captured.out
    assert main([*args, "--resolution", "1.0", *TINY]) == 2
    assert "--resolution has no effect on -m desc with -k" in capsys.readouterr().err


def test_run_desc_uses_an_x_scaled_already_as_it_came(sim, tmp_path, capsys):
    """The recipe says it uses such an X as is; DESC must not z-score it again."""
    scaled = sim.copy()
    sc.pp.scale(scaled, max_value=10)
    path, out = tmp_path / "scaled.h5ad", tmp_path / "d.h5ad"
    scaled.write_h5ad(path)
    assert main(["run", str(path), "-m", "desc", "-k", "3", "-o", str(out), *TINY]) == 0
    assert "taken as scaled already: used as is" in capsys.readouterr().out
    result = ad.read_h5ad(out)
    assert not result.uns["desc"]["params"]["scale"]
    np.testing.assert_array_equal(result.X, scaled.X)


def test_demo_in_process(tmp_path, capsys):
    # The full demo at a few epochs; `python -m` is covered above, so this runs in-process.
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "mine.png").write_bytes(b"")  # not the demo's: not listed as its own
    assert main(["demo", "--out", str(tmp_path / "demo"), *TINY]) == 0
    text = capsys.readouterr().out
    assert "mine.png" not in text and "  umap_desc.png" in text
    assert "ARI against bulk_labels: scdcc" in text
    names = {p.name for p in (tmp_path / "demo").iterdir()}
    for key in ("scdcc", "desc"):
        for plot in ("umap", "compare", "probabilities", "history"):
            assert f"{plot}_{key}.png" in names
    adata = ad.read_h5ad(tmp_path / "demo" / "pbmc68k_demo.h5ad")
    assert {"scdcc", "desc", "bulk_labels"} <= set(adata.obs)
    # log-normalised, as `run` writes it, for scanpy's marker genes (not z-scored)
    assert adata.X.min() >= 0 and adata.uns["desc"]["params"]["scale"]
    sc.tl.rank_genes_groups(adata, "desc")
    assert np.isfinite(sc.get.rank_genes_groups_df(adata, None)["logfoldchanges"]).all()
    assert main(["demo", "--out", str(tmp_path / "demo" / "mine.png"), *TINY]) == 2
    assert "--out" in capsys.readouterr().err


def test_an_interrupted_demo_names_the_figures_it_left(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sdc.tl, "desc", interrupted)
    assert main(["demo", "--out", str(tmp_path), *TINY]) == 130
    err = capsys.readouterr().err
    assert f"figures written into {tmp_path}/: umap_scdcc.png, compare_scdcc.png" in err
    assert err.strip().endswith("scdeepclust: interrupted")
    assert not (tmp_path / "pbmc68k_demo.h5ad").exists()
    # stopped while writing its result, after all eight figures
    monkeypatch.undo()
    monkeypatch.setattr(ad.AnnData, "write_h5ad", interrupted)
    assert main(["demo", "--out", str(tmp_path / "later"), *TINY]) == 130
    assert "history_desc.png" in capsys.readouterr().err


def test_run_with_batch_key_in_process(sim, tmp_path, capsys):
    sim.obs["donor"] = np.where(np.arange(sim.n_obs) % 2 == 0, "d1", "d2")
    path, out = tmp_path / "sim.h5ad", tmp_path / "b.h5ad"
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "scdcc", "-k", "3", "-o", str(out), *TINY]
    assert main([*args, "--batch-key", "donor"]) == 0
    result = ad.read_h5ad(out)
    assert result.uns["scdcc"]["params"]["batch_key"] == "donor"
    assert list(result.uns["scdcc"]["params"]["batch_categories"]) == ["d1", "d2"]
    capsys.readouterr()
    assert main([*args, "--batch-key", "sample"]) == 2
    assert capsys.readouterr().err.startswith("scdeepclust: error: --batch-key 'sample' is not")


def test_run_reads_a_zarr_store_as_the_same_cells_in_h5ad(sim, tmp_path, capsys):
    """anndata's other format was refused: "is a folder; give an .h5ad or .h5 file"."""
    sim.write_zarr(tmp_path / "sim.zarr")
    sim.write_h5ad(tmp_path / "sim.h5ad")
    for name in ("sim.zarr", "sim.h5ad"):
        out = tmp_path / f"{name}.out.h5ad"
        args = ["run", str(tmp_path / name), "-m", "scdcc", "-k", "3", "-o", str(out), *TINY]
        assert main(args) == 0
    read = {n: ad.read_h5ad(tmp_path / f"{n}.out.h5ad") for n in ("sim.zarr", "sim.h5ad")}
    from_zarr, from_h5ad = read["sim.zarr"], read["sim.h5ad"]
    np.testing.assert_array_equal(from_zarr.obsm["X_scdcc"], from_h5ad.obsm["X_scdcc"])
    (tmp_path / "file.zarr").write_text("not a store")
    capsys.readouterr()
    assert main(["run", str(tmp_path / "file.zarr"), "-m", "desc", "-o", str(out)]) == 2
    assert "a .zarr store is a folder" in capsys.readouterr().err
    # like an .h5ad, a store brings no truth of its own: refused before reading, as there
    missing = ["--missing-label", "NA", "-o", str(out)]
    assert main(["run", str(tmp_path / "sim.zarr"), "-m", "desc", *missing]) == 2
    assert "--missing-label names a value" in capsys.readouterr().err
    (tmp_path / "bad.zarr").mkdir()
    assert main(["run", str(tmp_path / "bad.zarr"), "-m", "desc", "-o", str(out)]) != 0
    assert "bad.zarr" in capsys.readouterr().err


def test_run_names_the_layers_of_counts_as_its_option(sim, tmp_path, capsys):
    """The tools' advice to read a layer of counts, in the command's words: one layer, several,
    a name the shell would split."""
    sim.layers["raw counts"] = sim.layers.pop("counts")
    sc.pp.normalize_total(sim)
    sc.pp.log1p(sim)
    path, out = tmp_path / "sim.h5ad", tmp_path / "out.h5ad"
    sim.write_h5ad(path)
    assert main(["run", str(path), "-m", "scdcc", "-o", str(out), *TINY]) != 0
    assert "holds counts: pass `--layer 'raw counts'` to read them" in capsys.readouterr().err
    sim.layers["umi"] = sim.layers["raw counts"]
    sim.write_h5ad(path)
    assert main(["run", str(path), "-m", "scdcc", "-o", str(out), *TINY]) != 0
    assert "pass the one to read as `--layer`, e.g. `--layer 'raw counts'`" in (
        capsys.readouterr().err
    )
    assert (
        main(["run", str(path), "-m", "scdcc", "-o", str(out), "--layer", "umi", "-k", "3", *TINY])
        == 0
    )


def test_run_tells_what_to_do_with_an_h5mu(sim, tmp_path, capsys):
    """An .h5mu was refused by its name: "give an .h5ad or .h5 file, or a .zarr store"."""
    from test_read_recipe import as_mudata_file

    as_mudata_file(tmp_path / "cells.h5mu", sim, modalities=("rna",))
    out = tmp_path / "o.h5ad"
    assert main(["run", str(tmp_path / "cells.h5mu"), "-m", "desc", "-o", str(out)]) != 0
    assert "holds a MuData (modalities: ['rna'])" in capsys.readouterr().err


def test_run_warns_once_about_a_small_batch(sim, tmp_path, capsys):
    # pp.recipe and the tool both check the batches; the command line says it once
    sim.obs["donor"] = np.where(np.arange(sim.n_obs) < 3, "d0", "d1")
    path, out = tmp_path / "sim.h5ad", tmp_path / "b.h5ad"
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "desc", "-k", "3", "-o", str(out), *TINY]
    assert main([*args, "--batch-key", "donor"]) == 0
    assert capsys.readouterr().err.count("hold fewer than 10 cells") == 1


def test_run_says_each_warning_once(sim, tmp_path, capsys):
    """anndata warns of repeated cell names at each copy and subset: printed five times."""
    sim.obs_names = [f"c{i % 200}" for i in range(sim.n_obs)]
    counts = sim.X.toarray()
    counts[:, :3] = counts[:2] = 0  # genes and cells without counts: the recipe subsets
    sim.X = counts
    del sim.layers["counts"]
    path, out = tmp_path / "sim.h5ad", tmp_path / "d.h5ad"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sim.write_h5ad(path)
    assert main(["run", str(path), "-m", "desc", "-k", "3", "-o", str(out), *TINY]) == 0
    assert capsys.readouterr().err.count("Observation names are not unique") == 1


def test_run_batch_mixing_option(sim, tmp_path, capsys):
    sim.obs["donor"] = np.where(np.arange(sim.n_obs) % 2 == 0, "d1", "d2")
    path, out = tmp_path / "sim.h5ad", tmp_path / "b.h5ad"
    sim.write_h5ad(path)
    args = ["run", str(path), "-k", "3", "-o", str(out), *TINY]
    assert main([*args, "-m", "scdcc", "--batch-key", "donor", "--batch-mixing", "0"]) == 0
    result = ad.read_h5ad(out)
    assert result.uns["scdcc"]["params"]["batch_mixing"] == 0.0
    assert result.uns["scdcc"]["init_method"].startswith("leiden (resolution")
    assert main([*args, "-m", "scdcc", "--init", "balanced-kmeans"]) == 0
    assert ad.read_h5ad(out).uns["scdcc"]["init_method"] == "balanced-kmeans"
    assert main([*args, "-m", "desc", "--init", "kmeans"]) == 0
    assert ad.read_h5ad(out).uns["desc"]["init_method"] == "kmeans"
    assert main([*args, "-m", "desc", "--n-neighbors", "4"]) == 0
    assert ad.read_h5ad(out).uns["desc"]["params"]["n_neighbors"] == 4
    assert "cluster_batch_mixing" not in result.uns["scdcc"]["history"]
    capsys.readouterr()
    assert main([*args, "-m", "desc", "--batch-mixing", "5"]) == 2
    assert "--batch-mixing needs --batch-key" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "-m", "scdcc", "--batch-key", "donor", "--batch-mixing", "-1"])
    assert "is not a finite number >= 0" in capsys.readouterr().err


def test_run_with_label_key_scores_the_cells_without_a_label(sim, tmp_path, capsys):
    known = sim.obs["group"].astype(object).copy()
    known.iloc[20:] = None  # 20 labelled cells
    sim.obs["known"] = known
    path, out = tmp_path / "sim.h5ad", tmp_path / "l.h5ad"
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "scdcc", "-k", "3", "-o", str(out), "--truth", "group"]
    assert main([*args, "--label-key", "known", *TINY]) == 0
    text = capsys.readouterr().out
    assert f"on the {sim.n_obs - 20} cells without a 'known' label" in text


def test_warnings_as_errors_run_and_plot(sim, tmp_path):
    # scanpy's plot raised matplotlib's PendingDeprecationWarning about Colormap.set_bad: under
    # `python -W error` the command failed in its plot, after training, and wrote nothing.
    path, out, plot = tmp_path / "sim.h5ad", tmp_path / "o.h5ad", tmp_path / "umap.png"
    sim.write_h5ad(path)
    args = ["run", path, "-m", "scdcc", "-k", 3, "-o", out, "--plot", plot, *TINY]
    result = subprocess.run(
        # other libraries' notices as errors (the data is small enough for ours to warn)
        [sys.executable, "-W", "error::PendingDeprecationWarning", "-W", "error::FutureWarning"]
        + ["-W", "error::DeprecationWarning", "-m", "scdeepclust", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert out.exists() and plot.exists()


def test_a_failed_plot_keeps_the_trained_result(sim, tmp_path, capsys, monkeypatch):
    path, out = tmp_path / "sim.h5ad", tmp_path / "o.h5ad"
    sim.write_h5ad(path)

    def broken(*args, **kwargs):
        raise ValueError("no room to draw")

    monkeypatch.setattr(sdc.pl, "umap", broken)
    args = ["run", str(path), "-m", "scdcc", "-k", "3", "-o", str(out), "--plot"]
    assert main([*args, str(tmp_path / "u.png"), *TINY]) == 1
    assert "no room to draw" in capsys.readouterr().err
    assert "scdcc" in ad.read_h5ad(out).obs


def test_a_result_the_output_cannot_take_is_kept_in_the_temporary_folder(
    scdcc_h5, tmp_path, capsys, monkeypatch
):
    """A disk that filled up during training lost the trained result, with a deep traceback."""
    import scdeepclust._cli as command_line

    out = tmp_path / "out.h5ad"
    written = command_line.write_atomically

    def full_at_the_output(path, write):
        if Path(path) == out:
            raise OSError(28, "No space left on device")
        written(path, write)

    monkeypatch.setattr(command_line, "write_atomically", full_at_the_output)
    monkeypatch.setattr(command_line.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    args = ["run", str(scdcc_h5), "-m", "scdcc", "-k", "3", "-o", str(out), *TINY]
    assert main(args) == 1  # an error of the run, not a mistake in the command line
    error = capsys.readouterr().err
    assert f"-o/--output {out} could not be written" in error and "written to" in error
    kept = list((tmp_path / "tmp").glob("scdeepclust-*-out.h5ad"))
    assert len(kept) == 1 and "scdcc" in ad.read_h5ad(kept[0]).obs


def test_a_termination_signal_is_taken_as_an_interruption(sim, tmp_path, capsys, monkeypatch):
    """SIGTERM (a job's time limit, `kill`) and SIGHUP (a closed terminal) killed the process
    without any clean-up: a hidden partial output file stayed, and a result was lost."""
    import signal

    path, out = tmp_path / "sim.h5ad", tmp_path / "o.h5ad"
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "desc", "-k", "3", "-o", str(out), *TINY]
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)

    def killed(self, filename, **kwargs):
        Path(filename).write_bytes(b"the first bytes")
        os.kill(os.getpid(), signal.SIGTERM)

    with monkeypatch.context() as m:
        m.setattr(ad.AnnData, "write_h5ad", killed)
        assert main(args) == 128 + signal.SIGTERM
    assert capsys.readouterr().err.strip().endswith("scdeepclust: stopped by SIGTERM")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sim.h5ad"]
    # while the figure is drawn, the trained result is written all the same
    monkeypatch.setattr(sdc.pl, "umap", lambda *a, **k: os.kill(os.getpid(), signal.SIGHUP))
    assert main([*args, "--plot", str(tmp_path / "u.png")]) == 128 + signal.SIGHUP
    assert "no figure; wrote" in capsys.readouterr().err
    assert ad.read_h5ad(out).obs["desc"].notna().all()
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGHUP)) == handlers


class _GoneReader(io.StringIO):
    """A stdout whose reader went away (`| head -1`) after the first line."""

    def write(self, text):
        if "\n" in self.getvalue():
            raise BrokenPipeError(32, "Broken pipe")
        return super().write(text)


def test_the_log_never_costs_the_result(sim, tmp_path, monkeypatch):
    """A closed pipe, or a character the terminal cannot show, stopped the run after training
    (exit status 1, no file): the printed lines are a log, the file is what a run makes."""
    sim.obs["Zelltyp ä"] = sim.obs["group"].astype(str) + " β"
    path = tmp_path / "sim.h5ad"
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "desc", "-k", "3", "--truth", "Zelltyp ä", *TINY[:-1]]
    monkeypatch.setattr(sys, "stdout", _GoneReader())
    assert main([*args, "-o", str(tmp_path / "piped.h5ad")]) == 0
    assert ad.read_h5ad(tmp_path / "piped.h5ad").obs["desc"].notna().all()
    ascii_only = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", ascii_only)
    assert main([*args, "-o", str(tmp_path / "ascii.h5ad")]) == 0
    ascii_only.seek(0)
    assert r"against Zelltyp \xe4: ARI" in ascii_only.read()
    # `> log 2>&1` on a full disk: the progress bars write to that stream too
    monkeypatch.setattr(sys, "stdout", _FullDisk())
    monkeypatch.setattr(sys, "stderr", _FullDisk())
    assert main([*args, "-o", str(tmp_path / "full.h5ad")]) == 0
    assert ad.read_h5ad(tmp_path / "full.h5ad").obs["desc"].notna().all()
    assert isinstance(sys.stdout, _FullDisk) and isinstance(sys.stderr, _FullDisk)  # restored


class _FullDisk(io.StringIO):
    def write(self, text):
        raise OSError(28, "No space left on device")


def test_rank_counts_only_for_a_distributed_run(sim, tmp_path, capsys, monkeypatch):
    """A RANK left by a launcher or a shell silenced every line of a plain run."""
    path = tmp_path / "sim.h5ad"
    sim.write_h5ad(path)
    monkeypatch.setenv("RANK", "1")
    assert (
        main(["run", str(path), "-m", "desc", "-k", "3", "-o", str(tmp_path / "o.h5ad"), *TINY])
        == 0
    )
    assert "wrote" in capsys.readouterr().out


def test_a_closed_stderr_does_not_stop_the_run(sim, tmp_path):
    """`2>&-`: the progress bars failed on the missing stream, and the run ended silently."""
    path, out = tmp_path / "sim.h5ad", tmp_path / "o.h5ad"
    sim.write_h5ad(path)
    result = subprocess.run(
        [sys.executable, "-m", "scdeepclust", "run", str(path), "-m", "desc", "-k", "3"]
        + ["-o", str(out), "--pretrain-epochs", "1", "--max-epochs", "1"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "MPLBACKEND": "Agg"},
        preexec_fn=lambda: os.close(2),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout
    assert ad.read_h5ad(out).obs["desc"].notna().all()


def test_paths_as_the_shell_would_read_them_and_inputs_that_are_no_file(
    tmp_path, capsys, monkeypatch
):
    (tmp_path / "folder.h5ad").mkdir()
    (tmp_path / "text.h5ad").write_text("cell,gene\n")
    monkeypatch.setenv("HOME", str(tmp_path))
    for name, fragment in (("folder.h5ad", "is a folder"), ("text.h5ad", "cannot read")):
        assert main(["run", f"~/{name}", "-m", "desc", "-o", "~/o.h5ad"]) == 2
        error = capsys.readouterr().err
        assert fragment in error and str(tmp_path / name) in error
    assert not Path("~").exists()


def test_signals_a_caller_or_nohup_took_are_left_to_them(sim, tmp_path, monkeypatch):
    """`nohup` ignores SIGHUP so that a closed terminal does not stop the run."""
    import signal

    path = tmp_path / "sim.h5ad"
    sim.write_h5ad(path)
    monkeypatch.setattr(signal, "SIGHUP", signal.SIGUSR1)  # as nohup, without touching SIGHUP
    previous = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        fit = sdc.tl.desc

        def hung_up(*args, **kwargs):
            os.kill(os.getpid(), signal.SIGUSR1)
            return fit(*args, **kwargs)

        monkeypatch.setattr(sdc.tl, "desc", hung_up)
        args = ["run", str(path), "-m", "desc", "-k", "3", "-o", str(tmp_path / "o.h5ad"), *TINY]
        assert main(args) == 0
        assert signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_a_tilde_that_names_no_user_is_left_as_the_shell_leaves_it(sim, tmp_path, capsys):
    assert main(["run", "~no-such-user-here/x.h5ad", "-m", "desc", "-o", "o.h5ad"]) == 2
    assert "input file not found: ~no-such-user-here/x.h5ad" in capsys.readouterr().err
    sim.write_h5ad(tmp_path / "~sim.h5ad")  # a file may be called so
    args = ["run", "~sim.h5ad", "-m", "desc", "-k", "3", "-o", "~out.h5ad", *TINY]
    assert (
        subprocess.run([sys.executable, "-m", "scdeepclust", *args], cwd=tmp_path).returncode == 0
    )
    assert (tmp_path / "~out.h5ad").exists()


def test_a_truncated_file_is_a_mistake_and_a_locked_one_says_so(sim, tmp_path, capsys):
    path = tmp_path / "sim.h5ad"
    sim.write_h5ad(path)
    data = path.read_bytes()
    (tmp_path / "cut.h5ad").write_bytes(data[: len(data) // 2])  # an interrupted copy
    assert main(["run", str(tmp_path / "cut.h5ad"), "-m", "desc", "-o", "o.h5ad"]) == 2
    error = capsys.readouterr().err
    assert "not a complete .h5ad" in error and "another program" not in error
    holder = subprocess.Popen(  # another program holds the file open for writing
        [sys.executable, "-c", "import h5py, sys; f = h5py.File(sys.argv[1], 'a'); input()", path],
        stdin=subprocess.PIPE,
    )
    try:
        for _ in range(100):  # until the lock is taken
            try:
                h5py.File(path, "r").close()
            except OSError:
                break
            time.sleep(0.05)
        else:
            pytest.skip("HDF5 file locking is off here (HDF5_USE_FILE_LOCKING, file system)")
        assert main(["run", str(path), "-m", "desc", "-o", str(tmp_path / "o.h5ad")]) == 1
        assert "another program holds it open" in capsys.readouterr().err
    finally:
        holder.communicate(b"\n", timeout=30)


def test_a_file_of_nullable_strings_is_written_back(sim, tmp_path):
    """Written under pandas' string dtype (pandas 3), text is read by anndata 0.12 as nullable
    strings, which it refused to write: the trained result was lost."""
    path, out = tmp_path / "strings.h5ad", tmp_path / "o.h5ad"
    names = pd.Index(list(sim.obs_names), dtype="string")  # as pandas 3 makes them
    strings = ad.AnnData(sim.X, obs=pd.DataFrame(index=names))
    with ad.settings.override(allow_write_nullable_strings=True):
        strings.write_h5ad(path)
    assert not pd.api.types.is_object_dtype(ad.read_h5ad(path).obs_names.dtype)
    assert main(["run", str(path), "-m", "desc", "-k", "3", "-o", str(out), *TINY]) == 0
    assert list(ad.read_h5ad(out).obs_names) == list(sim.obs_names)


def test_distributed_and_torchrun_go_together(sim, tmp_path, capsys, monkeypatch):
    """Found only after reading and preparing, in Python's words; and under torchrun without
    --distributed every process trained alone on every cell, each writing the output."""
    path, out = tmp_path / "sim.h5ad", tmp_path / "o.h5ad"
    sim.write_h5ad(path)
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    args = ["run", str(path), "-m", "desc", "-k", "3", "-o", str(out), *TINY]
    assert main([*args, "--distributed"]) == 2
    captured = capsys.readouterr()
    assert "--distributed runs one process per GPU or CPU worker under torchrun" in captured.err
    assert "reading" not in captured.out
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    assert main(args) == 2
    assert "without --distributed: each process would train alone" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "1")
    assert main(args) == 2 and capsys.readouterr().err == ""  # said once, by rank 0
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29999")
    monkeypatch.setenv("RANK", "0")
    assert main([*args, "--distributed", "--truth", "nosuch"]) == 2  # rank 0 says it
    assert "--truth 'nosuch'" in capsys.readouterr().err
    monkeypatch.setenv("RANK", "1")
    assert main([*args, "--distributed", "--truth", "nosuch"]) == 2  # the others do not
    assert capsys.readouterr().err == ""


def test_files_the_readers_refuse_are_named_in_one_line(scdcc_h5, tmp_path, capsys, monkeypatch):
    """An .h5 in the scDCC layout named .h5ad failed with "AnnData.__init__() got an unexpected
    keyword argument 'Y'"; anndata's and scanpy's own kinds of error printed a traceback."""
    out = tmp_path / "o.h5ad"
    misnamed = tmp_path / "counts.h5ad"
    misnamed.write_bytes(scdcc_h5.read_bytes())
    assert main(["run", str(misnamed), "-m", "desc", "-o", str(out), *TINY]) == 1
    error = capsys.readouterr().err
    assert "counts.h5ad is an .h5 file in the scDCC layout, not an AnnData .h5ad" in error
    with h5py.File(tmp_path / "other.h5ad", "w") as f:
        f["foo"] = np.zeros(3)
    assert main(["run", str(tmp_path / "other.h5ad"), "-m", "desc", "-o", str(out)]) == 1
    assert "without AnnData's 'obs' and 'var' groups" in capsys.readouterr().err

    class NewerFormat(Exception):  # anndata's IORegistryError derives from Exception alone
        pass

    def unreadable(path):
        raise NewerFormat("No read method registered for IOSpec(encoding_version='9.9.9').")

    monkeypatch.setattr(sdc.datasets, "read", unreadable)
    assert main(["run", str(scdcc_h5), "-m", "desc", "-o", str(out), *TINY]) == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith(f"scdeepclust: error: cannot read {scdcc_h5}: NewerFormat")
    assert not out.exists()


def test_key_added_is_checked_before_the_data_are_prepared(sim, tmp_path, capsys):
    """--key-added naming the --label-key or --batch-key column, or holding '/', was refused
    by the tool after reading and preparing, in its API's words and with exit status 1."""
    sim.obs["donor"] = np.where(np.arange(sim.n_obs) % 2 == 0, "d1", "d2")
    sim.obs["known"] = sim.obs["group"].astype(str).where(np.arange(sim.n_obs) % 5 == 0)
    path, out = tmp_path / "sim.h5ad", tmp_path / "o.h5ad"
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "scdcc", "-k", "3", "-o", str(out), *TINY]
    cases = [
        (["--label-key", "known", "--key-added", "known"], "over the --label-key column"),
        (["--batch-key", "donor", "--key-added", "donor"], "over the --batch-key column"),
        (["--key-added", "a/b"], "contains '/'"),
    ]
    for extra, fragment in cases:
        assert main([*args, *extra]) == 2
        captured = capsys.readouterr()
        assert fragment in captured.err and "--key-added" in captured.err
        assert "preparing" not in captured.out and not out.exists()
    sim.uns["spatial"] = {"section1": {"scalefactors": {"spot_diameter_fullres": 89.4}}}
    sim.write_h5ad(path)
    assert main([*args, "--key-added", "spatial"]) == 2  # another tool's entry
    captured = capsys.readouterr()
    assert "--key-added 'spatial' would replace the input's uns['spatial']" in captured.err
    assert "give another --key-added" in captured.err and "del adata" not in captured.err
    assert "preparing" not in captured.out and not out.exists()
    del sim.uns["spatial"]
    sim.obs.index.name = "cell"  # what preparing the data cannot change: refused at once
    sim.write_h5ad(path)
    assert main([*args, "--key-added", "cell"]) == 2
    captured = capsys.readouterr()
    assert "the name of the input's cell index" in captured.err
    assert "preparing" not in captured.out
    sim.obs.index.name = None
    # a gene of that name, which the recipe removes (no counts), is no reason to refuse
    counts = sim.X.tolil()
    counts[:, 0] = 0
    sim.X = counts.tocsr()
    del sim.layers["counts"]
    sim.write_h5ad(path)
    assert main([*args, "--key-added", str(sim.var_names[0])]) == 0
    assert str(sim.var_names[0]) in ad.read_h5ad(out).obs


def test_an_error_of_one_process_names_its_rank(sim, tmp_path, capsys, monkeypatch):
    """Under torchrun each process printed "error: ..." alike, and a process's own error was
    told apart from rank 0's by nothing."""
    path, out = tmp_path / "sim.h5ad", tmp_path / "o.h5ad"
    sim.write_h5ad(path)
    environment = {
        "TORCHELASTIC_RUN_ID": "none",
        "WORLD_SIZE": "2",
        "RANK": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29999",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    def failing(adata, **kwargs):
        warnings.warn("every process reads the same cells, so warns alike", stacklevel=2)
        raise RuntimeError("out of memory on this one")

    monkeypatch.setattr(sdc.tl, "desc", failing)
    args = ["run", str(path), "-m", "desc", "-o", str(out), "--distributed", *TINY]
    assert main(args) == 1
    said = capsys.readouterr().err
    assert "scdeepclust (rank 1): error: out of memory on this one" in said
    assert "warns alike" not in said  # rank 0 warns for all
    # a mistake argparse finds was printed by every process: rank 0 alone says it
    with pytest.raises(SystemExit) as stopped:
        main([*args, "-k", "0"])
    assert stopped.value.code == 2 and capsys.readouterr() == ("", "")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(SystemExit):
        main([*args, "-k", "0"])
    assert "-k/--n-clusters: 0 is not at least 2" in capsys.readouterr().err
    assert main(args) == 1
    assert "warning: every process reads the same cells, so warns alike" in capsys.readouterr().err
    for name in environment:
        monkeypatch.delenv(name)
    assert main(["run", str(path), "-m", "desc", "-o", str(out), *TINY]) == 1
    assert "scdeepclust: error: out of memory" in capsys.readouterr().err  # one process
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")  # torchrun, one process
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert main(["run", str(path), "-m", "desc", "-o", str(out), *TINY]) == 1
    assert "scdeepclust: error: out of memory" in capsys.readouterr().err


def test_the_process_group_is_closed_before_the_process_exits(sim, tmp_path, monkeypatch):
    """Left open, a rank that returned while rank 0 still wrote sometimes aborted at exit
    ("terminate called without an active exception") and torchrun reported a failure. A group
    the caller opened is the caller's, and stays open."""
    import torch.distributed as dist

    path, out = tmp_path / "sim.h5ad", tmp_path / "o.h5ad"
    sim.write_h5ad(path)
    torchrun = {"TORCHELASTIC_RUN_ID": "none", "WORLD_SIZE": "1", "RANK": "0"}
    for name, value in {**torchrun, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29999"}.items():
        monkeypatch.setenv(name, value)

    def opening(adata, **kwargs):  # as tl.desc(distributed=True) opens it under torchrun
        if not dist.is_initialized():
            dist.init_process_group("gloo", rank=0, world_size=1, store=dist.HashStore())

    monkeypatch.setattr(sdc.tl, "desc", opening)
    args = ["run", str(path), "-m", "desc", "-o", str(out), "--distributed", *TINY]
    try:
        main(args)
        assert not dist.is_initialized()
        dist.init_process_group("gloo", rank=0, world_size=1, store=dist.HashStore())
        main(args)
        assert dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_an_earlier_distributed_call_does_not_silence_a_later_ones_mistakes(
    sim, tmp_path, capsys, monkeypatch
):
    from scdeepclust import _cli

    monkeypatch.setattr(_cli, "_distributed_run", True)  # as a --distributed call leaves it
    monkeypatch.setenv("RANK", "1")  # left set by a launcher, not under torchrun
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    with pytest.raises(SystemExit):
        main(["run", "x.h5ad", "-m", "desc", "-o", str(tmp_path / "o.h5ad"), "-k", "0"])
    assert "0 is not at least 2" in capsys.readouterr().err


def test_a_demo_that_fails_leaves_no_folder_of_its_own(tmp_path, capsys, monkeypatch):
    def failing(*args, **kwargs):
        raise RuntimeError("no CUDA here")

    monkeypatch.setattr(sdc.tl, "scdcc", failing)
    out = tmp_path / "new" / "demo"
    assert main(["demo", "--out", str(out), *TINY]) == 1
    assert "no CUDA here" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()  # a folder that was there stays
    assert main(["demo", "--out", str(tmp_path / "kept"), *TINY]) == 1
    assert (tmp_path / "kept").is_dir()


def test_the_packages_advice_names_the_command_lines_options(sim, tmp_path, capsys, monkeypatch):
    """Warnings and errors told command-line users to "raise `max_epochs`" or "pass another
    key_added", options they cannot type."""
    from scdeepclust._cli import in_command_terms

    assert in_command_terms("Raise `max_epochs`, give a smaller `n_clusters`") == (
        "Raise `--max-epochs`, give a smaller `-k`"
    )
    assert in_command_terms("Pass a smaller batch_size (e.g. 7), or init='kmeans'") == (
        "Pass a smaller --batch-size (e.g. 7), or --init kmeans"
    )
    assert in_command_terms("search n_clusters=(4, 30)") == "search -k 4-30"
    assert in_command_terms("pass a smaller n_neighbors") == "pass a smaller --n-neighbors"
    assert in_command_terms("Raise `max_epochs` (at 5), or give a `resolution` below 0.5") == (
        "Raise `--max-epochs` (at 5), or give a `--resolution` below 0.5"
    )
    assert in_command_terms("pass batch_mixing=0 (--batch-mixing 0), or distributed=True") == (
        "pass --batch-mixing 0, or --distributed"
    )
    # demo has no -k; paths and the user's values keep their words
    assert in_command_terms("raise max_epochs; a smaller `n_clusters`", "demo") == (
        "raise --max-epochs; a smaller `n_clusters`"
    )
    words = ("n_clusters/data.h5ad", "/tmp/max_epochs/x", "key 'a/batch_key'", "layer=None")
    for kept in (*words, "max_epochs.h5ad", "random_state-1.h5ad"):
        assert in_command_terms(kept) == kept
    kept = "obs['batch_key'], uns[key]['n_clusters_search'], `sdc.tl.desc(a, resolution=0.3)`"
    assert in_command_terms(kept) == kept  # keys and Python calls are left as they are
    # the AnnData is the command's input; a checkpoint's settings are its options
    assert (
        in_command_terms(
            "adata.obs['b'] names one batch: `adata.obs['b'] = adata.obs['b'].astype(str)`"
        )
        == "the input's obs['b'] names one batch: `adata.obs['b'] = adata.obs['b'].astype(str)`"
    )
    assert in_command_terms("differ in config.random_state: 0 then, 3 now; config.hidden") == (
        "differ in --seed: 0 then, 3 now; config.hidden"
    )
    assert in_command_terms("resumed by the same call") == "resumed by the same command"
    import json

    from scdeepclust.train import _checkpoint

    refused = _checkpoint._differences(
        {"settings": json.dumps({"shape": [9, 5]})}, {"shape": [9, 4]}
    )
    assert in_command_terms(refused).endswith("; give the run's --n-top-genes (0: every gene)")
    path, out = tmp_path / "sim.h5ad", tmp_path / "o.h5ad"
    sim.write_h5ad(path)

    def advising(adata, **kwargs):
        warnings.warn("did not converge: raise `max_epochs`", UserWarning, stacklevel=2)
        raise ValueError("key_added 'x' is taken; pass another key_added.")

    monkeypatch.setattr(sdc.tl, "desc", advising)
    assert main(["run", str(path), "-m", "desc", "-o", str(out), *TINY]) == 1
    err = capsys.readouterr().err
    assert "warning: did not converge: raise `--max-epochs`" in err
    assert "error: --key-added 'x' is taken; pass another --key-added." in err


@pytest.mark.parametrize("category", [UserWarning, RuntimeWarning], ids=["tools", "numpy"])
def test_a_warning_raised_as_an_error_is_said_in_the_commands_terms(
    sim, tmp_path, monkeypatch, capsys, category
):
    """Under ``python -W error`` a tool's warning ended the command with a traceback and the
    Python option's name (`max_epochs`); numpy's RuntimeWarning (an overflow, a mean of
    nothing) is raised so as well."""
    path, out = tmp_path / "sim.h5ad", tmp_path / "o.h5ad"
    sim.write_h5ad(path)

    def warning(adata, **kwargs):
        warnings.warn("did not converge: raise `max_epochs`", category, stacklevel=2)

    monkeypatch.setattr(sdc.tl, "desc", warning)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert main(["run", str(path), "-m", "desc", "-o", str(out), *TINY]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == "scdeepclust: error: did not converge: raise `--max-epochs`"
    assert "Traceback" not in err and not out.exists()


def test_an_empty_x_is_prepared_from_the_only_layer(sim, tmp_path, monkeypatch, capsys):
    """zellkonverter's export of logcounts alone: X None, one layer; DESC could not run."""
    logcounts = sc.pp.log1p(sc.pp.normalize_total(sim, copy=True).X)
    empty = ad.AnnData(obs=sim.obs[[]], var=sim.var[[]], layers={"logcounts": logcounts})
    given = _options_given_to("desc", empty, tmp_path, monkeypatch, *TINY)
    assert "prepared from a copy of layers['logcounts'], the input's only layer" in (
        capsys.readouterr().out
    )
    np.testing.assert_allclose(given["adata"].X.toarray(), logcounts.toarray(), rtol=1e-6)
    empty.layers["counts_of_another_gene_set"] = logcounts
    path = tmp_path / "two.h5ad"
    empty.write_h5ad(path)
    assert main(["run", str(path), "-m", "desc", "-o", str(tmp_path / "o.h5ad"), *TINY]) == 2
    assert "X is empty and no layer is named 'counts'; layers: " in capsys.readouterr().err


def test_an_empty_x_is_prepared_from_the_counts_layer(sim, tmp_path, capsys):
    """X None with the counts in a layer was refused with advice to assign adata.X in Python,
    although --layer named the counts."""
    empty = ad.AnnData(obs=sim.obs[["group"]], var=sim.var, layers={"umi": sim.X.copy()})
    path, out = tmp_path / "empty.h5ad", tmp_path / "o.h5ad"
    empty.write_h5ad(path)
    args = ["run", str(path), "-m", "scdcc", "-k", "3", "--layer", "umi", "-o", str(out), *TINY]
    assert main(args) == 0
    assert "X is empty: prepared from a copy of layers['umi']" in capsys.readouterr().out
    result = ad.read_h5ad(out)
    assert "scdcc" in result.obs and result.X is not None
    assert ad.read_h5ad(path).X is None  # the input file is left as it was
    # the counts in layers['counts'], found without --layer
    empty.layers["counts"] = empty.layers.pop("umi")
    empty.write_h5ad(path)
    assert main(["run", str(path), "-m", "scdcc", "-k", "3", "-o", str(out), *TINY]) == 0
    assert "X is empty: prepared from a copy of layers['counts']" in capsys.readouterr().out


def test_progress_bars_unless_quiet():
    from scdeepclust._cli import _tool_options, build_parser

    run = ["run", "in.h5ad", "-m", "desc", "-o", "o.h5ad"]
    for extra, progress in (([], True), (["--quiet"], False)):
        args = build_parser().parse_args([*run, *extra])
        assert _tool_options(args, "desc")["progress"] is progress


def test_run_with_protein_key_normalises_antibody_counts_and_keeps_them(sim, tmp_path, capsys):
    rng = np.random.default_rng(0)
    group = sim.obs["group"].cat.codes.to_numpy()
    counts = rng.poisson(np.stack([np.full(sim.n_obs, 800), 20 + 60 * (group == 1)], 1))
    sim.obsm["protein"] = pd.DataFrame(counts, index=sim.obs_names, columns=["CD3", "CD19"])
    path, out = tmp_path / "cite.h5ad", tmp_path / "p.h5ad"
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "scdcc", "-k", "3", "-o", str(out), *TINY]
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*holds counts")  # not from the tool
        assert main([*args, "--protein-key", "protein"]) == 0
    text = capsys.readouterr().out
    assert (
        "proteins: obsm['protein'] holds antibody counts, normalised by a centred log-ratio "
        "per cell into obsm['protein_clr']" in text
    )
    assert "makes constraints of them" not in text
    pairs = ad.read_h5ad(out).uns["scdcc"]["n_constraints"]
    assert pairs["must_link"] > 0 and pairs["cannot_link"] > 0
    assert (
        f"trained with {pairs['must_link']} must-link and {pairs['cannot_link']} cannot-link "
        "pairs" in text
    )
    result = ad.read_h5ad(out)
    np.testing.assert_array_equal(result.obsm["protein"], counts)  # as the input held them
    expected = sdc.pp.clr(ad.read_h5ad(path), copy=True).obsm["protein"]
    np.testing.assert_allclose(result.obsm["protein_clr"], expected)
    assert result.uns["scdcc"]["params"]["protein_key"] == "protein_clr"

    # levels normalised already are read as they are
    sim.obsm["protein"] = np.log1p(counts) - np.log1p(counts).mean(0)
    sim.write_h5ad(path)
    assert main([*args, "--protein-key", "protein"]) == 0
    assert "proteins: obsm['protein'] used as given (levels, not antibody counts)" in (
        capsys.readouterr().out
    )
    result = ad.read_h5ad(out)
    assert "protein_clr" not in result.obsm
    assert result.uns["scdcc"]["params"]["protein_key"] == "protein"

    # without the option the proteins are only carried along, and the run says how to use them
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "(-m scdcc --protein-key protein makes constraints of them)" in text
    assert "must-link" not in text
    assert "protein_key" not in ad.read_h5ad(out).uns["scdcc"]["params"]

    # a result read again: its normalised counts are made anew, the same
    sim.obsm["protein"] = counts
    sim.write_h5ad(path)
    assert main([*args, "--protein-key", "protein"]) == 0
    again = tmp_path / "again.h5ad"
    rerun = ["run", str(out), "-m", "scdcc", "-k", "3", "-o", str(again), *TINY]
    assert main([*rerun, "--protein-key", "protein"]) == 0
    assert "into obsm['protein_clr']" in capsys.readouterr().out
    np.testing.assert_array_equal(
        ad.read_h5ad(again).obsm["protein_clr"], ad.read_h5ad(out).obsm["protein_clr"]
    )
    # where the input holds other values under that name, they are never written over
    sim.obsm["protein_clr"] = np.ones((sim.n_obs, 2))
    sim.write_h5ad(path)
    out.unlink()
    assert main([*args, "--protein-key", "protein"]) == 2
    assert "the input's obsm['protein_clr'] holds other values than the centred log-ratio" in (
        capsys.readouterr().err
    )
    assert not out.exists()


def test_protein_key_is_refused_for_desc_and_where_obsm_lacks_it(sim, tmp_path, capsys):
    path, out = tmp_path / "sim.h5ad", tmp_path / "o.h5ad"
    sim.obsm["adt"] = np.ones((sim.n_obs, 2))
    sim.write_h5ad(path)
    args = ["run", str(path), "-o", str(out), *TINY]
    assert main([*args, "-m", "desc", "--protein-key", "adt"]) == 2
    assert "--protein-key (constraints from protein levels) is for -m scdcc" in (
        capsys.readouterr().err
    )
    assert main([*args, "-m", "scdcc", "-k", "3", "--protein-key", "protein"]) == 2
    assert "--protein-key 'protein' is not in the input's obsm; keys: ['adt']" in (
        capsys.readouterr().err
    )
    # before the data are read, as for -m desc: constraints are not for distributed training
    for option in ("--protein-key", "--label-key"):
        assert main([*args, "-m", "scdcc", "--distributed", option, "x"]) == 2
        assert f"{option} makes pairwise constraints, which --distributed" in (
            capsys.readouterr().err
        )
    # counts normalised into obsm['X_clr'] would meet the embedding of --key-added clr
    sim.obsm["X"] = np.full((sim.n_obs, 2), 20)
    sim.write_h5ad(path)
    scdcc = [*args, "-m", "scdcc", "-k", "3", "--protein-key", "X"]
    assert main([*scdcc, "--key-added", "clr"]) == 2
    assert "--key-added 'clr' would write the results over obsm['X_clr']" in (
        capsys.readouterr().err
    )
    assert not out.exists()


def test_cluster_counts_a_batch_mixing_weight_and_a_device_are_parsed_as_typed(tmp_path, capsys):
    run = ["run", str(tmp_path / "absent.h5ad"), "-o", str(tmp_path / "o.h5ad")]
    for options, refusal in (
        (["-m", "scdcc", "-k", "-3"], "argument -k/--n-clusters: -3 is not at least 2"),
        (
            ["-m", "desc", "--batch-key", "b", "--batch-mixing", "inf"],
            "argument --batch-mixing: inf is not a finite number >= 0",
        ),
        (["-m", "desc", "--device", "cuda:1x"], "'cuda:1x' is not 'auto', 'cpu', 'cuda' or"),
    ):
        with pytest.raises(SystemExit) as stopped:
            main([*run, *options])
        assert stopped.value.code == 2 and refusal in capsys.readouterr().err
    # a search over one number is taken: the file is looked for next
    assert main([*run, "-m", "scdcc", "-k", "3-3"]) == 2
    assert "input file not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "error, said",
    [
        (KeyError("no column 'x' in obs"), "scdeepclust: error: no column 'x' in obs\n"),
        (MemoryError(), "scdeepclust: error: out of memory\n"),
    ],
)
def test_a_key_error_or_a_bare_memory_error_of_a_tool_is_said_in_plain_words(
    sim, tmp_path, capsys, monkeypatch, error, said
):
    path, out = tmp_path / "sim.h5ad", tmp_path / "o.h5ad"
    sim.write_h5ad(path)

    def failing(adata, **kwargs):
        raise error

    monkeypatch.setattr(sdc.tl, "desc", failing)
    monkeypatch.setenv("WORLD_SIZE", "")  # set but empty: one process, no rank to name
    assert main(["run", str(path), "-m", "desc", "-o", str(out), *TINY]) == 1
    assert capsys.readouterr().err.endswith(said) and not out.exists()


def test_the_tools_advice_names_options_only_where_the_command_line_has_them():
    from scdeepclust._cli import in_command_terms

    for text, said in (
        ("pass distributed=True", "pass --distributed"),
        ("pass distributed=False to train alone", "pass distributed=False to train alone"),
        ("use n_clusters=(3, 9)", "use -k 3-9"),
        ("call `sdc.tl.desc(adata, max_epochs=5)`", "call `sdc.tl.desc(adata, max_epochs=5)`"),
        ("pass batch_mixing=0 (--batch-mixing 0)", "pass --batch-mixing 0"),
        ("the layer the device holds", "the layer the device holds"),
        ("raise `max_epochs`", "raise `--max-epochs`"),
        ("set key_added=None", "set key_added=None"),
    ):
        assert in_command_terms(text) == said


def _options_given_to(tool, adata, tmp_path, monkeypatch, *options, file="in.h5ad") -> dict:
    """Run `run -m TOOL` on `adata` (written to `file`) up to the tool: the options it gets."""
    path, out = tmp_path / file, tmp_path / "o.h5ad"
    adata.write_h5ad(path)
    given = {}

    def recorded(adata, *args, **kwargs):
        given.update(kwargs, args=args, adata=adata)
        raise RuntimeError("recorded")

    monkeypatch.setattr(sdc.tl, tool, recorded)
    assert main(["run", str(path), "-m", tool, *options, "-o", str(out)]) == 1
    return given


@pytest.mark.parametrize(
    "tool, options",
    [
        # suffixes in capitals, of the input and of the figure
        ("desc", ["--plot", "UMAP.PNG"]),
        # known labels with a resolution: Leiden at it, no search that the resolution would miss
        ("scdcc", ["--label-key", "known", "--resolution", "0.5"]),
    ],
)
def test_options_that_have_an_effect_reach_the_tool(sim, tmp_path, monkeypatch, tool, options):
    sim.obs["known"] = sim.obs["group"].astype(str).where(np.arange(sim.n_obs) % 2 == 0)
    assert _options_given_to(tool, sim, tmp_path, monkeypatch, *options, *TINY, file="SIM.H5AD")


def _counts_only_in_raw(sim):
    """Seurat's export: counts in .raw only; X log-normalised, fewer genes in another order."""
    adata = ad.AnnData(sim.layers["counts"].copy(), obs=sim.obs[[]], var=sim.var[[]])
    adata.raw = adata.copy()  # not adata: .raw would share X, normalised in place below
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    return adata[:, adata.var_names[::-2]].copy()


@pytest.mark.parametrize("tool", ["scdcc", "desc"])
def test_layer_raw_reads_the_counts_of_xs_genes_from_raw(sim, tmp_path, monkeypatch, tool):
    adata = _counts_only_in_raw(sim)
    given = _options_given_to(tool, adata, tmp_path, monkeypatch, "--layer", "raw", *TINY)
    if tool == "scdcc":
        assert given["layer"] == "counts"
    counts = given["adata"].layers["counts"]
    expected = sim[:, adata.var_names].layers["counts"]
    np.testing.assert_array_equal(np.asarray(counts.todense()), expected.toarray())
    assert not sdc.pp.is_count_matrix(given["adata"].X)  # log-normalised, as the recipe left it


def test_scdcc_without_counts_but_a_raw_of_counts_is_told_of_layer_raw(sim, tmp_path, capsys):
    path, out = tmp_path / "in.h5ad", tmp_path / "o.h5ad"
    adata = _counts_only_in_raw(sim)
    adata.write_h5ad(path)
    assert main(["run", str(path), "-m", "scdcc", "-o", str(out), *TINY]) == 2
    assert "the input's .raw holds counts: pass --layer raw" in capsys.readouterr().err
    assert main(["run", str(path), "-m", "scdcc", "--layer", "lognorm", "-o", str(out)]) == 2
    assert "(--layer raw reads the counts in its .raw)" in capsys.readouterr().err
    del adata.raw
    adata.write_h5ad(path)
    assert main(["run", str(path), "-m", "scdcc", "--layer", "raw", "-o", str(out)]) == 2
    assert "the input has no .raw and no layer 'raw'" in capsys.readouterr().err
    assert not out.exists()


def test_an_only_layer_of_counts_is_read_before_a_raw_of_counts(sim, tmp_path, monkeypatch):
    adata = _counts_only_in_raw(sim)
    adata.layers["umi"] = sim[:, adata.var_names].layers["counts"].copy()
    adata.X = None
    given = _options_given_to("scdcc", adata, tmp_path, monkeypatch, "-k", "3", *TINY)
    # not refused for the .raw: the counts reach the tool from the only layer, through X
    counts = given["adata"].layers["counts"].toarray()
    np.testing.assert_array_equal(counts, adata.layers["umi"].toarray())


def test_layer_raw_with_repeated_gene_names(sim, tmp_path, monkeypatch, capsys):
    adata = _counts_only_in_raw(sim)
    raw = adata.raw.to_adata()
    unread = np.setdiff1d(raw.var_names, adata.var_names)
    raw.var_names = raw.var_names.where(~raw.var_names.isin(unread[:2]), unread[0])
    adata.raw = raw  # two genes X does not read share a name: X's counts are clear
    given = _options_given_to("scdcc", adata, tmp_path, monkeypatch, "--layer", "raw", *TINY)
    expected = sim[:, adata.var_names].layers["counts"]
    np.testing.assert_array_equal(given["adata"].layers["counts"].toarray(), expected.toarray())
    raw.var_names = raw.var_names.where(raw.var_names != unread[2], adata.var_names[0])
    adata.raw = raw  # a gene X reads is repeated: refused, not pandas' InvalidIndexError
    path, out = tmp_path / "in.h5ad", tmp_path / "o.h5ad"
    adata.write_h5ad(path)
    assert main(["run", str(path), "-m", "scdcc", "--layer", "raw", "-o", str(out)]) == 2
    assert "the input's .raw repeats 1 of the gene names X reads" in capsys.readouterr().err


def test_layer_raw_refuses_a_raw_without_xs_genes_or_without_counts(sim, tmp_path, capsys):
    path, out = tmp_path / "in.h5ad", tmp_path / "o.h5ad"
    adata = _counts_only_in_raw(sim)
    adata.raw = adata[:, 1:].copy()  # log-normalised values, one gene short
    adata.write_h5ad(path)
    assert main(["run", str(path), "-m", "desc", "--layer", "raw", "-o", str(out)]) == 2
    assert "the input's .raw lacks 1 of X's 60 genes" in capsys.readouterr().err
    adata.raw = adata.copy()
    adata.write_h5ad(path)
    assert main(["run", str(path), "-m", "desc", "--layer", "raw", "-o", str(out)]) == 2
    assert "the input's .raw does not hold counts" in capsys.readouterr().err


def test_missing_label_reads_a_value_as_no_label(sim, tmp_path, capsys):
    """R writes NA as text: a CLI user could not make those cells unlabelled but in Python."""
    path, out = tmp_path / "in.h5ad", tmp_path / "o.h5ad"
    group = sim.obs["group"].astype(str).to_numpy()
    sim.obs["known"] = pd.Categorical(np.where(np.arange(sim.n_obs) % 3 == 0, group, " NA"))
    sim.obs["truth"] = np.where(np.arange(sim.n_obs) % 10 == 0, "NA", group)
    # repeated cell names, and a cell the recipe removes (no counts): rows are kept by position
    sim.obs_names = [f"c{i % 120}" for i in range(sim.n_obs)]
    counts = sim.layers.pop("counts").toarray()
    counts[5] = 0
    sim.X = sparse.csr_matrix(counts)
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "scdcc", "-k", "3", "--label-key", "known", "--truth", "truth"]
    assert main([*args, "-o", str(out), *TINY]) == 2  # NA labels every cell
    said = capsys.readouterr().err
    assert "e.g. `--missing-label 'NA'`" in said and "name their value with --missing-label" in said
    assert main([*args, "--missing-label", "NA", "-o", str(out), *TINY]) == 0
    said = capsys.readouterr().out
    assert "obs['known']: 160 cells read as unlabelled" in said
    assert "obs['truth']: 24 cells read as unlabelled" in said
    unlabelled = (np.arange(sim.n_obs) % 3 != 0) & (np.arange(sim.n_obs) % 10 != 0)
    unlabelled[5] = False  # removed
    assert f"on the {unlabelled.sum()} cells without a 'known' label" in said
    result = ad.read_h5ad(out)
    kept = np.arange(sim.n_obs) != 5
    for column in ("known", "truth"):  # as the run read them
        values = sim.obs[column].astype(str).str.strip().to_numpy()[kept]
        assert (result.obs[column].isna().to_numpy() == (values == "NA")).all()
    assert "scdcc" in result.obs


def test_missing_label_matches_a_code_in_a_column_of_numbers(sim, tmp_path, monkeypatch, capsys):
    sim.obs["known"] = np.where(np.arange(sim.n_obs) % 3 == 0, sim.obs["group"].cat.codes, -1.0)
    given = _options_given_to("scdcc", sim, tmp_path, monkeypatch, "--label-key", "known",
                              "--missing-label", "-1", *TINY)  # fmt: skip
    assert "obs['known']: 160 cells read as unlabelled" in capsys.readouterr().out
    assert given["adata"].obs["known"].isna().sum() == 160


def test_a_label_key_left_without_labels_is_refused_in_the_options_words(sim, tmp_path, capsys):
    """Every label read as missing: the refusal named no column and no way out."""
    path, out = tmp_path / "in.h5ad", tmp_path / "o.h5ad"
    sim.obs["known"] = "NA"
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "scdcc", "-k", "3", "--label-key", "known"]
    assert main([*args, "--missing-label", "NA", "-o", str(out), *TINY]) == 2
    said = capsys.readouterr().err
    assert "error: --label-key 'known' labels no cell (every value is missing)" in said
    assert "or leave --label-key out" in said
    assert "preparing the data" not in capsys.readouterr().out + said
    assert not out.exists()
    # text 'NA' alone: one type, which --missing-label makes no label
    assert main([*args, "-o", str(out), *TINY]) == 2
    said = capsys.readouterr().err
    assert "labels 240 cells, all 'NA'" in said and "e.g. `--missing-label 'NA'`" in said


def test_missing_label_needs_a_column_and_a_value_found(sim, scdcc_h5, tmp_path, capsys):
    path, out = tmp_path / "in.h5ad", tmp_path / "o.h5ad"
    sim.obs["truth"] = sim.obs["group"].astype(str)
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "desc", "--missing-label", "NA", "-o", str(out), *TINY]
    assert main(args) == 2
    assert "--missing-label names a value of the --label-key or --truth" in capsys.readouterr().err
    assert main([*args, "--truth", "truth"]) == 0
    assert "no cell of obs['truth'] holds 'NA' (--missing-label)" in capsys.readouterr().err
    # a file of scDCC's layout brings its labels as the truth, if it has any
    args[1] = str(scdcc_h5)
    assert main(args) == 0
    assert "no cell of obs['label'] holds 'NA'" in capsys.readouterr().err
    with h5py.File(scdcc_h5, "a") as f:
        del f["Y"]
    assert main(args) == 0
    assert "the input brings no labels to read --missing-label in" in capsys.readouterr().err


def test_an_output_path_that_leads_to_the_input_is_refused(sim, tmp_path, capsys):
    path = tmp_path / "sim.h5ad"
    sim.write_h5ad(path)
    before = path.read_bytes()
    (tmp_path / "sub").mkdir()
    out = tmp_path / "sub" / ".." / "sim.h5ad"
    assert main(["run", str(path), "-m", "desc", "-o", str(out), *TINY]) == 2
    assert "is the input file" in capsys.readouterr().err
    assert path.read_bytes() == before


def test_a_world_size_left_set_outside_torchrun_does_not_refuse_the_run(
    sim, tmp_path, capsys, monkeypatch
):
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert _options_given_to("desc", sim, tmp_path, monkeypatch, *TINY)
    assert "torchrun" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "edit, options, fragment",
    [
        (  # the cells without a label have no truth either: said so, not "labels every cell"
            "partly_labelled",
            ["-m", "scdcc", "--label-key", "lab", "--truth", "truth"],
            "--truth 'truth' has no label for any cell without a --label-key 'lab' label",
        ),
        (
            "confidence_column",
            ["-m", "desc", "--truth", "desc_confidence"],
            "--key-added 'desc' would write the clusters over the --truth column 'desc_confidence'",
        ),
        (
            "confidence_index",
            ["-m", "desc"],
            "--key-added 'desc' would add the column 'desc_confidence', the name of the input's "
            "cell index",
        ),
    ],
)
def test_columns_the_run_could_not_score_or_would_write_over_are_refused(
    sim, tmp_path, capsys, edit, options, fragment
):
    path, out = tmp_path / "sim.h5ad", tmp_path / "o.h5ad"
    if edit == "partly_labelled":
        sim.obs["lab"] = sim.obs["group"].where(np.arange(sim.n_obs) >= 10)
        sim.obs["truth"] = sim.obs["group"].where(np.arange(sim.n_obs) >= 10)
    elif edit == "confidence_column":
        sim.obs["desc_confidence"] = sim.obs["group"]
    else:
        sim.obs.index.name = "desc_confidence"
    sim.write_h5ad(path)
    assert main(["run", str(path), "-o", str(out), *options, *TINY]) == 2
    assert fragment in capsys.readouterr().err and not out.exists()


def test_demo_refuses_an_out_that_is_a_file(tmp_path, capsys):
    (tmp_path / "results").write_text("")
    assert main(["demo", "--out", str(tmp_path / "results"), *TINY]) == 2
    assert f"--out {tmp_path / 'results'} is a file; name a folder" in capsys.readouterr().err


def test_durations_of_a_minute_or_more_are_said_in_minutes_and_seconds():
    from scdeepclust._cli import _duration

    assert _duration(12.34) == "12.3 s" and _duration(65.2) == "1 min 05 s"
    assert _duration(59.96) == "1 min 00 s"  # was "60.0 s"
    assert _duration(3599.6) == "1 h 00 min 00 s" and _duration(86400) == "24 h 00 min 00 s"


def test_a_resolution_given_reaches_the_tool(sim, tmp_path, monkeypatch):
    given = _options_given_to("desc", sim, tmp_path, monkeypatch, "--resolution", "0.3")
    assert given["resolution"] == 0.3


def test_more_than_many_genes_marked_by_the_user_are_read_as_marked(tmp_path, monkeypatch):
    """The command line reads every gene where the recipe kept them all unmarked; genes the
    input marks itself, however many, stay its choice (mask_var left to the tool)."""
    adata = sdc.datasets.simulate(n_cells=40, n_genes=3200, n_groups=2, random_state=0)
    marked = np.zeros(adata.n_vars, dtype=bool)
    marked[:3100] = True
    adata.var["highly_variable"] = marked
    assert "mask_var" not in _options_given_to("desc", adata, tmp_path, monkeypatch)


def test_a_label_key_that_labels_every_cell_is_refused(sim, tmp_path, capsys):
    """Labelled cells keep their label: the run would give the column back as its clusters
    (the tool's warning named keep_labels, which the command line has not)."""
    sim.obs["known"] = sim.obs["group"].astype(str)
    path, out = tmp_path / "sim.h5ad", tmp_path / "o.h5ad"
    sim.write_h5ad(path)
    assert main(["run", str(path), "-m", "scdcc", "--label-key", "known", "-o", str(out)]) == 2
    assert "--label-key 'known' labels every cell, and labelled cells keep" in (
        capsys.readouterr().err
    )
    assert not out.exists()


def test_layer_raw_leaves_the_layers_the_input_has(sim, tmp_path, monkeypatch):
    """.raw's counts go to a layer of a new name beside a 'counts' layer, and a layer of the
    input named 'raw' is read as it is."""
    adata = _counts_only_in_raw(sim)
    expected = sim[:, adata.var_names].layers["counts"].toarray()
    adata.layers["counts"] = adata.X.copy()  # log-normalised values under that name
    given = _options_given_to("scdcc", adata, tmp_path, monkeypatch, "--layer", "raw", *TINY)
    assert given["layer"] == "raw_counts"
    np.testing.assert_array_equal(given["adata"].layers["raw_counts"].toarray(), expected)
    np.testing.assert_array_equal(given["adata"].layers["counts"].toarray(), adata.X.toarray())
    adata.layers["raw"] = sparse.csr_matrix(expected)
    given = _options_given_to("scdcc", adata, tmp_path, monkeypatch, "--layer", "raw", *TINY)
    assert given["layer"] == "raw" and "raw_counts" not in given["adata"].layers


def test_a_raw_of_counts_is_not_asked_for_where_counts_are_read_already(sim, tmp_path, monkeypatch):
    """scdcc reads layers['counts'], or counts in X: a .raw of counts beside them changes
    nothing, and --layer raw is not asked for."""
    adata = _counts_only_in_raw(sim)
    expected = sim[:, adata.var_names].layers["counts"].toarray()
    adata.layers["counts"] = sparse.csr_matrix(expected)
    given = _options_given_to("scdcc", adata, tmp_path, monkeypatch, *TINY)
    np.testing.assert_array_equal(given["adata"].layers["counts"].toarray(), expected)
    del adata.layers["counts"]
    adata.X = sparse.csr_matrix(expected)
    given = _options_given_to("scdcc", adata, tmp_path, monkeypatch, *TINY)
    np.testing.assert_array_equal(given["adata"].layers["counts"].toarray(), expected)


@pytest.mark.parametrize("value, text", [(" NA ", "NA"), ("nan", "nan")])
def test_missing_label_counts_the_cells_it_makes_unlabelled(
    sim, tmp_path, monkeypatch, capsys, value, text
):
    """The value given is read stripped, cells missing already are not counted again, and the
    value leaves no category behind."""
    third = np.arange(sim.n_obs) % 3
    group = sim.obs["group"].astype(str).to_numpy()
    sim.obs["known"] = pd.Categorical(np.where(third == 0, group, np.where(third == 1, text, None)))
    given = _options_given_to("scdcc", sim, tmp_path, monkeypatch, "--label-key", "known",
                              "--missing-label", value, *TINY)  # fmt: skip
    assert "obs['known']: 80 cells read as unlabelled" in capsys.readouterr().out
    known = given["adata"].obs["known"]
    assert known.isna().sum() == 160 and list(known.cat.categories) == ["0", "1", "2"]


def test_missing_label_reads_a_column_named_by_both_options_once(sim, tmp_path, capsys):
    path, out = tmp_path / "in.h5ad", tmp_path / "o.h5ad"
    sim.obs["known"] = np.where(np.arange(sim.n_obs) % 3 == 0, sim.obs["group"].astype(str), "NA")
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "scdcc", "--label-key", "known", "--truth", "known",
            "--missing-label", "NA", "-o", str(out), *TINY]  # fmt: skip
    assert main(args) == 2  # no cell left to score
    said = capsys.readouterr()
    assert "obs['known']: 160 cells read as unlabelled" in said.out
    assert "no cell of obs['known'] holds" not in said.err


def test_missing_label_matches_a_value_of_a_float32_column_as_its_text_shows_it(
    sim, tmp_path, monkeypatch
):
    """0.1 has no float32 of its own value: the column's text '0.1' is matched all the same."""
    codes = sim.obs["group"].cat.codes.to_numpy()
    sim.obs["known"] = np.where(np.arange(sim.n_obs) % 3 == 0, codes, 0.1).astype(np.float32)
    given = _options_given_to("scdcc", sim, tmp_path, monkeypatch, "--label-key", "known",
                              "--missing-label", "0.1", *TINY)  # fmt: skip
    assert given["adata"].obs["known"].isna().sum() == 160


def test_a_run_stopped_by_its_time_limit_goes_on_with_resume(sim, tmp_path, capsys, monkeypatch):
    """A job's time limit (SIGTERM) after the pretraining: --resume continues from the
    checkpoint in --checkpoint-dir to the labels of a run never stopped; the advice to resume
    is given in the command's terms."""
    import signal

    from scdeepclust.tl import _desc

    path = tmp_path / "sim.h5ad"
    sim.write_h5ad(path)
    common = ["run", str(path), "-m", "desc", "-k", "3", "--batch-size", "64", *TINY]
    assert main([*common, "-o", str(tmp_path / "whole.h5ad")]) == 0
    capsys.readouterr()
    stopped = [*common, "-o", str(tmp_path / "o.h5ad"), "--checkpoint-dir", str(tmp_path / "ck")]
    with monkeypatch.context() as m:
        m.setattr(_desc, "cluster_desc", lambda *a, **k: os.kill(os.getpid(), signal.SIGTERM))
        assert main(stopped) == 128 + signal.SIGTERM
    said = capsys.readouterr().err
    assert said.startswith(
        "scdeepclust: warning: interrupted; nothing was written. The same command with --resume "
        f"continues from the checkpoint in '{tmp_path / 'ck'}' (layer1 done"
    ), said
    assert "resume=True" not in said and "adata" not in said
    assert not (tmp_path / "o.h5ad").exists()
    assert main([*stopped, "--resume", "--checkpoint-every", "1"]) == 0
    assert "no checkpoint" not in capsys.readouterr().err  # it found the stopped run's
    resumed, whole = ad.read_h5ad(tmp_path / "o.h5ad"), ad.read_h5ad(tmp_path / "whole.h5ad")
    np.testing.assert_array_equal(resumed.obs["desc"], whole.obs["desc"])


@pytest.mark.parametrize(
    ("given", "refused"),
    [
        (["--resume"], "--resume needs --checkpoint-dir"),
        (["--checkpoint-every", "5"], "--checkpoint-every needs --checkpoint-dir"),
        (["--checkpoint-dir", "ck", "--distributed"], "cannot be used with --distributed"),
        (["--checkpoint-dir", "afile"], "is a file; name a folder"),
        (["--checkpoint-dir", " "], "--checkpoint-dir needs a folder"),
    ],
)
def test_checkpoint_options_given_wrong_are_refused_before_reading(
    tmp_path, capsys, given, refused
):
    (tmp_path / "afile").write_text("")
    path = tmp_path / "missing-is-fine.h5ad"
    path.write_text("not read: refused first")
    args = ["run", str(path), "-m", "desc", "-o", str(tmp_path / "o.h5ad"), *given]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(args) == 2
    finally:
        os.chdir(cwd)
    assert refused in capsys.readouterr().err


def test_a_checkpoint_of_another_command_is_refused_in_the_command_s_terms(sim, tmp_path, capsys):
    path, ck = tmp_path / "sim.h5ad", str(tmp_path / "ck")
    sim.write_h5ad(path)
    common = ["run", str(path), "-m", "desc", "--batch-size", "64", *TINY, "--checkpoint-dir", ck]
    assert (
        main([*common, "-k", "3", "-o", str(tmp_path / "a.h5ad"), "--checkpoint-every", "1"]) == 0
    )
    assert main([*common, "-k", "3", "-o", str(tmp_path / "b.h5ad")]) == 1
    assert "already holds a checkpoint. Pass --resume to continue" in capsys.readouterr().err
    assert main([*common, "-k", "4", "-o", str(tmp_path / "b.h5ad"), "--resume"]) == 1
    said = capsys.readouterr().err
    assert "can only be resumed by the same command; they differ in" in said, said
    assert not (tmp_path / "b.h5ad").exists()


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_stop_that_python_ignored_while_writing_still_stops_the_run(
    sim, tmp_path, capsys, monkeypatch, name
):
    """A signal taken in a garbage collector's callback of h5py's (as writing the output
    file runs them) was printed by Python as ignored, and the run ended with status 0."""
    import signal

    signum = getattr(signal, name)
    path, out = tmp_path / "sim.h5ad", tmp_path / "o.h5ad"
    sim.write_h5ad(path)
    write = ad.AnnData.write_h5ad

    def swallowed(self, filename, **kwargs):
        try:  # as Python does with an exception raised in such a callback
            os.kill(os.getpid(), signum)
        except KeyboardInterrupt:
            pass
        write(self, filename, **kwargs)

    monkeypatch.setattr(ad.AnnData, "write_h5ad", swallowed)
    args = ["run", str(path), "-m", "desc", "-k", "3", "--batch-size", "64", "-o", str(out)]
    hook = sys.unraisablehook
    assert main([*args, *TINY]) == 128 + signum
    assert sys.unraisablehook is hook
    said = capsys.readouterr().err
    assert "went on past the stop and wrote its results" in said
    assert ad.read_h5ad(out).obs["desc"].notna().all()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_cells_the_recipe_removes_are_warned_of_on_stderr(sim, tmp_path, monkeypatch, capsys):
    """A pipeline joining the results back on cell names lost them with only a line on stdout."""
    counts = sim.layers["counts"].toarray()
    counts[:3] = 0  # three cells without any count
    sim.X = sim.layers["counts"] = sparse.csr_matrix(counts)
    given = _options_given_to("desc", sim, tmp_path, monkeypatch, *TINY)
    said = capsys.readouterr()
    assert "removed 3 cells without any count" in said.out
    assert (
        f"warning: 3 of the input's {sim.n_obs} cells have no count (in the genes read) and "
        in (said.err)
    )
    assert given["adata"].n_obs == sim.n_obs - 3
    _options_given_to("desc", sim[3:].copy(), tmp_path, monkeypatch, *TINY)
    assert "warning" not in capsys.readouterr().err


def test_refine_is_an_option_of_the_command_as_its_advice_says(sim, tmp_path, monkeypatch, capsys):
    """The advice "To keep them, pass refine=0" named an option the command did not have."""
    from scdeepclust._cli import in_command_terms

    assert in_command_terms("To keep them, pass refine=0.") == "To keep them, pass --refine 0."
    for tool in ("desc", "scdcc"):
        given = _options_given_to(tool, sim, tmp_path, monkeypatch, "-k", "3", "--refine", "0")
        assert given["refine"] == 0.0
        assert "refine" not in _options_given_to(tool, sim, tmp_path, monkeypatch, "-k", "3")
    capsys.readouterr()
    path = tmp_path / "in.h5ad"
    with pytest.raises(SystemExit) as stop:
        main(["run", str(path), "-m", "desc", "-o", str(tmp_path / "o.h5ad"), "--refine", "2"])
    assert stop.value.code == 2
    assert "--refine: 2 is not a number in [0, 1]" in capsys.readouterr().err


def test_the_help_gives_the_tools_own_default_resolutions(capsys):
    from scdeepclust.models._desc import DEFAULT_RESOLUTION as DESC_RESOLUTION
    from scdeepclust.models._scdcc import DEFAULT_RESOLUTION as SCDCC_RESOLUTION

    with pytest.raises(SystemExit):
        main(["run", "--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert f"(default: desc {DESC_RESOLUTION}, scdcc {SCDCC_RESOLUTION})" in said


def test_an_empty_key_added_is_refused(tmp_path, capsys):
    """It fell back to the method's name without a word."""
    (tmp_path / "in.h5ad").write_text("refused before it is read")
    args = ["run", str(tmp_path / "in.h5ad"), "-m", "desc", "-o", str(tmp_path / "o.h5ad")]
    assert main([*args, "--key-added", " "]) == 2
    assert "--key-added needs a name for the results" in capsys.readouterr().err


def test_save_model_writes_a_model_that_maps_new_cells(sim, tmp_path, capsys):
    """A pipeline of the command line alone could not map new cells later."""
    path, out, folder = tmp_path / "sim.h5ad", tmp_path / "o.h5ad", tmp_path / "models" / "m"
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "desc", "-k", "3", "--batch-size", "64", "-o", str(out)]
    assert main([*args, *TINY, "--save-model", str(folder)]) == 0
    assert f"wrote the model into {folder}" in capsys.readouterr().out
    model = sdc.models.load(folder)
    new = ad.read_h5ad(out)[:40].copy()  # log-normalised as the command prepared it
    sdc.tl.map_to_model(new, model, key_added="mapped")
    assert set(new.obs["mapped"].cat.categories) <= set(new.obs["desc"].cat.categories)
    assert main([*args, *TINY, "--save-model", str(folder)]) == 0  # replaced, as OUT is
    (tmp_path / "afile").write_text("")
    capsys.readouterr()
    assert main([*args, *TINY, "--save-model", str(tmp_path / "afile")]) == 2
    assert f"--save-model {tmp_path / 'afile'} is a file" in capsys.readouterr().err


def test_threads_sets_torch_s_threads_for_the_run_and_the_log_says_how_many(
    sim, tmp_path, monkeypatch, capsys
):
    """The labels depend on the thread count, which a pipeline could neither set nor read."""
    import torch

    before = torch.get_num_threads()
    seen = []

    def recorded(adata, *args, **kwargs):
        seen.append(torch.get_num_threads())
        raise RuntimeError("recorded")

    path = tmp_path / "in.h5ad"
    sim.write_h5ad(path)
    monkeypatch.setattr(sdc.tl, "desc", recorded)
    target = 3 if before != 3 else 2
    args = ["run", str(path), "-m", "desc", "-o", str(tmp_path / "o.h5ad"), "--device", "cpu"]
    assert main([*args, "--threads", str(target)]) == 1
    assert seen == [target] and torch.get_num_threads() == before
    assert f"x 120 genes in {target} CPU threads" in capsys.readouterr().out


def test_output_paths_as_a_pipeline_writes_them(sim, tmp_path, monkeypatch, capsys):
    """OUT.H5AD was refused where INPUT.H5AD was read; a path through a file said only
    "[Errno 17] File exists"."""
    (tmp_path / "afile").write_text("")
    path = tmp_path / "in.h5ad"
    path.write_text("refused before it is read")
    assert main(["run", str(path), "-m", "desc", "-o", str(tmp_path / "afile" / "o.h5ad")]) == 2
    assert f"cannot be written: {tmp_path / 'afile'} is a file" in capsys.readouterr().err
    sim.write_h5ad(path)
    monkeypatch.setattr(sdc.tl, "desc", lambda *a, **k: None)
    assert main(["run", str(path), "-m", "desc", "-o", str(tmp_path / "O.H5AD"), *TINY]) == 1
    assert "must end in" not in capsys.readouterr().err  # refused by nothing but the stub


def test_an_output_place_without_room_for_the_file_is_not_written_at_all(
    scdcc_h5, tmp_path, capsys, monkeypatch
):
    """HDF5 meeting a full disk crashed the process (a segmentation fault), left a partial file
    and kept no result: the room is checked first, and the result kept in the temporary folder."""
    import shutil

    import scdeepclust._cli as command_line

    out = tmp_path / "full" / "out.h5ad"
    (tmp_path / "tmp").mkdir()
    disk_usage = shutil.disk_usage

    def usage(path):
        found = disk_usage(path)
        full = str(path).startswith(str(tmp_path / "full")) or Path(path) == tmp_path
        return found._replace(free=1000) if full else found

    monkeypatch.setattr(command_line.shutil, "disk_usage", usage)
    monkeypatch.setattr(command_line.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    args = ["run", str(scdcc_h5), "-m", "scdcc", "-k", "3", "-o", str(out), *TINY]
    assert main(args) == 1
    error = capsys.readouterr().err
    assert f"-o/--output {out} could not be written ([Errno 28] about " in error
    assert "MiB free there); the trained result was written to" in error
    assert not (tmp_path / "full").exists() or not list((tmp_path / "full").iterdir())
    kept = list((tmp_path / "tmp").glob("scdeepclust-*-out.h5ad"))
    assert len(kept) == 1 and "scdcc" in ad.read_h5ad(kept[0]).obs


def test_a_checkpoint_folder_named_as_an_option_keeps_its_name(sim, tmp_path, capsys):
    """Folder names "batch_size" or "same call" were written as "--batch-size", "same command"."""
    from scdeepclust._cli import in_command_terms

    assert in_command_terms("cannot write '/sys/same call': the same call") == (
        "cannot write '/sys/same call': the same command"
    )
    path = tmp_path / "sim.h5ad"
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "desc", "-k", "3", "--batch-size", "64", *TINY, "--resume"]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main([*args, "-o", "o.h5ad", "--checkpoint-dir", "batch_size"]) == 0
    finally:
        os.chdir(cwd)
    assert "there is no checkpoint in 'batch_size' yet" in capsys.readouterr().err


def test_checkpoint_options_reach_the_tool_and_leave_scanpy_s_logger_as_it_was(
    sim, tmp_path, monkeypatch
):
    """C07: --checkpoint-every was dropped without a word (every 10 epochs instead); L05: the
    filter that says the tools' warnings in the command's terms stayed on scanpy's logger."""
    _options_given_to("desc", sim, tmp_path, monkeypatch)  # filters a run keeps: not of this
    before = list(sc.settings._root_logger.filters)
    ck = tmp_path / "ck"
    args = ["--checkpoint-dir", str(ck), "--checkpoint-every", "3", "--resume"]
    given = _options_given_to("desc", sim, tmp_path, monkeypatch, *args)
    assert given["checkpoint_every"] == 3 and given["resume"] is True
    assert Path(given["checkpoint_dir"]) == ck
    assert sc.settings._root_logger.filters == before
    given = _options_given_to("scdcc", sim, tmp_path, monkeypatch, "--checkpoint-dir", str(ck))
    assert "checkpoint_every" not in given and given["resume"] is False


def test_refine_takes_both_ends_of_its_range(sim, tmp_path, monkeypatch):
    """C10: --refine 1 (every cell trains the classifier) is in [0, 1]."""
    for value in ("0", "1"):
        given = _options_given_to("desc", sim, tmp_path, monkeypatch, "--refine", value)
        assert given["refine"] == float(value)


def test_the_log_says_the_cpu_threads_only_of_a_run_on_the_cpu(sim, tmp_path, monkeypatch, capsys):
    """T04/T05: the default --device auto trains on the CPU where no GPU is found."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _options_given_to("desc", sim, tmp_path, monkeypatch)
    assert f"x 120 genes in {torch.get_num_threads()} CPU threads" in capsys.readouterr().out
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    _options_given_to("desc", sim, tmp_path, monkeypatch)
    assert "CPU threads" not in capsys.readouterr().out


def test_the_first_of_two_stops_python_ignored_is_the_one_the_run_stops_by(
    tmp_path, monkeypatch, capsys
):
    """S03: the stop said and the exit status are those of the first signal taken; S02: a
    Ctrl-C is said as one ("interrupted"), not as a signal."""
    import signal

    import scdeepclust._cli as command_line

    def swallowing(args):
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:  # as Python does with an exception raised in a garbage collector's callback
                os.kill(os.getpid(), signum)
            except KeyboardInterrupt:
                pass
        return 0

    monkeypatch.setattr(command_line, "_run", swallowing)
    args = ["run", str(tmp_path / "in.h5ad"), "-m", "desc", "-o", str(tmp_path / "o.h5ad")]
    assert main(args) == 128 + signal.SIGINT
    assert capsys.readouterr().err.strip().endswith("scdeepclust: interrupted")


def test_an_ignored_interrupt_is_not_printed_but_other_unraisable_errors_are(monkeypatch):
    """S05/S10: only the KeyboardInterrupt Python ignores in a callback is left unsaid."""
    from scdeepclust._cli import _signals_as_interruptions

    seen = []
    monkeypatch.setattr(sys, "unraisablehook", lambda info: seen.append(type(info.exc_value)))

    class Raising:
        def __init__(self, error):
            self.error = error

        def __del__(self):
            raise self.error

    with _signals_as_interruptions():
        Raising(KeyboardInterrupt())
        Raising(ValueError("said"))
    assert seen == [ValueError]


def test_a_sigint_handler_of_the_caller_is_left_to_it():
    """S08: Ctrl-C is taken over only where Python's own handler has it."""
    import signal

    from scdeepclust._cli import _signals_as_interruptions

    def handler(signum, frame):
        pass

    previous = signal.signal(signal.SIGINT, handler)
    try:
        with _signals_as_interruptions():
            assert signal.getsignal(signal.SIGINT) is handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_single_cell_the_recipe_removes_is_warned_of(sim, tmp_path, monkeypatch, capsys):
    """R01: one cell lost to a pipeline joining on cell names is warned of as three are."""
    counts = sim.layers["counts"].toarray()
    counts[0] = 0
    sim.X = sim.layers["counts"] = sparse.csr_matrix(counts)
    _options_given_to("desc", sim, tmp_path, monkeypatch, *TINY)
    assert f"warning: 1 of the input's {sim.n_obs} cells have no count" in capsys.readouterr().err


def test_a_result_is_not_kept_in_a_temporary_folder_without_room_either(
    scdcc_h5, tmp_path, capsys, monkeypatch
):
    """W05: the result kept in the temporary folder is checked for room as the output is."""
    import shutil

    import scdeepclust._cli as command_line

    out = tmp_path / "full" / "out.h5ad"
    (tmp_path / "tmp").mkdir()
    disk_usage = shutil.disk_usage
    monkeypatch.setattr(
        command_line.shutil, "disk_usage", lambda path: disk_usage(path)._replace(free=1000)
    )
    monkeypatch.setattr(command_line.tempfile, "gettempdir", lambda: str(tmp_path / "tmp"))
    args = ["run", str(scdcc_h5), "-m", "scdcc", "-k", "3", "-o", str(out), *TINY]
    assert main(args) == 1
    assert "the trained result is lost" in capsys.readouterr().err
    assert not list((tmp_path / "tmp").iterdir())


def test_the_room_a_result_needs_counts_every_array_it_writes():
    """W06-W10: X, sparse layers (all their arrays), obs and var, and .raw."""
    from scdeepclust._cli import _bytes_in_memory

    adata = ad.AnnData(np.ones((50, 20)))
    empty = _bytes_in_memory(adata)
    assert empty >= adata.X.nbytes
    counts = sparse.random(50, 20, density=0.5, format="csr", dtype=np.float32, random_state=0)
    adata.layers["counts"] = counts
    with_layer = _bytes_in_memory(adata)
    assert with_layer - empty == counts.data.nbytes + counts.indices.nbytes + counts.indptr.nbytes
    obs = adata.obs.memory_usage(deep=True).sum()
    adata.obs["note"] = [f"cell {i} of a long description" for i in range(50)]
    with_obs = _bytes_in_memory(adata)
    assert with_obs - with_layer == adata.obs.memory_usage(deep=True).sum() - obs
    adata.raw = adata
    assert _bytes_in_memory(adata) - with_obs == (
        adata.raw.X.nbytes + adata.raw.var.memory_usage(deep=True).sum()
    )


def test_a_save_model_folder_that_cannot_be_written_is_refused_before_reading(tmp_path, capsys):
    """C13: a --save-model folder inside a file failed after hours of training."""
    (tmp_path / "afile").write_text("")
    path = tmp_path / "in.h5ad"
    path.write_text("refused before it is read")
    args = ["run", str(path), "-m", "desc", "-o", str(tmp_path / "o.h5ad")]
    assert main([*args, "--save-model", str(tmp_path / "afile" / "m")]) == 2
    assert f"cannot be written: {tmp_path / 'afile'} is a file" in capsys.readouterr().err


@pytest.mark.parametrize("tool", ["desc", "scdcc"])
def test_a_model_is_asked_of_the_tool_only_with_save_model(sim, tmp_path, monkeypatch, tool):
    """C15: return_model=True refuses repeated gene names that a run without a model takes."""
    assert _options_given_to(tool, sim, tmp_path, monkeypatch, "-k", "3")["return_model"] is False
    folder = str(tmp_path / "m")
    given = _options_given_to(tool, sim, tmp_path, monkeypatch, "-k", "3", "--save-model", folder)
    assert given["return_model"] is True


def test_only_the_warnings_scanpy_logs_are_said_in_the_command_s_terms(capsys):
    """L02: info lines (at scanpy's verbosity 'info') stay scanpy's; L04: a warning said in the
    command's terms is not said again by scanpy."""
    from scanpy import logging as logg

    from scdeepclust._cli import _logged_in_command_terms

    stream = io.StringIO()
    logfile, verbosity = sc.settings.logfile, sc.settings.verbosity
    sc.settings.logfile, sc.settings.verbosity = stream, "info"
    try:
        with _logged_in_command_terms("run", True):
            logg.info("    resuming from the checkpoint")
            logg.warning(
                "interrupted; nothing was written to adata. The same call with resume=True"
            )
    finally:
        sc.settings.logfile, sc.settings.verbosity = logfile, verbosity
    assert capsys.readouterr().err == (
        "scdeepclust: warning: interrupted; nothing was written. The same command with --resume\n"
    )
    assert "resuming from the checkpoint" in stream.getvalue()
    assert "interrupted" not in stream.getvalue()


def test_keys_and_attributes_of_other_objects_keep_their_python_names():
    """I04/I08: only the input's own adata.obs[...] and a checkpoint's config.* are translated."""
    from scdeepclust._cli import in_command_terms

    assert in_command_terms("config.random_state: 0 then, 1 now") == "--seed: 0 then, 1 now"
    assert in_command_terms("see model.config.random_state") == "see model.config.random_state"
    assert in_command_terms("set adata.obs['b']") == "set the input's obs['b']"
    assert in_command_terms("set new_adata.obs['b']") == "set new_adata.obs['b']"


def test_a_truth_column_of_measurements_is_warned_of(sim, tmp_path, monkeypatch, capsys):
    """--truth n_counts was scored as 240 cell types without a word."""
    sim.obs["code"] = sim.obs["group"].cat.codes.astype(float)  # types as numbers: no warning
    sim = sc.concat([sim] * 2, index_unique="-")  # 480 cells, more values than any annotation
    sim.obs["n_counts"] = np.asarray(sim.layers["counts"].sum(1)).ravel() + np.arange(480) * 1e3
    _options_given_to("desc", sim, tmp_path, monkeypatch, "--truth", "n_counts", *TINY)
    said = capsys.readouterr().err
    assert "--truth 'n_counts' holds 480 distinct numbers for 480 cells, as a measurement" in said
    _options_given_to("desc", sim, tmp_path, monkeypatch, "--truth", "code", *TINY)
    assert "distinct numbers" not in capsys.readouterr().err


def test_min_cluster_size_takes_cells_or_a_share(sim, tmp_path, monkeypatch, capsys):
    from scdeepclust._cli import in_command_terms

    for text, value in (("20", 20), ("0.01", 0.01), ("0", 0), (" 5 ", 5)):
        given = _options_given_to("desc", sim, tmp_path, monkeypatch, "--min-cluster-size", text)
        assert given["min_cluster_size"] == value
        assert type(given["min_cluster_size"]) is type(value)
    assert "min_cluster_size" not in _options_given_to("scdcc", sim, tmp_path, monkeypatch)
    assert "--min-cluster-size" in in_command_terms("(`min_cluster_size`; 0 keeps them)")
    capsys.readouterr()
    path = tmp_path / "in.h5ad"
    for text, said in (
        ("1.5", "--min-cluster-size: 1.5 is neither a number of cells (an integer >= 0) nor"),
        ("-1", "--min-cluster-size: -1 is neither"),
        ("many", "--min-cluster-size: 'many' is not a number"),
    ):
        with pytest.raises(SystemExit) as stop:
            main(["run", str(path), "-m", "desc", "-o", str(tmp_path / "o.h5ad"),
                  "--min-cluster-size", text])  # fmt: skip
        assert stop.value.code == 2
        assert said in capsys.readouterr().err


def test_merged_clusters_are_told_and_a_given_number_refuses_a_least_size(sim, tmp_path, capsys):
    path, out = tmp_path / "in.h5ad", tmp_path / "o.h5ad"
    sim.obs["known"] = np.where(np.arange(sim.n_obs) % 2, sim.obs["group"].astype(str), "")
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "desc", "-o", str(out), *TINY, "--resolution", "1"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main([*args, "--min-cluster-size", str(sim.n_obs)]) == 0
    said = capsys.readouterr().out
    small = ad.read_h5ad(out).uns["desc"]["small_clusters"]
    n = len(small["merged"])
    assert n >= 1
    assert (
        f"  {n} {'cluster' if n == 1 else 'clusters'} of fewer than {sim.n_obs} cells merged "
        f"into others ({int(small['cells_moved'])} cells moved; --min-cluster-size 0 keeps them)"
    ) in said
    assert main([*args, "--min-cluster-size", "0"]) == 0
    assert "merged into others" not in capsys.readouterr().out
    for given, options in (("-k K", ["-k", "3"]), ("--label-key", ["--label-key", "known"])):
        command = ["run", str(path), "-m", "scdcc", "-o", str(out), *options]
        assert main([*command, "--min-cluster-size", "5"]) == 2
        assert (
            "--min-cluster-size merges small clusters where their number comes from the data, "
            f"and with {given} it is given: leave --min-cluster-size out"
        ) in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*args, "--min-cluster-size", "20.0"])
    assert "(for 20 cells write 20)" in capsys.readouterr().err


def test_min_cluster_size_edges_on_the_command_line(sim, tmp_path, monkeypatch, capsys):
    given = _options_given_to("desc", sim, tmp_path, monkeypatch, "--min-cluster-size", "0.0")
    assert given["min_cluster_size"] == 0.0 and type(given["min_cluster_size"]) is float
    capsys.readouterr()
    path = tmp_path / "in.h5ad"
    for text, said in (
        ("1.0", "--min-cluster-size: 1.0 is neither a number of cells"),
        ("", "--min-cluster-size: '' is not a number"),
    ):
        with pytest.raises(SystemExit) as stop:
            main(["run", str(path), "-m", "desc", "-o", str(tmp_path / "o.h5ad"),
                  "--min-cluster-size", text])  # fmt: skip
        assert stop.value.code == 2
        assert said in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    helped = " ".join(capsys.readouterr().out.split())
    assert f"default {DEFAULT_MIN_CLUSTER_SIZE};" in helped


def test_a_quoted_value_inside_a_longer_expression_is_left_as_written():
    """The quoted value is an option's only where it stands alone: `layer='raw counts'.T` or
    `layer='a b'/c` are Python, not an option to rewrite."""
    from scdeepclust._cli import in_command_terms

    assert in_command_terms("pass `layer='raw counts'` to") == "pass `--layer 'raw counts'` to"
    for text in ("layer='raw counts'.T", "layer='raw counts']", "layer='a b'/c"):
        assert in_command_terms(text) == text


def test_a_quoted_value_is_quoted_for_the_shell_not_as_python_would():
    """shlex.quote, not repr: a backslash is kept single (repr doubles it)."""
    from scdeepclust._cli import in_command_terms

    text = "pass `layer='raw\\counts 2'` to"
    assert in_command_terms(text) == "pass `--layer 'raw\\counts 2'` to"


def test_key_added_over_several_entries_of_another_tool_names_them_all(sim, tmp_path, capsys):
    sim.uns["pca"] = {"variance": np.ones(4)}
    sim.obsm["X_pca"] = np.ones((sim.n_obs, 4), np.float32)
    path, out = tmp_path / "sim.h5ad", tmp_path / "o.h5ad"
    sim.write_h5ad(path)
    args = ["run", str(path), "-m", "scdcc", "-k", "3", "-o", str(out), "--key-added", "pca"]
    assert main([*args, "--pretrain-epochs", "1", "--max-epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert "would replace the input's uns['pca'], obsm['X_pca'], which no run" in err
    assert not out.exists()
