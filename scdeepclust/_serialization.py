"""Reading and writing files: trained models and training checkpoints.

Tensors go through `torch.save` of plain containers (state dicts, lists, numbers, strings) and
come back through ``torch.load(..., weights_only=True)``, which refuses anything that would run
code when loaded. Everything else is JSON. Files are written to a temporary name and renamed,
so an interrupted write never leaves a truncated file in place of a good one.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from ._version import __version__

if TYPE_CHECKING:
    import torch


def write_atomically(path: str | Path, write) -> None:
    """Call ``write(tmp)`` on a file beside `path`, then rename it to `path`.

    A failed or interrupted write leaves `path` as it was (an earlier file there included) and
    no partial file behind. The temporary name keeps the suffix, for writers that read the
    format from it (matplotlib). The file gets the permissions of the one it replaces (where
    the filesystem keeps permissions), or those the umask gives a new file. A symbolic link at
    `path` is written through, as `open` would. An operating system's error (a full disk, a
    read-only place) names `path`, not the temporary file.
    """
    path = Path(os.path.realpath(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        try:
            while tmp is None:
                # named before it exists: an interruption just after its creation still has
                # it removed below (removing a name not created yet fails harmlessly)
                tmp = _partial_name(path)
                try:
                    os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
                except FileExistsError:  # another writer's: not ours to remove
                    tmp = None
            write(tmp)
            if path.exists():
                with contextlib.suppress(OSError):  # vfat, SMB: no permissions to set
                    os.chmod(tmp, path.stat().st_mode & 0o777)
            os.replace(tmp, path)
        except OSError as error:
            if error.filename is not None and str(error.filename) not in (str(tmp), str(path)):
                raise
            reason = error.strerror or str(error)
            if error.errno is None:
                raise type(error)(f"{reason}: could not write {path}") from error
            raise type(error)(error.errno, f"{reason}: could not write {path}") from error
    except BaseException:
        if tmp is not None:
            with contextlib.suppress(OSError):  # the write's own error is the one to report
                tmp.unlink()
        raise


def _partial_name(path: Path) -> Path:
    """Return a name of its own beside `path`, for the file written before it becomes `path`.

    Two writers of one path do not share it (it is created exclusively). Created with mode
    0o666 less the umask, as a new file is (`tempfile.mkstemp` gives the owner alone); the stem
    is shortened, so that a name the filesystem takes does not fail for the suffixes added here.
    """
    return path.parent / f".{path.stem[:40]}.{secrets.token_hex(4)}.partial{path.suffix}"


def save_tensors(path: str | Path, obj) -> None:
    """Write `obj` with `torch.save`, to memory first.

    On a full disk torch's own error reads "unexpected pos 156544 vs 156432"; a plain write's
    says what failed.
    """
    import torch  # here: the plots write files too, and need no torch

    def write(tmp):
        buffer = io.BytesIO()
        torch.save(obj, buffer)
        with open(tmp, "wb") as f:
            f.write(buffer.getbuffer())

    write_atomically(path, write)


def file_digest(path: str | Path) -> str:
    """Return the SHA-256 of the file's bytes (hexadecimal)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_tensors(
    path: str | Path, device: str | torch.device = "cpu", *, data: bytes | None = None
):
    """Load a file written by `save_tensors`; never executes code from the file.

    With `data`, those bytes (read from `path` already) are loaded, and `path` names them in
    messages.
    """
    import torch

    path = Path(path)
    if data is None and not path.exists():
        raise FileNotFoundError(f"No such file: {path}")
    try:
        return torch.load(
            path if data is None else io.BytesIO(data), map_location=device, weights_only=True
        )
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise ValueError(
            f"{path} could not be loaded as weights ({type(err).__name__}: {err}). It is either "
            "damaged or not a file written by scdeepclust; objects that would execute code on "
            "loading are always refused."
        ) from err


def write_json(path: str | Path, data: dict) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1)

    write_atomically(path, write)


def read_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"No such file: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}.") from err


def check_format_version(meta: dict, supported: int, what: str, path: str | Path) -> None:
    """Refuse files of a newer, incompatible format with a message that says what to do."""
    found = meta.get("format_version") if isinstance(meta, dict) else None
    if not isinstance(found, int) or isinstance(found, bool):
        raise ValueError(f"{path} is not a {what} written by scdeepclust (no format_version).")
    if found > supported:
        raise ValueError(
            f"{path} holds a {what} in format version {found}, written by scdeepclust "
            f"{meta.get('scdeepclust_version', '?')}; this scdeepclust ({__version__}) reads "
            f"format versions up to {supported}. Upgrade scdeepclust to load it."
        )
