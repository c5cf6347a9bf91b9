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

GPU_HISTEQ_EXPORT int gpu_histeq_remap_u8(const uint8_t *values, int64_t nplanes, int64_t npixels,
                                          const uint8_t *tables, uint8_t *out)
{
    for (int64_t p = 0; p < nplanes; ++p) {
        const uint8_t *v = values + p * npixels;
        const uint8_t *t = tables + p * 256;
        uint8_t *o = out + p * npixels;
        for (int64_t i = 0; i < npixels; ++i) o[i] = t[v[i]];
    }
    return 0;
}

GPU_HISTEQ_EXPORT int gpu_histeq_remap_u16(const uint16_t *values, int64_t nplanes, int64_t npixels,
                                           const uint16_t *tables, uint16_t *out)
{
    for (int64_t p = 0; p < nplanes; ++p) {
        const uint16_t *v = values + p * npixels;
        const uint16_t *t = tables + p * 65536;
        uint16_t *o = out + p * npixels;
        for (int64_t i = 0; i < npixels; ++i) o[i] = t[v[i]];
    }
    return 0;
}

/* Floating planes: numpy.histogram's bins, then numpy.interp through each plane's CDF.
 *
 * bin: the scaled offset (x - first) / width * nbins in the images' own type, clamped to
 *      [0, nbins - 1] and truncated, then corrected against the edges, which decide; values
 *      outside a mask's range land in the end bins. One pass that the compiler can vectorise,
 *      then the scalar correction; the bins (int32) are kept so the remap does not redo them.
 * count: counts[plane * nbins + bin] += 1 for every selected pixel.
 * interp: below the first center the first value, else slope[j] * (x - centers[j]) + cdf[j]
 *      in double, j the segment whose left center is at or below x (slope 0 on the last).
 * Traffic per pixel: bin reads 4 or 8 bytes and writes 4; count reads 4; interp reads 8 or 12
 * and writes 4 or 8; the per-plane tables (about 24 * nbins bytes) stay in L1/L2. */
#define GPU_HISTEQ_FLOAT_KERNELS(T, NAME)                                                      \
    GPU_HISTEQ_EXPORT int gpu_histeq_bin_##NAME(const T *values, int64_t nplanes,              \
        int64_t npixels, const T *first, const T *width, const T *edges, int64_t nbins,        \
        int32_t *bins)                                                                         \
    {                                                                                          \
        const T last_bin = (T)(nbins - 1), count = (T)nbins;                                   \
        for (int64_t p = 0; p < nplanes; ++p) {                                                \
            const T *v = values + p * npixels, *e = edges + p * (nbins + 1);                   \
            const T low = first[p], span = width[p];                                           \
            int32_t *b = bins + p * npixels;                                                   \
            for (int64_t i = 0; i < npixels; ++i) {                                            \
                T scaled = (v[i] - low) / span * count;                                        \
                scaled = scaled > (T)0 ? scaled : (T)0;                                        \
                scaled = scaled < last_bin ? scaled : last_bin;                                \
                b[i] = (int32_t)scaled;                                                        \
            }                                                                                  \
            for (int64_t i = 0; i < npixels; ++i) {                                            \
                int32_t k = b[i];                                                              \
                k -= v[i] < e[k];                                                              \
                k = k < 0 ? 0 : k;                                                             \
                k += (k != nbins - 1) & (v[i] >= e[k + 1]);                                    \
                b[i] = k;                                                                      \
            }                                                                                  \
        }                                                                                      \
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

/* Odd pixels count into a second histogram so that runs of equal bins (smooth images) do not
 * serialise on one counter; the two are summed per plane. */
GPU_HISTEQ_EXPORT int gpu_histeq_count_bins(const int32_t *bins, const uint8_t *selected,
                                            int64_t nplanes, int64_t npixels, int64_t nbins,
                                            int64_t *counts)
{
    int64_t *odd = calloc((size_t)nbins, sizeof(int64_t));
    if (odd == NULL) return -1;
    for (int64_t p = 0; p < nplanes; ++p) {
        const int32_t *b = bins + p * npixels;
        const uint8_t *s = selected ? selected + p * npixels : NULL;
        int64_t *c = counts + p * nbins;
        int64_t i = 0;
        if (s == NULL) {
            for (; i + 2 <= npixels; i += 2) {
                ++c[b[i]];
                ++odd[b[i + 1]];
            }
            for (; i < npixels; ++i) ++c[b[i]];
        } else {
            for (; i + 2 <= npixels; i += 2) {
                c[b[i]] += s[i] != 0;
                odd[b[i + 1]] += s[i + 1] != 0;
            }
            for (; i < npixels; ++i) c[b[i]] += s[i] != 0;
        }
        for (int64_t k = 0; k < nbins; ++k) {
            c[k] += odd[k];
            odd[k] = 0;
        }
    }
    free(odd);
    return 0;
}

/* An importable (empty) module, so that the build tools treat this as a regular extension. */
static struct PyModuleDef gpu_histeq_levels_module = {PyModuleDef_HEAD_INIT, "_levels",
    "Compiled level-indexed count and remap, called through ctypes.", -1, NULL};

PyMODINIT_FUNC PyInit__levels(void) { return PyModule_Create(&gpu_histeq_levels_module); }
