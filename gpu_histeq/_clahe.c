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
 *           stay in cache. With AVX-512 16 pixels per step (gathers), so `tables` must be
 *           followed by 4 spare bytes.
 *   clahe:  both, plane by plane, so a plane's tables are still in the cache for its blend
 *           (the entry point gpu_histeq._cpu calls).
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
static inline void gpu_histeq_clip(int64_t *hist, int64_t nbins, int64_t limit)
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

/* The blend of one row with AVX-512 (F, BW), 16 pixels per step: the four table entries by
 * 32-bit gathers (the tables are followed by at least 4 spare bytes), the same float32
 * products and sums in the same order (no fused multiply-add) and the same round half to even
 * (roundscale), so the same bits as the scalar loop. Used where the CPU has it and
 * GPU_HISTEQ_CPU_SIMD allows AVX-512 (as in _levels.c), for tables whose row offsets fit in
 * 32 bits. Work per pixel: four gathered loads, six float operations, one rounding; traffic:
 * one pixel read and one written (the two tile rows' tables stay in cache). */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <immintrin.h>
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#define GPU_HISTEQ_CLAHE_TARGET __attribute__((target("avx512f,avx512bw")))
#define GPU_HISTEQ_CLAHE_TABLE_TARGET __attribute__((target("avx512f,avx512bw,avx512dq")))
#else
#define GPU_HISTEQ_CLAHE_TARGET                                                                 \
    __attribute__((target("avx512f,avx512bw"), optimize("fp-contract=off")))
#define GPU_HISTEQ_CLAHE_TABLE_TARGET                                                           \
    __attribute__((target("avx512f,avx512bw,avx512dq"), optimize("fp-contract=off")))
#endif
static int gpu_histeq_clahe_simd(void)
{
    const char *setting = getenv("GPU_HISTEQ_CPU_SIMD");
    if (setting != NULL && (strcmp(setting, "0") == 0 || strcmp(setting, "avx2") == 0)) return 0;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512dq");
}
#define GPU_HISTEQ_BLEND_ROW(T, NAME, LOAD, STORE, MASK)                                        \
    GPU_HISTEQ_CLAHE_TARGET static int64_t blend_row_##NAME(const T *v, int64_t width,          \
        const T *top, const T *bottom, const int32_t *left, const int32_t *right,              \
        const float *cw1, const float *cw2, float rw1, float rw2, T *o)                        \
    {                                                                                          \
        const __m512 r1 = _mm512_set1_ps(rw1), r2 = _mm512_set1_ps(rw2);                       \
        const __m512i mask = _mm512_set1_epi32(MASK);                                          \
        int64_t x = 0;                                                                         \
        for (; x + 16 <= width; x += 16) {                                                     \
            const __m512i value = LOAD(v + x);                                                 \
            const __m512i l = _mm512_add_epi32(_mm512_loadu_si512(left + x), value);           \
            const __m512i r = _mm512_add_epi32(_mm512_loadu_si512(right + x), value);          \
            const __m512 w1 = _mm512_loadu_ps(cw1 + x), w2 = _mm512_loadu_ps(cw2 + x);        \
            const __m512 tl = _mm512_cvtepi32_ps(_mm512_and_si512(                             \
                _mm512_i32gather_epi32(l, (const void *)top, sizeof(T)), mask));               \
            const __m512 tr = _mm512_cvtepi32_ps(_mm512_and_si512(                             \
                _mm512_i32gather_epi32(r, (const void *)top, sizeof(T)), mask));               \
            const __m512 bl = _mm512_cvtepi32_ps(_mm512_and_si512(                             \
                _mm512_i32gather_epi32(l, (const void *)bottom, sizeof(T)), mask));            \
            const __m512 br = _mm512_cvtepi32_ps(_mm512_and_si512(                             \
                _mm512_i32gather_epi32(r, (const void *)bottom, sizeof(T)), mask));            \
            const __m512 upper = _mm512_add_ps(_mm512_mul_ps(tl, w1), _mm512_mul_ps(tr, w2));  \
            const __m512 lower = _mm512_add_ps(_mm512_mul_ps(bl, w1), _mm512_mul_ps(br, w2));  \
            const __m512 blended = _mm512_add_ps(_mm512_mul_ps(upper, r1), _mm512_mul_ps(lower, r2)); \
            STORE(o + x, _mm512_cvtps_epi32(_mm512_roundscale_ps(                             \
                blended, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));                     \
        }                                                                                      \
        return x;                                                                              \
    }
#define GPU_HISTEQ_LOAD_U8(p) _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(p)))
#define GPU_HISTEQ_STORE_U8(p, q) _mm_storeu_si128((__m128i *)(p), _mm512_cvtepi32_epi8(q))
#define GPU_HISTEQ_LOAD_U16(p) _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p)))
#define GPU_HISTEQ_STORE_U16(p, q) _mm256_storeu_si256((__m256i *)(p), _mm512_cvtepi32_epi16(q))
GPU_HISTEQ_BLEND_ROW(uint8_t, u8, GPU_HISTEQ_LOAD_U8, GPU_HISTEQ_STORE_U8, 0xFF)
GPU_HISTEQ_BLEND_ROW(uint16_t, u16, GPU_HISTEQ_LOAD_U16, GPU_HISTEQ_STORE_U16, 0xFFFF)
#else
static int gpu_histeq_clahe_simd(void) { return 0; }
#define GPU_HISTEQ_NO_BLEND_ROW(T, NAME)                                                        \
    static int64_t blend_row_##NAME(const T *v, int64_t width, const T *top, const T *bottom, \
        const int32_t *left, const int32_t *right, const float *cw1, const float *cw2,         \
        float rw1, float rw2, T *o) { return 0; }
