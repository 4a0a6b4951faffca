"""The step's parameters, defined once: name, type with bounds or options, default, help text.

Everything else follows from :data:`PARAMETERS`:

- the Step's ``spec`` string (:func:`spec_string`; the comment is the ``strun --help`` text);
- :class:`AlignOptions`, the options of :func:`~jwst_ifualign.adapter.align.align_members`: one
  field per parameter that is not ``step_only``, with the same default, built from a step by
  :meth:`AlignOptions.from_step` and checked when it is made (the only place the type, bounds
  and options of a parameter are checked; a bad value raises :class:`ParameterError` naming it);
- the options recorded in the output's ``meta.ifu_align`` (:func:`options_record`);
- the ASDF parameter files in ``config/`` (:mod:`jwst_ifualign.parameter_files`, from the spec).

Checks that need the data (the reference index against the number of members, ``slice``
against the number of planes, ``wavelength_range`` against the cube's wavelengths) are made once,
in :func:`jwst_ifualign.adapter.align.check_options`.

How to add a parameter
----------------------
1. Add one :class:`Parameter` to :data:`PARAMETERS`, where it should appear in ``--help``:
   ``kind`` is the stpipe/configobj type (``option``, ``integer``, ``float``, ``boolean``,
   ``float_list``, ``string``), with ``choices`` (option), ``min``/``max`` (numbers) or
   ``length`` (float_list); ``help`` says what it does, in which unit, and what its default
   means. Set ``step_only=True`` if only the Step uses it (naming, saving); otherwise it becomes
   a field of :class:`AlignOptions` (``options.<name>``) automatically.
2. Add a row to the README's parameter table (same name and default; a test compares them).
3. Regenerate the parameter files: ``python -m jwst_ifualign.parameter_files config``
   (a test compares them with the spec).
Nothing else needs to list it: the spec, the options, the metadata and ``--help`` follow.
"""

from __future__ import annotations

import dataclasses
import numbers

from ..algorithms.combine import COMBINE_METHODS
from ..algorithms.registration import METHODS
from ..algorithms.resample import KERNELS
from ..exceptions import ParameterError

__all__ = [
    "Parameter",
    "PARAMETERS",
    "SOLUTIONS",
    "OUTPUT_GRIDS",
    "AlignOptions",
    "spec_string",
    "options_record",
    "resolve_reference",
]

#: Ways to turn measurements into offsets (``solution``).
SOLUTIONS = ("pairs", "reference")

#: Output grids (``output_grid``).
OUTPUT_GRIDS = ("reference", "union")

_KINDS = ("option", "integer", "float", "boolean", "float_list", "string")


@dataclasses.dataclass(frozen=True)
class Parameter:
    """One step parameter.

    Attributes
    ----------
    name : str
        Parameter name (``--name`` on the command line, ``options.name`` in the adapter).
    kind : str
        stpipe/configobj type: ``option``, ``integer``, ``float``, ``boolean``, ``float_list``
        or ``string``.
    default : object
        Default value; None means "not given" (the help text says what happens then).
    help : str
        One-line help text (``strun --help``).
    choices : tuple of str
        Allowed values of an ``option``.
    min, max : float, optional
        Bounds of a number (inclusive).
    length : int, optional
        Number of values of a ``float_list``.
    step_only : bool
        Used by the Step only (not a field of :class:`AlignOptions`).
    """

    name: str
    kind: str
    default: object
    help: str
    choices: tuple = ()
    min: float | None = None
    max: float | None = None
    length: int | None = None
    step_only: bool = False

    def __post_init__(self):
        if self.kind not in _KINDS:
            raise ValueError(f"{self.name}: kind must be one of {_KINDS}; got {self.kind!r}")
        if (self.kind == "option") != bool(self.choices):
            raise ValueError(f"{self.name}: choices go with kind='option' only")
        if self.default is not None:
            self.check(self.default)

    def spec_line(self):
        """The parameter's line of a stpipe spec: ``name = kind(args, default=...)  # help``."""
        args = [_spec_value(c) for c in self.choices]
        if self.kind == "float_list" and self.length is not None:
            args += [f"min={self.length}", f"max={self.length}"]
        if self.min is not None:
            args.append(f"min={_spec_value(self.min)}")
        if self.max is not None:
            args.append(f"max={_spec_value(self.max)}")
        args.append(f"default={_spec_value(self.default)}")
        return f"{self.name} = {self.kind}({', '.join(args)})  # {self.help}"

    def check(self, value):
        """``value`` converted to the parameter's Python type; ParameterError if it is invalid."""
        if value is None:
            if self.default is None:
                return None
            self._fail(value, "it has no default of None")
        if self.kind == "option":
            if value not in self.choices:
                self._fail(value, f"give one of {', '.join(self.choices)}")
            return str(value)
        if self.kind == "string":
            if not isinstance(value, str):
                self._fail(value, "give a string")
            return value
        if self.kind == "boolean":
            if not isinstance(value, (bool, numbers.Integral)) or value not in (0, 1):
                self._fail(value, "give true or false")
            return bool(value)
        if self.kind == "float_list":
            try:
                values = tuple(float(v) for v in value)
            except (TypeError, ValueError):
                self._fail(value, f"give {self.length} numbers")
            if self.length is not None and len(values) != self.length:
                self._fail(value, f"give {self.length} numbers")
            return values
        if self.kind == "integer":
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                if not (isinstance(value, numbers.Real) and float(value).is_integer()):
                    self._fail(value, "give a whole number")
            value = int(value)
        else:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                self._fail(value, "give a number")
            value = float(value)
        if (self.min is not None and value < self.min) or (
            self.max is not None and value > self.max
        ):
            lo = "" if self.min is None else f" >= {self.min}"
            hi = "" if self.max is None else f" <= {self.max}"
            self._fail(value, f"give a value{lo}{' and' if lo and hi else ''}{hi}")
        return value

    def _fail(self, value, what):
        raise ParameterError(f"{self.name}={value!r} is not valid: {what}.")


