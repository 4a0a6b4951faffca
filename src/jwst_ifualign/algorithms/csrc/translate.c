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
 * Both filters are separable and are applied as rows, then columns, in float32, as
 * resample.translate_parts does with band matrices.
 *
 * A voxel is usable when its data and error are finite, its error is > 0 (>= 0 for the sums
 * when positive_err is 0) and its DQ lacks the DO_NOT_USE bit.
 *
 * Inputs are 32-bit words with a byte-swap flag, so that big-endian (FITS) arrays are read in
 * place. */

#include "translate.h"

#include <math.h>
#include <string.h>

static inline uint32_t word(uint32_t w, int swap) { return swap ? __builtin_bswap32(w) : w; }

static inline float as_float(uint32_t w, int swap)
{
    float value;
    w = word(w, swap);
    memcpy(&value, &w, sizeof value);
    return value;
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
    return (size_t)(3 * ny_pad * nx_pad + 6 * ny_pad * nx_out);
}

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* With gcc on x86-64 Linux, the two entry points are also compiled for AVX2 and the loader
 * picks the version the CPU runs (same IEEE operations, no FMA: identical results). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define CPU_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CPU_CLONES
#endif

/* One row of prepare_plane; called with constant swap flags, so that each combination is a
 * loop without branches (which gcc vectorises). */
ALWAYS_INLINE void prepare_row(const uint32_t *restrict rd, const uint32_t *restrict re,
                               const uint32_t *restrict rq, ptrdiff_t nx, uint32_t do_not_use,
                               float *restrict Dr, float *restrict Er, float *restrict Vr,
                               const int sd, const int se, const int sq)
{
    for (ptrdiff_t x = 0; x < nx; x++) {
        const float d = as_float(rd[x], sd), e = as_float(re[x], se);
        const float e2 = e * e; /* computed before the choice, so the choice is a select */
        const int ok = usable(d, e, word(rq[x], sq), do_not_use, 1);
        Vr[x] = (float)ok;
        Dr[x] = ok ? d : 0.0f;
        Er[x] = ok ? e2 : 0.0f;
    }
}

/* Usable voxels of one input plane, masked data and variance into the padded scratch planes
 * D, E, V (row step nx_pad); the margins are zeroed: outside the input is not usable. */
ALWAYS_INLINE void prepare_plane(const ifualign_member *m, ptrdiff_t z, uint32_t do_not_use,
                          float *restrict D, float *restrict E, float *restrict V, ptrdiff_t nx_pad)
{
    const ptrdiff_t ny = m->ny_in, nx = m->nx_in, M = IFUALIGN_MARGIN;
    const uint32_t *pd = m->data + z * ny * nx;
    const uint32_t *pe = m->err + z * ny * nx;
    const uint32_t *pq = m->dq + z * ny * nx;
    const int sd = m->swap_data, se = m->swap_err, sq = m->swap_dq;
    memset(D, 0, sizeof(float) * M * nx_pad);
    memset(E, 0, sizeof(float) * M * nx_pad);
    memset(V, 0, sizeof(float) * M * nx_pad);
    for (ptrdiff_t y = 0; y < ny; y++) {
        float *Dr = D + (y + M) * nx_pad, *Er = E + (y + M) * nx_pad, *Vr = V + (y + M) * nx_pad;
        for (ptrdiff_t x = 0; x < M; x++) {
            Dr[x] = Er[x] = Vr[x] = 0.0f;
            Dr[nx + M + x] = Er[nx + M + x] = Vr[nx + M + x] = 0.0f;
        }
        const uint32_t *rd = pd + y * nx, *re = pe + y * nx, *rq = pq + y * nx;
        if (!sd && !se && !sq)
            prepare_row(rd, re, rq, nx, do_not_use, Dr + M, Er + M, Vr + M, 0, 0, 0);
        else if (sd && se && sq)
            prepare_row(rd, re, rq, nx, do_not_use, Dr + M, Er + M, Vr + M, 1, 1, 1);
        else
            prepare_row(rd, re, rq, nx, do_not_use, Dr + M, Er + M, Vr + M, sd, se, sq);
    }
    memset(D + (ny + M) * nx_pad, 0, sizeof(float) * M * nx_pad);
    memset(E + (ny + M) * nx_pad, 0, sizeof(float) * M * nx_pad);
    memset(V + (ny + M) * nx_pad, 0, sizeof(float) * M * nx_pad);
}

