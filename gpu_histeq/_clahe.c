/* Compiled CPU fast path of OpenCV's CLAHE (gpu_histeq.adaptive.clahe) on uint8/uint16 planes.
 *
 * The same two steps as the portable NumPy path, on a C-contiguous block of n planes of H x W
 * pixels, a grid of GR x GC tiles of TR x TC pixels each (the tiled image, reflect-101 padded,
 * is GR*TR x GC*TC) and L = 256 or 65536 levels:
 *
 *   tables: for every tile, its histogram (through the reflect-101 source rows and columns),
 *           OpenCV's clip and redistribution (`limit` > 0), then
 *           table[v] = rint(float32(cumsum[v]) * scale) -- an integer in [0, L - 1], stored as
 *           the pixel type, which is exact.
 *           Work: one load and one increment per tiled pixel, then O(L) per tile (clip, batch,
 *           residual, cumulative sum). Traffic: the block's pixels once, L counters (int64,
 *           reused) and L table entries per tile written once.
 *   blend:  out = rint((tl * cw1 + tr * cw2) * rw1 + (bl * cw1 + br * cw2) * rw2), the four
 *           neighbouring tables at the pixel's value, in float32 and in this order (OpenCV's,
 *           and NumPy's in adaptive.py; -ffp-contract=off keeps every product rounded).
 *           Work: four table loads, six multiplies or adds and a rounding per pixel. Traffic:
 *           one pixel read and one written, the two tile rows' tables (2 * GC * L entries)
 *           stay in cache.
 *
 * Neighbour tiles and weights per row and column are computed once in Python (blend_weights)
 * and passed in as (2, H) / (2, W) arrays, so both paths use the very same float32 weights.
 * Tests compare this path with the portable one bit for bit.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#define GPU_HISTEQ_EXPORT __declspec(dllexport)
#else
#define GPU_HISTEQ_EXPORT __attribute__((visibility("default")))
#endif

/* Round half to even, as numpy.rint in the default rounding mode, for 0 <= x < 2**23: the sum
 * x + 2**23 has no fraction bits, so the addition itself rounds (float arithmetic evaluated in
 * float, FLT_EVAL_METHOD 0, as on x86-64 and arm64; without -ffast-math it is not folded away).
 * Unlike rintf it is inlined and needs no SSE4.1. */
static inline float gpu_histeq_rint_small(float x)
{
#if FLT_EVAL_METHOD == 0
    const float shift = 8388608.0f;
    return (x + shift) - shift;
#else
    return rintf(x);
#endif
}

/* OpenCV's clip of one tile histogram, as opencv_clip in adaptive.py: cap every bin at `limit`,
 * spread the clipped count c as c / L on every bin and the remainder r as one more on bins
 * 0, s, 2s, ... (r of them, below L) with s = max(L / r, 1). */
static void gpu_histeq_clip(int64_t *hist, int64_t nbins, int64_t limit)
{
    int64_t clipped = 0;
    for (int64_t i = 0; i < nbins; ++i) {
        int64_t over = hist[i] > limit ? hist[i] - limit : 0;
        clipped += over;
        hist[i] -= over;
    }
    int64_t batch = clipped / nbins, residual = clipped % nbins;
    for (int64_t i = 0; i < nbins; ++i) hist[i] += batch;
    if (residual > 0) {
        int64_t step = nbins / residual > 1 ? nbins / residual : 1;
        for (int64_t i = 0; i < nbins && residual > 0; i += step, --residual) ++hist[i];
    }
}

#define GPU_HISTEQ_CLAHE_KERNELS(T, NAME, NBINS)                                                \
    GPU_HISTEQ_EXPORT int gpu_histeq_clahe_tables_##NAME(const T *values, int64_t nplanes,      \
        int64_t height, int64_t width, int64_t grid_rows, int64_t grid_cols, int64_t tile_rows, \
        int64_t tile_cols, const int64_t *source_rows, const int64_t *source_cols,              \
        int64_t limit, float scale, T *tables)                                                  \
    {                                                                                           \
        int64_t *hist = malloc(NBINS * sizeof(int64_t));                                        \
        if (hist == NULL) return -1;                                                            \
        for (int64_t p = 0; p < nplanes; ++p) {                                                 \
            const T *plane = values + p * height * width;                                       \
            for (int64_t ty = 0; ty < grid_rows; ++ty) {                                        \
                for (int64_t tx = 0; tx < grid_cols; ++tx) {                                    \
                    const int64_t *cols = source_cols + tx * tile_cols;                         \
                    memset(hist, 0, NBINS * sizeof(int64_t));                                   \
                    for (int64_t y = ty * tile_rows; y < (ty + 1) * tile_rows; ++y) {           \
                        const T *row = plane + source_rows[y] * width;                          \
                        for (int64_t x = 0; x < tile_cols; ++x) ++hist[row[cols[x]]];           \
                    }                                                                           \
                    if (limit > 0) gpu_histeq_clip(hist, NBINS, limit);                         \
                    T *table = tables + ((p * grid_rows + ty) * grid_cols + tx) * NBINS;        \
                    int64_t sum = 0;                                                            \
                    for (int64_t v = 0; v < NBINS; ++v) {                                       \
                        sum += hist[v];                                                         \
                        table[v] = (T)gpu_histeq_rint_small((float)sum * scale);                \
                    }                                                                           \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        free(hist);                                                                             \
        return 0;                                                                               \
    }                                                                                           \
    GPU_HISTEQ_EXPORT int gpu_histeq_clahe_blend_##NAME(const T *values, int64_t nplanes,       \
        int64_t height, int64_t width, const T *tables, int64_t grid_rows, int64_t grid_cols,   \
        const int64_t *rows, const float *row_weights, const int64_t *cols,                     \
        const float *col_weights, T *out)                                                       \
    {                                                                                           \
        const int64_t *cols1 = cols, *cols2 = cols + width;                                     \
        const float *cw1 = col_weights, *cw2 = col_weights + width;                             \
        for (int64_t p = 0; p < nplanes; ++p) {                                                 \
            const T *plane_tables = tables + p * grid_rows * grid_cols * NBINS;                 \
            for (int64_t y = 0; y < height; ++y) {                                              \
                const T *top = plane_tables + rows[y] * grid_cols * NBINS;                      \
                const T *bottom = plane_tables + rows[height + y] * grid_cols * NBINS;          \
                const float rw1 = row_weights[y], rw2 = row_weights[height + y];                \
                const T *v = values + (p * height + y) * width;                                 \
                T *o = out + (p * height + y) * width;                                          \
                for (int64_t x = 0; x < width; ++x) {                                           \
                    const int64_t left = cols1[x] * NBINS + v[x];                               \
                    const int64_t right = cols2[x] * NBINS + v[x];                              \
                    float upper = (float)top[left] * cw1[x] + (float)top[right] * cw2[x];       \
                    float lower = (float)bottom[left] * cw1[x] + (float)bottom[right] * cw2[x]; \
                    o[x] = (T)gpu_histeq_rint_small(upper * rw1 + lower * rw2);                 \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        return 0;                                                                               \
    }

GPU_HISTEQ_CLAHE_KERNELS(uint8_t, u8, 256)
GPU_HISTEQ_CLAHE_KERNELS(uint16_t, u16, 65536)
