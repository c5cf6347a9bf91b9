/* Optional compiled CPU path of the luma round trip: OpenCV's RGB -> YCrCb -> RGB in 14-bit fixed
 * point (cv2.COLOR_RGB2YCrCb / COLOR_YCrCb2RGB for 8- and 16-bit pixels), bit for bit what the
 * portable NumPy code in gpu_histeq/color.py computes (the tests compare them and OpenCV).
 *
 * Pixels are C-contiguous (outer, 3, inner): channels along an axis with `outer` rows before it
 * and `inner` pixels after it (inner = 1 for channels last, H * W for NCHW), in R, G, B order, or
 * with `bgr` nonzero in OpenCV's B, G, R order (cv2.COLOR_BGR2YCrCb / COLOR_YCrCb2BGR: the same
 * arithmetic on the channels reversed; the loops start at channel 2 with a negative channel
 * stride, the AVX2 steps swap two registers, so BGR costs what RGB costs and needs no copy).
 *   luma:         Y = descale(4899 R + 9617 G + 1868 B)                  (outer, inner)
 *   replace_luma: the old Y, Cr and Cb from R, G, B again, then R, G, B from the new Y and that
 *                 Cr, Cb, saturated. Recomputing the chroma costs a few multiply-adds and saves
 *                 storing and reading two chroma planes.
 * Work per pixel: 3 loads, 3 multiply-adds and 1 store (luma); 4 loads, about 12 multiply-adds and
 * 3 stores (replace_luma). Traffic: 4 and 7 bytes per pixel per 8-bit pixel. All intermediates fit
 * in int32 for 8 and 16 bits; `>>` of a negative int32 is an arithmetic shift (floor) on every
 * compiler this builds with (GCC, Clang, MSVC), as NumPy's right shift. Pixels go through tiles of
 * GPU_HISTEQ_TILE int32 values per channel (deinterleaved, converted, then the arithmetic on planar
 * tiles, which compilers vectorize); on x86-64 with GCC or Clang, AVX2 builds (tile loops, and
 * intrinsics doing 8 channels-last uint8 pixels per step) are chosen at run time when the CPU has
 * AVX2 (GPU_HISTEQ_CPU_SIMD=0 keeps the generic loops, as in _levels.c): the same integer
 * operations, so the same bits. At the end, the fused luma equalization of channels-last uint8
 * (9 bytes of traffic per pixel in all). The Python side (gpu_histeq/_cpu.py) calls these through
 * ctypes, which releases the GIL, on all cores.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#define GPU_HISTEQ_EXPORT __declspec(dllexport)
#else
#define GPU_HISTEQ_EXPORT __attribute__((visibility("default")))
#endif

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GPU_HISTEQ_COLOR_AVX2 1
#endif

#define GPU_HISTEQ_SHIFT 14
#define GPU_HISTEQ_DESCALE(x) (((x) + (1 << (GPU_HISTEQ_SHIFT - 1))) >> GPU_HISTEQ_SHIFT)
#define GPU_HISTEQ_CLAMP(x, top) ((x) < 0 ? 0 : ((x) > (top) ? (top) : (x)))
#define GPU_HISTEQ_TILE 1024

/* One tile of n pixels, channel c of pixel i at src[c * cstride + i * pstride] (interleaved:
 * cstride 1, pstride 3; planar: cstride = inner, pstride 1; BGR: src at channel 2 and -cstride). */
