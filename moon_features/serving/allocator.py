"""Keep freed memory in the serving process instead of handing it back to the kernel.

A DIN request over 200 candidates x 50 history items allocates several activations of 2-3 MB
and frees them when the forward returns. glibc serves blocks that large with mmap (or trims
them off the top of the heap once freed), so every request maps fresh pages and the kernel
zero-fills them on first touch: 300-2,000 page faults per attention call, which measured more
than half the model's time on this machine (docs/benchmarks.md, "Serving"). glibc raises its
mmap threshold by itself after some frees, but whether it does depends on the process's
history: 31 of 40 fresh processes still faulted on every call after 60 of them. Fixing both
thresholds keeps the freed blocks in the heap for the next request. The cost is memory the
process keeps after a peak (at most the trim threshold above what it uses). Training and
batch prediction with ctr_models measured no gain from it (docs/benchmarks.md, "CTR
throughput"), so only serving sets it.

Same effect without code: `MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=268435456`.
"""
from __future__ import annotations

import ctypes
import sys

# mallopt parameters from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024   # glibc's largest accepted value on 64-bit
TRIM_THRESHOLD = 256 * 1024 * 1024

_retained = False


def retain_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds for this process (idempotent).

    Returns True if they are set; False where the C library is not glibc (macOS, musl), in which
    case nothing changes and serving works as before, only slower per request.
    """
    global _retained
    if _retained:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _retained = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    return _retained
