"""The command's process reuses the large blocks it frees instead of having the kernel map and zero them again."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from surgvlp.cli.memory import uses_glibc

# Page faults in three passes of convolutions whose outputs (51 MB each) are as large as ResNet-50's on 16
# frames, after a first pass; in a fresh process, with or without the command's allocator settings.
FAULTS = """
import resource, sys
import torch
if sys.argv[1] == "reuse":
    from surgvlp.cli.memory import reuse_freed_memory
    reuse_freed_memory()
torch.set_num_threads(1)
layers = torch.nn.Sequential(torch.nn.Conv2d(64, 256, 1), torch.nn.ReLU(), torch.nn.Conv2d(256, 64, 1), torch.nn.Conv2d(64, 256, 1))
images = torch.randn(16, 64, 56, 56)
with torch.inference_mode():
    layers(images)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        layers(images)
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def page_faults(mode: str) -> int:
    completed = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, check=True, timeout=120)
    return int(completed.stdout)


@pytest.mark.skipif(not uses_glibc(), reason="the settings are glibc's")
def test_freed_activations_are_reused_without_page_faults():
    activation_pages = 16 * 256 * 56 * 56 * 4 // os.sysconf("SC_PAGE_SIZE")
    default = page_faults("default")
    assert default > 3 * activation_pages  # every pass has the kernel map and zero its outputs again
    assert page_faults("reuse") < default // 20
