"""Build the C kernels, jwst_ifualign.algorithms._translate (the rest is in pyproject.toml)."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extension = Extension(
    "jwst_ifualign.algorithms._translate",
    sources=[
        "src/jwst_ifualign/algorithms/_translate.pyx",
        "src/jwst_ifualign/algorithms/csrc/translate.c",
    ],
    include_dirs=["src/jwst_ifualign/algorithms"],
    # Let gcc vectorise the kernels: Python's own CFLAGS carry -fwrapv, and with trapping math
    # gcc may not compute both sides of a select; the kernels rely on neither signed overflow
    # nor floating-point traps.
    extra_compile_args=["-O3", "-fno-wrapv", "-fno-trapping-math"],
)

setup(ext_modules=cythonize([extension], language_level=3))
