"""Garbage collection around bulk work."""

from __future__ import annotations

import gc
from contextlib import contextmanager


@contextmanager
def collection_paused():
    """Run a block without the cyclic garbage collector, then let it run again as before.

    For bulk reads and writes (a 50,000-row spreadsheet, its grades): they create a few hundred thousand small
    objects (cells, rows, tuples) that hold no reference cycles and are freed by reference counting, yet every 700
    allocations start a collection, and every so often a full one that walks every object of the process (a tenth
    of a 10,000-grade import). Memory is not at stake: nothing in such a block needs the collector to be freed, and
    what does is collected at the next collection after the block."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
