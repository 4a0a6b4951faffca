"""Outlier rejection of each member before measuring and combining, without touching the inputs.

:func:`reject_outliers` finds each member's un-flagged outlier voxels
(:func:`jwst_ifualign.algorithms.outliers.find_outliers`) and returns, for every member with
any, a read-only view of the model whose ``dq`` reads with ``DO_NOT_USE`` set on them. Every
later pass (white-light images, the compiled combination kernel, the numpy resampling paths)
decides usability from data, ERR and DQ, so the same rejection keeps them out of the offsets
and out of the combined cube. Only the blocks of planes that hold a rejected voxel are copied,
when read.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np

from ..algorithms.outliers import find_outliers
from .results import DO_NOT_USE

__all__ = ["reject_outliers", "FlaggedDQ", "RejectedView"]

log = logging.getLogger(__name__)


class FlaggedDQ:
    """A cube's DQ array read with ``DO_NOT_USE`` added at some voxels (the array is not changed).

    Parameters
    ----------
    dq : ndarray, shape (nwave, ny, nx)
        The model's DQ.
    flat : ndarray of int
        Sorted indices into ``dq.ravel()`` to flag.
    """

    def __init__(self, dq, flat):
        self._dq = dq
        self._flat = np.asarray(flat, np.int64)
        self.shape, self.dtype, self.ndim = dq.shape, dq.dtype, dq.ndim

    def __len__(self):
        return self.shape[0]

    def _planes(self, z0, z1):
        plane = self.shape[1] * self.shape[2]
        lo, hi = np.searchsorted(self._flat, (z0 * plane, z1 * plane))
        block = self._dq[z0:z1]
        if hi == lo:
            return block
        block = np.array(block)
        block.reshape(-1)[self._flat[lo:hi] - z0 * plane] |= DO_NOT_USE
        return block

    def __getitem__(self, key):
        if isinstance(key, slice) and key.step in (None, 1):
            z0, z1, _ = key.indices(self.shape[0])
            return self._planes(z0, max(z0, z1))
        return self._planes(0, self.shape[0])[key]

    def __array__(self, dtype=None, copy=None):
        full = self._planes(0, self.shape[0])
        return full if dtype is None else full.astype(dtype)


class RejectedView:
    """A member model as the step reads it after outlier rejection: every attribute is the
    model's, except ``dq`` (a :class:`FlaggedDQ`)."""

    def __init__(self, model, flat):
        self._model = model
        self.dq = FlaggedDQ(model.dq, flat)
        self.n_rejected = int(np.size(flat))

    def __getattr__(self, name):
        return getattr(self._model, name)


def reject_outliers(members, *, threshold, block):
    """Find every member's outliers; returns (members to read, rejected voxels per member).

    Parameters
    ----------
    members : Members
        The open members.
    threshold : float
        :func:`~jwst_ifualign.algorithms.outliers.find_outliers` threshold (units of ERR);
        0 turns the rejection off.
    block : int
        Planes processed at once.

    Returns
    -------
    Members
        ``members`` with each model that has outliers replaced by a :class:`RejectedView`
        (the same object when nothing was rejected).
    list of int
        Rejected voxels per member, in association order.
    """
    if not threshold > 0:
        return members, [0] * len(members.models)
    models, counts = [], []
    for model, name in zip(members.models, members.names, strict=True):
        flat = find_outliers(model.data, model.err, threshold=threshold, block=block)
        counts.append(int(flat.size))
        if flat.size:
            log.info(
                "Member %s: %d un-flagged outlier voxels (%.3g%%) rejected (outlier_threshold="
                "%g).",
                name,
                flat.size,
                100.0 * flat.size / model.data.size,
                threshold,
            )
            models.append(RejectedView(model, flat))
        else:
            models.append(model)
    if not any(counts):
        return members, counts
    return replace(members, models=models), counts
