"""Global offsets from pairwise measurements, by weighted least squares.

With N members, each measured pair (i, j) of the overlap graph (a member against the reference
is the pair (reference, i)) gives a measured ``d_j - d_i`` (reference-grid pixels, the
package convention) with 1-sigma errors. Solving all pairs together, with the reference fixed at
zero, makes the members' mutual offsets consistent (a closed set of pairs averages the errors
specific to one pair: registration bias at a given sub-pixel phase, overlap and edge effects),
and the residuals of the fit expose inconsistent measurements.

Pairs that share an image are not independent: an image's own noise enters every pair it is in.
The covariance returned here treats pairs as independent, so callers should not report errors
below those of the direct measurements (the reference's noise sets the zero point of every
offset relative to it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .offset import Offset

__all__ = ["PairMeasurement", "GlobalSolution", "connected_to", "solve_pairs"]


@dataclass(frozen=True)
class PairMeasurement:
    """Measured offset of member ``j`` relative to member ``i`` (``d_j - d_i``)."""

    i: int
    j: int
    offset: Offset


@dataclass
class GlobalSolution:
    """Result of :func:`solve_pairs`.

    Attributes
    ----------
    offsets : list of Offset
        Offset of every member relative to the reference (zero with zero error for it), with
        1-sigma errors from the fit's covariance, scaled up by sqrt(reduced chi2) when that
        exceeds one.
    residuals : list of tuple
        ``(i, j, rx, ry, rx/sx, ry/sy)`` per pair: measured minus fitted, in px and in sigma.
    chi2, dof : float, int
        Chi-square of the fit (both axes) and its degrees of freedom.
    """

    offsets: list
    residuals: list
    chi2: float
    dof: int


def _axis(n, reference, pairs, values, sigmas):
    """Weighted least squares along one axis; returns (solution, covariance, residuals)."""
    unknown = [k for k in range(n) if k != reference]
    col = {k: c for c, k in enumerate(unknown)}
    design = np.zeros((len(pairs), len(unknown)))
    for row, p in enumerate(pairs):
        if p.j != reference:
            design[row, col[p.j]] += 1.0
        if p.i != reference:
            design[row, col[p.i]] -= 1.0
    w = 1.0 / sigmas**2
    normal = design.T @ (design * w[:, None])
    cov = np.linalg.inv(normal)
    sol = cov @ (design.T @ (w * values))
    resid = values - design @ sol
    full = np.zeros(n)
    full_cov = np.zeros((n, n))
    idx = np.array(unknown)
    full[idx] = sol
    full_cov[np.ix_(idx, idx)] = cov
    return full, full_cov, resid


def connected_to(reference, pairs):
    """Members linked to ``reference`` through a chain of pairs (the reference included).

    Parameters
    ----------
    reference : int
        Index of the reference member.
    pairs : iterable of PairMeasurement
        The edges of the overlap graph that were measured.

    Returns
    -------
    set of int
    """
    neighbours = {}
    for p in pairs:
        neighbours.setdefault(p.i, set()).add(p.j)
        neighbours.setdefault(p.j, set()).add(p.i)
    linked, todo = {reference}, [reference]
    while todo:
        for k in neighbours.get(todo.pop(), ()):
            if k not in linked:
                linked.add(k)
                todo.append(k)
    return linked


def solve_pairs(n_members, reference, pairs, *, floor=1e-4):
    """Solve member offsets from pairwise measurements.

    Parameters
    ----------
    n_members : int
        Number of members.
    reference : int
        Index of the reference member (offset fixed at zero).
    pairs : list of PairMeasurement
        At least ``n_members - 1`` pairs connecting every member to the reference.
    floor : float
        Smallest 1-sigma error (px) used as a weight, so that a noise-free pair does not get an
        infinite weight.

    Returns
    -------
    GlobalSolution

    Raises
    ------
    ValueError
        If the pairs do not connect every member to the reference.
    """
    if n_members < 2:
        raise ValueError("need at least two members")
    linked = connected_to(reference, pairs)
    if len(linked) < n_members:
        missing = sorted(set(range(n_members)) - linked)
        raise ValueError(f"members {missing} are not connected to the reference by any pair")
    vx = np.array([p.offset.dx for p in pairs])
    vy = np.array([p.offset.dy for p in pairs])
    sx = np.fmax(np.nan_to_num(np.array([p.offset.dx_err for p in pairs]), nan=floor), floor)
    sy = np.fmax(np.nan_to_num(np.array([p.offset.dy_err for p in pairs]), nan=floor), floor)
    x, cov_x, rx = _axis(n_members, reference, pairs, vx, sx)
    y, cov_y, ry = _axis(n_members, reference, pairs, vy, sy)
    chi2 = float(np.sum((rx / sx) ** 2) + np.sum((ry / sy) ** 2))
    dof = 2 * (len(pairs) - (n_members - 1))
    scale = np.sqrt(chi2 / dof) if dof > 0 and chi2 > dof else 1.0
    offsets = [
        Offset(
            float(x[k]),
            float(y[k]),
            float(np.sqrt(cov_x[k, k]) * scale),
            float(np.sqrt(cov_y[k, k]) * scale),
        )
        for k in range(n_members)
    ]
    residuals = [
        (p.i, p.j, float(a), float(b), float(a / c), float(b / d))
        for p, a, b, c, d in zip(pairs, rx, ry, sx, sy, strict=True)
    ]
    return GlobalSolution(offsets=offsets, residuals=residuals, chi2=chi2, dof=dof)
