"""The C++ CPU kernels are an optional extension in setup.py (fastbert falls back to torch without them); on
Linux x86-64, this project's machines, a missing build is a failure, not a reason to skip their tests."""

import os
import platform
import sys

import pytest

from fastbert import ops


@pytest.mark.skipif(not (sys.platform.startswith("linux") and platform.machine() == "x86_64"),
                    reason="the kernels are required on Linux x86-64 only")
def test_cpu_kernels_are_built_and_used():
    import fastbert._cpu_kernels  # noqa: F401  (an ImportError here means the extension failed to build)

    if os.environ.get("FASTBERT_CPU_ATTENTION", "1") != "0":
        assert ops._cpu_kernels() is not None
