"""jwst_ifualign: align and combine JWST IFU cubes (s3d) as a JWST pipeline step plugin.

The step is :class:`IFUAlignStep` (``strun ifu_align``). The offset convention is documented on
:class:`Offset`.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jwst_ifualign")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from .algorithms.offset import Offset
from .exceptions import IFUAlignError, InputError, ParameterError
from .step import IFUAlignStep

__all__ = ["IFUAlignStep", "Offset", "IFUAlignError", "InputError", "ParameterError", "__version__"]
