"""The `scdeepclust` command: `run` clusters a file, `demo` runs both methods on built-in data.

Argument parsing and printing only; the work is done by the public API (`datasets.read`,
`pp.recipe`, `tl.desc` / `tl.scdcc`, `pl.*`). Heavy imports (torch, scanpy) wait until the
arguments are known to be usable, so mistakes are reported at once.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import io
import logging
import math
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from ._missing import NO_LABEL_AS_TEXT, text_counts, warn_if_no_label_as_truth
from ._serialization import write_atomically
from ._version import __version__

PROG = "scdeepclust"
FIGURE_FORMATS = (".png", ".pdf", ".svg", ".jpg", ".jpeg", ".tif", ".tiff", ".eps", ".ps")
READABLE = (".h5ad", ".h5", ".hdf5", ".hdf", ".h5mu")  # .h5mu: to be told what to do
ANNDATA_FORMATS = (".h5ad", ".zarr")  # files that bring no truth labels of their own
# --n-top-genes left out: this many genes are kept, where there are more than GENES_TO_CHOOSE
# (pp.recipe's defaults); a number given is kept wherever there are more genes than it
DEFAULT_N_TOP_GENES, GENES_TO_CHOOSE = 2000, 3000


class CommandError(Exception):
    """A mistake in what the user asked for: reported in one line, exit status 2."""


class _Signalled(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a job's time limit, `kill`, a closed terminal), raised as Ctrl-C is.

    So the clean-up of an interruption runs: no partial output file, the result of a finished
    training kept while a figure is drawn.
    """

    def __init__(self, signum: int):
        super().__init__()
        self.signum = signum


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):
        # One line instead of argparse's usage block; subcommand parsers inherit this class.
        self.exit(2, f"{PROG}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Deep embedding clustering of single-cell RNA-seq data (DESC, scDCC).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser(
        "run",
        help="cluster the cells of a file and write the result as .h5ad",
        description="Read INPUT (.h5ad, .zarr, 10x Genomics .h5, or an .h5 in the scDCC layout), "
        "prepare it for the method (printing each step), train, print a summary and write "
        "OUT.h5ad.",
    )
    run.add_argument(
        "input", metavar="INPUT", help=".h5ad file, .zarr store, 10x .h5 or scDCC-layout .h5 file"
    )
    run.add_argument("-m", "--method", required=True, choices=("desc", "scdcc"))
    run.add_argument("-o", "--output", required=True, metavar="OUT.h5ad", help="result file")
    run.add_argument(
        "-k",
        "--n-clusters",
        type=_cluster_count,
        metavar="K|LO-HI",
        help="number of clusters (reached as --init says), or LO-HI bounds of a search for "
        "it; default: Leiden on the pretrained embedding (scdcc with --label-key searches "
        "from the number of known classes to 30, at most cells/5)",
    )
    run.add_argument(
        "--init",
        choices=("leiden", "kmeans", "balanced-kmeans"),
        help="how a given K is reached: Leiden brought to K (merged by Ward's criterion or "
        "with its most separate parts split off), k-means, or k-means on the cells' latent "
        "directions with crowded regions weighted down (default: leiden)",
    )
    run.add_argument(
        "--resolution",
        type=_positive(float),
        metavar="R",
        help="Leiden resolution of the initial clustering without -k (default: desc 0.5, "
        "scdcc 0.3)",
    )
    run.add_argument(
        "--n-neighbors",
        type=_int_at_least(2),
        metavar="N",
        help="neighbours of each cell in the graph of the pretrained embedding that Leiden "
        "clusters; for desc also those that smooth its clustering target and scale its "
        "confidence (default: desc 10, scdcc 15)",
    )
    run.add_argument(
        "--layer",
        metavar="NAME",
        help="layer holding the raw counts; 'raw' reads them from the input's .raw (as "
        "Seurat's exports keep them), unless it has a layer of that name",
    )
    run.add_argument(
        "--label-key",
        metavar="COL",
        help="scdcc: obs column with known labels for some cells (missing for the others): "
        "each known class starts a cluster, its labelled cells keep it, a classifier on them "
        "guides the other cells, and pairs of them become must-link / cannot-link constraints",
    )
    run.add_argument(
        "--protein-key",
        metavar="KEY",
        help="scdcc: obsm key of CITE-seq protein levels (obsm['protein'] of a 10x .h5 with "
        "antibody capture): cell pairs nearest in protein space become must-link constraints, "
        "the farthest cannot-link; antibody counts are first normalised by a centred log-ratio "
        "per cell (into obsm[KEY + '_clr'])",
    )
    run.add_argument(
        "--batch-key",
        metavar="COL",
        help="obs column naming each cell's batch (donor, run, ...): the input is scaled "
        "within batches and the autoencoder is conditioned on the batch, so that clusters "
        "need not follow batches",
    )
    run.add_argument(
        "--batch-mixing",
        type=_non_negative,
        metavar="W",
        help="with --batch-key: weight of the batch-mixing penalty of the clustering stage "
        "(default 10; 0 turns it off)",
    )
    run.add_argument(
        "--missing-label",
        action="append",
        metavar="TEXT",
        help="a value of the --label-key and --truth columns that means no label (NA, as R "
        "writes it, or 'unknown'; in a column of numbers also a code such as -1): its cells "
        "are read as unlabelled, and the file written holds them as missing; repeat it for "
        "several values",
    )
    run.add_argument(
        "--truth",
        metavar="COL",
        help="obs column with known labels to score the clusters against (ARI, NMI); default "
        "for scDCC-layout files: their labels (obs['label'])",
    )
    run.add_argument(
        "--refine",
        type=_number(float, lambda value: 0 <= value <= 1, "a number in [0, 1]"),
        metavar="W",
        help="share of each cluster's most confident cells that train the classifier of the "
        "input which gives every cell its reported cluster (default 0.5; 0 reports the "
        "clustering stage's own labels)",
    )
    run.add_argument(
        "--min-cluster-size",
        type=_cluster_size,
        metavar="N",
        help="where the number of clusters comes from the data (no -k N), clusters of fewer "
        "cells are merged into those their cells lean to next: a number of cells (an integer) "
        "or a share of them (below 1; default 0.001; 0 keeps every cluster)",
    )
    run.add_argument("--plot", metavar="OUT.png", help="also draw a UMAP of the embedding here")
    run.add_argument(
        "--save-model",
        metavar="DIR",
        help="also save the trained model in DIR (created if needed; a model there is "
        "replaced, as OUT is), for scdeepclust.models.load and tl.map_to_model to place new "
        "cells",
    )
    run.add_argument(
        "--key-added",
        metavar="NAME",
        help="name of the results in OUT (obs[NAME], obsm['X_' + NAME], uns[NAME], ...; "
        "default: the method's name)",
    )
    run.add_argument(
        "--n-top-genes",
        type=_int_at_least(0),
        metavar="N",
        help="keep the N most variable genes (or those var['highly_variable'] marks) where "
        "there are more than N; left out: 2000 of more than 3000; the tools read only the "
        "genes var['highly_variable'] marks (0: keep and read all)",
    )
    run.add_argument(
        "--distributed",
        action="store_true",
        help="data-parallel training over the processes of `torchrun --nproc_per_node N "
        "-m scdeepclust run ...` (one per GPU; gloo on CPUs); rank 0 prints and writes OUT",
    )
    run.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="save the training state in DIR (created if needed) every --checkpoint-every "
        "epochs and at the end of each stage, so that a run stopped by a time limit or a "
        "signal can go on with --resume; a checkpoint already there is not overwritten",
    )
    run.add_argument(
        "--checkpoint-every",
        type=_int_at_least(1),
        metavar="N",
        help="epochs between checkpoints (default 10)",
    )
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint in --checkpoint-dir, written by the same command on "
        "the same input (finished stages are skipped); without one yet, start from the "
        "beginning, so a job that may be requeued can always pass it",
    )
    _training_options(run)

    demo = commands.add_parser(
        "demo",
        help="run both methods on built-in PBMC data and write results and figures",
        description="Run scDCC (k = number of bulk_labels) and DESC (defaults) on scanpy's "
        "bundled 700-cell PBMC sample, print the ARI of each against the known cell types and "
        "write an .h5ad and figures into a folder.",
    )
    demo.add_argument(
        "-o",  # as run's
        "--out",
        default="scdeepclust_demo",
        metavar="DIR",
        help="output folder (default: ./scdeepclust_demo)",
    )
    _training_options(demo)
    return parser


