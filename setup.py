"""Build the C kernels, jwst_ifualign.algorithms._translate (the rest is in pyproject.toml)."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extension = Extension(
    "jwst_ifualign.algorithms._translate",
    sources=[
        "jwst_ifualign/algorithms/_translate.pyx",
        "jwst_ifualign/algorithms/csrc/translate.c",
    ],
    include_dirs=["jwst_ifualign/algorithms"],
    # Let gcc vectorise the kernels: Python's own CFLAGS carry -fwrapv; with trapping math gcc
    # may not compute both sides of a select, and with math errno sqrtf is a library call. The
    # kernels rely on neither signed overflow, floating-point traps nor errno (and IEEE
    # results are unchanged: no -ffast-math).
    extra_compile_args=["-O3", "-fno-wrapv", "-fno-trapping-math", "-fno-math-errno"],
)

setup(ext_modules=cythonize([extension], language_level=3))
