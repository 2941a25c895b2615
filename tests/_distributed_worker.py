"""One process of the data-parallel test (tests/test_distributed.py), run under torchrun: both
tools with distributed=True on the test's simulated data; rank 0 saves the labels."""

import sys

import numpy as np
import torch

import scdeepclust as sdc
from _helpers import distributed_case

if __name__ == "__main__":
    torch.set_num_threads(1)
    adata, options = distributed_case()
    sdc.tl.scdcc(adata, 4, distributed=True, **options["scdcc"])
    sdc.tl.desc(adata, distributed=True, **options["desc"])
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