def _training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--seed",
        type=_number(int, lambda value: 0 <= value < 2**32, "an integer in 0..2**32 - 1"),
        default=0,
        metavar="N",
        help="random seed (default 0)",
    )
    parser.add_argument(
        "--device",
        type=_device_name,
        default="auto",
        help="'auto' (CUDA when available; the default), 'cpu', 'cuda' or 'cuda:N'",
    )
    parser.add_argument(
        "--precision",
        choices=("float32", "bfloat16"),  # nn.PRECISIONS, without importing torch here
        default="float32",
        help="what the network's layers compute in (default float32; bfloat16 for speed on CPUs "
        "with AMX or AVX-512 BF16 and on recent GPUs)",
    )
    parser.add_argument(
        "--pretrain-epochs",
        type=_int_at_least(1),
        metavar="N",
        help="pretraining epochs (default: from the data size, with early stopping)",
    )
    parser.add_argument(
        "--max-epochs",
        type=_int_at_least(1),
        metavar="N",
        help="most clustering epochs (default: from the data size; the stage usually stops "
        "earlier, once few labels change)",
    )
    parser.add_argument(
        "--batch-size",
        type=_int_at_least(2),
        metavar="N",
        help="cells per minibatch (default 256 at any size; on a few hundred cells a smaller "
        "one gives more steps per epoch)",
    )
    parser.add_argument(
        "--threads",
        type=_int_at_least(1),
        metavar="N",
        help="CPU threads of the training (default: torch's, which follows OMP_NUM_THREADS or "
        "the CPUs the job may use); the same seed gives the same labels with the same count",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _number(kind, holds, what: str):
    """Build an argparse type that parses with `kind` and refuses values failing `holds`.

    The refusal reads "<text> is not `what`", so `what` is a predicate such as "positive".
    """

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            name = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {name}") from None
        if not holds(value):
            raise argparse.ArgumentTypeError(f"{text} is not {what}")
        return value

    return parse


def _cluster_size(text: str) -> int | float:
    """Take a number of cells (digits) or a share of them (a number in [0, 1))."""
    if re.fullmatch(r"[0-9]+", text.strip()):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value < 1:
        whole = math.isfinite(value) and value >= 1 and value.is_integer()
        raise argparse.ArgumentTypeError(
            f"{text} is neither a number of cells (an integer >= 0) nor a share of them in [0, 1)"
            + (f" (for {int(value)} cells write {int(value)})" if whole else "")
        )
    return value


def _device_name(text: str) -> str:
    """Take a device name of a form the tools take; whether this machine has it is told later."""
    if not re.fullmatch(r"auto|cpu|cuda(:[0-9]+)?", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return text


def _int_at_least(low: int):
    return _number(int, lambda value: value >= low, f"at least {low}")


def _cluster_count(text: str):
    """K (an integer >= 2) or LO-HI (the bounds of a search for it)."""
    at_least_two = _int_at_least(2)
    if "-" not in text.strip("-"):
        return at_least_two(text)
    lo, hi = (at_least_two(part) for part in text.split("-", 1))
    if lo > hi:
        raise argparse.ArgumentTypeError(f"{text}: the lower bound exceeds the upper one")
    return (lo, hi)


def _positive(kind):
    return _number(
        kind, lambda value: math.isfinite(value) and value > 0, "a finite positive number"
    )


_non_negative = _number(
    float, lambda value: math.isfinite(value) and value >= 0, "a finite number >= 0"
)


def main(argv: list[str] | None = None) -> int:
    global _distributed_run
    _distributed_run = False  # not an earlier call's, in this process
    parser = build_parser()
    if _is_rank_zero():
        args = parser.parse_args(argv)
    else:  # under torchrun, rank 0 alone prints a mistake in the command line (or --help)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            args = parser.parse_args(argv)
    _distributed_run = bool(getattr(args, "distributed", False))
    _standard_streams_open()
    streams = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _LogStream(sys.stdout), _LogStream(sys.stderr)
    opened_before = _process_group_open()  # a caller's own group is the caller's to close
    try:
        return _command(args)
    finally:
        if _distributed_run and not opened_before and _process_group_open():
            # Left open, a rank that returned while rank 0 was still writing sometimes
            # aborted at exit ("terminate called without an active exception", gloo's threads
            # still running), and torchrun reported the written run as failed.
            sys.modules["torch.distributed"].destroy_process_group()
        sys.stdout, sys.stderr = streams


def _process_group_open() -> bool:
    """Whether torch.distributed's default process group is open (no while torch is unread)."""
    distributed = sys.modules.get("torch.distributed")
    return bool(
        distributed is not None and distributed.is_available() and distributed.is_initialized()
    )


def _command(args) -> int:
    try:
        with (
            warnings.catch_warnings(),
            _signals_as_interruptions() as received,
            _torch_threads(args.threads),
        ):
            _quiet_warnings(args.command)
            status = _run(args) if args.command == "run" else _demo(args)
            if received:  # raised where Python ignored it: stop now
                if _is_rank_zero():
                    _tell(f"{PROG}: the run went on past the stop and wrote its results")
                signum = received[0]
                raise KeyboardInterrupt if signum == signal.SIGINT else _Signalled(signum)
            return status
    except _Signalled as stop:  # under torchrun, every process is stopped: rank 0 says so
        if _is_rank_zero():
            _tell(f"{PROG}: stopped by {signal.Signals(stop.signum).name}")
        return 128 + stop.signum
    except KeyboardInterrupt:
        if _is_rank_zero():
            _tell(f"{PROG}: interrupted")
        return 130
    except CommandError as error:  # the same command on every process: rank 0 says it
        if _is_rank_zero():
            _tell(f"{PROG}: error: {error}")
        return 2
    # Warning: one that `python -W error` raised, said as the command's other errors are
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, MemoryError, Warning) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        if isinstance(error, MemoryError):
            message = str(message) or "out of memory"
        # met in training, it may be one process's alone: each says it, under its rank
        several = os.environ.get("WORLD_SIZE", "1") not in ("", "1")
        rank = f" (rank {os.environ.get('RANK', '0')})" if several else ""
        _tell(f"{PROG}{rank}: error: {in_command_terms(str(message), args.command)}")
        return 1


class _LogStream:
    """stdout or stderr while a command runs: the log never costs the work.

    The file written is what a run makes: a reader that went away (``| head``), a full disk
    under the log (``> log 2>&1``), or a terminal that cannot show a character must not stop
    it after hours of training, neither in a line printed here nor in a progress bar. A
    character the stream cannot encode is escaped; a stream that fails is given up, and the
    run goes on without it.
    """

    def __init__(self, stream):
        self._stream = stream
        self._failed = False

    def write(self, text: str) -> int:
        if not self._failed:
            try:
                try:
                    self._stream.write(text)
                except UnicodeEncodeError:
                    encoding = getattr(self._stream, "encoding", None) or "ascii"
                    self._stream.write(text.encode(encoding, "backslashreplace").decode(encoding))
            except (OSError, ValueError):  # BrokenPipeError, ENOSPC; ValueError: closed
                self._give_up()
        return len(text)

    def writelines(self, lines) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if not self._failed:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._give_up()

    def _give_up(self) -> None:
        self._failed = True
        # the interpreter flushes the stream once more as it exits: the null device takes that
        with contextlib.suppress(OSError, ValueError, AttributeError):
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)

    def __getattr__(self, name):  # isatty, encoding, fileno... as the stream has them
        if name == "_stream" or name.startswith("__"):  # copied or unpickled: not set yet
            raise AttributeError(name)
        return getattr(self._stream, name)