GPU_HISTEQ_NO_BLEND_ROW(uint8_t, u8)
GPU_HISTEQ_NO_BLEND_ROW(uint16_t, u16)
#endif

/* One tile's table from its histogram (overwritten): OpenCV's clip (limit > 0), the cumulative
 * sum, then table[v] = rint(float(cumsum[v]) * scale) -- the sum first, serially, so that the
 * conversions, products and roundings vectorize (the AVX-512 twin, the same operations). */
#define GPU_HISTEQ_TILE_TABLE(ATTRIBUTES, FUNCTION, T, NBINS)                                  \
    ATTRIBUTES static void FUNCTION(int64_t *hist, int64_t limit, float scale, T *table)       \
    {                                                                                          \
        if (limit > 0) gpu_histeq_clip(hist, NBINS, limit);                                    \
        for (int64_t v = 1; v < NBINS; ++v) hist[v] += hist[v - 1];                            \
        for (int64_t v = 0; v < NBINS; ++v)                                                    \
            table[v] = (T)gpu_histeq_rint_small((float)hist[v] * scale);                       \
    }
GPU_HISTEQ_TILE_TABLE(, tile_table_u8, uint8_t, 256)
GPU_HISTEQ_TILE_TABLE(, tile_table_u16, uint16_t, 65536)
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
GPU_HISTEQ_TILE_TABLE(GPU_HISTEQ_CLAHE_TABLE_TARGET, tile_table_avx512_u8, uint8_t, 256)
GPU_HISTEQ_TILE_TABLE(GPU_HISTEQ_CLAHE_TABLE_TARGET, tile_table_avx512_u16, uint16_t, 65536)
#else
#define tile_table_avx512_u8 tile_table_u8
#define tile_table_avx512_u16 tile_table_u16
#endif

