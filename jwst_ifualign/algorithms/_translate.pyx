# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Python entry points of the C kernels in ``csrc/translate.c`` (private).

Called by :mod:`jwst_ifualign.algorithms.fused`, which documents them and prepares their
inputs: arrays arrive as raw 32-bit words (``uint32`` views of float32 or uint32 arrays of
either byte order, with a flag saying whether to swap), C-contiguous.
"""

from libc.stdint cimport int16_t, int64_t, uint32_t
from libc.stdlib cimport free, malloc

import numpy as np


cdef extern from "csrc/translate.h":
    enum:
        IFUALIGN_MARGIN

    ctypedef struct ifualign_member:
        const uint32_t *data
        const uint32_t *err
        const uint32_t *dq
        int swap_data
        int swap_err
        int swap_dq
        Py_ssize_t ny_in
        Py_ssize_t nx_in
        Py_ssize_t ix
        Py_ssize_t iy
        Py_ssize_t ixr
        Py_ssize_t iyr
        float wx[4]
        float wy[4]
        float lx[2]
        float ly[2]

    size_t ifualign_scratch_floats(Py_ssize_t ny_pad, Py_ssize_t nx_pad, Py_ssize_t nx_out) nogil

    void ifualign_add_plane(
        const ifualign_member *m, Py_ssize_t z, int cubic, uint32_t do_not_use, uint32_t keep,
        float *scratch, Py_ssize_t ny_pad, float *wsum, float *dsum,
        int16_t *count, uint32_t *flags, Py_ssize_t ny_out, Py_ssize_t nx_out,
    ) nogil

    void ifualign_finish(
        float *dsum, float *wsum, const int16_t *count, uint32_t *flags, Py_ssize_t n,
        uint32_t fill,
    ) nogil

    void ifualign_usable_sums(
        const uint32_t *data, const uint32_t *err, const uint32_t *dq, int swap_data,
        int swap_err, int swap_dq, Py_ssize_t nz, Py_ssize_t ny, Py_ssize_t nx,
        uint32_t do_not_use, int positive_err, double *dsum, double *e2sum, int64_t *n,
    ) nogil


cdef const uint32_t *_first(const uint32_t[:, :, ::1] words):
    return &words[0, 0, 0]


def accumulate_translations(
    list members,
    bint cubic,
    uint32_t do_not_use,
    uint32_t keep,
    float[:, :, ::1] wsum,
    float[:, :, ::1] dsum,
    int16_t[:, :, ::1] count,
    uint32_t[:, :, ::1] flags,
):
    """Translate every member's planes and add them to the running sums, plane by plane.

    ``members``: list of ``(data, err, dq, swap_data, swap_err, swap_dq, ix, iy, ixr, iyr, wx,
    wy, lx, ly)``: the arrays C-contiguous uint32 words of shape (nwave, ny_in, nx_in) with
    nwave = ``wsum.shape[0]``, the weights float32 sequences of 4 (Keys) and 2 (bilinear) taps.
    All members of one plane are added before the next plane, so that plane's sums stay in cache.
    """
    cdef Py_ssize_t nz = wsum.shape[0], ny_out = wsum.shape[1], nx_out = wsum.shape[2]
    cdef Py_ssize_t nmember = len(members), k, j, z
    cdef Py_ssize_t ny_pad = 0, nx_pad = 0
    cdef const uint32_t[:, :, ::1] words
    cdef float[::1] scratch
    for j in range(3):
        if not (dsum.shape[j] == count.shape[j] == flags.shape[j] == wsum.shape[j]):
            raise ValueError("the running sums must all have one shape")
    if nz == 0 or nmember == 0:
        return
    cdef ifualign_member *cm = <ifualign_member *> malloc(nmember * sizeof(ifualign_member))
    if cm == NULL:
        raise MemoryError()
    try:
        for k in range(nmember):
            item = members[k]
            shape = None
            for j in range(3):
                words = item[j]
                this = (words.shape[0], words.shape[1], words.shape[2])
                if this[0] != nz or this[1] == 0 or this[2] == 0 or shape not in (None, this):
                    raise ValueError(
                        "data, err and dq of a member must have one non-empty shape, with the "
                        "output's number of planes"
                    )
                shape = this
            cm[k].data, cm[k].err, cm[k].dq = _first(item[0]), _first(item[1]), _first(item[2])
            cm[k].ny_in, cm[k].nx_in = shape[1], shape[2]
            cm[k].swap_data, cm[k].swap_err, cm[k].swap_dq = item[3], item[4], item[5]
            cm[k].ix, cm[k].iy, cm[k].ixr, cm[k].iyr = item[6], item[7], item[8], item[9]
            for j in range(4):
                cm[k].wx[j] = item[10][j]
                cm[k].wy[j] = item[11][j]
            for j in range(2):
                cm[k].lx[j] = item[12][j]
                cm[k].ly[j] = item[13][j]
            ny_pad = max(ny_pad, cm[k].ny_in + 2 * IFUALIGN_MARGIN)
            nx_pad = max(nx_pad, cm[k].nx_in + 2 * IFUALIGN_MARGIN)
        # Zeros: the filters also read (and their results at unused positions hold) scratch that
        # no output voxel uses; it must hold finite numbers.
        scratch = np.zeros(ifualign_scratch_floats(ny_pad, nx_pad, nx_out), np.float32)
        with nogil:
            for z in range(nz):
                for k in range(nmember):
                    ifualign_add_plane(
                        &cm[k], z, cubic, do_not_use, keep, &scratch[0], ny_pad,
                        &wsum[z, 0, 0], &dsum[z, 0, 0], &count[z, 0, 0], &flags[z, 0, 0],
                        ny_out, nx_out,
                    )
    finally:
        free(cm)


def usable_sums(
    const uint32_t[:, :, ::1] data,
    const uint32_t[:, :, ::1] err,
    const uint32_t[:, :, ::1] dq,
    bint swap_data,
    bint swap_err,
    bint swap_dq,
    uint32_t do_not_use,
    bint positive_err,
    double[:, ::1] dsum,
    double[:, ::1] e2sum,
    int64_t[:, ::1] n,
):
    """Add, per spaxel, the usable voxels' data, squared error (float32 square) and count."""
    cdef Py_ssize_t nz = data.shape[0], ny = data.shape[1], nx = data.shape[2]
    cdef int j
    for j in range(3):
        if not (err.shape[j] == dq.shape[j] == data.shape[j]):
            raise ValueError("data, err and dq must have one shape")
    for j in range(2):
        if not (dsum.shape[j] == e2sum.shape[j] == n.shape[j] == data.shape[j + 1]):
            raise ValueError("the sums must have the shape of one plane")
    if nz == 0 or ny == 0 or nx == 0:
        return
    with nogil:
        ifualign_usable_sums(
            &data[0, 0, 0], &err[0, 0, 0], &dq[0, 0, 0], swap_data, swap_err, swap_dq,
            nz, ny, nx, do_not_use, positive_err, &dsum[0, 0], &e2sum[0, 0], &n[0, 0],
        )


def finish(
    float[::1] dsum,
    float[::1] wsum,
    const int16_t[::1] count,
    uint32_t[::1] flags,
    uint32_t fill,
):
    """Weighted mean and its error from the running sums, in place; ``fill`` DQ where uncovered."""
    cdef Py_ssize_t n = dsum.shape[0]
    if not (wsum.shape[0] == count.shape[0] == flags.shape[0] == n):
        raise ValueError("the running sums must all have one shape")
    if n == 0:
        return
    with nogil:
        ifualign_finish(&dsum[0], &wsum[0], &count[0], &flags[0], n, fill)
