"""Exceptions for expected failures; their messages name the file or parameter and what to do."""

__all__ = ["IFUAlignError", "InputError", "ParameterError"]


class IFUAlignError(ValueError):
    """Base class of the errors jwst_ifualign raises on purpose."""


class InputError(IFUAlignError):
    """The association or one of its members cannot be used (missing, wrong kind, mismatched)."""


class ParameterError(IFUAlignError):
    """A step parameter is out of range or inconsistent with the data."""