#define GPU_HISTEQ_CLAHE_KERNELS(T, NAME, NBINS)                                                \
    GPU_HISTEQ_EXPORT int gpu_histeq_clahe_tables_##NAME(const T *values, int64_t nplanes,      \
        int64_t height, int64_t width, int64_t grid_rows, int64_t grid_cols, int64_t tile_rows, \
        int64_t tile_cols, const int64_t *source_rows, const int64_t *source_cols,              \
        int64_t limit, float scale, T *tables)                                                  \
    {                                                                                           \
        int64_t *hist = malloc(NBINS * sizeof(int64_t));                                        \
        if (hist == NULL) return -1;                                                            \
        const int simd = gpu_histeq_clahe_simd();                                               \
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
                    T *table = tables + ((p * grid_rows + ty) * grid_cols + tx) * NBINS;        \
                    (simd ? tile_table_avx512_##NAME : tile_table_##NAME)(hist, limit, scale,   \
                                                                          table);               \
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
        /* the SIMD rows' table offsets of the left and right neighbours, in 32 bits */         \
        int32_t *offsets = grid_cols * NBINS < INT32_MAX && gpu_histeq_clahe_simd()             \
            ? malloc(2 * (size_t)width * sizeof(int32_t)) : NULL;                               \
        for (int64_t x = 0; offsets != NULL && x < width; ++x) {                                \
            offsets[x] = (int32_t)(cols1[x] * NBINS);                                           \
            offsets[width + x] = (int32_t)(cols2[x] * NBINS);                                   \
        }                                                                                       \
        for (int64_t p = 0; p < nplanes; ++p) {                                                 \
            const T *plane_tables = tables + p * grid_rows * grid_cols * NBINS;                 \
            for (int64_t y = 0; y < height; ++y) {                                              \
                const T *top = plane_tables + rows[y] * grid_cols * NBINS;                      \
                const T *bottom = plane_tables + rows[height + y] * grid_cols * NBINS;          \
                const float rw1 = row_weights[y], rw2 = row_weights[height + y];                \
                const T *v = values + (p * height + y) * width;                                 \
                T *o = out + (p * height + y) * width;                                          \
                int64_t x = offsets == NULL ? 0 : blend_row_##NAME(v, width, top, bottom,       \
                    offsets, offsets + width, cw1, cw2, rw1, rw2, o);                           \
                for (; x < width; ++x) {                                                        \
                    const int64_t left = cols1[x] * NBINS + v[x];                               \
                    const int64_t right = cols2[x] * NBINS + v[x];                              \
                    float upper = (float)top[left] * cw1[x] + (float)top[right] * cw2[x];       \
                    float lower = (float)bottom[left] * cw1[x] + (float)bottom[right] * cw2[x]; \
                    o[x] = (T)gpu_histeq_rint_small(upper * rw1 + lower * rw2);                 \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        free(offsets);                                                                          \
        return 0;                                                                               \
    }                                                                                           \
    /* Both steps, plane by plane: a plane's tables (one plane's worth, followed by the 4 spare \
     * bytes the SIMD blend reads) stay in the cache for its blend. -1 without memory. */       \
    GPU_HISTEQ_EXPORT int gpu_histeq_clahe_##NAME(const T *values, int64_t nplanes,             \
        int64_t height, int64_t width, int64_t grid_rows, int64_t grid_cols, int64_t tile_rows, \
        int64_t tile_cols, const int64_t *source_rows, const int64_t *source_cols,              \
        int64_t limit, float scale, const int64_t *rows, const float *row_weights,              \
        const int64_t *cols, const float *col_weights, T *out)                                  \
    {                                                                                           \
        T *tables = malloc((size_t)(grid_rows * grid_cols * NBINS) * sizeof(T) + 4);            \
        int status = tables == NULL ? -1 : 0;                                                   \
        for (int64_t p = 0; p < nplanes && status == 0; ++p) {                                  \
            const T *v = values + p * height * width;                                           \
            status = gpu_histeq_clahe_tables_##NAME(v, 1, height, width, grid_rows, grid_cols,  \
                tile_rows, tile_cols, source_rows, source_cols, limit, scale, tables);           \
            if (status == 0)                                                                    \
                gpu_histeq_clahe_blend_##NAME(v, 1, height, width, tables, grid_rows, grid_cols, \
                    rows, row_weights, cols, col_weights, out + p * height * width);             \
        }                                                                                       \
        free(tables);                                                                           \
        return status;                                                                          \
    }

GPU_HISTEQ_CLAHE_KERNELS(uint8_t, u8, 256)
GPU_HISTEQ_CLAHE_KERNELS(uint16_t, u16, 65536)
