"""Importing the package leaves only real modules in sys.modules and changes no global state.

Each check runs in a fresh interpreter, so that what it sees is what ``import jwst_ifualign``
(and running every registration method) does, not what the test session imported before.
"""

import json
import subprocess
import sys
import textwrap

# Prints, as JSON, the entries of sys.modules that are not module objects made by the import
# system: a module whose type is exactly types.ModuleType and whose spec names it.
_REPORT = """
import json, sys, types
odd = sorted(
    name for name, m in list(sys.modules.items())
    if not (type(m) is types.ModuleType and getattr(m.__spec__, "name", None) == name)
)
print(json.dumps({"odd": odd, "loaded": sorted(sys.modules)}))
"""

# Registration with every method, on a blob moved by (0.3, -0.6) px.
_RUN_EVERY_METHOD = """
import numpy as np
from jwst_ifualign.algorithms.registration import METHODS, measure_offset
yy, xx = np.indices((21, 23), dtype=float)
def blob(dx, dy):
    return np.exp(-((xx - 11.2 - dx) ** 2 + (yy - 9.7 - dy) ** 2) / 4.0) + 0.01
for method in METHODS:
    found = measure_offset(blob(0, 0), blob(0.3, -0.6), method=method)
    assert abs(found.dx - 0.3) < 0.05 and abs(found.dy + 0.6) < 0.05, (method, found)
"""


def _run(code):
    """Run ``code`` then :data:`_REPORT` in a fresh interpreter; return the report."""
    probe = textwrap.dedent(code) + _REPORT
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=False
    )
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_every_module_after_import_is_a_real_module():
    """No stand-ins: what is not a plain module is what the dependencies alone put there.

    With jwst 3.0 those are ``typing.io``/``typing.re`` (Python's own), zipp's
    ``HashableNamespace`` and Cython's shadow modules (imported by scipy's test utilities).
    """
    dependencies = _run(
        """
        import asdf, astropy, gwcs, numpy, reproject, scipy, scipy.fft, scipy.ndimage
        import stdatamodels.jwst.datamodels, stpipe, jwst.stpipe, jwst.assign_wcs.pointing
        import image_registration
        """
    )
    ours = _run("import jwst_ifualign\n" + _RUN_EVERY_METHOD)
    assert "image_registration" in ours["loaded"]  # the dft method imported it
    assert set(ours["odd"]) <= set(dependencies["odd"]), ours["odd"]
    assert not [n for n in ours["odd"] if n.startswith(("jwst_ifualign", "image_registration"))]


def test_image_registration_is_imported_where_used_without_side_effects():
    """chi2 and centroid never import image_registration; dft and cross_correlation import it
    plainly (its matplotlib.pyplot and pytest with it), ignoring only its one deprecation
    warning, with the process's warning filters left as they were."""
    report = _run(
        """
        import sys, warnings
        import numpy as np
        import jwst_ifualign
        from jwst_ifualign.algorithms.registration import measure_offset
        assert "image_registration" not in sys.modules
        yy, xx = np.indices((21, 23), dtype=float)
        ref = np.exp(-((xx - 11.2) ** 2 + (yy - 9.7) ** 2) / 4.0)
        for method in ("chi2", "centroid"):
            measure_offset(ref, ref, method=method)
        assert "image_registration" not in sys.modules
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            filters = list(warnings.filters)
            measure_offset(ref, ref, method="dft")
            assert warnings.filters == filters
        assert "image_registration" in sys.modules
        assert not [w for w in caught if "TestRunner" in str(w.message)], caught
        """
    )
    assert {"matplotlib.pyplot", "pytest"} <= set(report["loaded"])
