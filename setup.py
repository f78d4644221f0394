"""Build script: everything declarative lives in pyproject.toml; this file only adds the C++ tokenizer."""

import glob
import os

from pybind11.setup_helpers import Pybind11Extension, build_ext
from setuptools import setup

extra = ["-O3"]
if os.environ.get("FASTBERT_NATIVE", "0") == "1":
    extra.append("-march=native")

ext_modules = [
    Pybind11Extension(
        "fastbert._tokenizer",
        sorted(glob.glob("csrc/*.cpp")),
        include_dirs=["csrc"],
        cxx_std=17,
        extra_compile_args=extra,
    )
]

setup(ext_modules=ext_modules, cmdclass={"build_ext": build_ext})
