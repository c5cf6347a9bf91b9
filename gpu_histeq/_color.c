/* Optional compiled CPU path of the luma round trip: OpenCV's RGB -> YCrCb -> RGB in 14-bit fixed
 * point (cv2.COLOR_RGB2YCrCb / COLOR_YCrCb2RGB for 8- and 16-bit pixels), bit for bit what the
 * portable NumPy code in gpu_histeq/color.py computes (the tests compare them and OpenCV).
 *
 * Pixels are C-contiguous (outer, 3, inner): channels along an axis with `outer` rows before it
 * and `inner` pixels after it (inner = 1 for channels last, H * W for NCHW).
 *   luma:         Y = descale(4899 R + 9617 G + 1868 B)                  (outer, inner)
 *   replace_luma: the old Y, Cr and Cb from R, G, B again, then R, G, B from the new Y and that
 *                 Cr, Cb, saturated. Recomputing the chroma costs a few multiply-adds and saves
 *                 storing and reading two chroma planes.
 * Work per pixel: 3 loads, 3 multiply-adds and 1 store (luma); 4 loads, about 12 multiply-adds and
 * 3 stores (replace_luma). Traffic: 4 and 7 bytes per pixel per 8-bit pixel. All intermediates fit
 * in int32 for 8 and 16 bits; `>>` of a negative int32 is an arithmetic shift (floor) on every
 * compiler this builds with (GCC, Clang, MSVC), as NumPy's right shift. Pixels go through tiles of
 * GPU_HISTEQ_TILE int32 values per channel (deinterleaved, converted, then the arithmetic on planar
 * tiles, which compilers vectorize); on x86-64 with GCC or Clang an AVX2 build of the tile loops is
 * chosen at run time when the CPU has AVX2 (GPU_HISTEQ_CPU_SIMD=none keeps the generic one), the
 * same integer operations, so the same bits. The Python side (gpu_histeq/_cpu.py) calls these
 * through ctypes, which releases the GIL, on all cores.
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
 * cstride 1, pstride 3; planar: cstride = inner, pstride 1). */
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
        if (pstride == 3)                                                                        \
            luma_body_##isa##_##suffix(src, 1, 3, n, luma);                                      \
        else                                                                                     \
            luma_body_##isa##_##suffix(src, cstride, 1, n, luma);                                \
    }                                                                                            \
    attr static void replace_tile_##isa##_##suffix(const type *src, int64_t cstride,             \
                                                    int64_t pstride, int64_t n, const type *luma, \
                                                    type *dst)                                   \
    {                                                                                            \
        if (pstride == 3)                                                                        \
            replace_body_##isa##_##suffix(src, 1, 3, n, luma, dst);                              \
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
    if (setting != NULL && strcmp(setting, "none") == 0) return 0;
    return __builtin_cpu_supports("avx2");
}
#define GPU_HISTEQ_PICK(isa_avx2, name, suffix) \
    ((isa_avx2) ? name##_avx2_##suffix : name##_generic_##suffix)
#else
static int gpu_histeq_color_avx2(void) { return 0; }
#define GPU_HISTEQ_PICK(isa_avx2, name, suffix) name##_generic_##suffix
#endif

/* The exported functions: (outer, 3, inner) pixels, tile by tile. */
#define GPU_HISTEQ_COLOR(suffix, type, top)                                                     \
    GPU_HISTEQ_EXPORT int gpu_histeq_luma_##suffix(const type *rgb, int64_t outer, int64_t inner, \
                                                   type *luma)                                 \
    {                                                                                          \
        const int avx2 = gpu_histeq_color_avx2();                                              \
        (void)avx2;                                                                            \
        if (inner == 1) { /* channels last: interleaved R, G, B */                             \
            for (int64_t o = 0; o < outer; o += GPU_HISTEQ_TILE) {                             \
                int64_t n = outer - o < GPU_HISTEQ_TILE ? outer - o : GPU_HISTEQ_TILE;         \
                GPU_HISTEQ_PICK(avx2, luma_tile, suffix)(rgb + 3 * o, 1, 3, n, luma + o);      \
            }                                                                                  \
            return 0;                                                                          \
        }                                                                                      \
        for (int64_t o = 0; o < outer; ++o) {                                                  \
            for (int64_t i = 0; i < inner; i += GPU_HISTEQ_TILE) {                             \
                int64_t n = inner - i < GPU_HISTEQ_TILE ? inner - i : GPU_HISTEQ_TILE;         \
                GPU_HISTEQ_PICK(avx2, luma_tile, suffix)(rgb + o * 3 * inner + i, inner, 1, n, \
                                                         luma + o * inner + i);                \
            }                                                                                  \
        }                                                                                      \
        return 0;                                                                              \
    }                                                                                          \
                                                                                               \
    GPU_HISTEQ_EXPORT int gpu_histeq_replace_luma_##suffix(const type *rgb, const type *luma,  \
                                                           int64_t outer, int64_t inner,      \
                                                           type *out)                          \
    {                                                                                          \
        const int avx2 = gpu_histeq_color_avx2();                                              \
        (void)avx2;                                                                            \
        if (inner == 1) {                                                                      \
            for (int64_t o = 0; o < outer; o += GPU_HISTEQ_TILE) {                             \
                int64_t n = outer - o < GPU_HISTEQ_TILE ? outer - o : GPU_HISTEQ_TILE;         \
                GPU_HISTEQ_PICK(avx2, replace_tile, suffix)(rgb + 3 * o, 1, 3, n, luma + o,    \
                                                            out + 3 * o);                      \
            }                                                                                  \
            return 0;                                                                          \
        }                                                                                      \
        for (int64_t o = 0; o < outer; ++o) {                                                  \
            for (int64_t i = 0; i < inner; i += GPU_HISTEQ_TILE) {                             \
                int64_t n = inner - i < GPU_HISTEQ_TILE ? inner - i : GPU_HISTEQ_TILE;         \
                GPU_HISTEQ_PICK(avx2, replace_tile, suffix)(rgb + o * 3 * inner + i, inner, 1, \
                                                            n, luma + o * inner + i,           \
                                                            out + o * 3 * inner + i);          \
            }                                                                                  \
        }                                                                                      \
        return 0;                                                                              \
    }

GPU_HISTEQ_COLOR(u8, uint8_t, 255)
GPU_HISTEQ_COLOR(u16, uint16_t, 65535)