#define GPU_HISTEQ_TILE_FUNCTIONS(attr, isa, suffix, type, top)                                  \
    attr static inline __attribute__((always_inline)) void luma_body_##isa##_##suffix(      \
        const type *src, int64_t cstride,                \
                                                 int64_t pstride, int64_t n, type *luma)         \
    {                                                                                            \
        for (int64_t i = 0; i < n; ++i) {                                                        \
            int32_t r = src[i * pstride], g = src[cstride + i * pstride];                        \
            int32_t b = src[2 * cstride + i * pstride];                                          \
            /* at most `top`: the weights sum to 2**14 */                                        \
            luma[i] = (type)GPU_HISTEQ_DESCALE(r * 4899 + g * 9617 + b * 1868);                  \
        }                                                                                        \
    }                                                                                            \
                                                                                                 \
    attr static inline __attribute__((always_inline)) void replace_body_##isa##_##suffix(   \
        const type *src, int64_t cstride, int64_t pstride, int64_t n, const type *luma,        \
        type *dst)                                                                              \
    {                                                                                            \
        int32_t r[GPU_HISTEQ_TILE], g[GPU_HISTEQ_TILE], b[GPU_HISTEQ_TILE], y[GPU_HISTEQ_TILE];   \
        const int32_t half = ((top) + 1) / 2, delta = half << GPU_HISTEQ_SHIFT;                  \
        for (int64_t i = 0; i < n; ++i) {                                                        \
            r[i] = src[i * pstride];                                                             \
            g[i] = src[cstride + i * pstride];                                                   \
            b[i] = src[2 * cstride + i * pstride];                                               \
            y[i] = luma[i];                                                                      \
        }                                                                                        \
        for (int64_t i = 0; i < n; ++i) { /* planar: vectorized */                               \
            int32_t old = GPU_HISTEQ_DESCALE(r[i] * 4899 + g[i] * 9617 + b[i] * 1868);           \
            int32_t cr = GPU_HISTEQ_DESCALE((r[i] - old) * 11682 + delta);                       \
            int32_t cb = GPU_HISTEQ_DESCALE((b[i] - old) * 9241 + delta);                        \
            cr = GPU_HISTEQ_CLAMP(cr, (top)) - half;                                             \
            cb = GPU_HISTEQ_CLAMP(cb, (top)) - half;                                             \
            int32_t red = y[i] + GPU_HISTEQ_DESCALE(cr * 22987);                                 \
            int32_t green = y[i] + GPU_HISTEQ_DESCALE(cb * -5636 + cr * -11698);                 \
            int32_t blue = y[i] + GPU_HISTEQ_DESCALE(cb * 29049);                                \
            r[i] = GPU_HISTEQ_CLAMP(red, (top));                                                 \
            g[i] = GPU_HISTEQ_CLAMP(green, (top));                                               \
            b[i] = GPU_HISTEQ_CLAMP(blue, (top));                                                \
        }                                                                                        \
        for (int64_t i = 0; i < n; ++i) {                                                        \
            dst[i * pstride] = (type)r[i];                                                       \
            dst[cstride + i * pstride] = (type)g[i];                                             \
            dst[2 * cstride + i * pstride] = (type)b[i];                                         \
        }                                                                                        \
    }                                                                                            \
    /* the strides as constants for channels last, so the compiler vectorizes the shuffles */    \
    attr static void luma_tile_##isa##_##suffix(const type *src, int64_t cstride,                \
                                                 int64_t pstride, int64_t n, type *luma)         \
    {                                                                                            \
        if (pstride == 3 && cstride == 1)                                                        \
            luma_body_##isa##_##suffix(src, 1, 3, n, luma);                                      \
        else if (pstride == 3) /* BGR: from channel 2 backwards */                               \
            luma_body_##isa##_##suffix(src, -1, 3, n, luma);                                     \
        else                                                                                     \
            luma_body_##isa##_##suffix(src, cstride, 1, n, luma);                                \
    }                                                                                            \
    attr static void replace_tile_##isa##_##suffix(const type *src, int64_t cstride,             \
                                                    int64_t pstride, int64_t n, const type *luma, \
                                                    type *dst)                                   \
    {                                                                                            \
        if (pstride == 3 && cstride == 1)                                                        \
            replace_body_##isa##_##suffix(src, 1, 3, n, luma, dst);                              \
        else if (pstride == 3)                                                                   \
            replace_body_##isa##_##suffix(src, -1, 3, n, luma, dst);                             \
        else                                                                                     \
            replace_body_##isa##_##suffix(src, cstride, 1, n, luma, dst);                        \
    }

