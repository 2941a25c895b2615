"""Process-wide settings the package overrides while it works, safely across threads."""

from __future__ import annotations

import contextlib
import threading
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
