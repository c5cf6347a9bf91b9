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
 *      checks them and, when counting, counts each selected pixel into four interleaved
 *      sub-histograms (so runs of equal bins do not serialise on one counter). The bins (int32)
 *      are kept so the remap does not redo them.
 * interp: below the first center the first value, else slope[j] * (x - centers[j]) + cdf[j]
 *      in double, j the segment whose left center is at or below x (slope 0 on the last).
 * equalize: the three steps above plane by plane, with the tables built in between exactly as
 *      equalize.py builds them (cdf = cumsum / total in double, cast to the images' type; centers
 *      = (left + right) / 2 in the images' type; numpy.interp's slopes in double). A plane's
 *      pixels, bins and tables stay in L1/L2 from the count to the remap.
 * Traffic per pixel: stats reads 4 or 8 bytes; equalize reads them again and writes 4 or 8
 * (bin + interp: also 4 bytes of bins written and read back). */
#define GPU_HISTEQ_CHECK_EDGES (1 << 30)

/* numpy.interp's segments of one plane: centers[j], slopes[j], cdf[j] for j in [-1, nbins). The
 * segment -1 (below the first center) has slope 0 and the first value, so that the remap needs
 * no branch: 0 * (x - centers[0]) + cdf[0] is cdf[0] for any finite x. */
typedef struct {
    double *centers, *slopes, *cdf;
} gpu_histeq_interp_table;

static gpu_histeq_interp_table table_of(double *storage, int64_t nbins)
{
    gpu_histeq_interp_table t = {storage + 1, storage + nbins + 2, storage + 2 * nbins + 3};
    return t;
}

static void pad(gpu_histeq_interp_table t)
{
    t.centers[-1] = t.centers[0];
    t.slopes[-1] = 0.0;
    t.cdf[-1] = t.cdf[0];
}

