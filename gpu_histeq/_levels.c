/* Optional compiled CPU fast path for level-indexed images (uint8: 256 levels, uint16: 65536).
 *
 * The two steps of the portable pipeline, for one block of planes at a time:
 *   count: counts[plane * L + value] += 1 for every (selected) pixel  -- numpy.bincount over
 *          offsets `value + L * plane`, without the 8-byte index per pixel;
 *   remap: out[plane, i] = tables[plane * L + values[plane, i]]       -- numpy.take of the same.
 * Work per pixel: one load and one counter increment (count), one load, one table load and one
 * store (remap). Traffic: the block's pixels once per step plus L counters / table entries per
 * plane. The Python side (gpu_histeq/_cpu.py) loads this library with ctypes, which releases the
 * GIL, so blocks run on all cores; tests check it against the bincount path bit for bit.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#define GPU_HISTEQ_EXPORT __declspec(dllexport)
#else
#define GPU_HISTEQ_EXPORT __attribute__((visibility("default")))
#endif

/* Four interleaved sub-histograms so that runs of equal values do not serialise on one counter. */
GPU_HISTEQ_EXPORT int gpu_histeq_count_u8(const uint8_t *values, const uint8_t *selected,
                                          int64_t nplanes, int64_t npixels, int64_t *counts)
{
    uint32_t sub[4][256];
    for (int64_t p = 0; p < nplanes; ++p) {
        const uint8_t *v = values + p * npixels;
        const uint8_t *s = selected ? selected + p * npixels : NULL;
        memset(sub, 0, sizeof(sub));
        int64_t i = 0;
        if (s == NULL) {
            for (; i + 4 <= npixels; i += 4) {
                ++sub[0][v[i]];
                ++sub[1][v[i + 1]];
                ++sub[2][v[i + 2]];
                ++sub[3][v[i + 3]];
            }
            for (; i < npixels; ++i) ++sub[0][v[i]];
        } else {
            for (; i + 4 <= npixels; i += 4) {
                sub[0][v[i]] += s[i] != 0;
                sub[1][v[i + 1]] += s[i + 1] != 0;
                sub[2][v[i + 2]] += s[i + 2] != 0;
                sub[3][v[i + 3]] += s[i + 3] != 0;
            }
            for (; i < npixels; ++i) sub[0][v[i]] += s[i] != 0;
        }
        int64_t *c = counts + p * 256;
        for (int k = 0; k < 256; ++k) c[k] += (int64_t)sub[0][k] + sub[1][k] + sub[2][k] + sub[3][k];
    }
    return 0;
}

GPU_HISTEQ_EXPORT int gpu_histeq_count_u16(const uint16_t *values, const uint8_t *selected,
                                           int64_t nplanes, int64_t npixels, int64_t *counts)
{
    for (int64_t p = 0; p < nplanes; ++p) {
        const uint16_t *v = values + p * npixels;
        const uint8_t *s = selected ? selected + p * npixels : NULL;
        int64_t *c = counts + p * 65536;
        if (s == NULL) {
            for (int64_t i = 0; i < npixels; ++i) ++c[v[i]];
        } else {
            for (int64_t i = 0; i < npixels; ++i) c[v[i]] += s[i] != 0;
        }
    }
    return 0;
}

/* remap: out[plane, i] = tables[plane * LEVELS + values[plane, i]], tables of the pixel type. */
#define GPU_HISTEQ_REMAP(T, NAME, LEVELS)                                                      \
    GPU_HISTEQ_EXPORT int gpu_histeq_remap_##NAME(const T *values, int64_t nplanes,            \
        int64_t npixels, const T *tables, T *out)                                              \
    {                                                                                          \
        for (int64_t p = 0; p < nplanes; ++p) {                                                \
            const T *v = values + p * npixels, *t = tables + p * (LEVELS);                     \
            T *o = out + p * npixels;                                                          \
            for (int64_t i = 0; i < npixels; ++i) o[i] = t[v[i]];                             \
        }                                                                                      \
        return 0;                                                                              \
    }

GPU_HISTEQ_REMAP(uint8_t, u8, 256)
GPU_HISTEQ_REMAP(uint16_t, u16, 65536)

/* Floating planes: numpy.histogram's bins, then numpy.interp through each plane's CDF.
 *
 * bin: the scaled offset (x - first) / width * nbins in the images' own type, clamped to
 *      [0, nbins - 1] and truncated; then corrected against the edges, which decide, wherever
 *      the scaled offset lies within `tolerance[plane]` of a whole number (the rounding of the
 *      offset and of the edges can only disagree there; the caller bounds it from the plane's
 *      range, and a tolerance of 0.5 or more checks every pixel). Values outside a mask's range
 *      land in the end bins. The first loop vectorises and marks the pixels to check; the second
 *      checks them and, when `counts` is given, counts each selected pixel into its plane's
 *      histogram (four interleaved sub-histograms, so runs of equal bins do not serialise on
 *      one counter). The bins (int32) are kept so the remap does not redo them.
 * interp: below the first center the first value, else slope[j] * (x - centers[j]) + cdf[j]
 *      in double, j the segment whose left center is at or below x (slope 0 on the last).
 * Traffic per pixel: bin reads 4 or 8 bytes, writes 4 and reads them back; interp reads 8 or 12
 * and writes 4 or 8; the per-plane tables (about 24 * nbins bytes) stay in L1/L2. */