#define GPU_HISTEQ_NOATTR
GPU_HISTEQ_TILE_FUNCTIONS(GPU_HISTEQ_NOATTR, generic, u8, uint8_t, 255)
GPU_HISTEQ_TILE_FUNCTIONS(GPU_HISTEQ_NOATTR, generic, u16, uint16_t, 65535)
#ifdef GPU_HISTEQ_COLOR_AVX2
GPU_HISTEQ_TILE_FUNCTIONS(__attribute__((target("avx2"))), avx2, u8, uint8_t, 255)
GPU_HISTEQ_TILE_FUNCTIONS(__attribute__((target("avx2"))), avx2, u16, uint16_t, 65535)

static int gpu_histeq_color_avx2(void)
{
    const char *setting = getenv("GPU_HISTEQ_CPU_SIMD");
    if (setting != NULL && strcmp(setting, "0") == 0) return 0; /* as _levels.c */
    return __builtin_cpu_supports("avx2");
}
#define GPU_HISTEQ_PICK(isa_avx2, name, suffix) \
    ((isa_avx2) ? name##_avx2_##suffix : name##_generic_##suffix)
#else
static int gpu_histeq_color_avx2(void) { return 0; }
#define GPU_HISTEQ_PICK(isa_avx2, name, suffix) name##_generic_##suffix
#endif

#ifdef GPU_HISTEQ_COLOR_AVX2
#include <immintrin.h>

/* Channels-last uint8, 8 pixels per step with AVX2 (the same int32 operations as the tile loops,
 * so the same bits): 24 bytes deinterleaved by byte shuffles, widened to int32, the round trip,
 * narrowed and interleaved back. Returns the pixels done (a multiple of 8); the tile loop does
 * the rest. */
#define GPU_HISTEQ_SPLAT(x) _mm256_set1_epi32(x)
#define GPU_HISTEQ_DESCALE8(v) \
    _mm256_srai_epi32(_mm256_add_epi32((v), GPU_HISTEQ_SPLAT(1 << (GPU_HISTEQ_SHIFT - 1))), \
                      GPU_HISTEQ_SHIFT)
#define GPU_HISTEQ_MUL8(v, c) _mm256_mullo_epi32((v), GPU_HISTEQ_SPLAT(c))

__attribute__((target("avx2"))) static inline __m256i gpu_histeq_widen(__m128i lo, __m128i hi,
                                                                      __m128i mlo, __m128i mhi)
{
    return _mm256_cvtepu8_epi32(_mm_or_si128(_mm_shuffle_epi8(lo, mlo), _mm_shuffle_epi8(hi, mhi)));
}

__attribute__((target("avx2"))) static inline __m128i gpu_histeq_narrow(__m256i v)
{
    /* byte 0 of each int32 (values in [0, 255]) -> 8 bytes in the low half */
    const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          -1, 0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                          -1, -1);
    v = _mm256_shuffle_epi8(v, pick);
    v = _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 1, 1, 1, 1, 1));
    return _mm256_castsi256_si128(v);
}