def _spec_value(value):
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


#: Every parameter of ``ifu_align`` beyond stpipe's generic ones, in ``--help`` order.
PARAMETERS = (
    Parameter(
        "method",
        "option",
        "chi2",
        "Offset measurement: chi2 (minimum of image_registration's chi2 surface weighted by ERR, "
        "computed with scipy.fft; errors from its curvature), dft (image_registration "
        "register_images, upsampled DFT), cross_correlation (image_registration "
        "cross_correlation_shifts, its odd-size half-pixel defect corrected), centroid "
        "(flux-weighted centroid, for one compact source)",
        choices=METHODS,
    ),
    Parameter(
        "upsample_factor",
        "integer",
        None,
        "DFT upsampling for method=dft (each call quantised to 1/upsample_factor px; the result "
        "averages two grids offset by half of that); default 100; the other methods ignore it",
        min=1,
        max=1000,
    ),
    Parameter(
        "smoothing",
        "float",
        1.0,
        "Gaussian sigma in spaxels of the band-pass filter (that Gaussian minus one 3 times "
        "broader) for members whose residual shows a static pattern (striping, an undersampled "
        "PSF: systematic error term above twice the noise term and 0.005 px): such a member is "
        "measured again with both white-light images filtered, and that measurement is "
        "reported; 0 never filters; centroid ignores it",
        min=0,
        max=5,
    ),
    Parameter(
        "wavelength_range",
        "float_list",
        None,
        "Two values: [min, max] wavelengths in microns of the planes collapsed for measuring; "
        "default all planes",
        length=2,
    ),
    Parameter(
        "slice",
        "integer",
        None,
        "Measure on this one wavelength plane (0-based) instead of a collapsed image (noisy)",
        min=0,
    ),
    Parameter(
        "error_chunks",
        "integer",
        5,
        "Independent wavelength chunks measured for the empirical error and the chunk offsets",
        min=1,
        max=100,
    ),
    Parameter(
        "combine",
        "option",
        "weighted_mean",
        "Combination of aligned members: inverse-variance weighted mean (from ERR), mean or "
        "median",
        choices=COMBINE_METHODS,
    ),
    Parameter(
        "reference",
        "integer",
        0,
        "Index of the reference member in the association (negative counts from the end)",
    ),
    Parameter(
        "max_shift",
        "float",
        3.0,
        "Largest accepted offset (length of (dx, dy), reference pixels); a member beyond it is "
        "combined with its WCS alone and flagged",
        min=0,
    ),
    Parameter(
        "min_snr",
        "float",
        5.0,
        "Smallest peak S/N of a member's collapsed image for its offset to be measured; below "
        "it the member is combined with its WCS alone and flagged",
        min=0,
    ),
    Parameter(
        "solution",
        "option",
        "pairs",
        "pairs: a member that does not overlap the reference is measured against the members "
        "it overlaps and solved through them (least squares over the overlap graph); "
        "reference: each member against the reference only",
        choices=SOLUTIONS,
    ),
    Parameter(
        "outlier_threshold",
        "float",
        10.0,
        "Reject un-flagged outlier voxels (cosmic rays and bad pixels left in spec2 cubes) "
        "that exceed both spectral neighbours by this many ERR and are alone in wavelength and "
        "on the sky, before measuring and combining; 0 turns the rejection off",
        min=0,
    ),
    Parameter(
        "kernel",
        "option",
        "bicubic",
        "Resampling kernel: bicubic (Keys; keeps the PSF sharp; bilinear where its 4x4 support "
        "touches invalid voxels) or bilinear",
        choices=KERNELS,
    ),
    Parameter(
        "output_grid",
        "option",
        "reference",
        "reference: the reference member's grid; union: the reference's projection, scale and "
        "orientation extended by whole pixels to cover every member's footprint",
        choices=OUTPUT_GRIDS,
    ),
    Parameter(
        "chunk_size",
        "integer",
        256,
        "Wavelength planes processed at once (bounds memory)",
        min=1,
    ),
    Parameter(
        "parallel",
        "boolean",
        False,
        "Process wavelength chunks in parallel with dask (threads, or the active "
        "dask.distributed client); same result",
    ),
    Parameter(
        "tie_exposures",
        "boolean",
        True,
        "Several settings in one association: give the cubes of one exposure (same "
        "jwPPPPPOOOVVV_GGSAA_EEEEE, e.g. both MIRI detectors) one sky offset, their "
        "error-weighted mean",
    ),
    Parameter(
        "tie_settings",
        "boolean",
        True,
        "Several settings that share no exposure: tie them to the first by the centroid of a "
        "dominant compact source (band-to-band pointing); without one they keep their WCS "
        "relation",
    ),
    Parameter(
        "reference_image",
        "string",
        None,
        "Absolute astrometry: a JWST image (_i2d or _cal) or a FITS image with a celestial WCS of "
        "the same field; the combined cube's band image is registered to it and every offset "
        "(the reference member's too) puts the members on the image's frame",
    ),
    Parameter(
        "reference_catalog",
        "string",
        None,
        "Absolute astrometry: an ECSV of compact sources, ra and dec in degrees (optional ra_err, "
        "dec_err in arcsec); every listed source inside the cubes is fitted and the offsets put "
        "the members on the catalog's frame",
    ),
    Parameter(
        "filter_throughput",
        "string",
        None,
        "ECSV of wavelength (microns) and throughput of reference_image's filter, weighting the "
        "cube's planes; default: a top hat over the filter's band (known JWST filters), else "
        "all planes",
    ),
    Parameter(
        "psf_kernel",
        "string",
        None,
        "FITS or .npy file of a 2-D kernel on reference_image's pixels that matches its PSF to "
        "the cubes' (convolved with the image); default: a Gaussian of the FWHM difference, "
        "both FWHMs measured on the brightest compact source",
    ),
    Parameter(
        "save_diagnostics",
        "boolean",
        False,
        "Also write <product>_ifualign_diagnostics.png when saving: white-light images before "
        "and after alignment and the offsets (needs matplotlib: pip install jwst_ifualign[plot])",
        step_only=True,
    ),
    Parameter(
        "suffix",
        "string",
        "ifualign",
        "Suffix of the combined cube file",
        step_only=True,
    ),
)