#define GPU_HISTEQ_CHECK_EDGES (1 << 30)
#define GPU_HISTEQ_FLOAT_KERNELS(T, NAME)                                                      \
    GPU_HISTEQ_EXPORT int gpu_histeq_bin_##NAME(const T *values, const uint8_t *selected,      \
        int64_t nplanes, int64_t npixels, const T *first, const T *width, const T *edges,      \
        const T *tolerance, int64_t nbins, int32_t *bins, int64_t *counts)                     \
    {                                                                                          \
        const T last_bin = (T)(nbins - 1), count = (T)nbins;                                   \
        uint32_t *sub = counts ? calloc((size_t)(4 * nbins), sizeof(uint32_t)) : NULL;         \
        if (counts && sub == NULL) return -1;                                                  \
        for (int64_t p = 0; p < nplanes; ++p) {                                                \
            const T *v = values + p * npixels, *e = edges + p * (nbins + 1);                   \
            const T low = first[p], span = width[p], near = tolerance[p];                      \
            const T far = (T)1 - near;                                                         \
            const uint8_t *s = selected ? selected + p * npixels : NULL;                       \
            int32_t *b = bins + p * npixels;                                                   \
            for (int64_t i = 0; i < npixels; ++i) {                                            \
                T scaled = (v[i] - low) / span * count;                                        \
                scaled = scaled > (T)0 ? scaled : (T)0;                                        \
                scaled = scaled < last_bin ? scaled : last_bin;                                \
                const int32_t k = (int32_t)scaled;                                             \
                const T fraction = scaled - (T)k;                                              \
                b[i] = k | ((fraction < near) | (fraction > far)) * GPU_HISTEQ_CHECK_EDGES;    \
            }                                                                                  \
            for (int64_t i = 0; i < npixels; ++i) {                                            \
                int32_t k = b[i];                                                              \
                if (k & GPU_HISTEQ_CHECK_EDGES) {                                              \
                    k &= ~GPU_HISTEQ_CHECK_EDGES;                                              \
                    k -= v[i] < e[k];                                                          \
                    k = k < 0 ? 0 : k;                                                         \
                    k += (k != nbins - 1) & (v[i] >= e[k + 1]);                                \
                    b[i] = k;                                                                  \
                }                                                                              \
                if (sub) sub[(i & 3) * nbins + k] += s == NULL || s[i];                        \
            }                                                                                  \
            if (sub) {                                                                         \
                int64_t *c = counts + p * nbins;                                               \
                for (int64_t k = 0; k < nbins; ++k) {                                          \
                    c[k] += (int64_t)sub[k] + sub[nbins + k] + sub[2 * nbins + k] + sub[3 * nbins + k]; \
                    sub[k] = sub[nbins + k] = sub[2 * nbins + k] = sub[3 * nbins + k] = 0;     \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        free(sub);                                                                             \
        return 0;                                                                              \
    }                                                                                          \
    GPU_HISTEQ_EXPORT int gpu_histeq_interp_##NAME(const T *values, const int32_t *bins,       \
        int64_t nplanes, int64_t npixels, int64_t nbins, const double *centers,                \
        const double *slopes, const double *cdf, T *out)                                       \
    {                                                                                          \
        for (int64_t p = 0; p < nplanes; ++p) {                                                \
            const T *v = values + p * npixels;                                                 \
            const int32_t *b = bins + p * npixels;                                             \
            const double *c = centers + p * nbins, *k = slopes + p * nbins, *f = cdf + p * nbins; \
            T *o = out + p * npixels;                                                          \
            for (int64_t i = 0; i < npixels; ++i) {                                            \
                double x = (double)v[i];                                                       \
                int64_t j = b[i] - (x < c[b[i]]);                                              \
                int64_t at = j < 0 ? 0 : j;                                                    \
                double slope = j < 0 ? 0.0 : k[at];                                            \
                o[i] = (T)(slope * (x - c[at]) + f[at]);                                       \
            }                                                                                  \
        }                                                                                      \
        return 0;                                                                              \
    }

typedef float gpu_histeq_f32;
typedef double gpu_histeq_f64;
GPU_HISTEQ_FLOAT_KERNELS(gpu_histeq_f32, f32)
GPU_HISTEQ_FLOAT_KERNELS(gpu_histeq_f64, f64)

/* An importable (empty) module, so that the build tools treat this as a regular extension. */
static struct PyModuleDef gpu_histeq_levels_module = {PyModuleDef_HEAD_INIT, "_levels",
    "Compiled level-indexed count and remap, called through ctypes.", -1, NULL};

PyMODINIT_FUNC PyInit__levels(void) { return PyModule_Create(&gpu_histeq_levels_module); }
