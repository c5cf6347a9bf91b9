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
 * compiler this builds with (GCC, Clang, MSVC), as NumPy's right shift. The Python side
 * (gpu_histeq/_cpu.py) calls these through ctypes, which releases the GIL, on all cores.
 */
#include <stdint.h>

#if defined(_WIN32)
#define GPU_HISTEQ_EXPORT __declspec(dllexport)
#else
#define GPU_HISTEQ_EXPORT __attribute__((visibility("default")))
#endif

#define GPU_HISTEQ_SHIFT 14
#define GPU_HISTEQ_DESCALE(x) (((x) + (1 << (GPU_HISTEQ_SHIFT - 1))) >> GPU_HISTEQ_SHIFT)

static inline int32_t gpu_histeq_clamp(int32_t value, int32_t top)
{
    return value < 0 ? 0 : (value > top ? top : value);
}

#define GPU_HISTEQ_COLOR(suffix, type, top)                                                     \
    GPU_HISTEQ_EXPORT int gpu_histeq_luma_##suffix(const type *rgb, int64_t outer, int64_t inner, \
                                                   type *luma)                                 \
    {                                                                                          \
        for (int64_t o = 0; o < outer; ++o) {                                                  \
            const type *red = rgb + o * 3 * inner, *green = red + inner, *blue = green + inner; \
            type *y = luma + o * inner;                                                        \
            for (int64_t i = 0; i < inner; ++i) {                                              \
                int32_t value = GPU_HISTEQ_DESCALE((int32_t)red[i] * 4899 +                    \
                                                   (int32_t)green[i] * 9617 +                  \
                                                   (int32_t)blue[i] * 1868);                   \
                y[i] = (type)gpu_histeq_clamp(value, (top));                                   \
            }                                                                                  \
        }                                                                                      \
        return 0;                                                                              \
    }                                                                                          \
                                                                                               \
    GPU_HISTEQ_EXPORT int gpu_histeq_replace_luma_##suffix(const type *rgb, const type *luma,  \
                                                           int64_t outer, int64_t inner,      \
                                                           type *out)                          \
    {                                                                                          \
        const int32_t half = ((top) + 1) / 2;                                                  \
        const int32_t delta = half << GPU_HISTEQ_SHIFT;                                        \
        for (int64_t o = 0; o < outer; ++o) {                                                  \
            const type *red = rgb + o * 3 * inner, *green = red + inner, *blue = green + inner; \
            const type *y = luma + o * inner;                                                  \
            type *out_red = out + o * 3 * inner, *out_green = out_red + inner;                 \
            type *out_blue = out_green + inner;                                                \
            for (int64_t i = 0; i < inner; ++i) {                                              \
                int32_t r = red[i], g = green[i], b = blue[i];                                 \
                int32_t old = gpu_histeq_clamp(                                                \
                    GPU_HISTEQ_DESCALE(r * 4899 + g * 9617 + b * 1868), (top));                \
                int32_t cr = gpu_histeq_clamp(GPU_HISTEQ_DESCALE((r - old) * 11682 + delta),   \
                                              (top)) - half;                                   \
                int32_t cb = gpu_histeq_clamp(GPU_HISTEQ_DESCALE((b - old) * 9241 + delta),    \
                                              (top)) - half;                                   \
                int32_t value = y[i];                                                          \
                out_red[i] = (type)gpu_histeq_clamp(value + GPU_HISTEQ_DESCALE(cr * 22987),    \
                                                    (top));                                    \
                out_green[i] = (type)gpu_histeq_clamp(                                         \
                    value + GPU_HISTEQ_DESCALE(cb * -5636 + cr * -11698), (top));              \
                out_blue[i] = (type)gpu_histeq_clamp(value + GPU_HISTEQ_DESCALE(cb * 29049),   \
                                                     (top));                                   \
            }                                                                                  \
        }                                                                                      \
        return 0;                                                                              \
    }

GPU_HISTEQ_COLOR(u8, uint8_t, 255)
GPU_HISTEQ_COLOR(u16, uint16_t, 65535)
