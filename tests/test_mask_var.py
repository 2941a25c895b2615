"""The genes a tool reads: `mask_var`, by default ``var['highly_variable']`` as in `sc.pp.pca`.

Genes marked by `sc.pp.highly_variable_genes` without `subset=True` (scanpy's tutorials keep
every gene) are trained on exactly as the subset would be.
"""

from __future__ import annotations

import re
import warnings
from unittest.mock import Mock

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc

import scdeepclust as sdc
from _helpers import ONE_EPOCH, counts_data
from scdeepclust._cli import main
from scdeepclust.pp._input import gene_mask

SHORT = dict(pretrain_epochs=2, max_epochs=2, progress=False, batch_size=64, n_clusters=3)


def _marked_data(tool: str):
    """Counts of 120 cells x 60 genes, log-normalised (and scaled for DESC), 20 genes marked."""
    adata = sdc.datasets.simulate(120, 60, 3, de_fraction=0.3, de_log_fold=2.0, random_state=4)
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, n_top_genes=20)
    if tool == "desc":
        adata.X = adata.X.toarray()
        sc.pp.scale(adata)
    return adata


def _run(tool: str, adata, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # short runs do not converge
        return getattr(sdc.tl, tool)(adata, copy=True, **{**SHORT, **kwargs})


@pytest.mark.parametrize("tool", ["desc", "scdcc"])
def test_marked_genes_train_as_their_subset_does(tool):
    adata = _marked_data(tool)
    subset = adata[:, adata.var["highly_variable"].to_numpy()].copy()
    del subset.var["highly_variable"]
    masked, alone = _run(tool, adata), _run(tool, subset)
    np.testing.assert_array_equal(masked.obsm[f"X_{tool}"], alone.obsm[f"X_{tool}"])
    assert (masked.obs[tool] == alone.obs[tool]).all()
    assert masked.uns[tool]["params"]["mask_var"] == "highly_variable"
    assert "mask_var" not in alone.uns[tool]["params"]
    # the same again from an array, recorded as such
    by_array = _run(tool, adata, mask_var=adata.var["highly_variable"].to_numpy())
    np.testing.assert_array_equal(by_array.obsm[f"X_{tool}"], alone.obsm[f"X_{tool}"])
    assert by_array.uns[tool]["params"]["mask_var"] == "array"
    marked = list(adata.var_names[adata.var["highly_variable"].to_numpy()])
    assert list(by_array.uns[tool]["genes_used"]) == marked
    assert "genes_used" not in alone.uns[tool]


@pytest.mark.parametrize("tool", ["desc", "scdcc"])
def test_mask_var_none_reads_every_gene(tool):
    adata = _marked_data(tool)
    _, model = _run(tool, adata, mask_var=None, return_model=True)
    assert model.features == list(adata.var_names)
    _, model = _run(tool, adata, return_model=True)
    assert model.features == list(adata.var_names[adata.var["highly_variable"]])


def test_scdcc_chooses_its_top_genes_among_the_marked_ones():
    adata = _marked_data("scdcc")
    out = _run("scdcc", adata, n_top_genes=8)
    used = set(out.uns["scdcc"]["genes_used"])
    assert 8 <= len(used) < 20  # scanpy's 'seurat' flavour keeps ties at its cut-off
    assert used <= set(adata.var_names[adata.var["highly_variable"]])


def test_cells_are_judged_on_the_genes_read(tmp_path):
    """A cell empty outside the marked genes is fine; empty within them, DESC warns."""
    adata = _marked_data("desc")
    marked = adata.var["highly_variable"].to_numpy()
    adata.X[7, ~marked] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        sdc.tl.desc(adata, copy=True, **{**SHORT, "max_epochs": None})
    adata.X[7, marked] = 0
    with pytest.warns(UserWarning, match=r"1 cell\(s\) are all zero in adata\.X in the 20 genes"):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*without converging")
            out = sdc.tl.desc(adata, copy=True, **SHORT)
    out.write_h5ad(tmp_path / "out.h5ad")
    assert sc.read_h5ad(tmp_path / "out.h5ad").uns["desc"]["params"]["mask_var"] == (
        "highly_variable"
    )


def test_mapping_judges_the_model_genes_only():
    """Cells mapped onto a model of scaled marked genes: unscaled other genes say nothing."""
    adata = _marked_data("desc")
    _, model = _run("desc", adata, return_model=True)
    marked = adata.var["highly_variable"].to_numpy()
    adata.X[:, ~marked] *= 0.05  # far under the unscaled warning's median gene scale
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        out = sdc.tl.map_to_model(adata, model, copy=True)
    assert out.obs[model.key_added].notna().all()


def test_recipe_keeps_the_marked_genes():
    adata = sdc.datasets.simulate(150, 80, 3, random_state=1)
    adata.var["highly_variable"] = np.arange(adata.n_vars) % 4 == 0
    steps = sdc.pp.recipe(adata, "desc", n_top_genes=40, hvg_above=50)
    assert adata.n_vars == 20
    assert "kept the 20 genes of 80 marked in var['highly_variable']" in steps


def test_cli_n_top_genes_0_reads_every_gene(tmp_path):
    adata = sdc.datasets.simulate(150, 40, 3, random_state=1)
    del adata.layers["counts"]
    adata.var["highly_variable"] = np.arange(adata.n_vars) < 10
    adata.write_h5ad(tmp_path / "in.h5ad")
    tiny = ["--pretrain-epochs", "1", "--max-epochs", "1", "--quiet", "-k", "3"]
    for n_top, read in (("0", 40), ("2000", 10)):
        out = tmp_path / f"out{n_top}.h5ad"
        args = ["run", str(tmp_path / "in.h5ad"), "-m", "scdcc", "-o", str(out), *tiny]
        assert main([*args, "--n-top-genes", n_top]) == 0
        result = sc.read_h5ad(out)
        assert len(result.uns["scdcc"].get("genes_used", result.var_names)) == read


def test_cli_keeps_a_given_number_of_genes_also_below_the_default_bound(tmp_path, monkeypatch):
    """Left out, 2,000 genes are chosen of more than 3,000; a number given is heard wherever
    there are more genes than it (it was passed over below 3,000 without a word)."""
    adata = sdc.datasets.simulate(150, 40, 3, random_state=1)
    adata.X = adata.layers.pop("counts")
    adata.write_h5ad(tmp_path / "in.h5ad")
    scdcc = Mock(side_effect=_Stop)
    monkeypatch.setattr(sdc.tl, "scdcc", scdcc)
    args = ["run", str(tmp_path / "in.h5ad"), "-m", "scdcc", "-k", "3", "--quiet"]
    for given, n_read in (([], 40), (["--n-top-genes", "20"], 20), (["--n-top-genes", "40"], 40)):
        with pytest.raises(_Stop):
            main([*args, "-o", str(tmp_path / "out.h5ad"), *given])
        assert scdcc.call_args.args[0].n_vars == n_read, given


def test_a_series_mask_is_aligned_to_the_genes_by_its_index():
    adata = _marked_data("desc")
    by_name = adata.var["highly_variable"].iloc[::-1]  # another gene order
    aligned, by_column = _run("desc", adata, mask_var=by_name), _run("desc", adata)
    np.testing.assert_array_equal(aligned.obsm["X_desc"], by_column.obsm["X_desc"])
    with pytest.raises(ValueError, match=r"mask_var is a Series whose index is not adata\.var_n"):
        _run("desc", adata, mask_var=by_name.rename(lambda g: f"other-{g}"))


def test_a_representation_is_read_whole_whatever_genes_are_marked():
    """hvg without subset, then PCA and use_rep: the marking is of genes, not of components
    (the default mask_var is left aside; naming one is refused, as tested with bad input)."""
    adata = _marked_data("desc")
    sc.pp.pca(adata, n_comps=10)
    unmarked = adata.copy()
    del unmarked.var["highly_variable"]
    marked, alone = _run("desc", adata, use_rep="X_pca"), _run("desc", unmarked, use_rep="X_pca")
    np.testing.assert_array_equal(marked.obsm["X_desc"], alone.obsm["X_desc"])
    assert "mask_var" not in marked.uns["desc"]["params"]


def test_a_series_mask_with_a_repeated_gene_is_refused_in_words():
    adata = _marked_data("desc")
    marked = adata.var["highly_variable"]
    repeated = pd.concat([marked, marked.iloc[:1]])  # every gene, and one of them twice
    with pytest.raises(ValueError, match=r"mask_var is a Series whose index is not adata\.var_n"):
        gene_mask(adata, repeated)


@pytest.mark.parametrize("tool", ["desc", "scdcc"])
def test_genes_left_out_may_hold_anything(tool):
    """NaN, fractions, repeated names outside the mask: what is not read is not judged."""
    adata = _marked_data(tool)
    marked = adata.var["highly_variable"].to_numpy()
    other = np.flatnonzero(~marked)[:2]
    if tool == "desc":
        adata.X[0, other[0]] = np.nan
    else:
        counts = adata.layers["counts"].toarray()
        counts[:, other[0]] += 0.5
        adata.layers["counts"] = counts
    names = adata.var_names.to_numpy().copy()
    names[other[1]] = names[other[0]]
    adata.var_names = names
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, model = _run_with_model(tool, adata)
    said = [str(w.message) for w in caught if "Variable names are not unique" not in str(w.message)]
    assert not [m for m in said if re.search(r"NaN|raw counts|integer|not unique", m)], said
    assert len(model.features) == marked.sum()
    assert out.obs[tool].notna().all()


def _run_with_model(tool, adata):
    return getattr(sdc.tl, tool)(adata, copy=True, return_model=True, **SHORT)


def test_the_hints_of_the_messages_work_as_written():
    adata = _marked_data("desc")
    adata.var["highly_variable"] = adata.var["highly_variable"].astype("boolean")
    adata.var.loc[adata.var_names[0], "highly_variable"] = None
    with pytest.raises(ValueError, match="has missing values") as refused:
        _run("desc", adata)
    exec(re.search(r"`(adata\.var.*)`", str(refused.value)).group(1), {"adata": adata})
    assert adata.var["highly_variable"].dtype == bool
    # a cell with nothing in the marked genes: DESC's line keeps the others
    adata.X[3, adata.var["highly_variable"].to_numpy()] = 0
    with pytest.warns(UserWarning, match="are all zero in adata.X in the") as warned:
        _run_with_model("desc", adata)
    line = next(str(w.message) for w in warned if "are all zero" in str(w.message))
    namespace = {"adata": adata, "np": np}
    exec(re.search(r"`(adata = .*?)`", line).group(1), namespace)
    assert namespace["adata"].n_obs == adata.n_obs - 1
    assert "cell3" not in namespace["adata"].obs_names


def _text_columns(marked: np.ndarray):
    words = np.where(marked, "True", "False")
    with_missing = np.where(marked, "True", None)
    return {
        "words": words,
        "categories": pd.Categorical(words),
        "missing": with_missing,
        "categories with missing": pd.Categorical(with_missing),
    }


@pytest.mark.parametrize("form", list(_text_columns(np.ones(1, dtype=bool))))
def test_the_conversion_offered_for_words_keeps_the_marked_genes(form):
    """bool("False") is True: `astype(bool)` would mark every gene of a column read as text."""
    adata = _marked_data("desc")
    marked = adata.var["highly_variable"].to_numpy()
    adata.var["highly_variable"] = _text_columns(marked)[form]
    with pytest.raises(ValueError, match="True/False|missing values") as refused:
        gene_mask(adata, "highly_variable")
    exec(re.search(r"`(adata\.var.*?)`", str(refused.value)).group(1), {"adata": adata})
    np.testing.assert_array_equal(adata.var["highly_variable"].to_numpy(), marked)
    array = np.asarray(_text_columns(marked)[form], dtype=object)
    with pytest.raises(ValueError, match="True/False|missing values") as refused:
        gene_mask(adata, array)
    fixed = eval(
        re.search(r"`(np\..*?)`", str(refused.value)).group(1), {"np": np, "mask_var": array}
    )
    np.testing.assert_array_equal(fixed, marked)


@pytest.mark.parametrize("words", [False, True])
def test_the_conversion_offered_for_a_series_keeps_its_gene_names(words):
    # The advice was the array's, `np.asarray(mask_var, dtype=bool)`: a Series indexed by gene
    # names in another order, converted so, was then read by position (other genes).
    adata = _marked_data("desc")
    marked = adata.var["highly_variable"].to_numpy()
    values = np.where(marked, "TRUE", "false") if words else marked.astype(int)
    mask_var = pd.Series(values, index=adata.var_names)[::-1]
    with pytest.raises(ValueError, match="True/False") as refused:
        gene_mask(adata, mask_var)
    namespace = {"mask_var": mask_var}
    exec(re.search(r"`(mask_var = .*?)`", str(refused.value)).group(1), namespace)
    np.testing.assert_array_equal(
        gene_mask(adata, namespace["mask_var"]).columns, np.flatnonzero(marked)
    )


def test_gene_names_as_mask_var_are_told_how_to_mark_those_genes():
    """R's VariableFeatures() exported as names got the advice for words True/False, which
    marks no gene; the advice given marks the named genes."""
    adata = _marked_data("desc")
    names = list(adata.var_names[adata.var["highly_variable"].to_numpy()])
    with pytest.raises(ValueError, match=r"mask_var holds gene names;") as refused:
        gene_mask(adata, names)
    with pytest.raises(ValueError, match=r"mask_var must be boolean"):  # a set: no TypeError
        gene_mask(adata, set(names))
    # a Series of names (R's vector read by pandas; `.to_series()`) is no mask read by its index
    for series in (pd.Series(names), adata.var_names[:3].to_series()):
        with pytest.raises(ValueError, match=r"mask_var holds gene names;"):
            gene_mask(adata, series)
    advice = re.search(r"`mask_var=(.*?)`", str(refused.value)).group(1)
    fixed = eval(advice, {"adata": adata, "names": names})
    np.testing.assert_array_equal(
        gene_mask(adata, fixed).columns, np.flatnonzero(adata.var["highly_variable"])
    )


def test_recipe_offers_the_conversion_of_a_column_of_1_and_0():
    adata = _marked_data("desc")
    marked = adata.var["highly_variable"].to_numpy()
    adata.var["highly_variable"] = marked.astype(int)
    with pytest.raises(ValueError, match=r"pp.recipe keeps the genes") as refused:
        sdc.pp.recipe(adata, "desc")
    said = str(refused.value)
    assert "Fix that column (if it holds True/False or 1/0, `adata.var" in said
    exec(re.search(r"`(adata\.var.*?)`", said).group(1), {"adata": adata})
    np.testing.assert_array_equal(adata.var["highly_variable"].to_numpy(), marked)


def test_a_series_is_read_by_position_only_with_the_default_index():
    adata = _marked_data("desc")
    marked = adata.var["highly_variable"].to_numpy()
    by_position = pd.Series(marked)
    np.testing.assert_array_equal(
        gene_mask(adata, by_position).columns, gene_mask(adata, marked).columns
    )
    with pytest.raises(ValueError, match="whose index is not adata.var_names"):
        gene_mask(adata, by_position.iloc[::-1])  # a RangeIndex, reversed
    adata.var_names = [*adata.var_names[:-1], adata.var_names[0]]
    with pytest.raises(ValueError, match=r"which repeat names.*var_names_make_unique"):
        gene_mask(adata, pd.Series(marked, index=adata.var_names).iloc[::-1])


@pytest.mark.parametrize("values", [np.zeros(80, dtype=int), np.zeros(80, dtype=bool)])
def test_recipe_refuses_a_marking_it_cannot_read_before_changing_anything(values):
    adata = sdc.datasets.simulate(150, 80, 3, random_state=1)
    adata.var["highly_variable"] = values
    before = adata.X.copy()
    refusal = r"var\['highly_variable'\].*delete it \(`del adata\.var\['highly_variable'\]`\) to"
    with pytest.raises(ValueError, match=refusal):
        sdc.pp.recipe(adata, "desc", n_top_genes=40, hvg_above=50)
    assert adata.n_vars == 80 and (adata.X != before).nnz == 0
    assert list(adata.var.columns) == ["highly_variable"]
    del adata.var["highly_variable"]  # as the message says: the recipe chooses then
    sdc.pp.recipe(adata, "desc", n_top_genes=40, hvg_above=50)
    assert adata.n_vars == 40


def test_cli_says_which_genes_it_reads_and_refuses_an_unreadable_marking(tmp_path, capsys):
    adata = sdc.datasets.simulate(150, 40, 3, random_state=1)
    adata.var["highly_variable"] = np.arange(adata.n_vars) < 10
    adata.write_h5ad(tmp_path / "in.h5ad")
    args = ["run", str(tmp_path / "in.h5ad"), "-m", "desc", "-o", str(tmp_path / "o.h5ad")]
    tiny = ["--pretrain-epochs", "1", "--max-epochs", "1", "-k", "3"]
    assert main([*args, *tiny]) == 0
    assert "x 10 genes (those var['highly_variable'] marks, of 40)" in capsys.readouterr().out
    adata.var["highly_variable"] = adata.var["highly_variable"].astype(int)
    adata.write_h5ad(tmp_path / "in.h5ad")
    assert main([*args, *tiny]) == 2
    error = capsys.readouterr().err
    assert "var['highly_variable'] cannot mark the genes to read" in error
    assert "pass --n-top-genes 0 to read every gene" in error
    assert main([*args, *tiny, "--n-top-genes", "0"]) == 0


class _Stop(Exception):
    """Raised where training would start: the input's checks are all that is wanted."""


@pytest.mark.parametrize("tool", ["desc", "scdcc"])
def test_thousands_of_genes_nobody_chose_get_a_word(tool, monkeypatch):
    adata = sdc.datasets.simulate(60, 3100, 3, random_state=2)
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    monkeypatch.setattr(f"scdeepclust.tl._{tool}.CellFeeder", Mock(side_effect=_Stop))

    def run(**options):
        with pytest.raises(_Stop):
            getattr(sdc.tl, tool)(adata, n_clusters=2, batch_size=32, **options)

    with pytest.warns(UserWarning, match=r"Reading all 3,0\d\d genes of adata\.(X|layers)"):
        run()
    quiet = [dict(mask_var=None), dict(mask_var=np.arange(3100) < 3000)]
    if tool == "scdcc":
        quiet.append(dict(n_top_genes=2000))
    for options in quiet:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run(**options)
        assert not [w for w in caught if "Reading all" in str(w.message)], options


def test_cli_gives_its_advice_on_unchosen_genes_in_its_own_options(tmp_path, capsys, monkeypatch):
    """Scaled X, no counts: the recipe keeps every gene, and the advice names options."""
    adata = sdc.datasets.simulate(60, 3100, 3, random_state=2)
    del adata.layers["counts"]
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    adata.X = adata.X.toarray()
    sc.pp.scale(adata)
    adata.write_h5ad(tmp_path / "in.h5ad")
    desc = Mock(side_effect=_Stop)
    monkeypatch.setattr(sdc.tl, "desc", desc)
    args = ["run", str(tmp_path / "in.h5ad"), "-m", "desc", "-k", "3"]
    for n_top, warned in (("2000", True), ("4000", False), ("0", False)):
        with pytest.raises(_Stop):
            main([*args, "-o", str(tmp_path / "out.h5ad"), "--n-top-genes", n_top])
        assert desc.call_args.kwargs["mask_var"] is None
        err = capsys.readouterr().err
        assert ("warning: reading all 3100 genes, as X is scaled" in err) == warned, n_top
        assert "mask_var" not in err


def test_missing_values_are_never_read_as_marks():
    """A merged var table leaves NaN in an object column: the hint fills them with False."""
    adata = _marked_data("desc")
    column = adata.var["highly_variable"].astype(object)
    column.iloc[:5] = np.nan
    adata.var["highly_variable"] = column
    with pytest.raises(ValueError, match="has missing values") as refused:
        _run("desc", adata)
    exec(re.search(r"`(adata\.var.*)`", str(refused.value)).group(1), {"adata": adata})
    assert adata.var["highly_variable"].sum() == (column == True).sum()  # noqa: E712
    floats = np.where(np.arange(adata.n_vars) < 3, np.nan, 1.0)
    with pytest.raises(ValueError, match=r"mask_var has missing values"):
        _run("desc", adata, mask_var=floats)


def test_mapping_ignores_repeated_names_of_genes_the_model_does_not_read():
    adata = _marked_data("desc")
    _, model = _run("desc", adata, return_model=True)
    names = adata.var_names.to_numpy().copy()
    other = np.flatnonzero(~adata.var["highly_variable"].to_numpy())
    names[other[1]] = names[other[0]]
    adata.var_names = names
    mapped = sdc.tl.map_to_model(adata, model, copy=True)
    assert mapped.obs[model.key_added].notna().all()
    names[other[0]] = model.features[0]  # now a gene of the model is repeated
    adata.var_names = names
    with pytest.raises(ValueError, match=r"adata\.var_names repeat genes of the model"):
        sdc.tl.map_to_model(adata, model, copy=True)


@pytest.mark.parametrize("hvg_above", [50, 3000])  # the recipe subsets to the marks, or not
def test_recipe_removes_the_cells_without_counts_in_the_genes_read(hvg_above):
    """scDCC refuses such cells; the command line has no way to remove them."""
    adata = sdc.datasets.simulate(150, 80, 3, random_state=1)
    marked = np.arange(adata.n_vars) < 20
    counts = adata.X.toarray()
    counts[5, marked] = 0
    counts[5, ~marked] += 1
    adata.X = adata.layers["counts"] = counts
    adata.var["highly_variable"] = marked
    empty = adata.obs_names[counts[:, marked].sum(axis=1) == 0]
    everything = adata.copy()
    steps = sdc.pp.recipe(adata, "scdcc", n_top_genes=40, hvg_above=hvg_above)
    assert f"removed {len(empty)} cells without any count in the 20 genes the tools read" in (
        " ".join(steps)
    )
    assert "cell5" in empty and not set(empty) & set(adata.obs_names)
    assert adata.n_obs == 150 - len(empty)
    sdc.pp.recipe(everything, "scdcc", n_top_genes=None)  # every gene is read: all are kept
    assert everything.n_obs == 150


@pytest.mark.parametrize(
    "batch_b, warned", [(14, r"single batch \('a'\)"), (20, r"batch\(es\) 'b' \(6\)")]
)
def test_recipe_warns_about_a_batch_its_removal_of_cells_left_small(batch_b, warned):
    adata = sdc.datasets.simulate(150, 80, 3, random_state=1)
    marked = np.arange(adata.n_vars) < 20
    counts = adata.X.toarray()
    counts[:14, marked] = 0  # cells 0-13 hold counts only in genes the tools do not read
    adata.X = adata.layers["counts"] = counts
    adata.var["highly_variable"] = marked
    adata.obs["batch"] = np.where(np.arange(150) < batch_b, "b", "a")
    with pytest.warns(sdc.pp.BatchWarning, match=warned):
        sdc.pp.recipe(adata, "scdcc", n_top_genes=40, batch_key="batch")


def test_desc_names_the_genes_it_read():
    adata = _marked_data("desc")
    adata.X[:, 0] = 0  # left out of training, as scDCC leaves it out
    out = _run("desc", adata, mask_var=None)
    assert list(out.uns["desc"]["genes_used"]) == list(adata.var_names[1:])


def test_recipe_and_cli_when_no_marked_gene_is_detected(tmp_path, capsys):
    adata = sdc.datasets.simulate(150, 80, 3, random_state=1)
    counts = adata.X.toarray()
    counts[:, :5] = 0  # the marked genes hold no count: pp.recipe removes them
    adata.X = adata.layers["counts"] = counts
    adata.var["highly_variable"] = np.arange(adata.n_vars) < 5
    with pytest.raises(ValueError, match=r"marks no gene to use among the genes detected in"):
        sdc.pp.recipe(adata.copy(), "desc", n_top_genes=40, hvg_above=50)
    adata.write_h5ad(tmp_path / "in.h5ad")
    args = ["run", str(tmp_path / "in.h5ad"), "-m", "desc", "-o", str(tmp_path / "o.h5ad")]
    assert main([*args, "--pretrain-epochs", "1", "--max-epochs", "1", "-k", "3"]) == 2
    error = capsys.readouterr().err
    assert "marks no gene to use); fix that column in the file, or pass --n-top-genes 0" in error


def test_rows_of_a_file_are_read_in_blocks_sized_by_their_stored_width(tmp_path, monkeypatch):
    """A file's rows are read whole, then masked: the block's size follows the stored width."""
    import h5py

    from scdeepclust.data import RowSource, _rows

    monkeypatch.setattr(_rows, "DENSE_CHUNK_VALUES", 6400)  # 64 rows of 1,000 values
    with h5py.File(tmp_path / "wide.h5", "w") as f:
        f["X"] = np.ones((300, 1000), dtype=np.float32)
    with h5py.File(tmp_path / "wide.h5") as f:
        source = RowSource(f["X"], columns=np.arange(10))
        sizes = [stop - start for start, stop, _ in source.iter_blocks()]
    assert max(sizes) <= 2 * _rows.dense_chunk_rows(1000) == 128


# M036, M037
def test_gene_names_with_a_few_strays_are_still_told_how_to_mark_the_genes():
    """R's VariableFeatures() of another object may hold names missing here, or a stray word;
    one name of a gene here is enough to tell a list of names from True/False words."""
    from scdeepclust.pp._input import gene_mask

    adata = counts_data()
    names = list(adata.var_names[:5])
    for values in (names + ["NOT_A_GENE"], names + ["true"]):
        with pytest.raises(ValueError, match=r"mask_var holds gene names;") as refused:
            gene_mask(adata, values)
        assert "mask_var=adata.var_names.isin(names)" in str(refused.value)


# M044
@pytest.mark.parametrize("shape", ["2d", "scalar"])
def test_a_mask_not_of_one_value_per_gene_is_refused_by_its_shape(shape):
    from scdeepclust.pp._input import gene_mask

    adata = counts_data()
    mask = np.ones((adata.n_vars, 2), dtype=bool) if shape == "2d" else np.True_
    with pytest.raises(
        ValueError, match=r"mask_var has shape .*; it needs one True/False per gene \(30\)"
    ):
        gene_mask(adata, mask)


# M095
def test_exactly_many_genes_unselected_get_no_word_on_selection():
    """MANY_GENES (3000) genes read whole are not yet "thousands nobody chose"."""
    from scdeepclust.pp._input import MANY_GENES

    adata = ad.AnnData(np.random.default_rng(0).normal(size=(60, MANY_GENES)).astype(np.float32))
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Reading all")
        sdc.tl.desc(adata, n_clusters=3, **ONE_EPOCH)