@contextlib.contextmanager
def _signals_as_interruptions():
    """Within: SIGTERM and SIGHUP raise `_Signalled` (only the main thread can take them).

    Yields the list of the signals taken, Ctrl-C's SIGINT included: one that arrives while
    Python runs a garbage collector's callback (as h5py's file objects have) is raised there,
    where Python ignores it and goes on (its traceback is not printed here), so the caller can
    tell a run that went on past it.
    """
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return
    python_hook = sys.unraisablehook

    def unraisable(info) -> None:
        if not isinstance(info.exc_value, KeyboardInterrupt):
            python_hook(info)

    def stop(signum, frame):
        received.append(signum)
        raise _Signalled(signum)

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt

    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        signum = getattr(signal, name, None)
        # only where the signal would kill: `nohup` ignores SIGHUP, a caller may handle them
        if signum is not None and signal.getsignal(signum) is signal.SIG_DFL:
            previous[signum] = signal.signal(signum, stop)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        previous[signal.SIGINT] = signal.signal(signal.SIGINT, interrupt)
    sys.unraisablehook = unraisable
    try:
        yield received
    finally:
        sys.unraisablehook = python_hook
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _standard_streams_open() -> None:
    """Give a closed stdin, stdout or stderr (``2>&-``) the null device.

    Else progress bars and warnings fail on a missing stream, and a file the run opens could
    take the free descriptor and receive what is written to it.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_RDWR)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stdout is None:
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 (the process's own stream)
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115


def _quiet_warnings(command: str) -> None:
    """Print warnings as one line each, and each line once; not other libraries' deprecations.

    anndata warns of repeated cell names wherever an AnnData is made from the file's (reading,
    copying, subsetting): one line says it.
    """
    said: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        if not _is_rank_zero():  # every process reads the same data: rank 0 says it for all
            return
        text = f"{PROG}: warning: {in_command_terms(str(message), command)}"
        if text not in said:
            said.add(text)
            _tell(text)

    warnings.showwarning = show
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=PendingDeprecationWarning)


@contextlib.contextmanager
def _torch_threads(n: int | None):
    """Within: torch computes in `n` threads (as it did before where `n` is None)."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _logged_in_command_terms(command: str, checkpoints: bool):
    """Print the warnings the tools log (an interrupted run's resume advice) in `command`'s terms.

    Only a run with checkpoints logs one.
    """
    if not checkpoints:
        yield
        return
    import scanpy as sc

    def said_here(record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not isinstance(record.msg, str):
            return True
        text = in_command_terms(record.msg, command).replace(" to adata.", ".")
        _tell(f"{PROG}: warning: {text}")  # as the other warnings, not scanpy's "WARNING:"
        return False

    logger = sc.settings._root_logger
    logger.addFilter(said_here)
    try:
        yield
    finally:
        logger.removeFilter(said_here)


# The tools' options that each command has, by their Python names: the package's advice
# ("raise `max_epochs`", "pass another key_added") is printed with the option to type there.
_TRAINING_OPTIONS = {
    "random_state": "--seed",
    "device": "--device",
    "precision": "--precision",
    "pretrain_epochs": "--pretrain-epochs",
    "max_epochs": "--max-epochs",
    "batch_size": "--batch-size",
}
_COMMAND_OPTIONS = {
    "demo": _TRAINING_OPTIONS,
    "run": {
        **_TRAINING_OPTIONS,
        "n_clusters": "-k",
        "init": "--init",
        "resolution": "--resolution",
        "n_neighbors": "--n-neighbors",
        "layer": "--layer",
        "label_key": "--label-key",
        "protein_key": "--protein-key",
        "batch_key": "--batch-key",
        "batch_mixing": "--batch-mixing",
        "key_added": "--key-added",
        "n_top_genes": "--n-top-genes",
        "distributed": "--distributed",
        "refine": "--refine",
        "min_cluster_size": "--min-cluster-size",
        "checkpoint_dir": "--checkpoint-dir",
        "checkpoint_every": "--checkpoint-every",
        "resume": "--resume",
    },
}
_MASK_VAR_ADVICE = "pass the run's mask_var (None: every gene)"  # train/_checkpoint.py's
_SWITCHES = ("distributed", "resume")  # name=True is the option alone
_BACKTICKED = re.compile(r"(`[^`]*`)")
_QUOTED = r"""('[^']*'|"[^"]*")"""
_MADE_MISSING = re.compile(  # _missing.made_missing's line
    rf"`adata\.obs\[{_QUOTED}\] = adata\.obs\[\1\]\.mask\(adata\.obs\[\1\]\.astype\(str\) == "
    rf"{_QUOTED}\)`"
)
# not part of a longer name, a path, or a key such as obs['batch_key'] or params['n_clusters']
_BEFORE, _AFTER = r"(?<![\w.'\"\[/-])", r"(?![\w'\"\]/]|[.-]\w)"


def in_command_terms(text: str, command: str = "run") -> str:
    """Write the tools' option names in `text` as `command`'s options.

    ``name=value`` (quoted or not), ``n_clusters=(lo, hi)`` and a name in backticks are
    written so for every option the command has; a bare name only where it holds an underscore
    (no English word does). Python calls in backticks, keys and paths are left as they are.
    """
    options = _COMMAND_OPTIONS[command]
    if command == "run":  # the Python line that makes a "no label" value missing
        text = _MADE_MISSING.sub(r"`--missing-label \2`", text)
        # a checkpoint of another gene selection: the command chooses genes by --n-top-genes
        text = text.replace(_MASK_VAR_ADVICE, "give the run's --n-top-genes (0: every gene)")
    names = "|".join(sorted(options, key=len, reverse=True))
    bare = "|".join(sorted((n for n in options if "_" in n), key=len, reverse=True))

    def given(match) -> str:
        flag, value = options[match[1]], match[3]
        if match[1] in _SWITCHES:
            return flag if value == "True" else match[0]
        # None and the booleans are Python's: no value the command line takes
        return match[0] if value in ("None", "True", "False") else f"{flag} {value}"

    def translated(part: str) -> str:
        # a checkpoint's settings, as its refusal lists them ("config.random_state: 0 then")
        part = re.sub(r"(?<![\w.])config\.(\w+)", lambda m: options.get(m[1], m[0]), part)
        if "n_clusters" in options:
            part = re.sub(_BEFORE + r"n_clusters=\((\d+), (\d+)\)", r"-k \1-\2", part)
        # a quoted value the shell would split or read ('raw counts'): quoted for the shell
        part = re.sub(
            rf"{_BEFORE}({names})=(['\"])([^'\"]*[^\w.:'\"-][^'\"]*)\2{_AFTER}",
            lambda m: f"{options[m[1]]} {shlex.quote(m[3])}",
            part,
        )
        part = re.sub(rf"{_BEFORE}({names})=(['\"]?)([\w.:-]+)\2{_AFTER}", given, part)
        part = re.sub(rf"^({names})$", lambda m: options[m[1]], part)  # `name`
        return re.sub(rf"{_BEFORE}({bare}){_AFTER}(?!=)", lambda m: options[m[1]], part)

    parts = _BACKTICKED.split(text)  # odd parts: in backticks
    for i, part in enumerate(parts):
        if i % 2 == 0:  # the AnnData the command read is its input, to whoever runs it
            parts[i] = translated(re.sub(r"(?<![\w.])adata\.obs\[", "the input's obs[", part))
        elif "(" not in part:  # a call is Python to run, left as it is
            parts[i] = "`" + translated(part[1:-1]) + "`"
    # a checkpoint's run; not in a path or a value given (quoted there, or after a /)
    text = re.sub(r"(?<=[Tt]he )same call\b", "same command", "".join(parts))
    # "pass batch_mixing=0 (--batch-mixing 0)" said the option twice
    return re.sub(r"(-[-\w]+(?: [\w.:-]+)?) \(`?\1`?\)", r"\1", text)


def _genes_read(adata, args):
    """Return the genes the tool will read: those var['highly_variable'] marks, or all."""
    from .pp._input import HIGHLY_VARIABLE_IF_PRESENT, MaskRefused, gene_mask

    try:
        return gene_mask(adata, HIGHLY_VARIABLE_IF_PRESENT if args.n_top_genes else None)
    except MaskRefused as error:
        raise _unreadable_marking(error) from None


def _unreadable_marking(error) -> CommandError:
    return CommandError(
        f"the input's var['highly_variable'] cannot mark the genes to read ({error.reason}); "
        "fix that column in the file, or pass --n-top-genes 0 to read every gene"
    )


# Set by `main`: only a --distributed run, or one under torchrun, heeds RANK (a launcher or a
# shell may leave it set).
_distributed_run = False


def _is_rank_zero() -> bool:
    if not _distributed_run and "TORCHELASTIC_RUN_ID" not in os.environ:
        return True
    return os.environ.get("RANK", "0") == "0"


def say(text: str = "") -> None:
    if _is_rank_zero():  # under torchrun, rank 0 speaks for all
        print(text, flush=True)


def _tell(text: str) -> None:
    """Print a line on stderr: refusals, warnings, interruptions."""
    print(text, file=sys.stderr, flush=True)


def _check_launch(args, output: Path) -> None:
    """Refuse, before reading the data, a --distributed run outside torchrun, and the reverse."""
    from .train._distributed import missing_torchrun_env

    missing = missing_torchrun_env()
    if args.distributed and missing:
        raise CommandError(
            "--distributed runs one process per GPU or CPU worker under torchrun, e.g. "
            f"`torchrun --nproc_per_node 4 -m {PROG} run ... --distributed`; not set here: "
            f"{', '.join(missing)}"
        )
    world = os.environ.get("WORLD_SIZE", "1")
    if not args.distributed and "TORCHELASTIC_RUN_ID" in os.environ and world not in ("", "1"):
        raise CommandError(
            f"run under torchrun ({world} processes) without --distributed: each process would "
            f"train alone on every cell and write {output}; add --distributed"
        )


def _expanded(text: str) -> Path:
    """`text` as a path, a leading ~ read as the shell reads it (also where it was quoted).

    As in the shell, a ~name that names no user is left as it is (a file may be called so).
    """
    return Path(os.path.expanduser(text))


def _run(args) -> int:
    n_top_genes_given = args.n_top_genes is not None
    if not n_top_genes_given:
        args.n_top_genes = DEFAULT_N_TOP_GENES
    # a quoted ~ reaches us unexpanded: as the shell would read it, not a folder named "~"
    path = _expanded(args.input)
    if not path.exists():
        raise CommandError(f"input file not found: {path}")
    zarr = path.suffix.lower() == ".zarr"
    if path.is_dir() != zarr:
        raise CommandError(
            f"input {path} is a folder; give an .h5ad or .h5 file, or a .zarr store (a folder "
            "whose name ends in .zarr)"
            if path.is_dir()
            else f"input {path} is a file; a .zarr store is a folder"
        )
    if path.suffix.lower() not in READABLE and not zarr:
        raise CommandError(
            f"cannot read {path.name!r}: give an .h5ad or .h5 file, or a .zarr store"
        )
    output = _expanded(args.output)
    if output.is_dir() and output.suffix.lower() != ".h5ad":
        raise CommandError(
            f"-o/--output {output} is a folder; give a file in it, e.g. {output / 'result.h5ad'}"
        )
    if output.suffix.lower() != ".h5ad":  # as the input's is read
        raise CommandError(f"-o/--output must end in .h5ad, got {output.name!r}")
    if output.resolve() == path.resolve():
        raise CommandError(
            f"-o/--output {output} is the input file: the results would replace the data they "
            "come from (prepared, so no longer the counts). Give another output file."
        )
    writes = _is_rank_zero()  # rank 0 writes the results; the others' probes could race it
    if writes:
        _check_writable(output, "-o/--output")
    plot = None if args.plot is None else _expanded(args.plot)
    if plot is not None and plot.suffix.lower() not in FIGURE_FORMATS:
        raise CommandError(f"--plot must end in one of {', '.join(FIGURE_FORMATS)}")
    if plot is not None and writes:
        _check_writable(plot, "--plot")
    model_dir = None if args.save_model is None else _expanded(args.save_model)
    if model_dir is not None and model_dir.exists() and not model_dir.is_dir():
        raise CommandError(f"--save-model {model_dir} is a file; name a folder for the model")
    if model_dir is not None and writes:
        _check_writable(model_dir / "model.json", "--save-model")
    if args.label_key is not None and args.method != "scdcc":
        raise CommandError("--label-key (known labels of some cells) is for -m scdcc only")
    if args.protein_key is not None and args.method != "scdcc":
        raise CommandError("--protein-key (constraints from protein levels) is for -m scdcc only")
    for option, given in (("--label-key", args.label_key), ("--protein-key", args.protein_key)):
        if given is not None and args.distributed:
            raise CommandError(
                f"{option} makes pairwise constraints, which --distributed training does not "
                "support yet; leave one of them out"
            )
    if args.batch_mixing is not None and args.batch_key is None:
        raise CommandError("--batch-mixing needs --batch-key (it weighs a penalty on batches)")
    if args.key_added is not None and not args.key_added.strip():
        raise CommandError("--key-added needs a name for the results (left out: the method's)")
    for option, given in (("--checkpoint-every", args.checkpoint_every), ("--resume", args.resume)):
        if given and args.checkpoint_dir is None:
            raise CommandError(f"{option} needs --checkpoint-dir, the folder of the checkpoint")
    if args.checkpoint_dir is not None and args.distributed:
        raise CommandError(
            "--checkpoint-dir cannot be used with --distributed yet; leave one of them out"
        )
    if args.checkpoint_dir is not None and not args.checkpoint_dir.strip():
        raise CommandError('--checkpoint-dir needs a folder ("" would be the current one)')
    checkpoint_dir = None if args.checkpoint_dir is None else _expanded(args.checkpoint_dir)
    if checkpoint_dir is not None and checkpoint_dir.exists() and not checkpoint_dir.is_dir():
        raise CommandError(
            f"--checkpoint-dir {checkpoint_dir} is a file; name a folder (created if needed)"
        )
    # an .h5 of scDCC's layout brings its labels as the truth (said once read, if it has none)
    if (
        args.missing_label
        and args.label_key is None
        and args.truth is None
        and path.suffix.lower() in ANNDATA_FORMATS
    ):
        raise CommandError(
            "--missing-label names a value of the --label-key or --truth column: give one of "
            "them, or leave --missing-label out"
        )
    if args.resolution is not None and args.n_clusters is not None and args.method == "desc":
        raise CommandError(
            "--resolution has no effect on -m desc with -k (Leiden is brought to K from its own "
            "start); give one of them"
        )
    k_given = isinstance(args.n_clusters, int)
    # scDCC with known labels and neither -k nor --resolution searches the number
    searches = isinstance(args.n_clusters, tuple) or (
        args.n_clusters is None
        and args.method == "scdcc"
        and args.label_key is not None
        and args.resolution is None
    )
    if args.init is not None and not (k_given or searches):
        raise CommandError(
            "--init says how a given number of clusters is reached, and without -k Leiden at "
            "--resolution clusters the cells: give -k K, or leave --init out"
        )
    if args.init in ("leiden", "kmeans") and searches:
        balanced = (
            "; with --label-key the known classes start the clusters"
            if args.method == "scdcc" and args.label_key
            else "; --init balanced-kmeans balances it"
        )
        raise CommandError(
            f"--init {args.init} has no effect on a searched number of clusters (the search "
            f"scores k-means partitions, and the number is reached by k-means{balanced}); "
            "leave --init out"
        )
    if args.resolution is not None and args.method == "scdcc" and searches:
        raise CommandError(
            "--resolution has no effect on -m scdcc with -k LO-HI (the number searched for is "
            "reached by k-means); give one of them"
        )
    if args.min_cluster_size is not None and (k_given or args.label_key is not None):
        given = "-k K" if k_given else "--label-key"
        raise CommandError(
            "--min-cluster-size merges small clusters where their number comes from the data, "
            f"and with {given} it is given: leave --min-cluster-size out"
        )
    if args.resolution is not None and k_given and args.init in ("kmeans", "balanced-kmeans"):
        raise CommandError(
            f"--resolution has no effect with -k and --init {args.init} (it starts --init "
            "leiden only); give one of them"
        )

    _check_launch(args, output)

    import scdeepclust as sdc

    from .pp._counts import is_count_matrix
    from .pp._input import MANY_GENES, MaskRefused, layer_names
    from .pp._recipe import DESC_SCALES, LEFT_UNSCALED, looks_scaled
    from .tl._validate import check_known_labels

    started = time.perf_counter()
    say(f"reading {path}")
    try:
        adata = sdc.datasets.read(path)
    except OSError as error:
        if str(path) in str(error) or path.name in str(error):
            raise
        import h5py

        # h5py's own words ("file signature not found", "truncated file") name no file
        if not h5py.is_hdf5(path) or "truncated file" in str(error):
            raise CommandError(
                f"cannot read {path}: {error}. It is not a complete .h5ad or .h5 (HDF5) file."
            ) from None
        hint = (
            ": another program holds it open (close that), or the file system does not support "
            "HDF5's file locking (set HDF5_USE_FILE_LOCKING=FALSE)"
            if "unable to lock file" in str(error)
            else ""
        )
        raise OSError(f"cannot read {path}: {error}{hint}") from None
    except (ValueError, KeyError, TypeError, RuntimeError, MemoryError):
        raise
    except Exception as error:  # noqa: BLE001 - anndata's and scanpy's own kinds, one line each
        kind = "" if type(error) is Exception else f"{type(error).__name__}: "
        raise ValueError(
            f"cannot read {path}: {kind}{str(error).rstrip('.')}. Is the file complete, and "
            "written by a version of anndata (or Cell Ranger) that the one installed here reads?"
        ) from None
    say(f"  {adata.n_obs} cells x {adata.n_vars} genes")
    if "protein" in adata.obsm and args.protein_key is None:  # CITE-seq, used when asked
        say(
            f"  {adata.obsm['protein'].shape[1]} proteins per cell in obsm['protein'], written "
            "with the results (-m scdcc --protein-key protein makes constraints of them)"
        )
    if args.protein_key is not None and args.protein_key not in adata.obsm:
        raise CommandError(
            f"--protein-key {args.protein_key!r} is not in the input's obsm; keys: "
            f"{list(adata.obsm.keys())}"
        )
    truth = args.truth
    # the file's labels as --label-key are the training's own: nothing would be left to score
    if (
        truth is None
        and "label" in adata.obs
        and args.label_key != "label"
        and path.suffix.lower() not in ANNDATA_FORMATS
    ):
        if sdc.datasets.h5_layout(path) == "scdcc":
            truth = "label"
            say("  the file's labels (obs['label']) are used as truth")
    columns = ((truth, "--truth"), (args.label_key, "--label-key"), (args.batch_key, "--batch-key"))
    for column, option in columns:
        if column is not None and column not in adata.obs:
            raise CommandError(
                f"{option} {column!r} is not a column of the input's obs; columns: "
                f"{list(adata.obs.columns)}"
            )
    if args.layer == "raw" and "raw" not in adata.layers:
        args.layer = _counts_from_raw(adata)
    elif args.layer is not None and args.layer not in adata.layers:
        raise CommandError(
            f"--layer {args.layer!r} is not a layer of the input; layers: {layer_names(adata)}"
            + (" (--layer raw reads the counts in its .raw)" if _raw_counts(adata) else "")
        )
    elif (
        args.method == "scdcc"
        and args.layer is None
        and "counts" not in adata.layers
        and not (adata.X is None and len(layer_names(adata)) == 1)  # X is made of that layer
        and _raw_counts(adata)  # first: most inputs have no .raw, and X may be large
        and (adata.X is None or not is_count_matrix(adata.X))
    ):  # the recipe's refusal would give the Python line
        raise CommandError(
            "scdcc models raw counts, but X does not hold them and there is no "
            "layers['counts']; the input's .raw holds counts: pass --layer raw to read them"
        )
    _missing_labels_read(adata, (args.label_key, truth), args.missing_label or ())
    if args.label_key is not None and args.method == "scdcc":  # before preparing the data
        try:
            check_known_labels(adata.obs[args.label_key], args.label_key)
        except ValueError as error:
            column = f"adata.obs[{args.label_key!r}]"
            text = str(error).replace(column, f"--label-key {args.label_key!r}", 1)
            raise CommandError(in_command_terms(text).rstrip(".")) from None
    if truth is not None:  # before training: the score comes after it
        warn_if_no_label_as_truth(adata.obs[truth], truth, f"--truth {truth!r}")
        _warn_if_measured(adata.obs[truth], truth)
        truth_known = adata.obs[truth].notna()
        scored = truth_known.copy()
        if args.label_key is not None and args.method == "scdcc":
            scored &= adata.obs[args.label_key].isna()  # labelled cells keep their label
        if (
            not scored.any()
            and truth_known.any()
            and args.label_key is not None
            and adata.obs[args.label_key].notna().all()
        ):
            raise CommandError(
                f"--label-key {args.label_key!r} labels every cell, so --truth {truth!r} has "
                "no cell left to score (labelled cells keep their label). Only missing values "
                "mark a cell without a label: a value such as 'unknown' is a class of its own. "
                "Leave the unlabelled cells empty in that column (or name their value with "
                "--missing-label), or leave --truth out"
            )
        if not scored.any():
            raise CommandError(
                f"--truth {truth!r} has no label for any cell"
                + (f" without a --label-key {args.label_key!r} label" if args.label_key else "")
                + ", so there is nothing to score; leave --truth out or name another column"
            )

    if (
        args.label_key is not None
        and args.method == "scdcc"
        and adata.obs[args.label_key].notna().all()
        and text_counts(adata.obs[args.label_key], NO_LABEL_AS_TEXT).empty
    ):
        raise CommandError(
            f"--label-key {args.label_key!r} labels every cell, and labelled cells keep their "
            "label: the clusters would be that column. Only missing values mark a cell "
            "without a label; leave the cells whose type is not known empty in that column "
            "(or name their value with --missing-label), or leave --label-key out"
        )
    key = args.key_added or args.method
    if truth is not None and truth in (key, f"{key}_confidence"):
        raise CommandError(
            f"--key-added {key!r} would write the clusters over the --truth column {truth!r}, "
            "and score them against themselves; give another --key-added"
        )
    _check_key_added(adata, key, args)
    protein_key = protein_step = None
    if args.protein_key is not None:  # its cells are the recipe's to leave out, as X's
        protein_key, protein_step = _proteins_to_read(adata, args.protein_key, key)

    _genes_read(adata, args)  # read as the tools' mask_var, also where the recipe keeps all
    counts_layer = args.layer or ("counts" if "counts" in adata.layers else None)
    if adata.X is None and counts_layer is not None:
        # what the API asks its caller to do; here the file's X is not written back
        adata.X = adata.layers[counts_layer].copy()
        say(f"  X is empty: prepared from a copy of layers[{counts_layer!r}]")
    elif adata.X is None and len(layer_names(adata)) == 1:
        # zellkonverter's export of a SingleCellExperiment holding logcounts alone
        (only,) = layer_names(adata)
        adata.X = adata.layers[only].copy()
        say(f"  X is empty: prepared from a copy of layers[{only!r}], the input's only layer")
    elif adata.X is None and layer_names(adata):
        raise CommandError(
            f"X is empty and no layer is named 'counts'; layers: {layer_names(adata)}. Name "
            "the one of raw counts with --layer"
        )

    say(f"preparing the data for {args.method}")
    n_cells_read = adata.n_obs
    # DESC z-scores each gene as it reads the cells: a sparse X is never densified, and the
    # file written keeps the log-normalised X that scanpy's other tools read
    try:
        steps = sdc.pp.recipe(
            adata,
            args.method,
            layer=args.layer,
            n_top_genes=args.n_top_genes or None,
            hvg_above=0 if n_top_genes_given else GENES_TO_CHOOSE,
            batch_key=args.batch_key,
            scale=False,
        )
    except MaskRefused as error:
        raise _unreadable_marking(error) from None
    if protein_step is not None:
        steps.append(protein_step)
    for step in steps:
        if step.startswith(LEFT_UNSCALED):  # the recipe's words are the Python call's
            step = f"{LEFT_UNSCALED}, as the file written keeps it: {DESC_SCALES}"
        say(f"  {step}")
    removed = n_cells_read - adata.n_obs
    if removed and _is_rank_zero():  # a pipeline joining the results on cell names misses them
        _tell(
            f"{PROG}: warning: {removed} of the input's {n_cells_read} cells have no count (in "
            "the genes read) and were removed, as the steps above say: the file written holds "
            f"{adata.n_obs} cells"
        )
    # DESC z-scores the log-normalised X itself; one that arrives scaled (negative values) is
    # used as it came, as the recipe said (with batches DESC z-scores within each batch anyway)
    desc_scales = args.method == "desc" and not looks_scaled(adata.X)

    genes = _genes_read(adata, args)
    marked = (
        "" if genes.columns is None else f" (those var['highly_variable'] marks, of {adata.n_vars})"
    )
    n_read = adata.n_vars if genes.columns is None else len(genes.columns)
    import torch

    # what the labels depend on besides the seed: provenance for the log of a pipeline
    on_cpu = args.device == "cpu" or (args.device == "auto" and not torch.cuda.is_available())
    threads = f" in {torch.get_num_threads()} CPU threads" if on_cpu else ""
    say(f"training {args.method} on {adata.n_obs} cells x {n_read} genes{marked}{threads}")
    options = _tool_options(args, key)
    if protein_key is not None:
        options["protein_key"] = protein_key
    if args.resolution is not None:
        options["resolution"] = args.resolution
    if args.n_neighbors is not None:
        options["n_neighbors"] = args.n_neighbors
    if args.init is not None:
        options["init"] = args.init
    if args.distributed:
        options["distributed"] = True
    if args.batch_key is not None:
        options["batch_key"] = args.batch_key
    if args.batch_mixing is not None:
        options["batch_mixing"] = args.batch_mixing
    if args.refine is not None:
        options["refine"] = args.refine
    if args.min_cluster_size is not None:
        options["min_cluster_size"] = args.min_cluster_size
    if checkpoint_dir is not None:
        options["checkpoint_dir"] = checkpoint_dir
        options["resume"] = args.resume
        if args.checkpoint_every is not None:
            options["checkpoint_every"] = args.checkpoint_every
    if not args.n_top_genes:  # every gene, also where var['highly_variable'] marks some
        options["mask_var"] = None
    elif not genes.chosen_by_user and n_read > MANY_GENES:
        # the recipe kept every gene: said here in the command's terms, not the tool's
        options["mask_var"] = None
        if n_read > args.n_top_genes and _is_rank_zero():
            _tell(
                f"{PROG}: warning: reading all {n_read} genes, as X is scaled and the input "
                "holds no counts to choose the variable ones from; clustering reads best on a "
                "few thousand. Mark them in the input's var['highly_variable'] or name the "
                "layer of raw counts ("
                + ("--layer raw: its .raw holds them" if _raw_counts(adata) else "--layer")
                + "), or pass --n-top-genes 0 to read every gene without this warning."
            )
    with warnings.catch_warnings(), _logged_in_command_terms("run", checkpoint_dir is not None):
        # pp.recipe has warned about the batches already
        warnings.filterwarnings("ignore", category=sdc.pp.BatchWarning)
        if args.method == "scdcc":
            model = sdc.tl.scdcc(
                adata,
                args.n_clusters,
                layer=args.layer,
                label_key=args.label_key,
                return_model=model_dir is not None,
                **options,
            )
        else:
            model = sdc.tl.desc(
                adata,
                n_clusters=args.n_clusters,
                scale=desc_scales,
                return_model=model_dir is not None,
                **options,
            )
    if args.distributed and not _is_rank_zero():  # rank 0 writes the results
        return 0
    _summary(adata, key, truth, known=args.label_key if args.method == "scdcc" else None)

    if plot is not None:  # before writing: the file then holds the UMAP too
        say("drawing the UMAP of the embedding")
        try:
            with _as_classes(adata, truth):
                _figure(sdc.pl.umap, adata, key, plot, color=truth)
        except BaseException:
            # the trained result is kept all the same, an interrupted plot included
            _write_result(adata, output)
            _tell(f"{PROG}: no figure; wrote {output}")
            raise
        say(f"wrote {plot}")
    # interrupted, it leaves no partial file, nor a truncated earlier result
    _write_result(adata, output)
    say(f"wrote {output}")
    if model_dir is not None:  # after the results: they are the run's first product
        model.save(model_dir, overwrite=True)
        say(f"wrote the model into {model_dir} (scdeepclust.models.load reads it)")
    say(f"done in {_duration(time.perf_counter() - started)}")
    return 0


def _warn_if_measured(column, truth: str) -> None:
    """Warn where --truth names a measurement (n_counts, a score), not annotated types."""
    import pandas as pd

    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    known = column.dropna()
    distinct = known.nunique()
    # more values than any annotation has types, and than a few cells share each
    if numeric and distinct > 100 and distinct > len(known) / 10 and _is_rank_zero():
        _tell(
            f"{PROG}: warning: --truth {truth!r} holds {distinct} distinct numbers for "
            f"{len(known)} cells, as a measurement does (counts, a score), not cell types: each "
            "value is scored as a type of its own. Name the column of annotated types."
        )


def _missing_labels_read(adata, columns, values) -> None:
    """Make the cells of `columns` holding one of `values` missing (so in the file written).

    A value is matched as text, stripped, as the package's warnings show it ('NA'), and in a
    column of numbers also as a number (-1 matches -1.0).
    """
    import pandas as pd

    if not values:
        return
    columns = list(dict.fromkeys(c for c in columns if c is not None))
    if not columns and _is_rank_zero():  # a file of scDCC's layout without labels
        _tell(f"{PROG}: warning: the input brings no labels to read --missing-label in")
    for column in columns:
        before = adata.obs[column]
        text = pd.Series(before.astype(str).str.strip().to_numpy(), index=before.index)
        hit = text.isin([value.strip() for value in values]).to_numpy()
        if pd.api.types.is_numeric_dtype(before) and not pd.api.types.is_bool_dtype(before):
            numbers = pd.to_numeric(pd.Series(values), errors="coerce").dropna()
            hit |= before.isin(numbers.tolist()).to_numpy(dtype=bool)
        hit &= before.notna().to_numpy()
        if not hit.any():
            if _is_rank_zero():
                _tell(
                    f"{PROG}: warning: no cell of obs[{column!r}] holds "
                    + " or ".join(repr(v) for v in values)
                    + " (--missing-label); the column is read as it is"
                )
            continue
        after = before.mask(hit)
        if isinstance(after.dtype, pd.CategoricalDtype):
            after = after.cat.remove_unused_categories()
        adata.obs[column] = after.array  # by position: obs names may repeat
        say(f"  obs[{column!r}]: {hit.sum()} cells read as unlabelled (--missing-label)")


def _raw_counts(adata) -> bool:
    """Whether the input's ``.raw`` holds counts (Seurat's exports keep them there)."""
    from .pp._counts import is_count_matrix

    return adata.raw is not None and is_count_matrix(adata.raw.X)


def _counts_from_raw(adata) -> str:
    """Copy the counts of ``.raw`` into a layer, in X's genes, and return the layer's name.

    The tools read counts from a layer; ``.raw`` may hold more genes than X, in another order.
    """
    import numpy as np
    import pandas as pd

    from .pp._input import layer_names

    if adata.raw is None:
        raise CommandError(
            f"--layer raw: the input has no .raw and no layer 'raw'; layers: {layer_names(adata)}"
        )
    missing = adata.var_names.difference(adata.raw.var_names)
    if len(missing):
        raise CommandError(
            f"--layer raw: the input's .raw lacks {len(missing)} of X's {adata.n_vars} genes "
            f"(e.g. {', '.join(map(repr, missing[:3]))}), so it cannot give their counts; "
            "write the counts of X's genes into a layer and name it"
        )
    if not _raw_counts(adata):
        raise CommandError(
            "--layer raw: the input's .raw does not hold counts (non-negative integers); "
            "name the layer that holds them, or leave --layer out"
        )
    raw_names = adata.raw.var_names
    repeated = adata.var_names.intersection(raw_names[raw_names.duplicated()])
    if len(repeated):
        raise CommandError(
            f"--layer raw: the input's .raw repeats {len(repeated)} of the gene names X reads "
            f"(e.g. {', '.join(map(repr, repeated[:3]))}), so which counts are theirs is "
            "unclear; write the counts of X's genes into a layer and name it"
        )
    first = pd.Series(np.arange(len(raw_names)), index=raw_names)
    columns = first[~raw_names.duplicated()].reindex(adata.var_names).to_numpy()
    name = next(n for n in ("counts", "raw_counts", "counts_from_raw") if n not in adata.layers)
    adata.layers[name] = adata.raw.X[:, columns].copy()
    say(f"  counts of X's genes read from .raw into layers[{name!r}]")
    return name


def _proteins_to_read(adata, protein_key: str, key: str) -> tuple[str, str]:
    """Return the obsm key of the proteins as scDCC is to read them, and the step to say.

    Antibody counts are normalised into a key of their own: the file written keeps them. A
    centred log-ratio is the cell's own, so that the recipe may leave cells out afterwards.
    """
    import scdeepclust as sdc

    from ._results import result_keys
    from .pp._protein import holds_protein_counts, protein_levels

    try:
        levels = protein_levels(adata.obsm[protein_key], protein_key)
    except ValueError as error:
        raise CommandError(in_command_terms(str(error))) from None
    if not holds_protein_counts(levels):
        return protein_key, (
            f"proteins: obsm[{protein_key!r}] used as given (levels, not antibody counts)"
        )
    normalised = f"{protein_key}_clr"
    results = result_keys(key)
    if normalised in (results["embedding"], results["probabilities"]):
        raise CommandError(
            f"--key-added {key!r} would write the results over obsm[{normalised!r}], where "
            f"--protein-key {protein_key!r}'s normalised counts go; give another --key-added"
        )
    earlier = adata.obsm[normalised] if normalised in adata.obsm else None
    sdc.pp.clr(adata, protein_key, key_added=normalised)
    if earlier is not None:
        import numpy as np

        written = protein_levels(adata.obsm[normalised], normalised)
        try:
            before = protein_levels(earlier, normalised)
        except ValueError:
            before = None
        same = before is not None and before.shape == written.shape
        same = same and np.allclose(before, written, rtol=1e-5, atol=1e-6)
        if not same:  # the input's own values: never replaced unasked (nothing is written)
            raise CommandError(
                f"the input's obsm[{normalised!r}] holds other values than the centred "
                f"log-ratio of obsm[{protein_key!r}], which the run would write there; rename "
                f"or remove it, or name it as --protein-key {normalised} to read it as it is"
            )
    return normalised, (
        f"proteins: obsm[{protein_key!r}] holds antibody counts, normalised by a centred "
        f"log-ratio per cell into obsm[{normalised!r}]"
    )


def _check_key_added(adata, key: str, args) -> None:
    """Say the tools' refusals of a result name before the data are prepared.

    Only those that the data's preparation cannot change: a gene of that name, say, may be
    one the recipe removes.
    """
    from ._results import foreign_entries
    from .tl._validate import check_key_added

    try:
        check_key_added(key)
    except ValueError as error:
        raise CommandError(in_command_terms(str(error))) from None
    if adata.obs.index.name in (key, f"{key}_confidence"):
        raise CommandError(
            f"--key-added {key!r} would add the column {adata.obs.index.name!r}, the name of "
            "the input's cell index, and .h5ad files cannot hold both; give another --key-added"
        )
    for column, option in ((args.label_key, "--label-key"), (args.batch_key, "--batch-key")):
        if column is not None and column in (key, f"{key}_confidence"):
            raise CommandError(
                f"--key-added {key!r} would write the clusters over the {option} column "
                f"{column!r}, which the run reads; give another --key-added"
            )
    foreign = foreign_entries(adata, key)
    if foreign:
        raise CommandError(
            f"--key-added {key!r} would replace the input's {', '.join(foreign)}, which no run "
            "of scdeepclust wrote (another tool's results or the user's annotations: "
            "uns['spatial'] holds a Visium section's images); give another --key-added"
        )


def _h5ad_writer(adata):
    """`adata.write_h5ad`, writing text as it was read.

    A file written under pandas' string dtype (pandas 3, anndata 0.13) holds nullable strings,
    which anndata 0.12 reads but refuses to write unless told to: the trained result was lost.
    """
    import anndata

    def write(path):
        with anndata.settings.override(allow_write_nullable_strings=True):  # anndata >= 0.11
            adata.write_h5ad(path)

    return write


def _write_result(adata, output: Path) -> None:
    """Write the trained result; where `output` cannot take it, keep it in the temporary folder.

    The place was checked before training, but a disk can fill up during hours of it.
    """
    try:
        _write_where_it_fits(adata, output)
    except OSError as error:
        # the name shortened: the output's own may be near the filesystem's limit
        kept = Path(tempfile.gettempdir()) / (
            f"scdeepclust-{os.getpid()}-{output.stem[:40]}{output.suffix}"
        )
        try:
            _write_where_it_fits(adata, kept)
        except OSError:
            raise OSError(
                f"-o/--output {output} could not be written ({error}), nor {kept}: the trained "
                "result is lost. Run again once the output's place can take it."
            ) from None
        raise OSError(
            f"-o/--output {output} could not be written ({error}); the trained result was "
            f"written to {kept} instead: move it where it belongs."
        ) from None


def _write_where_it_fits(adata, path: Path) -> None:
    """Write `adata` to `path` unless its file system lacks the room for it (an `OSError`).

    HDF5 meeting a full disk crashed the process (a segmentation fault, a partial file left,
    no result kept elsewhere), so the room is checked first, by the arrays' size in memory.
    """
    place = next(p for p in (path, *path.parents) if p.exists())
    free, needed = shutil.disk_usage(place).free, _bytes_in_memory(adata)
    if free < needed:
        raise OSError(
            errno.ENOSPC,
            f"about {needed / 2**20:,.0f} MiB to write, {free / 2**20:,.0f} MiB free there",
        )
    write_atomically(path, _h5ad_writer(adata))


def _bytes_in_memory(adata) -> int:
    """About what an .h5ad of `adata` takes (uncompressed, as anndata writes by default)."""
    import pandas as pd
    from scipy import sparse

    def size(value) -> int:
        if sparse.issparse(value):
            return sum(
                getattr(value, a).nbytes
                for a in ("data", "indices", "indptr", "row", "col")
                if hasattr(value, a)
            )
        if isinstance(value, pd.DataFrame):
            return int(value.memory_usage(deep=True).sum())
        return int(getattr(value, "nbytes", 0))

    arrays = [adata.X, *adata.layers.values(), *adata.obsm.values(), *adata.varm.values()]
    arrays += [*adata.obsp.values(), *adata.varp.values(), adata.obs, adata.var]
    if adata.raw is not None:
        arrays += [adata.raw.X, adata.raw.var]
    return sum(size(a) for a in arrays if a is not None)


def _check_writable(path: Path, option: str) -> None:
    """Refuse, before hours of training, a file path that cannot be written.

    A scratch file is written in its folder; folders created for that are removed again (the
    run creates them when it writes), so that a run that fails leaves none behind.
    """
    if path.is_dir():
        raise CommandError(f"{option} {path} is a folder; give a file name inside it")
    blocking = [p for p in path.parents if p.exists() and not p.is_dir()]
    if blocking:  # mkdir said only "[Errno 17] File exists"
        raise CommandError(f"{option} {path} cannot be written: {blocking[0]} is a file")
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    try:
        for attempt in range(5):
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                with tempfile.TemporaryFile(dir=path.parent):
                    pass
                break
            except FileNotFoundError:
                # Another run checking the same new folder removed it between our mkdir and
                # the scratch file: make it again rather than refuse a writable path.
                if attempt == 4:
                    raise
    except OSError as error:
        raise CommandError(f"{option} {path} cannot be written: {error}") from None
    finally:
        for folder in missing:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break


def _demo(args) -> int:
    import scdeepclust as sdc

    started = time.perf_counter()
    out = _expanded(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} is a file; name a folder for the results")
    _check_writable(out / "pbmc68k_demo.h5ad", "--out")  # before training, as for `run`
    created = [p for p in (out, *out.parents) if not p.exists()]
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _demo_in(sdc, args, out, started)
    except BaseException:
        for folder in created:  # deepest first; one that holds a figure stays
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def _demo_in(sdc, args, out: Path, started: float) -> int:
    figures = []
    truth = "bulk_labels"
    adata = sdc.datasets.pbmc68k()
    n_types = adata.obs[truth].nunique()
    say(
        f"built-in data: scanpy's pbmc68k_reduced, {adata.n_obs} cells x {adata.n_vars} genes, "
        f"{n_types} annotated cell types in obs[{truth!r}]"
    )
    say("preparing: raw counts for scDCC, log-normalised values for DESC, which z-scores them")
    # as `run` does: the file written keeps a log-normalised X for scanpy's other tools
    for step in sdc.pp.recipe(adata, "desc", scale=False):
        say(f"  {step}")

    scores = {}
    try:
        for key in ("scdcc", "desc"):
            if key == "scdcc":
                say(f"\nscDCC with n_clusters = {n_types} (the number of cell types)")
                sdc.tl.scdcc(adata, n_types, **_tool_options(args, key))
            else:
                from .models._desc import DEFAULT_RESOLUTION as resolution

                say(
                    f"\nDESC at its defaults (Leiden at resolution {resolution} picks the "
                    "number of clusters)"
                )
                sdc.tl.desc(adata, scale=True, **_tool_options(args, key))
            scores[key] = _summary(adata, key, truth)
            say("  drawing figures")
            # the widest legend (the cell types) last: nothing to its right to run into
            colors = [f"{key}_confidence", truth]
            drawn = {
                f"umap_{key}.png": (sdc.pl.umap, {"color": colors}),
                f"compare_{key}.png": (sdc.pl.compare, {"truth": truth}),
                f"probabilities_{key}.png": (sdc.pl.probabilities, {}),
                f"history_{key}.png": (sdc.pl.history, {}),
            }
            for name, (plot, kwargs) in drawn.items():
                _figure(plot, adata, key, out / name, **kwargs)
                figures.append(name)
        result = out / "pbmc68k_demo.h5ad"
        write_atomically(result, _h5ad_writer(adata))
    except BaseException:
        if figures:  # a stop after scDCC's figures: say which files are this run's
            _tell(
                f"{PROG}: stopped before the demo finished; figures written into {out}/: "
                + ", ".join(figures)
            )
        raise
    say(f"\nwrote {result} and figures into {out}/:")
    for name in sorted(figures):  # only this run's: the folder may hold other files
        say(f"  {name}")
    say(
        "ARI against bulk_labels: "
        + ", ".join(f"{key} {score.ari:.3f}" for key, score in scores.items())
        + f"  ({_duration(time.perf_counter() - started)} in all)"
    )
    return 0


def _tool_options(args, key: str) -> dict:
    options = {
        "random_state": args.seed,
        "device": args.device,
        "precision": args.precision,
        "progress": not args.quiet,
        "key_added": key,
    }
    if args.pretrain_epochs is not None:
        options["pretrain_epochs"] = args.pretrain_epochs
    if args.max_epochs is not None:
        options["max_epochs"] = args.max_epochs
    if args.batch_size is not None:
        options["batch_size"] = args.batch_size
    return options


def _summary(adata, key: str, truth: str | None, known: str | None = None):
    """Print clusters, sizes, time and agreement with `truth`; return the agreement.

    With `known` (the `--label-key` column), only the cells without a known label are scored:
    the labelled ones keep their label and would score themselves.
    """
    from ._metrics import agreement

    sizes = adata.obs[key].value_counts(sort=False)  # categories are populated clusters
    seconds = adata.uns[key]["timings"].get("total_s", float("nan"))
    say(f"{key}: {len(sizes)} clusters in {_duration(seconds)}")
    search = adata.uns[key].get("n_clusters_search")
    if search is not None:
        from .train._n_clusters import search_summary

        span = f"{search['n_clusters'][0]}-{search['n_clusters'][-1]}"
        say(f"  number of clusters searched in {span}: {search_summary(search)}")
    small = adata.uns[key].get("small_clusters")
    if small is not None and len(small["merged"]):
        n_merged = len(small["merged"])
        say(
            f"  {n_merged} {'cluster' if n_merged == 1 else 'clusters'} of fewer than "
            f"{int(small['min_cells'])} cells merged into others ({int(small['cells_moved'])} "
            "cells moved; --min-cluster-size 0 keeps them)"
        )
    say("  cells per cluster: " + ", ".join(f"{name}: {n}" for name, n in sizes.items()))
    pairs = adata.uns[key].get("n_constraints", {})
    if any(pairs.values()):  # drawn from --label-key / --protein-key
        say(
            f"  trained with {int(pairs['must_link'])} must-link and "
            f"{int(pairs['cannot_link'])} cannot-link pairs"
        )
    if truth is None:
        return None
    reference = adata.obs[truth]
    if known is not None:
        reference = reference.astype(object).where(adata.obs[known].isna())
        where = f", on the {{}} cells without a {known!r} label"
    else:
        where = ", on the {} labelled cells"
    score = agreement(adata.obs[key], reference)
    scope = "" if score.n_cells == adata.n_obs else where.format(score.n_cells)
    say(f"  against {truth}: ARI {score.ari:.3f}, NMI {score.nmi:.3f}{scope}")
    return score


@contextlib.contextmanager
def _as_classes(adata, column: str | None):
    """Within the block, a numeric `column` of obs is categorical, as --truth reads it.

    Cell types coded as numbers would be drawn on a colour bar; the file keeps the column as
    it came.
    """
    import pandas as pd

    values = None if column is None else adata.obs[column]
    if values is None or not pd.api.types.is_numeric_dtype(values) or values.dtype == bool:
        yield
        return
    colors_key = f"{column}_colors"
    had_colors = colors_key in adata.uns
    adata.obs[column] = pd.Categorical(values)
    try:
        yield
    finally:
        adata.obs[column] = values
        if not had_colors:
            adata.uns.pop(colors_key, None)


def _figure(plot, adata, key: str, path: Path, **kwargs) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no window, also without a display
    import matplotlib.pyplot as plt
    import scanpy as sc

    from .pl._utils import figure_of, save_dpi

    verbosity = sc.settings.verbosity
    sc.settings.verbosity = 0  # the CLI says itself what it wrote
    try:
        fig = figure_of(plot(adata, key, show=False, **kwargs))
        write_atomically(path, lambda tmp: fig.savefig(tmp, dpi=save_dpi(), bbox_inches="tight"))
    finally:
        sc.settings.verbosity = verbosity
        plt.close("all")


def _duration(seconds: float) -> str:
    if round(seconds, 1) < 60:  # 59.96 s is said "1 min 00 s", not "60.0 s"
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min {seconds:02d} s"
