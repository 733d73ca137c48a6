"""The command's process keeps the memory it frees, so that the network's activations are not faulted in anew.

glibc serves every allocation above its mmap threshold (at most 32 MB) with memory fresh from the kernel and
hands it back when it is freed. On the CPU, each activation of ResNet-50 is larger than that for a batch of
more than ten frames (150 MB for 48), so every layer of every batch has the kernel map and zero its pages
again: a third of a model command's CPU time, in the kernel. Taken from the heap and kept there once freed,
the same memory serves the next layer and the next batch. The price is a higher peak, since a freed block is
reused only where a new one fits (measured in the README: a few hundred MB). The command's process is
short-lived, so that is all it costs; a library does not change its caller's allocator, so only the
command does this. Elsewhere than glibc nothing changes.
"""

from __future__ import annotations

import ctypes
import os

M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4
KEPT_FREE_BYTES = 2**31 - 1
"""Free memory at the top of the heap is handed back to the kernel only beyond this (the largest value)."""


def uses_glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (AttributeError, ValueError, OSError):  # no confstr (Windows), or a C library without the name
        return False


def reuse_freed_memory() -> None:
    """Serve large allocations from the heap and keep freed memory there (glibc's ``mallopt``)."""
    if not uses_glibc():
        return
    libc = ctypes.CDLL(None)
    libc.mallopt(M_MMAP_MAX, 0)
    libc.mallopt(M_TRIM_THRESHOLD, KEPT_FREE_BYTES)
