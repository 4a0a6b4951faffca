"""Import image_registration without the matplotlib.pyplot and pytest its ``__init__`` loads.

The defect (image_registration 0.2.10, the current release): ``import image_registration``

* runs ``from . import tests``, whose ``registration_testing`` imports pytest (through
  ``astropy.tests.helper``), and
* imports ``chi2_shifts``, which imports ``iterative_zoom``, which imports ``matplotlib.pyplot``
  at module level.

None of the functions this package calls (``register_images``, ``cross_correlation_shifts``;
``chi2_shifts.chi2n_map`` in the tests) uses either module. In a process that already holds jwst and
astropy, the two cost about 0.5 s of import time and leave about 50 000 more objects alive.
stpipe starts every ``Step.run`` with a full ``gc.collect()``, which walks all of them, so every
step of a pipeline in that process paid for them again (20-30 ms per step on a 2-core machine;
``benchmarks/speed.py`` reports stpipe's per-call cost as (b0)).

The fix (:func:`import_image_registration`): while the package is first imported,
``image_registration.tests`` and ``image_registration.iterative_zoom`` are :class:`Deferred`
stand-ins, taken out of ``sys.modules`` again as soon as the import ends. The package's names for
them (``image_registration.tests``, ``chi2_shifts.iterative_zoom``) forward attribute access to
the real module, imported on first use; ``import image_registration.tests`` imports the real
module as usual. So ``image_registration.chi2_shift_iterzoom`` and the package's tests work as
before, only later. If image_registration was imported before this package, nothing is changed.

``tests/test_registration.py::test_library_defect_import_loads_pyplot_and_pytest_and_fix``
shows the defect and the fix in fresh processes.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings

__all__ = ["DEFERRED_SUBMODULES", "Deferred", "import_image_registration"]

#: Submodules of image_registration that its ``__init__`` imports but this package never uses.
DEFERRED_SUBMODULES = ("image_registration.tests", "image_registration.iterative_zoom")


class Deferred(types.ModuleType):
    """Stand-in for a module: the real module is imported when a public attribute is first read.

    Dunder attributes (``__file__``, ``__spec__``, ...) are not forwarded, so that code which
    inspects modules (``inspect.getmodule``, the import system) does not trigger the import;
    nor is anything while the stand-in itself is still in ``sys.modules`` (during the package's
    import), where importing the name would return the stand-in again.
    """

    def __getattr__(self, name):
        if name.startswith("__") or sys.modules.get(self.__name__) is self:
            raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        return getattr(importlib.import_module(self.__name__), name)


def import_image_registration():
    """Import and return the ``image_registration`` package without its unused submodules.

    Returns
    -------
    module
        The ``image_registration`` package, with ``chi2_shifts`` imported.
    """
    installed = []
    if "image_registration" not in sys.modules:
        for name in DEFERRED_SUBMODULES:
            if name not in sys.modules:
                sys.modules[name] = Deferred(name)
                installed.append(name)
    try:
        with warnings.catch_warnings():
            # image_registration imports astropy's deprecated TestRunner at import time.
            warnings.simplefilter("ignore")
            package = importlib.import_module("image_registration")
            importlib.import_module("image_registration.chi2_shifts")
    finally:
        for name in installed:
            if isinstance(sys.modules.get(name), Deferred):
                del sys.modules[name]
    return package
