"""Thread limits that keep scikit-learn's k-means and torch's training reproducible.

scikit-learn's k-means sums each thread's share of the new centroids into the shared ones
under a lock, in whatever order the threads arrive. With three or more threads that order,
and so the float rounding, changes from run to run: the same `random_state` gave different
centroids, and sometimes different labels, on a 16-core machine (seen in the GPU machine's
test run; reproduced here with ``OMP_NUM_THREADS=5`` on 2 cores). With two threads the one
addition is commutative, so the result is exact whichever thread comes first. Two threads also
spare waking 16 threads for each of the thousands of small Lloyd steps on a few thousand cells,
the likely cause of the seconds k-means took there (10X PBMC: 4.2 s in `tl.scdcc` on the GPU
machine, 0.65 s on a 2-core one).
"""

from __future__ import annotations

from contextlib import contextmanager

from threadpoolctl import threadpool_info, threadpool_limits

KMEANS_THREADS = 2


@contextmanager
def torch_threads_kept():
    """Give torch back its thread count after a call into scanpy.

    numba, which scanpy's normalisation, scaling, gene selection, neighbours and UMAP run on,
    starts its pool of threads at the first such call in a process and sets OpenMP's thread
    count to every core, which torch then uses too. Where the caller had limited torch (e.g.
    ``torch.set_num_threads(1)``, or ``OMP_NUM_THREADS=1`` as torchrun and batch systems set),
    the training after it ran on other threads than the same call in a fresh process, and its
    float sums, so its labels, differed.
    """
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


@contextmanager
def kmeans_thread_limit():
    """Run scikit-learn's k-means (fit and predict) on at most `KMEANS_THREADS` threads.

    A tighter limit of the caller's (e.g. ``threadpool_limits(1)`` around the call, or
    ``OMP_NUM_THREADS=1`` as torchrun and many batch systems set) is kept: threadpoolctl sets
    the pools to the number given, which would raise it. One thread's centroids are exact too,
    but their rounding differs from two threads', so a run under such a limit may differ from
    one without it in the last bits of k-means (as torch's own sums do with their threads).
    """
    current = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"]
    with threadpool_limits(limits=min([KMEANS_THREADS, *current]), user_api="openmp"):
        yield
