"""Which implementation runs the per-voxel passes of :mod:`~jwst_ifualign.algorithms.fused`.

Two implementations give the same results: the compiled kernels (``csrc/translate.c`` through
the Cython module ``_translate``, built by ``pip install`` where a C compiler is present) and
numpy (the reference). The environment variable :data:`ENVIRONMENT_VARIABLE`
(``JWST_IFUALIGN_KERNELS``) chooses, at every call (the functions of ``fused`` also take the
choice as a keyword, ``implementation``, which wins over the variable):

``auto`` (default, also when unset or empty)
    the compiled kernels when they are importable, numpy otherwise;
``compiled``
    the compiled kernels, or :class:`KernelsUnavailableError` saying how to build them;
``numpy``
    numpy, even where the compiled kernels are built.

This module is the only place that imports ``_translate`` or reads the variable.
"""

from __future__ import annotations

import functools
import importlib
import os

__all__ = [
    "CHOICES",
    "ENVIRONMENT_VARIABLE",
    "KernelsUnavailableError",
    "compiled_module",
    "selected",
]

#: The environment variable that selects the implementation.
ENVIRONMENT_VARIABLE = "JWST_IFUALIGN_KERNELS"

#: Its accepted values.
CHOICES = ("auto", "compiled", "numpy")

_BUILD_HINT = (
    "Reinstall with a C compiler (gcc or clang) and the Python headers present (pip install ., "
    "or pip install -e . in a source checkout; without a compiler pip prints a notice), "
    "or set {var}=numpy (or auto) to use numpy."
)


class KernelsUnavailableError(ImportError):
    """``JWST_IFUALIGN_KERNELS=compiled`` but the compiled kernels are not built."""


@functools.cache
def _import_compiled():
    """(module or None, reason): the compiled kernels, imported once."""
    try:
        return importlib.import_module(f"{__package__}._translate"), ""
    except ImportError as error:
        return None, str(error)


def compiled_module():
    """The compiled kernels' module (``jwst_ifualign.algorithms._translate``), or None."""
    return _import_compiled()[0]


def selected(choice=None):
    """``"compiled"`` or ``"numpy"``: the implementation ``choice`` selects.

    Parameters
    ----------
    choice : {"auto", "compiled", "numpy"}, optional
        None (default): the value of :data:`ENVIRONMENT_VARIABLE`, ``auto`` when it is unset or
        empty.

    Raises
    ------
    ValueError
        ``choice`` (or the variable) is not one of :data:`CHOICES`.
    KernelsUnavailableError
        It is ``compiled`` and the compiled kernels cannot be imported.
    """
    if choice is None:
        raw = os.environ.get(ENVIRONMENT_VARIABLE, "")
        choice = raw.strip().lower() or "auto"
        if choice not in CHOICES:
            raise ValueError(
                f"{ENVIRONMENT_VARIABLE}={raw!r} is not one of {', '.join(CHOICES)}; unset it "
                "(auto) or give one of those."
            )
    elif choice not in CHOICES:
        raise ValueError(f"implementation must be one of {', '.join(CHOICES)}; got {choice!r}")
    if choice == "numpy":
        return "numpy"
    module, reason = _import_compiled()
    if module is not None:
        return "compiled"
    if choice == "compiled":
        raise KernelsUnavailableError(
            f"{ENVIRONMENT_VARIABLE}=compiled, but the compiled kernels of jwst_ifualign are not "
            f"built ({reason}). " + _BUILD_HINT.format(var=ENVIRONMENT_VARIABLE)
        )
    return "numpy"