/* out[px] = sum_k w[k] in[px + first + k] over k < ntap, for px in [lo, hi). */
static inline void row_filter(float *restrict out, const float *restrict in, ptrdiff_t first,
                              const float *w, int ntap, ptrdiff_t lo, ptrdiff_t hi)
{
    if (ntap == 4) {
        const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
        for (ptrdiff_t px = lo; px < hi; px++) {
            const float *s = in + px + first;
            out[px] = w0 * s[0] + w1 * s[1] + w2 * s[2] + w3 * s[3];
        }
    } else {
        const float w0 = w[0], w1 = w[1];
        for (ptrdiff_t px = lo; px < hi; px++) {
            const float *s = in + px + first;
            out[px] = w0 * s[0] + w1 * s[1];
        }
    }
}

/* The planes one output row reads: cubic and bilinear row filters at the first tap row,
 * usability of the nearest input row, and that row's DQ. */
typedef struct {
    const float *a, *b, *n, *al, *bl, *nl, *near;
    const uint32_t *dq;
} column_rows;

/* Column filters, the choice of kernel, and accumulation for one output row, without branches;
 * called with constant cubic and swap flags. */
ALWAYS_INLINE void column_row(const column_rows *rows, const ifualign_member *m, const float *sy,
                              const float *qy, ptrdiff_t s, ptrdiff_t lo, ptrdiff_t hi,
                              uint32_t keep, float *restrict ws, float *restrict ds,
                              int16_t *restrict oc, uint32_t *restrict of, const int cubic,
                              const int sq)
{
    const float *restrict a = rows->a, *restrict b = rows->b, *restrict n = rows->n;
    const float *restrict al = rows->al, *restrict bl = rows->bl, *restrict nl = rows->nl;
    const float *restrict near = rows->near;
    const uint32_t *restrict q = rows->dq;
    const float wy0 = m->wy[0], wy1 = m->wy[1], wy2 = m->wy[2], wy3 = m->wy[3];
    const float sy0 = sy[0], sy1 = sy[1], sy2 = sy[2], sy3 = sy[3];
    const float ly0 = m->ly[0], ly1 = m->ly[1], qy0 = qy[0], qy1 = qy[1];
    for (ptrdiff_t px = lo; px < hi; px++) {
        const float W = ly0 * nl[px] + ly1 * nl[px + s];
        float d = (ly0 * al[px] + ly1 * al[px + s]) / W;
        float v = (qy0 * bl[px] + qy1 * bl[px + s]) / (W * W);
        if (cubic) {
            const int full = n[px] + n[px + s] + n[px + 2 * s] + n[px + 3 * s] == 16.0f;
            const float dc = wy0 * a[px] + wy1 * a[px + s] + wy2 * a[px + 2 * s] + wy3 * a[px + 3 * s];
            const float vc = sy0 * b[px] + sy1 * b[px + s] + sy2 * b[px + 2 * s] + sy3 * b[px + 3 * s];
            d = full ? dc : d;
            v = full ? vc : v;
        }
        const int ok = (near[px] != 0.0f) & (W > 0.0f);
        /* Everything computed before the choice, so that the choice is a select. */
        const float inv = 1.0f / v, wd = inv * d;
        const uint32_t bits = word(q[px], sq) & keep;
        ws[px] += ok ? inv : 0.0f;
        ds[px] += ok ? wd : 0.0f;
        oc[px] += (int16_t)ok;
        of[px] |= bits & (0u - (uint32_t)ok); /* all bits where ok, none elsewhere */
    }
}