/* 8 channels-last RGB pixels (24 bytes at `src`) deinterleaved and widened to int32 lanes. */
__attribute__((target("avx2"))) static inline void gpu_histeq_load_rgb8(const uint8_t *src,
                                                                       __m256i *r, __m256i *g,
                                                                       __m256i *b)
{
    const __m128i r_lo = _mm_setr_epi8(0, 3, 6, 9, 12, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i r_hi = _mm_setr_epi8(-1, -1, -1, -1, -1, -1, 2, 5, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i g_lo = _mm_setr_epi8(1, 4, 7, 10, 13, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i g_hi = _mm_setr_epi8(-1, -1, -1, -1, -1, 0, 3, 6, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i b_lo = _mm_setr_epi8(2, 5, 8, 11, 14, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i b_hi = _mm_setr_epi8(-1, -1, -1, -1, -1, 1, 4, 7, -1, -1, -1, -1, -1, -1, -1, -1);
    const __m128i lo = _mm_loadu_si128((const __m128i *)src);
    const __m128i hi = _mm_loadl_epi64((const __m128i *)(src + 16));
    *r = gpu_histeq_widen(lo, hi, r_lo, r_hi);
    *g = gpu_histeq_widen(lo, hi, g_lo, g_hi);
    *b = gpu_histeq_widen(lo, hi, b_lo, b_hi);
}

/* OpenCV's fixed-point Y of int32 lanes r, g, b (the tile loops' formula). */
__attribute__((target("avx2"))) static inline __m256i gpu_histeq_luma8(__m256i r, __m256i g,
                                                                      __m256i b)
{
    return GPU_HISTEQ_DESCALE8(_mm256_add_epi32(
        _mm256_add_epi32(GPU_HISTEQ_MUL8(r, 4899), GPU_HISTEQ_MUL8(g, 9617)),
        GPU_HISTEQ_MUL8(b, 1868)));
}

__attribute__((target("avx2"))) static int64_t gpu_histeq_luma8_avx2(const uint8_t *src,
                                                                    int64_t n, uint8_t *luma,
                                                                    int bgr)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i r, g, b;
        if (bgr)
            gpu_histeq_load_rgb8(src + 3 * i, &b, &g, &r);
        else
            gpu_histeq_load_rgb8(src + 3 * i, &r, &g, &b);
        _mm_storel_epi64((__m128i *)(luma + i), gpu_histeq_narrow(gpu_histeq_luma8(r, g, b)));
    }
    return i;
}

__attribute__((target("avx2"))) static int64_t gpu_histeq_replace8_avx2(const uint8_t *src,
                                                                       const uint8_t *luma,
                                                                       const uint8_t *table,
                                                                       int64_t n, uint8_t *dst,
                                                                       int bgr)
{ /* the new Y from `luma`, or (table != NULL) each pixel's own Y through `table`; `bgr`: the
   * first and third channels swapped on the way in and out */
    /* output byte k = pixel k / 3, channel k % 3: from rg = (r0..r7, g0..g7) or from b */
    const __m128i rg_out_lo = _mm_setr_epi8(0, 8, -1, 1, 9, -1, 2, 10, -1, 3, 11, -1, 4, 12, -1, 5);
    const __m128i b_out_lo = _mm_setr_epi8(-1, -1, 0, -1, -1, 1, -1, -1, 2, -1, -1, 3, -1, -1, 4, -1);
    const __m128i rg_out_hi = _mm_setr_epi8(13, -1, 6, 14, -1, 7, 15, -1, -1, -1, -1, -1, -1, -1, -1,
                                            -1);
    const __m128i b_out_hi = _mm_setr_epi8(-1, 5, -1, -1, 6, -1, -1, 7, -1, -1, -1, -1, -1, -1, -1,
                                           -1);
    const __m256i zero = _mm256_setzero_si256(), top = GPU_HISTEQ_SPLAT(255);
    const __m256i half = GPU_HISTEQ_SPLAT(128), delta = GPU_HISTEQ_SPLAT(128 << GPU_HISTEQ_SHIFT);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i r, g, b;
        if (bgr)
            gpu_histeq_load_rgb8(src + 3 * i, &b, &g, &r);
        else
            gpu_histeq_load_rgb8(src + 3 * i, &r, &g, &b);
        __m256i old = gpu_histeq_luma8(r, g, b);
        __m256i y;
        if (table != NULL) {
            uint8_t levels[16];
            _mm_storeu_si128((__m128i *)levels, gpu_histeq_narrow(old));
            for (int k = 0; k < 8; ++k) levels[k] = table[levels[k]];
            y = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)levels));
        } else {
            y = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(luma + i)));
        }
        __m256i cr = GPU_HISTEQ_DESCALE8(
            _mm256_add_epi32(GPU_HISTEQ_MUL8(_mm256_sub_epi32(r, old), 11682), delta));
        __m256i cb = GPU_HISTEQ_DESCALE8(
            _mm256_add_epi32(GPU_HISTEQ_MUL8(_mm256_sub_epi32(b, old), 9241), delta));
        cr = _mm256_sub_epi32(_mm256_min_epi32(_mm256_max_epi32(cr, zero), top), half);
        cb = _mm256_sub_epi32(_mm256_min_epi32(_mm256_max_epi32(cb, zero), top), half);
        __m256i red = _mm256_add_epi32(y, GPU_HISTEQ_DESCALE8(GPU_HISTEQ_MUL8(cr, 22987)));
        __m256i green = _mm256_add_epi32(y, GPU_HISTEQ_DESCALE8(_mm256_add_epi32(
            GPU_HISTEQ_MUL8(cb, -5636), GPU_HISTEQ_MUL8(cr, -11698))));
        __m256i blue = _mm256_add_epi32(y, GPU_HISTEQ_DESCALE8(GPU_HISTEQ_MUL8(cb, 29049)));
        red = _mm256_min_epi32(_mm256_max_epi32(red, zero), top);
        green = _mm256_min_epi32(_mm256_max_epi32(green, zero), top);
        blue = _mm256_min_epi32(_mm256_max_epi32(blue, zero), top);
        const __m256i first = bgr ? blue : red, third = bgr ? red : blue; /* memory order */
        __m128i rg = _mm_unpacklo_epi64(gpu_histeq_narrow(first), gpu_histeq_narrow(green));
        __m128i b8 = gpu_histeq_narrow(third);
        __m128i out_lo = _mm_or_si128(_mm_shuffle_epi8(rg, rg_out_lo), _mm_shuffle_epi8(b8, b_out_lo));
        __m128i out_hi = _mm_or_si128(_mm_shuffle_epi8(rg, rg_out_hi), _mm_shuffle_epi8(b8, b_out_hi));
        _mm_storeu_si128((__m128i *)(dst + 3 * i), out_lo);
        _mm_storel_epi64((__m128i *)(dst + 3 * i + 16), out_hi);
    }
    return i;
}
#endif

