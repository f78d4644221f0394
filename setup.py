"""Build script: everything declarative lives in pyproject.toml; this file only adds the C++ extensions:
the WordPiece tokenizer (csrc/*.cpp) and the CPU inference kernels (csrc/cpu/*.cpp)."""

import glob
import os
import sys

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

extra = ["-O3"]
if os.environ.get("FASTBERT_NATIVE", "0") == "1":
    extra.append("-march=native")

# OpenMP through libgomp.so.1: the same runtime as torch's CPU builds, so the kernels share torch's threads
openmp = ["-fopenmp"] if sys.platform.startswith("linux") else []

ext_modules = [
    Pybind11Extension(
        "fastbert._tokenizer",
        sorted(glob.glob("csrc/*.cpp")),
        include_dirs=["csrc"],
        cxx_std=17,
        extra_compile_args=extra,
    ),
    # optional: where it cannot be built (a compiler without GCC's vector extensions), fastbert runs CPU
    # attention through torch instead
    Pybind11Extension(
        "fastbert._cpu_kernels",
        sorted(glob.glob("csrc/cpu/*.cpp")),
        cxx_std=17,
        extra_compile_args=extra + openmp,
        extra_link_args=openmp,
        optional=True,
    ),
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext})
