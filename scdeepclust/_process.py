"""Process-wide settings the package overrides while it works, safely across threads."""

from __future__ import annotations

import collections
import contextlib
import re
import threading
import warnings
from collections.abc import Callable


class ProcessWideOverride:
    """Hold a process-wide setting at a wanted value while any block is open.

    The first block to open saves the caller's value and the last to close restores it, so
    runs in several threads neither see each other's restored value midway (a float64 default
    dtype coming back while another run still builds float32 layers) nor leave the setting as
    one of them found it inside another's block.
    """

    def __init__(self, get: Callable, set_: Callable, wanted: Callable):
        self._get, self._set, self._wanted = get, set_, wanted
        self._lock = threading.Lock()
        self._open = 0
        self._saved = None

    @contextlib.contextmanager
    def __call__(self):
        opened = False
        try:
            # inside the try: an interruption (Ctrl-C) just after the count went up must still
            # bring it down and restore the caller's value
            with self._lock:
                if self._open == 0:
                    self._saved = self._get()
                self._open += 1
                opened = True  # no call between the two: nothing can interrupt in between
                if self._open == 1 and self._wanted(self._saved) != self._saved:
                    self._set(self._wanted(self._saved))
            yield
        finally:
            if opened:
                with self._lock:
                    self._open -= 1
                    if self._open == 0 and self._wanted(self._saved) != self._saved:
                        self._set(self._saved)


_FILTERS_LOCK = threading.Lock()
_FILTER_BLOCKS: collections.Counter = collections.Counter()


class _FilterEntry(tuple):
    """A filter of the package's: equal only to itself.

    A caller's equal filter is then neither taken for it (``filterwarnings`` adds theirs, also
    with ``append=True``) nor removed with it.
    """

    __slots__ = ()
    __hash__ = tuple.__hash__

    def __eq__(self, other):
        return self is other

    def __ne__(self, other):
        return self is not other


_FILTER_ENTRIES: dict[tuple, _FilterEntry] = {}


def _holds(entry: _FilterEntry) -> bool:
    return any(item is entry for item in warnings.filters)


def _drop_closed_filters() -> bool:
    """Remove the package's filters that no block holds open; return whether any was found.

    Another thread's ``catch_warnings`` can put one back after its last block removed it (it
    restores the list it saved): the next block of the package sweeps it out. Each is removed
    where it stands, so that what other threads add meanwhile stays.
    """
    found = False
    for key, entry in _FILTER_ENTRIES.items():
        if _FILTER_BLOCKS[key]:
            continue
        while _holds(entry):
            warnings.filters.remove(entry)  # by identity: the entry is equal only to itself
            found = True
    return found


@contextlib.contextmanager
def ignoring_warnings(category: type[Warning] = Warning, message: str = ""):
    """Ignore the matching warnings while the block runs, safely across threads.

    ``warnings.catch_warnings`` saves the process's whole filter list and puts that copy back
    (before Python 3.14 the list is one per process): blocks overlapping in threads left one's
    "ignore" in place for good, or dropped a filter the user set meanwhile. Here the blocks
    share one entry, in the list while any of them is open (put back if the list was reset),
    removed by the last, and the rest of the list is left alone.
    """
    changed = getattr(warnings, "_filters_mutated", None)  # what catch_warnings calls too
    if changed is None:  # an interpreter without that hook: as before
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=message, category=category)
            yield
        return
    key = ("ignore", re.compile(message, re.I) if message else None, category, None, 0)
    opened = False
    try:
        with _FILTERS_LOCK:
            swept = _drop_closed_filters()
            _FILTER_BLOCKS[key] += 1
            opened = True
            entry = _FILTER_ENTRIES.setdefault(key, _FilterEntry(key))
            added = not _holds(entry)
            if added:
                warnings.filters.insert(0, entry)
            if swept or added:
                changed()
        yield
    finally:
        if opened:
            with _FILTERS_LOCK:
                _FILTER_BLOCKS[key] -= 1
                if _FILTER_BLOCKS[key] == 0:
                    del _FILTER_BLOCKS[key]
                if _drop_closed_filters():
                    changed()
