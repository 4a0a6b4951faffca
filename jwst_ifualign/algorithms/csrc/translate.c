/* Translation of IFU cube planes fused with the inverse-variance accumulation, and the
 * wavelength sums of a cube's usable voxels.
 *
 * The resampling rule is that of jwst_ifualign.algorithms.resample.resample_cube for a footprint
 * that is a pure translation (output pixel (x, y) samples the input at (x + tx, y + ty)):
 *   - an output voxel is valid when the input voxel nearest to it (floor(x + t + 0.5)) is usable
 *     and the bilinear weight of its usable neighbours is > 0;
 *   - its value is Keys' bicubic (a = -0.5) of its 16 neighbours when all 16 are usable, else the
 *     bilinear of its usable neighbours divided by their weight;
 *   - its variance is sum(w**2 var) / sum(w)**2 over the same taps.
 * Both filters are separable and are applied as rows, then columns, in float32, in the order
 * resample.translate_parts uses with band matrices.
 *
 * A voxel is usable when its data and error are finite, its error is > 0 (>= 0 for the sums
 * when positive_err is 0) and its DQ lacks the DO_NOT_USE bit.
 *
 * Inputs are 32-bit words with a byte-swap flag, so that big-endian (FITS) arrays are read in
 * place.
 *
 * Layout: each input plane is copied, masked, into scratch planes padded by IFUALIGN_MARGIN
 * unusable pixels on every side (row step nx_in + 2 * IFUALIGN_MARGIN), so that every tap of
 * every output voxel whose nearest input voxel is inside is a valid address. The filters then
 * run over whole planes as one-dimensional loops (long loops that gcc vectorises; values at
 * positions no output voxel reads are never used), and only the accumulation runs per output
 * row. */

#include "translate.h"

#include <math.h>
#include <string.h>

/* With gcc on x86-64 Linux, the entry points and the vectorised loops are also compiled for
 * AVX2 and the loader picks the version the CPU runs (the same IEEE operations, no FMA:
 * identical results). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CPU_CLONES
#endif

#define ALWAYS_INLINE static inline __attribute__((always_inline))
/* A loop gcc vectorises as a function of its own (restrict arguments), not once inlined. */
#define VECTOR_LOOP static __attribute__((noinline)) CPU_CLONES

enum { NPLANES = 10 }; /* scratch planes per member plane, see ifualign_add_plane */

static inline uint32_t word(uint32_t w, int swap) { return swap ? __builtin_bswap32(w) : w; }

static inline float as_float(uint32_t w, int swap)
{
    float value;
    w = word(w, swap);
    memcpy(&value, &w, sizeof value);
    return value;
}

/* x where ok, +0 elsewhere: a bit mask (a select that gcc vectorises, and that a NaN or
 * infinite x cannot turn into NaN as 0 * x would). */
static inline float keep_if(int ok, float x)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    bits &= 0u - (uint32_t)ok;
    memcpy(&x, &bits, sizeof x);
    return x;
}

static inline int usable(float d, float e, uint32_t q, uint32_t do_not_use, int positive_err)
{
    /* isfinite without branches: x - x is 0 for finite x, NaN otherwise. */
    int finite = (d - d == 0.0f) & (e - e == 0.0f);
    int err_ok = positive_err ? (e > 0.0f) : (e >= 0.0f);
    return finite & err_ok & ((q & do_not_use) == 0);
}

size_t ifualign_scratch_floats(ptrdiff_t ny_pad, ptrdiff_t nx_pad, ptrdiff_t nx_out)
{
    return (size_t)(NPLANES * ny_pad * nx_pad + nx_out); /* + a row of bytes, rounded up */
}

/* One row of prepare_plane; called with constant swap flags, so that each combination is a
 * loop without branches (which gcc vectorises). */
