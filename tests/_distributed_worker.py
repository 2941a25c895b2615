"""One process of the data-parallel test (tests/test_distributed.py), run under torchrun: both
tools with distributed=True on the test's simulated data; rank 0 saves the labels.

The tools run under `default_device_meta` (a tensor created without a device fails), and every
tensor handed to a collective must be on the process's device: the CPU here (gloo), a CUDA
device under nccl, where a host tensor crashes the collective."""

import sys
import warnings

import numpy as np
import torch
from torch import distributed as dist

import scdeepclust as sdc
from _helpers import default_device_meta, distributed_case

COLLECTIVES = ("all_reduce", "broadcast", "gather")


def check_collectives(device: torch.device) -> dict:
    """Wrap the collectives the package uses so that each asserts where its tensors are;
    returns the number of calls per collective."""
    calls = dict.fromkeys(COLLECTIVES, 0)
    for name in COLLECTIVES:
        original = getattr(dist, name)

        def checked(tensor, *args, _name=name, _original=original, **kwargs):
            listed = [t for a in args if isinstance(a, list) for t in a]
            for t in [tensor, *listed]:
                assert t.device == device, f"dist.{_name} got a tensor on {t.device}, not {device}"
            calls[_name] += 1
            return _original(tensor, *args, **kwargs)

        setattr(dist, name, checked)
    return calls


def check_components_of_uneven_shards() -> None:
    """Iterated components of many genes equal the exact ones when shards differ in size.

    The iteration's start was drawn from the generator that had drawn each process's sample
    rows: with 150 and 151 rows the processes iterated different bases (|correlation| with the
    exact components 0.77-0.98).
    """
    from scdeepclust.data import CellFeeder, RowSource
    from scdeepclust.train import _components

    rng = np.random.default_rng(0)
    n_genes = 200
    rotation = np.linalg.qr(rng.normal(size=(n_genes, n_genes)))[0]
    x = (rng.normal(size=(301, n_genes)) * 6 * 0.8 ** np.arange(n_genes)) @ rotation
    # away from 0: the mean's correction of each process's basis differed too
    x = (x + 1).astype(np.float32)
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    feeder = CellFeeder(RowSource(x), device=torch.device("cpu")).sharded(rank, world)
    cap, direct_max = _components.COVARIANCE_MAX_CELLS, _components.DIRECT_MAX_GENES
    _components.COVARIANCE_MAX_CELLS = 100
    try:
        _components.DIRECT_MAX_GENES = 10**6
        exact = _components.input_principal_components(feeder, 4, random_state=0)
        _components.DIRECT_MAX_GENES = 50
        iterated = _components.input_principal_components(feeder, 4, random_state=0)
    finally:
        _components.COVARIANCE_MAX_CELLS, _components.DIRECT_MAX_GENES = cap, direct_max
    if rank == 0:
        for j in range(4):
            assert abs(np.corrcoef(exact[:, j], iterated[:, j])[0, 1]) > 0.9999, j


if __name__ == "__main__":
    torch.set_num_threads(1)
    adata, options = distributed_case()
    calls = check_collectives(torch.device(options["scdcc"]["device"]))
    with default_device_meta():
        sdc.tl.scdcc(adata, 4, distributed=True, **options["scdcc"])
        sdc.tl.desc(adata, distributed=True, **options["desc"])
    assert all(calls.values()), calls  # every wrapped collective was used, so checked
    # another order of the cells on one process: refused on every process, nothing written
    rank = torch.distributed.get_rank()
    mixed = adata.copy() if rank == 0 else adata[::-1].copy()
    with default_device_meta():
        try:
            sdc.tl.desc(mixed, distributed=True, key_added="mixed", **options["desc"])
        except ValueError as error:
            assert "given different data or options" in str(error), error
        else:
            raise AssertionError("processes given other cells were not refused")
    assert "mixed" not in mixed.obs
    # other DESC resolutions on one process (no n_clusters, so they are used): refused as well
    unclustered = {k: v for k, v in options["desc"].items() if k != "n_clusters"}
    unclustered.update(pretrain_epochs=1, max_epochs=1)
    resolutions = [1.0] if rank == 0 else [1.0, 2.0]
    with default_device_meta():
        try:
            sdc.tl.desc(
                adata, distributed=True, resolution=resolutions, key_added="res", **unclustered
            )
        except ValueError as error:
            assert "given different data or options" in str(error), error
        else:
            raise AssertionError("processes given other resolutions were not refused")
    assert not {"res", "res_1.0", "res_2.0"} & set(adata.obs)
    check_components_of_uneven_shards()
    # clusters the training emptied are the model's on every process, not rank 0's alone
    many = sdc.datasets.simulate(
        n_cells=300, n_genes=100, n_groups=3, de_fraction=0.3, de_log_fold=3.0, random_state=1
    )
    with default_device_meta(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # of the empty clusters, on rank 0
        model = sdc.tl.scdcc(
            many, 8, distributed=True, return_model=True, **{**options["scdcc"], "max_epochs": 5}
        )
    everyone = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(everyone, model.empty_clusters)
    assert everyone[0] and all(e == everyone[0] for e in everyone), everyone
    if torch.distributed.get_rank() == 0:
        np.savez(
            sys.argv[1],
            scdcc=adata.obs["scdcc"].cat.codes.to_numpy(),
            desc=adata.obs["desc"].cat.codes.to_numpy(),
            n_processes=adata.uns["scdcc"]["n_processes"],
        )
    else:
        assert "scdcc" not in adata.obs and "desc" not in adata.obs
    torch.distributed.destroy_process_group()