#ifdef GPU_HISTEQ_COLOR_AVX2
#define GPU_HISTEQ_FAST_LUMA_u8(avx2, rgb, n, luma, bgr) \
    ((avx2) ? gpu_histeq_luma8_avx2(rgb, n, luma, bgr) : 0)
#define GPU_HISTEQ_FAST_REPLACE_u8(avx2, rgb, luma, n, out, bgr) \
    ((avx2) ? gpu_histeq_replace8_avx2(rgb, luma, NULL, n, out, bgr) : 0)
#define GPU_HISTEQ_FAST_REPLACE_LUT_u8(avx2, rgb, table, n, out, bgr) \
    ((avx2) ? gpu_histeq_replace8_avx2(rgb, NULL, table, n, out, bgr) : 0)
#else
#define GPU_HISTEQ_FAST_LUMA_u8(avx2, rgb, n, luma, bgr) 0
#define GPU_HISTEQ_FAST_REPLACE_u8(avx2, rgb, luma, n, out, bgr) 0
#define GPU_HISTEQ_FAST_REPLACE_LUT_u8(avx2, rgb, table, n, out, bgr) 0
#endif
#define GPU_HISTEQ_FAST_LUMA_u16(avx2, rgb, n, luma, bgr) 0
#define GPU_HISTEQ_FAST_REPLACE_u16(avx2, rgb, luma, n, out, bgr) 0

/* The exported functions: (outer, 3, inner) pixels, tile by tile; `bgr` nonzero for B, G, R. The
 * tile loops start at the R channel (channel 2 for BGR) and step by `cs` (negative for BGR). */