ALWAYS_INLINE void prepare_row(const uint32_t *restrict rd, const uint32_t *restrict re,
                               const uint32_t *restrict rq, ptrdiff_t nx, uint32_t do_not_use,
                               float *restrict Dr, float *restrict Er, float *restrict Vr,
                               uint32_t *restrict Qr, const int sd, const int se, const int sq)
{
    for (ptrdiff_t x = 0; x < nx; x++) {
        const float d = as_float(rd[x], sd), e = as_float(re[x], se);
        const float e2 = e * e; /* computed before the choice, so the choice is a select */
        const uint32_t q = word(rq[x], sq);
        const int ok = usable(d, e, q, do_not_use, 1);
        Qr[x] = q;
        Vr[x] = (float)ok;
        Dr[x] = ok ? d : 0.0f;
        Er[x] = ok ? e2 : 0.0f;
    }
}

/* prepare_row for native and for byte-swapped inputs: vectorised loops of their own. */
VECTOR_LOOP void prepare_row_native(const uint32_t *restrict rd, const uint32_t *restrict re,
                                    const uint32_t *restrict rq, ptrdiff_t nx, uint32_t do_not_use,
                                    float *restrict Dr, float *restrict Er, float *restrict Vr,
                                    uint32_t *restrict Qr)
{
    prepare_row(rd, re, rq, nx, do_not_use, Dr, Er, Vr, Qr, 0, 0, 0);
}

VECTOR_LOOP void prepare_row_swapped(const uint32_t *restrict rd, const uint32_t *restrict re,
                                     const uint32_t *restrict rq, ptrdiff_t nx,
                                     uint32_t do_not_use, float *restrict Dr, float *restrict Er,
                                     float *restrict Vr, uint32_t *restrict Qr)
{
    prepare_row(rd, re, rq, nx, do_not_use, Dr, Er, Vr, Qr, 1, 1, 1);
}

/* Usable voxels of plane z of a member, masked data and variance into the padded scratch
 * planes D, E, V, and its DQ in native byte order into Q (row step `step`); the margins of D, E
 * and V are zero: outside the input is not usable. */
static void prepare_plane(const ifualign_member *m, ptrdiff_t z, uint32_t do_not_use,
                          float *restrict D, float *restrict E, float *restrict V,
                          uint32_t *restrict Q, ptrdiff_t step)
{
    const ptrdiff_t ny = m->ny_in, nx = m->nx_in, M = IFUALIGN_MARGIN;
    const uint32_t *pd = m->data + z * ny * nx;
    const uint32_t *pe = m->err + z * ny * nx;
    const uint32_t *pq = m->dq + z * ny * nx;
    const int sd = m->swap_data, se = m->swap_err, sq = m->swap_dq;
    float *planes[3] = {D, E, V};
    for (int k = 0; k < 3; k++) {
        memset(planes[k], 0, sizeof(float) * M * step);
        memset(planes[k] + (ny + M) * step, 0, sizeof(float) * M * step);
    }
    for (ptrdiff_t y = 0; y < ny; y++) {
        const ptrdiff_t o = (y + M) * step;
        for (int k = 0; k < 3; k++) {
            memset(planes[k] + o, 0, sizeof(float) * M);
            memset(planes[k] + o + M + nx, 0, sizeof(float) * M);
        }
        const uint32_t *rd = pd + y * nx, *re = pe + y * nx, *rq = pq + y * nx;
        float *Dr = D + o + M, *Er = E + o + M, *Vr = V + o + M;
        uint32_t *Qr = Q + o + M;
        if (!sd && !se && !sq)
            prepare_row_native(rd, re, rq, nx, do_not_use, Dr, Er, Vr, Qr);
        else if (sd && se && sq)
            prepare_row_swapped(rd, re, rq, nx, do_not_use, Dr, Er, Vr, Qr);
        else /* mixed byte orders: rare, not vectorised */
            prepare_row(rd, re, rq, nx, do_not_use, Dr, Er, Vr, Qr, sd, se, sq);
    }
}

/* out[i] = sum_k w[k] in[i + k * stride] for i in [lo, hi): with stride 1 a row filter, with the
 * row step a column filter, over whole planes. */