#define GPU_HISTEQ_FLOAT_KERNELS(T, NAME)                                                      \
    static void bin_plane_##NAME(const T *v, const uint8_t *s, int64_t npixels, T low,         \
        T span, T near, const T *e, int64_t nbins, int32_t *b, uint32_t *sub)                  \
    {                                                                                          \
        const T last_bin = (T)(nbins - 1), count = (T)nbins, far = (T)1 - near;                \
        for (int64_t i = 0; i < npixels; ++i) {                                                \
            T scaled = (v[i] - low) / span * count;                                            \
            scaled = scaled > (T)0 ? scaled : (T)0;                                            \
            scaled = scaled < last_bin ? scaled : last_bin;                                    \
            const int32_t k = (int32_t)scaled;                                                 \
            const T fraction = scaled - (T)k;                                                  \
            b[i] = k | ((fraction < near) | (fraction > far)) * GPU_HISTEQ_CHECK_EDGES;        \
        }                                                                                      \
        for (int64_t i = 0; i < npixels; ++i) {                                                \
            int32_t k = b[i];                                                                  \
            if (k & GPU_HISTEQ_CHECK_EDGES) {                                                  \
                k &= ~GPU_HISTEQ_CHECK_EDGES;                                                  \
                k -= v[i] < e[k];                                                              \
                k = k < 0 ? 0 : k;                                                             \
                k += (k != nbins - 1) & (v[i] >= e[k + 1]);                                    \
                b[i] = k;                                                                      \
            }                                                                                  \
            if (sub) sub[(i & 3) * nbins + k] += s == NULL || s[i];                            \
        }                                                                                      \
    }                                                                                          \
    static void interp_plane_##NAME(const T *v, const int32_t *b, int64_t npixels,             \
        gpu_histeq_interp_table t, T *o)                                                       \
    {                                                                                          \
        const double *centers = t.centers, *slopes = t.slopes, *cdf = t.cdf;                   \
        for (int64_t i = 0; i < npixels; ++i) {                                                \
            const double x = (double)v[i];                                                     \
            const int32_t j = b[i] - (x < centers[b[i]]);                                      \
            o[i] = (T)(slopes[j] * (x - centers[j]) + cdf[j]);                                 \
        }                                                                                      \
    }                                                                                          \
    /* Add the four sub-histograms into `counts` and clear them. */                            \
    static void flush_##NAME(uint32_t *sub, int64_t nbins, int64_t *counts)                    \
    {                                                                                          \
        for (int64_t k = 0; k < nbins; ++k) {                                                  \
            counts[k] += (int64_t)sub[k] + sub[nbins + k] + sub[2 * nbins + k] + sub[3 * nbins + k]; \
            sub[k] = sub[nbins + k] = sub[2 * nbins + k] = sub[3 * nbins + k] = 0;             \
        }                                                                                      \
    }                                                                                          \
    GPU_HISTEQ_EXPORT int gpu_histeq_bin_##NAME(const T *values, const uint8_t *selected,      \
        int64_t nplanes, int64_t npixels, const T *first, const T *width, const T *edges,      \
        const T *tolerance, int64_t nbins, int32_t *bins, int64_t *counts)                     \
    {                                                                                          \
        uint32_t *sub = counts ? calloc((size_t)(4 * nbins), sizeof(uint32_t)) : NULL;         \
        if (counts && sub == NULL) return -1;                                                  \
        for (int64_t p = 0; p < nplanes; ++p) {                                                \
            bin_plane_##NAME(values + p * npixels, selected ? selected + p * npixels : NULL,   \
                             npixels, first[p], width[p], tolerance[p], edges + p * (nbins + 1), \
                             nbins, bins + p * npixels, sub);                                  \
            if (sub) flush_##NAME(sub, nbins, counts + p * nbins);                             \
        }                                                                                      \
        free(sub);                                                                             \
        return 0;                                                                              \
    }                                                                                          \
    GPU_HISTEQ_EXPORT int gpu_histeq_interp_##NAME(const T *values, const int32_t *bins,       \
        int64_t nplanes, int64_t npixels, int64_t nbins, const double *centers,                \
        const double *slopes, const double *cdf, T *out)                                       \
    {                                                                                          \
        double *tables = malloc((size_t)(3 * (nbins + 1)) * sizeof(double));                   \
        if (tables == NULL) return -1;                                                         \
        gpu_histeq_interp_table t = table_of(tables, nbins);                                   \
        for (int64_t p = 0; p < nplanes; ++p) {                                                \
            memcpy(t.centers, centers + p * nbins, (size_t)nbins * sizeof(double));            \
            memcpy(t.slopes, slopes + p * nbins, (size_t)nbins * sizeof(double));              \
            memcpy(t.cdf, cdf + p * nbins, (size_t)nbins * sizeof(double));                    \
            pad(t);                                                                            \
            interp_plane_##NAME(values + p * npixels, bins + p * npixels, npixels, t,          \
                                out + p * npixels);                                            \
        }                                                                                      \
        free(tables);                                                                          \
        return 0;                                                                              \
    }                                                                                          \
    GPU_HISTEQ_EXPORT int gpu_histeq_equalize_##NAME(const T *values, const uint8_t *selected, \
        int64_t nplanes, int64_t npixels, const T *first, const T *width, const T *edges,      \
        const T *tolerance, int64_t nbins, T *out)                                             \
    {                                                                                          \
        int32_t *bins = malloc((size_t)npixels * sizeof(int32_t));                             \
        uint32_t *sub = calloc((size_t)(4 * nbins), sizeof(uint32_t));                        \
        int64_t *counts = malloc((size_t)nbins * sizeof(int64_t));                             \
        double *tables = malloc((size_t)(3 * (nbins + 1)) * sizeof(double));                   \
        int status = -(bins == NULL || sub == NULL || counts == NULL || tables == NULL);       \
        gpu_histeq_interp_table t = table_of(tables, nbins);                                   \
        for (int64_t p = 0; p < nplanes && status == 0; ++p) {                                 \
            const T *v = values + p * npixels, *e = edges + p * (nbins + 1);                   \
            bin_plane_##NAME(v, selected ? selected + p * npixels : NULL, npixels, first[p],   \
                             width[p], tolerance[p], e, nbins, bins, sub);                     \
            memset(counts, 0, (size_t)nbins * sizeof(int64_t));                                \
            flush_##NAME(sub, nbins, counts);                                                  \
            int64_t total = 0, cumulative = 0;                                                 \
            for (int64_t k = 0; k < nbins; ++k) total += counts[k];                            \
            const double denominator = (double)(total > 0 ? total : 1);                        \
            for (int64_t k = 0; k < nbins; ++k) {                                              \
                cumulative += counts[k];                                                       \
                t.cdf[k] = (double)(T)((double)cumulative / denominator);                      \
                t.centers[k] = (double)((e[k] + e[k + 1]) / (T)2);                             \
            }                                                                                  \
            for (int64_t k = 0; k + 1 < nbins; ++k)                                            \
                t.slopes[k] = (t.cdf[k + 1] - t.cdf[k]) / (t.centers[k + 1] - t.centers[k]);  \
            t.slopes[nbins - 1] = 0.0;                                                         \
            pad(t);                                                                            \
            interp_plane_##NAME(v, bins, npixels, t, out + p * npixels);                       \
        }                                                                                      \
        free(bins);                                                                            \
        free(sub);                                                                             \
        free(counts);                                                                          \
        free(tables);                                                                          \
        return status;                                                                         \
    }

typedef float gpu_histeq_f32;
typedef double gpu_histeq_f64;
GPU_HISTEQ_FLOAT_KERNELS(gpu_histeq_f32, f32)
GPU_HISTEQ_FLOAT_KERNELS(gpu_histeq_f64, f64)

/* An importable (empty) module, so that the build tools treat this as a regular extension. */
static struct PyModuleDef gpu_histeq_levels_module = {PyModuleDef_HEAD_INIT, "_levels",
    "Compiled level-indexed count and remap, called through ctypes.", -1, NULL};

PyMODINIT_FUNC PyInit__levels(void) { return PyModule_Create(&gpu_histeq_levels_module); }