#define GPU_HISTEQ_COLOR(suffix, type, top)                                                     \
    GPU_HISTEQ_EXPORT int gpu_histeq_luma_##suffix(const type *rgb, int64_t outer, int64_t inner, \
                                                   type *luma, int64_t bgr)                    \
    {                                                                                          \
        const int avx2 = gpu_histeq_color_avx2();                                              \
        const int64_t red = bgr ? 2 * inner : 0, cs = bgr ? -inner : inner;                    \
        (void)avx2;                                                                            \
        if (inner == 1) { /* channels last: interleaved R, G, B */                             \
            int64_t start = GPU_HISTEQ_FAST_LUMA_##suffix(avx2, rgb, outer, luma, bgr != 0);   \
            for (int64_t o = start; o < outer; o += GPU_HISTEQ_TILE) {                         \
                int64_t n = outer - o < GPU_HISTEQ_TILE ? outer - o : GPU_HISTEQ_TILE;         \
                GPU_HISTEQ_PICK(avx2, luma_tile, suffix)(rgb + 3 * o + red, cs, 3, n,          \
                                                         luma + o);                            \
            }                                                                                  \
            return 0;                                                                          \
        }                                                                                      \
        for (int64_t o = 0; o < outer; ++o) {                                                  \
            for (int64_t i = 0; i < inner; i += GPU_HISTEQ_TILE) {                             \
                int64_t n = inner - i < GPU_HISTEQ_TILE ? inner - i : GPU_HISTEQ_TILE;         \
                GPU_HISTEQ_PICK(avx2, luma_tile, suffix)(rgb + o * 3 * inner + i + red, cs, 1, \
                                                         n, luma + o * inner + i);             \
            }                                                                                  \
        }                                                                                      \
        return 0;                                                                              \
    }                                                                                          \
                                                                                               \
    GPU_HISTEQ_EXPORT int gpu_histeq_replace_luma_##suffix(const type *rgb, const type *luma,  \
                                                           int64_t outer, int64_t inner,      \
                                                           type *out, int64_t bgr)             \
    {                                                                                          \
        const int avx2 = gpu_histeq_color_avx2();                                              \
        const int64_t red = bgr ? 2 * inner : 0, cs = bgr ? -inner : inner;                    \
        (void)avx2;                                                                            \
        if (inner == 1) {                                                                      \
            int64_t start = GPU_HISTEQ_FAST_REPLACE_##suffix(avx2, rgb, luma, outer, out,      \
                                                             bgr != 0);                        \
            for (int64_t o = start; o < outer; o += GPU_HISTEQ_TILE) {                         \
                int64_t n = outer - o < GPU_HISTEQ_TILE ? outer - o : GPU_HISTEQ_TILE;         \
                GPU_HISTEQ_PICK(avx2, replace_tile, suffix)(rgb + 3 * o + red, cs, 3, n,       \
                                                            luma + o, out + 3 * o + red);      \
            }                                                                                  \
            return 0;                                                                          \
        }                                                                                      \
        for (int64_t o = 0; o < outer; ++o) {                                                  \
            for (int64_t i = 0; i < inner; i += GPU_HISTEQ_TILE) {                             \
                int64_t n = inner - i < GPU_HISTEQ_TILE ? inner - i : GPU_HISTEQ_TILE;         \
                int64_t at = o * 3 * inner + i + red;                                          \
                GPU_HISTEQ_PICK(avx2, replace_tile, suffix)(rgb + at, cs, 1, n,                \
                                                            luma + o * inner + i, out + at);   \
            }                                                                                  \
        }                                                                                      \
        return 0;                                                                              \
    }

GPU_HISTEQ_COLOR(u8, uint8_t, 255)
GPU_HISTEQ_COLOR(u16, uint16_t, 65535)

/* The whole luma equalization of channels-last uint8 planes (nplanes x npixels pixels, each R, G,
 * B, or B, G, R with `bgr` nonzero), fused: luma_counts_u8 counts each plane's Y without storing
 * it; replace_luma_lut_u8 maps each pixel's Y through its plane's table (`tables`, nplanes x 256,
 * made from the counts by the Python side with the method's own table function) and writes the
 * round trip. Per tile of GPU_HISTEQ_TILE pixels, Y goes through a stack buffer in the cache: the
 * pixels are read twice and written once in all (9 bytes per pixel), instead of writing and
 * reading Y planes. */