VECTOR_LOOP void filter4(float *restrict out, const float *restrict in, const float *w,
                         ptrdiff_t stride, ptrdiff_t lo, ptrdiff_t hi)
{
    const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
    const float *in1 = in + stride, *in2 = in + 2 * stride, *in3 = in + 3 * stride;
    for (ptrdiff_t i = lo; i < hi; i++)
        out[i] = w0 * in[i] + w1 * in1[i] + w2 * in2[i] + w3 * in3[i];
}

VECTOR_LOOP void filter2(float *restrict out, const float *restrict in, const float *w,
                         ptrdiff_t stride, ptrdiff_t lo, ptrdiff_t hi)
{
    const float w0 = w[0], w1 = w[1];
    const float *in1 = in + stride;
    for (ptrdiff_t i = lo; i < hi; i++)
        out[i] = w0 * in[i] + w1 * in1[i];
}

/* Add one output voxel's value d and variance v (weight 1 / v) where ok, without branches. */
ALWAYS_INLINE void accumulate(ptrdiff_t px, int ok, float d, float v, uint32_t bits,
                              float *restrict ws, float *restrict ds, int16_t *restrict oc,
                              uint32_t *restrict of)
{
    /* Everything computed before the choice, so that the choice is a mask. */
    const float inv = 1.0f / v, wd = inv * d;
    ws[px] += keep_if(ok, inv);
    ds[px] += keep_if(ok, wd);
    oc[px] += (int16_t)ok;
    of[px] |= bits & (0u - (uint32_t)ok); /* all bits where ok, none elsewhere */
}

/* One output row, bicubic: add the voxels whose 16 neighbours are all usable (gd, gv, gn: the
 * filtered data, variance and usable count at each voxel's centre tap; near, q: usability and
 * DQ of its nearest input voxel). need[px] = 1 where bilinear_fallback must add the voxel;
 * returns how many. */
VECTOR_LOOP int cubic_row(const float *restrict gd, const float *restrict gv,
                          const float *restrict gn, const float *restrict near,
                          const uint32_t *restrict q, ptrdiff_t lo, ptrdiff_t hi, uint32_t keep,
                          float *restrict ws, float *restrict ds, int16_t *restrict oc,
                          uint32_t *restrict of, uint8_t *restrict need)
{
    int fallback = 0;
    for (ptrdiff_t px = lo; px < hi; px++) {
        const int full = gn[px] == 16.0f; /* then the nearest input voxel is usable too */
        accumulate(px, full, gd[px], gv[px], q[px] & keep, ws, ds, oc, of);
        const int left = (near[px] != 0.0f) & !full;
        need[px] = (uint8_t)left;
        fallback += left;
    }
    return fallback;
}

/* One output row, bilinear kernel: gd, gv, gw are the filtered data, variance and usable
 * weight. */
VECTOR_LOOP void bilinear_row(const float *restrict gd, const float *restrict gv,
                              const float *restrict gw, const float *restrict near,
                              const uint32_t *restrict q, ptrdiff_t lo, ptrdiff_t hi,
                              uint32_t keep, float *restrict ws, float *restrict ds,
                              int16_t *restrict oc, uint32_t *restrict of)
{
    for (ptrdiff_t px = lo; px < hi; px++) {
        const float W = gw[px];
        const int ok = (near[px] != 0.0f) & (W > 0.0f);
        accumulate(px, ok, gd[px] / W, gv[px] / (W * W), q[px] & keep, ws, ds, oc, of);
    }
}

/* One output row, bicubic kernel: the bilinear of the usable neighbours, renormalised, where the
 * nearest input voxel is usable but not all 16 neighbours are (footprint rims, NaN and
 * DO_NOT_USE voxels: few), from the scratch planes at each voxel's top-left tap `c` (rows,
 * then columns). */