_BY_NAME = {p.name: p for p in PARAMETERS}


def spec_string():
    """The Step's ``spec``: one line per parameter of :data:`PARAMETERS`."""
    return "\n" + "".join(f"    {p.spec_line()}\n" for p in PARAMETERS)


def _check_fields(self):
    for field in dataclasses.fields(self):
        object.__setattr__(self, field.name, _BY_NAME[field.name].check(getattr(self, field.name)))


def _from_step(cls, step):
    """Options from a step's parameters (checked: ParameterError naming a bad one)."""
    return cls(**{f.name: getattr(step, f.name) for f in dataclasses.fields(cls)})


#: Options of :func:`~jwst_ifualign.adapter.align.align_members`: one keyword-only field per
#: parameter of :data:`PARAMETERS` that is not ``step_only``, with its default; values are
#: checked and converted (``wavelength_range`` to a tuple of floats) when it is made.
AlignOptions = dataclasses.make_dataclass(
    "AlignOptions",
    [(p.name, object, dataclasses.field(default=p.default)) for p in PARAMETERS if not p.step_only],
    namespace={
        "__post_init__": _check_fields,
        "from_step": classmethod(_from_step),
        "__module__": __name__,
    },
    frozen=True,
    kw_only=True,
)
AlignOptions.__doc__ = (
    "Options of align_members (the Step's parameters; help texts in PARAMETERS).\n\n"
    "Fields (keyword-only, defaults as the spec):\n\n"
    + "\n".join(f"- {p.name} = {p.default!r}: {p.help}" for p in PARAMETERS if not p.step_only)
)


def options_record(options, reference_name):
    """The options as recorded in ``meta.ifu_align``: plain values, the reference by file name."""
    record = {}
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        record[field.name] = list(value) if isinstance(value, tuple) else value
    record["reference"] = reference_name
    return record


def resolve_reference(reference, nmember):
    """Index (0 to nmember - 1) of the reference member; ParameterError if out of range.

    Parameters
    ----------
    reference : int
        The ``reference`` parameter (negative indices count from the end).
    nmember : int
        Number of members.
    """
    if not -nmember <= reference < nmember:
        raise ParameterError(
            f"reference={reference} is out of range for an association of {nmember} "
            f"members; give an index from 0 to {nmember - 1}."
        )
    return reference % nmember
