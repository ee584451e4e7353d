"""Give freed memory back to the operating system after large requests.

glibc keeps freed heap pages for reuse, so one large batch leaves the process's resident size
at its peak for good, which a container's memory limit counts. `malloc_trim` returns the free
pages; it costs milliseconds, so it runs after batches only, on the worker that served them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from functools import cache

logger = logging.getLogger(__name__)


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def release_free_memory() -> bool:
    """Return free heap pages to the system; False where the C library cannot (not glibc)."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