static void bilinear_fallback(const uint8_t *need, const uint32_t *q, const ifualign_member *m,
                              const float *D, const float *E, const float *V, ptrdiff_t c,
                              ptrdiff_t step, ptrdiff_t lo, ptrdiff_t hi, uint32_t keep,
                              float *ws, float *ds, int16_t *oc, uint32_t *of)
{
    const float lx0 = m->lx[0], lx1 = m->lx[1], ly0 = m->ly[0], ly1 = m->ly[1];
    const float qx0 = lx0 * lx0, qx1 = lx1 * lx1, qy0 = ly0 * ly0, qy1 = ly1 * ly1;
    for (ptrdiff_t px = lo; px < hi; px++) {
        if (px + 8 <= hi) { /* skip eight voxels at a time where none is needed */
            uint64_t eight;
            memcpy(&eight, need + px, sizeof eight);
            if (eight == 0) {
                px += 7;
                continue;
            }
        }
        if (!need[px])
            continue;
        const ptrdiff_t t = c + px, b = t + step; /* top-left tap, the tap below it */
        const float W = ly0 * (lx0 * V[t] + lx1 * V[t + 1]) + ly1 * (lx0 * V[b] + lx1 * V[b + 1]);
        if (!(W > 0.0f))
            continue;
        const float d = (ly0 * (lx0 * D[t] + lx1 * D[t + 1]) + ly1 * (lx0 * D[b] + lx1 * D[b + 1])) / W;
        const float v = (qy0 * (qx0 * E[t] + qx1 * E[t + 1]) + qy1 * (qx0 * E[b] + qx1 * E[b + 1]))
                        / (W * W);
        accumulate(px, 1, d, v, q[px] & keep, ws, ds, oc, of);
    }
}

CPU_CLONES void ifualign_add_plane(const ifualign_member *m, ptrdiff_t z, int cubic,
                                   uint32_t do_not_use, uint32_t keep, float *scratch,
                                   ptrdiff_t ny_pad, float *restrict wsum,
                                   float *restrict dsum, int16_t *restrict count,
                                   uint32_t *restrict flags, ptrdiff_t ny_out, ptrdiff_t nx_out)
{
    const ptrdiff_t M = IFUALIGN_MARGIN, ny_in = m->ny_in, nx_in = m->nx_in;
    const ptrdiff_t ix = m->ix, iy = m->iy, ixr = m->ixr, iyr = m->iyr;
    /* Output voxels whose nearest input voxel is inside the input. */
    const ptrdiff_t py_lo = -iyr > 0 ? -iyr : 0, py_hi = ny_in - iyr < ny_out ? ny_in - iyr : ny_out;
    const ptrdiff_t px_lo = -ixr > 0 ? -ixr : 0, px_hi = nx_in - ixr < nx_out ? nx_in - ixr : nx_out;
    if (py_lo >= py_hi || px_lo >= px_hi) return;
    const ptrdiff_t step = nx_in + 2 * M, size = ny_pad * step; /* this member's layout */
    float *D = scratch, *E = D + size, *V = E + size;
    uint32_t *Q = (uint32_t *)(V + size); /* float and uint32_t: both 32-bit words */
    float *hd = V + 2 * size, *hv = hd + size, *hn = hv + size; /* row-filtered */
    float *gd = hn + size, *gv = gd + size, *gn = gv + size;    /* and column-filtered */
    uint8_t *need = (uint8_t *)(gn + size); /* one output row: voxels for bilinear_fallback */
    prepare_plane(m, z, do_not_use, D, E, V, Q, step);

    /* The filters' results sit at each output voxel's centre tap (x0, y0) = floor(p + t): rows
     * y0 - 1 .. y0 + 2 are read, for y0 over the output rows (the same for columns). */
    const ptrdiff_t row_lo = py_lo + iy + M, row_hi = py_hi + iy + M;
    if (cubic) {
        float sx[4], sy[4];
        const float ones[4] = {1.0f, 1.0f, 1.0f, 1.0f};
        for (int k = 0; k < 4; k++) {
            sx[k] = m->wx[k] * m->wx[k];
            sy[k] = m->wy[k] * m->wy[k];
        }
        const ptrdiff_t lo = (row_lo - 1) * step, hi = (row_hi + 2) * step;
        filter4(hd + 1, D, m->wx, 1, lo, hi - 3); /* hd[i] = sum_k wx[k] D[i - 1 + k] */
        filter4(hv + 1, E, sx, 1, lo, hi - 3);
        filter4(hn + 1, V, ones, 1, lo, hi - 3);
        const ptrdiff_t glo = row_lo * step, ghi = row_hi * step;
        filter4(gd + step, hd, m->wy, step, glo - step, ghi - step); /* gd[i] = sum wy hd[i + (k-1) step] */
        filter4(gv + step, hv, sy, step, glo - step, ghi - step);
        filter4(gn + step, hn, ones, step, glo - step, ghi - step);
    } else {
        float qx[2], qy[2];
        for (int k = 0; k < 2; k++) {
            qx[k] = m->lx[k] * m->lx[k];
            qy[k] = m->ly[k] * m->ly[k];
        }
        const ptrdiff_t lo = row_lo * step, hi = (row_hi + 1) * step;
        filter2(hd, D, m->lx, 1, lo, hi - 1); /* hd[i] = lx0 D[i] + lx1 D[i + 1] */
        filter2(hv, E, qx, 1, lo, hi - 1);
        filter2(hn, V, m->lx, 1, lo, hi - 1);
        filter2(gd, hd, m->ly, step, lo, hi - step); /* gd[i] = ly0 hd[i] + ly1 hd[i + step] */
        filter2(gv, hv, qy, step, lo, hi - step);
        filter2(gn, hn, m->ly, step, lo, hi - step);
    }

    /* Accumulation, one output row at a time. */
    for (ptrdiff_t py = py_lo; py < py_hi; py++) {
        const ptrdiff_t centre = (py + iy + M) * step + ix + M; /* of output pixel 0 */
        const ptrdiff_t nearest = (py + iyr + M) * step + ixr + M;
        float *ws = wsum + py * nx_out, *ds = dsum + py * nx_out;
        int16_t *oc = count + py * nx_out;
        uint32_t *of = flags + py * nx_out;
        if (!cubic) {
            bilinear_row(gd + centre, gv + centre, gn + centre, V + nearest, Q + nearest, px_lo,
                         px_hi, keep, ws, ds, oc, of);
        } else if (cubic_row(gd + centre, gv + centre, gn + centre, V + nearest, Q + nearest,
                             px_lo, px_hi, keep, ws, ds, oc, of, need)) {
            bilinear_fallback(need, Q + nearest, m, D, E, V, centre, step, px_lo, px_hi, keep, ws,
                              ds, oc, of);
        }
    }
}

