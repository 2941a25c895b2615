"""One process of the data-parallel test (tests/test_distributed.py), run under torchrun: both
tools with distributed=True on the test's simulated data; rank 0 saves the labels.

The tools run under `default_device_meta` (a tensor created without a device fails), and every
tensor handed to a collective must be on the process's device: the CPU here (gloo), a CUDA
device under nccl, where a host tensor crashes the collective."""

import sys

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