CPU_CLONES void ifualign_add_plane(const ifualign_member *m, ptrdiff_t z, int cubic, uint32_t do_not_use,
                        uint32_t keep, float *scratch, ptrdiff_t ny_pad, ptrdiff_t nx_pad,
                        float *restrict wsum, float *restrict dsum, int16_t *restrict count,
                        uint32_t *restrict flags, ptrdiff_t ny_out, ptrdiff_t nx_out)
{
    const ptrdiff_t M = IFUALIGN_MARGIN, ny_in = m->ny_in, nx_in = m->nx_in;
    const ptrdiff_t ix = m->ix, iy = m->iy, ixr = m->ixr, iyr = m->iyr;
    /* Output voxels whose nearest input voxel is inside the input. */
    const ptrdiff_t py_lo = -iyr > 0 ? -iyr : 0, py_hi = ny_in - iyr < ny_out ? ny_in - iyr : ny_out;
    const ptrdiff_t px_lo = -ixr > 0 ? -ixr : 0, px_hi = nx_in - ixr < nx_out ? nx_in - ixr : nx_out;
    if (py_lo >= py_hi || px_lo >= px_hi) return;
    const ptrdiff_t step = nx_in + 2 * M; /* row step of D, E, V for this member */
    const ptrdiff_t pad = ny_pad * nx_pad, filt = ny_pad * nx_out;
    float *D = scratch, *E = D + pad, *V = E + pad;
    float *hD = V + pad, *hE = hD + filt, *hN = hE + filt; /* cubic row filters */
    float *hDl = hN + filt, *hEl = hDl + filt, *hWl = hEl + filt; /* bilinear row filters */
    float sx[4], sy[4], qx[2], qy[2], ones[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    for (int k = 0; k < 4; k++) {
        sx[k] = m->wx[k] * m->wx[k];
        sy[k] = m->wy[k] * m->wy[k];
    }
    for (int k = 0; k < 2; k++) {
        qx[k] = m->lx[k] * m->lx[k];
        qy[k] = m->ly[k] * m->ly[k];
    }
    prepare_plane(m, z, do_not_use, D, E, V, step);

    /* Row filters of the padded rows that the column filters read. */
    for (ptrdiff_t r = py_lo + iy - 1 + M; r < py_hi + iy + 2 + M; r++) {
        const float *Dr = D + r * step, *Er = E + r * step, *Vr = V + r * step;
        const ptrdiff_t o = r * nx_out;
        if (cubic) {
            row_filter(hD + o, Dr, ix - 1 + M, m->wx, 4, px_lo, px_hi);
            row_filter(hE + o, Er, ix - 1 + M, sx, 4, px_lo, px_hi);
            row_filter(hN + o, Vr, ix - 1 + M, ones, 4, px_lo, px_hi);
        }
        row_filter(hDl + o, Dr, ix + M, m->lx, 2, px_lo, px_hi);
        row_filter(hEl + o, Er, ix + M, qx, 2, px_lo, px_hi);
        row_filter(hWl + o, Vr, ix + M, m->lx, 2, px_lo, px_hi);
    }

    /* Column filters, the choice of kernel, and accumulation. */
    const ptrdiff_t near0 = ixr + M;
    for (ptrdiff_t py = py_lo; py < py_hi; py++) {
        const ptrdiff_t c0 = (py + iy - 1 + M) * nx_out;
        const column_rows rows = {
            hD + c0, hE + c0, hN + c0, hDl + c0 + nx_out, hEl + c0 + nx_out, hWl + c0 + nx_out,
            V + (py + iyr + M) * step + near0, m->dq + (z * ny_in + py + iyr) * nx_in + ixr,
        };
        float *ws = wsum + py * nx_out, *ds = dsum + py * nx_out;
        int16_t *oc = count + py * nx_out;
        uint32_t *of = flags + py * nx_out;
        const int sq = m->swap_dq;
        if (cubic && !sq)
            column_row(&rows, m, sy, qy, nx_out, px_lo, px_hi, keep, ws, ds, oc, of, 1, 0);
        else if (cubic)
            column_row(&rows, m, sy, qy, nx_out, px_lo, px_hi, keep, ws, ds, oc, of, 1, 1);
        else if (!sq)
            column_row(&rows, m, sy, qy, nx_out, px_lo, px_hi, keep, ws, ds, oc, of, 0, 0);
        else
            column_row(&rows, m, sy, qy, nx_out, px_lo, px_hi, keep, ws, ds, oc, of, 0, 1);
    }
}

CPU_CLONES void ifualign_usable_sums(const uint32_t *restrict data, const uint32_t *restrict err,
                          const uint32_t *restrict dq, int swap_data, int swap_err, int swap_dq,
                          ptrdiff_t nz, ptrdiff_t ny, ptrdiff_t nx, uint32_t do_not_use,
                          int positive_err, double *restrict dsum, double *restrict e2sum,
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
