"""One reader for the inputs of the command line: .h5ad, .zarr, 10x Genomics .h5, scDCC .h5."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

from anndata import AnnData

from .._process import ignoring_warnings

H5_SUFFIXES = (".h5", ".hdf5", ".hdf")


def h5_layout(path: str | PathLike) -> str:
    """Tell which kind of HDF5 file `path` is, from its keys.

    ``'10x'`` (Cell Ranger's ``matrix/barcodes...``, or one group per genome in the older
    format), ``'scdcc'`` (a top-level dataset ``X``, the scDCC / scDeepCluster layout) or
    ``'h5ad'`` (AnnData's groups ``X`` and ``obs``).
    """
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise ValueError(f"{path} is not a readable HDF5 file ({error}).") from None
    with f:
        keys = list(f.keys())
        if "X" in f and "obs" in f and "var" in f:
            return "h5ad"
        if "X" in f and isinstance(f["X"], h5py.Dataset):
            return "scdcc"
        for name in keys:
            group = f[name]
            if isinstance(group, h5py.Group) and {"barcodes", "data", "indptr"} <= set(group):
                return "10x"
    raise ValueError(
        f"{path} is neither a 10x Genomics .h5 (a 'matrix' group with barcodes) nor in the "
        f"scDCC layout (a dataset 'X'); its keys: {keys}."
    )


def read(path: str | PathLike) -> AnnData:
    """Read a count matrix from an ``.h5ad``, ``.zarr``, 10x Genomics ``.h5`` or scDCC ``.h5``.

    ``.zarr`` stores, anndata's other format, are read with :func:`anndata.read_zarr`.
    A MuData (``.h5mu``, or a MuData ``.zarr``) is refused with the line that writes one of its
    modalities as an ``.h5ad``: the tools cluster the cells of one AnnData.
    The two kinds of ``.h5`` are told apart by their HDF5 keys (:func:`h5_layout`): 10x files go
    through :func:`scanpy.read_10x_h5` (gene names made unique; of the features, the genes,
    ``'Gene Expression'``, are ``X``, and the antibodies of CITE-seq, ``'Antibody Capture'``,
    are kept as counts in ``obsm['protein']``, a DataFrame named by them: normalise them with
    :func:`scdeepclust.pp.clr` for ``tl.scdcc(protein_key='protein')``), scDCC files through
    :func:`scdeepclust.datasets.read_h5` (labels in ``obs['label']``, counts also in
    ``layers['counts']``, protein levels in ``obsm['protein']``).
    """
    import scanpy as sc

    from . import read_h5

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such file: {path}")
    if path.is_dir() and path.suffix.lower() == ".zarr":
        return _read_zarr(path)
    if path.is_dir():
        raise ValueError(f"{path} is a directory; give an .h5ad or .h5 file, or a .zarr store.")
    _refuse_mudata_file(path)
    suffix = path.suffix.lower()
    layout = "h5ad" if suffix == ".h5ad" else h5_layout(path) if suffix in H5_SUFFIXES else None
    if layout == "h5ad":
        _check_anndata_file(path)
        return sc.read_h5ad(path)
    if layout == "10x":
        # made unique below: anndata's advice to do so is not the caller's to follow
        with ignoring_warnings(message="Variable names are not unique"):
            adata = _genes_and_proteins(sc.read_10x_h5(path, gex_only=False), path)
        adata.var_names_make_unique()
        return adata
    if layout == "scdcc":
        return read_h5(path)
    raise ValueError(
        f"Cannot read {path.name!r}: the input must be an .h5ad file, a .zarr store, a 10x "
        "Genomics .h5 file or an .h5 file in the scDCC layout."
    )


def _genes_and_proteins(features: AnnData, path: Path) -> AnnData:
    """Return the genes of a 10x file's features, with its antibodies in ``obsm['protein']``.

    Other features (CRISPR guides, custom ones) are left out, as scanpy's ``gex_only`` does.
    Repeated antibody names are made unique, as gene names are (.h5ad files refuse repeated
    column names).
    """
    import pandas as pd
    from anndata.utils import make_index_unique

    kinds = features.var.get("feature_types")
    if kinds is None:  # Cell Ranger 2's files hold genes alone
        return features
    kinds = kinds.astype(str).to_numpy()
    is_gene = kinds == "Gene Expression"
    if not is_gene.any():
        raise ValueError(
            f"{path} holds no gene expression: its features are {sorted(set(kinds))} alone, "
            "and the tools cluster cells by their genes."
        )
    genes = features[:, is_gene].copy()
    antibodies = kinds == "Antibody Capture"
    if antibodies.any():
        counts = features.X[:, antibodies]
        names = make_index_unique(pd.Index(features.var_names[antibodies]).astype(str))
        genes.obsm["protein"] = pd.DataFrame(
            counts.toarray() if hasattr(counts, "toarray") else counts,
            index=genes.obs_names,
            columns=names,
        )
    return genes


def _read_zarr(path: Path) -> AnnData:
    """Read a .zarr store that anndata wrote; refuse others in words that name the store.

    anndata's own errors name neither (a SpatialData store, whose tables lie below its root:
    "unexpected keyword argument 'tables'"; a damaged zarr.json: a JSON parser's position).
    """
    import anndata
    import zarr

    try:
        # the groups on disk: zarr 3 reads the consolidated metadata, which still lists a group
        # deleted since, read by anndata as empty (a var without names); zarr 2 reads the disk
        on_disk = {"use_consolidated": False} if int(zarr.__version__.split(".")[0]) >= 3 else {}
        root = zarr.open_group(path, mode="r", **on_disk)
        keys = sorted(root.keys())
    except Exception as error:  # noqa: BLE001 - zarr's kinds (JSON, missing metadata, ...)
        raise ValueError(
            f"cannot read {path}: {type(error).__name__}: {error}. Is it a complete .zarr "
            "store, written by anndata (adata.write_zarr)?"
        ) from None
    if root.attrs.get("encoding-type") == "MuData":
        raise _mudata_refusal(path, sorted(root["mod"].keys()) if "mod" in keys else [])
    if not {"obs", "var"} <= set(keys):
        tables = (
            f" A SpatialData store keeps its AnnData tables under 'tables': read one with "
            f"anndata.read_zarr('{path / 'tables'}/<name>'), and write it with write_h5ad "
            "to give it here."
            if "tables" in keys
            else ""
        )
        raise ValueError(
            f"{path} is a .zarr store without AnnData's 'obs' and 'var' groups (it holds "
            f"{keys}), so not one that anndata's write_zarr wrote, or one that lost them since."
            f"{tables}"
        )
    return anndata.read_zarr(path)


def _refuse_mudata_file(path: Path) -> None:
    """Refuse an HDF5 file that mudata wrote (.h5mu, or renamed), naming its modalities.

    anndata reads its top-level obs and var and then fails on the modalities, in words that
    say neither that nor what to do.
    """
    import h5py

    if not h5py.is_hdf5(path):
        return
    with h5py.File(path, "r") as f:
        if f.attrs.get("encoding-type") != "MuData":
            return
        modalities = sorted(f["mod"].keys()) if isinstance(f.get("mod"), h5py.Group) else []
    raise _mudata_refusal(path, modalities)


def _mudata_refusal(path: Path, modalities: list[str]) -> ValueError:
    if not modalities:
        return ValueError(f"{path} holds a MuData without modalities: there are no cells to read.")
    reader = "read_zarr" if path.is_dir() else "read_h5mu"
    # the tools cluster genes: the RNA where a modality is named so (CITE-seq's 'prot' sorts first)
    name = next((m for m in modalities if m.lower() in ("rna", "gex")), modalities[0])
    return ValueError(
        f"{path} holds a MuData (modalities: {modalities}), and the tools cluster the cells of "
        f"one AnnData: write the modality to cluster as an .h5ad first, e.g. "
        f"`mudata.{reader}({str(path)!r})[{name!r}].write_h5ad('{name}.h5ad')`, and give that."
    )


def _check_anndata_file(path: Path) -> None:
    """Refuse an HDF5 file named .h5ad that anndata did not write.

    anndata's own refusal (an unexpected keyword argument 'Y') names neither the file nor what
    it is.
    """
    import h5py

    if not h5py.is_hdf5(path):
        return  # anndata says what it cannot read
    with h5py.File(path, "r") as f:
        keys = list(f.keys())
        if "obs" in f and "var" in f:
            return
    try:
        layout = h5_layout(path)
    except ValueError:
        layout = None
    kind = {"10x": "a 10x Genomics .h5 file", "scdcc": "an .h5 file in the scDCC layout"}
    if layout in kind:
        raise ValueError(
            f"{path} is {kind[layout]}, not an AnnData .h5ad: rename it to end in .h5, and it "
            "is read as such."
        )
    raise ValueError(
        f"{path} is an HDF5 file without AnnData's 'obs' and 'var' groups, so not an .h5ad "
        f"written by anndata; its keys: {keys}."
    )
