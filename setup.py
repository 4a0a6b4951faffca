"""Build the optional C kernels, jwst_ifualign.algorithms._translate (the rest: pyproject.toml).

The kernels are optional, as in stcal: where they cannot be built (no C compiler, no Python
headers), the build prints one line and goes on, and the package runs the same passes in numpy
(jwst_ifualign.algorithms.kernels; the wheel is then pure Python, ``py3-none-any``).
"""

import sys
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, PlatformError

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1: the wheel package's, if any (python setup.py build_ext)
    try:
        from wheel.bdist_wheel import bdist_wheel
    except ImportError:
        bdist_wheel = None

NOTICE = (
    "jwst_ifualign: the compiled kernels were not built ({reason}); the package will use its "
    "numpy path (the same results, slower); install a C compiler and reinstall to build them."
)

# Let gcc vectorise the kernels: Python's own CFLAGS carry -fwrapv; with trapping math gcc may
# not compute both sides of a select, and with math errno sqrtf is a library call. The kernels
# rely on neither signed overflow, floating-point traps nor errno (and IEEE results are
# unchanged: no -ffast-math). -g0: no debug information (Python's CFLAGS carry -g).
COMPILE_ARGS = ["-O3", "-fno-wrapv", "-fno-trapping-math", "-fno-math-errno", "-g0"]


def _notice(reason):
    """The one-line notice, as a warning: pip shows a build backend's warnings (not its output)."""
    warnings.warn(NOTICE.format(reason=reason), stacklevel=2)


# Strip the symbol table too where the linker takes -s (GNU ld, lld; not Apple's ld).
LINK_ARGS = ["-s"] if sys.platform.startswith("linux") else []


class OptionalBuildExt(build_ext):
    """build_ext that leaves the kernels out, with a notice, where they cannot be built."""

    built = False

    def run(self):
        try:
            super().run()
        except Exception as error:  # no compiler, no headers, a failed compile or link
            self._skip(error)
        else:
            OptionalBuildExt.built = bool(self.extensions)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as error:
            self._skip(error)
            raise _Skipped from error

    def _skip(self, error):
        if isinstance(error, _Skipped):
            return
        compiler = getattr(getattr(self, "compiler", None), "compiler_so", None) or ["cc"]
        if isinstance(error, (CCompilerError, PlatformError)):
            reason = f"the C compiler {compiler[0]!r} failed or is missing"
        else:
            reason = " ".join(f"{type(error).__name__}: {error}".split())[:120]
        _notice(reason)
        self.extensions = []
        self.distribution.ext_modules = []


class _Skipped(Exception):
    """The notice has been printed; unwind the rest of build_ext."""


if bdist_wheel is not None:

    class Bdist_wheel(bdist_wheel):
        """A pure-Python wheel (``py3-none-any``) when the kernels were not built."""

        def get_tag(self):
            if not OptionalBuildExt.built:
                self.root_is_pure = True
            return super().get_tag()


def _extensions():
    """The kernels' extension, cythonized; none (with the notice) when Cython is missing."""
    try:
        from Cython.Build import cythonize
    except ImportError:
        _notice("Cython is not installed")
        return []
    extension = Extension(
        "jwst_ifualign.algorithms._translate",
        sources=[
            "jwst_ifualign/algorithms/_translate.pyx",
            "jwst_ifualign/algorithms/csrc/translate.c",
        ],
        include_dirs=["jwst_ifualign/algorithms"],
        extra_compile_args=COMPILE_ARGS,
        extra_link_args=LINK_ARGS,
    )
    return cythonize([extension], language_level=3)


commands = {"build_ext": OptionalBuildExt}
if bdist_wheel is not None:
    commands["bdist_wheel"] = Bdist_wheel
setup(ext_modules=_extensions(), cmdclass=commands)