static int64_t gpu_histeq_luma_block_u8(int avx2, const uint8_t *rgb, int64_t n, uint8_t *luma,
                                        int bgr)
{
    int64_t start = GPU_HISTEQ_FAST_LUMA_u8(avx2, rgb, n, luma, bgr);
    if (start < n)
        GPU_HISTEQ_PICK(avx2, luma_tile, u8)(rgb + 3 * start + (bgr ? 2 : 0), bgr ? -1 : 1, 3,
                                             n - start, luma + start);
    return 0;
}

GPU_HISTEQ_EXPORT int gpu_histeq_luma_counts_u8(const uint8_t *rgb, int64_t nplanes,
                                                int64_t npixels, int64_t *counts, int64_t bgr)
{
    const int avx2 = gpu_histeq_color_avx2();
    uint8_t luma[GPU_HISTEQ_TILE];
    uint32_t sub[4][256];
    for (int64_t p = 0; p < nplanes; ++p) {
        memset(sub, 0, sizeof(sub));
        const uint8_t *plane = rgb + 3 * p * npixels;
        for (int64_t o = 0; o < npixels; o += GPU_HISTEQ_TILE) {
            int64_t n = npixels - o < GPU_HISTEQ_TILE ? npixels - o : GPU_HISTEQ_TILE;
            gpu_histeq_luma_block_u8(avx2, plane + 3 * o, n, luma, bgr != 0);
            int64_t i = 0;
            for (; i + 4 <= n; i += 4) {
                ++sub[0][luma[i]];
                ++sub[1][luma[i + 1]];
                ++sub[2][luma[i + 2]];
                ++sub[3][luma[i + 3]];
            }
            for (; i < n; ++i) ++sub[0][luma[i]];
        }
        for (int v = 0; v < 256; ++v)
            counts[p * 256 + v] = (int64_t)sub[0][v] + sub[1][v] + sub[2][v] + sub[3][v];
    }
    return 0;
}

GPU_HISTEQ_EXPORT int gpu_histeq_replace_luma_lut_u8(const uint8_t *rgb, const uint8_t *tables,
                                                     int64_t nplanes, int64_t npixels,
                                                     uint8_t *out, int64_t bgr)
{
    const int avx2 = gpu_histeq_color_avx2();
    const int64_t red = bgr ? 2 : 0, cs = bgr ? -1 : 1;
    uint8_t luma[GPU_HISTEQ_TILE];
    for (int64_t p = 0; p < nplanes; ++p) {
        const uint8_t *plane = rgb + 3 * p * npixels, *table = tables + 256 * p;
        uint8_t *target = out + 3 * p * npixels;
        int64_t done = GPU_HISTEQ_FAST_REPLACE_LUT_u8(avx2, plane, table, npixels, target,
                                                      bgr != 0);
        for (int64_t o = done; o < npixels; o += GPU_HISTEQ_TILE) {
            int64_t n = npixels - o < GPU_HISTEQ_TILE ? npixels - o : GPU_HISTEQ_TILE;
            gpu_histeq_luma_block_u8(avx2, plane + 3 * o, n, luma, bgr != 0);
            for (int64_t i = 0; i < n; ++i) luma[i] = table[luma[i]];
            int64_t start = GPU_HISTEQ_FAST_REPLACE_u8(avx2, plane + 3 * o, luma, n,
                                                       target + 3 * o, bgr != 0);
            if (start < n)
                GPU_HISTEQ_PICK(avx2, replace_tile, u8)(plane + 3 * (o + start) + red, cs, 3,
                                                        n - start, luma + start,
                                                        target + 3 * (o + start) + red);
        }
    }
    return 0;
}