CPU_CLONES void ifualign_usable_sums(const uint32_t *restrict data, const uint32_t *restrict err,
                                     const uint32_t *restrict dq, int swap_data, int swap_err,
                                     int swap_dq, ptrdiff_t nz, ptrdiff_t ny, ptrdiff_t nx,
                                     uint32_t do_not_use, int positive_err,
                                     double *restrict dsum, double *restrict e2sum,
                                     int64_t *restrict n)
{
    const ptrdiff_t plane = ny * nx;
    for (ptrdiff_t z = 0; z < nz; z++) {
        const uint32_t *pd = data + z * plane, *pe = err + z * plane, *pq = dq + z * plane;
        for (ptrdiff_t i = 0; i < plane; i++) {
            float d = as_float(pd[i], swap_data), e = as_float(pe[i], swap_err);
            const float e2 = e * e;
            int ok = usable(d, e, word(pq[i], swap_dq), do_not_use, positive_err);
            dsum[i] += ok ? (double)d : 0.0;
            e2sum[i] += ok ? (double)e2 : 0.0;
            n[i] += ok;
        }
    }
}

CPU_CLONES void ifualign_finish(float *restrict dsum, float *restrict wsum,
                                const int16_t *restrict count, uint32_t *restrict flags,
                                ptrdiff_t n, uint32_t fill)
{
    const float nan = __builtin_nanf("");
    for (ptrdiff_t i = 0; i < n; i++) {
        const int covered = count[i] != 0;
        const float mean = dsum[i] / wsum[i], err = 1.0f / sqrtf(wsum[i]);
        dsum[i] = covered ? mean : nan;
        wsum[i] = covered ? err : nan;
        flags[i] = covered ? flags[i] : fill;
    }
}
