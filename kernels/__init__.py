"""Triton kernels for fastbert (installed as ``fastbert.kernels``); CPU tests run them under TRITON_INTERPRET=1."""
