/* Translation of IFU cube planes fused with inverse-variance accumulation; wavelength sums of
 * usable voxels. See translate.c and jwst_ifualign/algorithms/fused.py. */
#ifndef JWST_IFUALIGN_TRANSLATE_H
#define JWST_IFUALIGN_TRANSLATE_H

#include <stddef.h>
#include <stdint.h>

/* Margin (pixels) of zero, unusable padding around the scratch planes: the taps of an output
 * voxel whose nearest input voxel is inside reach at most two pixels outside the input. */
#define IFUALIGN_MARGIN 3

typedef struct {
    const uint32_t *data; /* float32 bits, (nz, ny_in, nx_in), C order */
    const uint32_t *err;  /* float32 bits */
    const uint32_t *dq;   /* uint32 */
    int swap_data, swap_err, swap_dq; /* byte-swap each word (big-endian input) */
    ptrdiff_t ny_in, nx_in;
    ptrdiff_t ix, iy;   /* floor of the shift */
    ptrdiff_t ixr, iyr; /* floor(shift + 0.5): the nearest input voxel */
    float wx[4], wy[4]; /* Keys weights of taps -1..2 */
    float lx[2], ly[2]; /* bilinear weights of taps 0..1 */
} ifualign_member;

/* Scratch for ifualign_add_plane, zeroed before the first use: 10 planes of (ny_pad, nx_pad) and
 * one output row of bytes; ny_pad, nx_pad = max input size + 2 * IFUALIGN_MARGIN. Each member
 * lays its planes out with its own row step (nx_in + 2 * IFUALIGN_MARGIN). */
size_t ifualign_scratch_floats(ptrdiff_t ny_pad, ptrdiff_t nx_pad, ptrdiff_t nx_out);

void ifualign_add_plane(const ifualign_member *m, ptrdiff_t z, int cubic, uint32_t do_not_use,
                        uint32_t keep, float *scratch, ptrdiff_t ny_pad,
                        float *wsum, float *dsum, int16_t *count, uint32_t *flags,
                        ptrdiff_t ny_out, ptrdiff_t nx_out);

void ifualign_usable_sums(const uint32_t *data, const uint32_t *err, const uint32_t *dq,
                          int swap_data, int swap_err, int swap_dq, ptrdiff_t nz, ptrdiff_t ny,
                          ptrdiff_t nx, uint32_t do_not_use, int positive_err, double *dsum,
                          double *e2sum, int64_t *n);

/* In place: dsum -> dsum / wsum, wsum -> 1 / sqrt(wsum) where count > 0; NaN and flags = fill
 * where count == 0 (WeightedMean.result and the output's DQ for uncovered voxels). */
void ifualign_finish(float *dsum, float *wsum, const int16_t *count, uint32_t *flags, ptrdiff_t n,
                     uint32_t fill);

#endif
