/* Optional compiled CPU fast path for level-indexed images (uint8: 256 levels, uint16: 65536).
 *
 * The two steps of the portable pipeline, for one block of planes at a time:
 *   count: counts[plane * L + value] += 1 for every (selected) pixel  -- numpy.bincount over
 *          offsets `value + L * plane`, without the 8-byte index per pixel;
 *   remap: out[plane, i] = tables[plane * L + values[plane, i]]       -- numpy.take of the same.
 * Work per pixel: one load and one counter increment (count), one load, one table load and one
 * store (remap). Traffic: the block's pixels once per step plus L counters / table entries per
 * plane. equalize_levels does both steps and OpenCV's or PIL's table per plane in one call;
 * further down, the same for floating planes (scikit-image's bins and numpy.interp). The Python
 * side (gpu_histeq/_cpu.py) loads this library with ctypes, which releases the GIL, so blocks run
 * on all cores; tests check it against the bincount path bit for bit.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
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

/* Add every value (or every selected one) of values[0, n) to four interleaved sub-histograms
 * sub0..sub3 (each `stride` counters apart), so that runs of equal values do not serialise on
 * one counter. */
#define GPU_HISTEQ_COUNT4(values, s, n, sub0, stride)                                           \
    do {                                                                                       \
        uint32_t *sub1_ = (sub0) + (stride), *sub2_ = sub1_ + (stride), *sub3_ = sub2_ + (stride); \
        int64_t i_ = 0;                                                                        \
        if ((s) == NULL) {                                                                     \
            for (; i_ + 4 <= (n); i_ += 4) {                                                   \
                ++(sub0)[(values)[i_]];                                                        \
                ++sub1_[(values)[i_ + 1]];                                                     \
                ++sub2_[(values)[i_ + 2]];                                                     \
                ++sub3_[(values)[i_ + 3]];                                                     \
            }                                                                                  \
            for (; i_ < (n); ++i_) ++(sub0)[(values)[i_]];                                     \
        } else {                                                                               \
            for (; i_ + 4 <= (n); i_ += 4) {                                                   \
                (sub0)[(values)[i_]] += (s)[i_] != 0;                                          \
                sub1_[(values)[i_ + 1]] += (s)[i_ + 1] != 0;                                   \
                sub2_[(values)[i_ + 2]] += (s)[i_ + 2] != 0;                                   \
                sub3_[(values)[i_ + 3]] += (s)[i_ + 3] != 0;                                   \
            }                                                                                  \
            for (; i_ < (n); ++i_) (sub0)[(values)[i_]] += (s)[i_] != 0;                       \
        }                                                                                      \
    } while (0)

/* Where plane p lies: rows of npixels (starts NULL), or packed planes at starts[p]:starts[p + 1]
 * (a ragged batch; npixels is then the largest plane's size). */
static inline int64_t plane_at(const int64_t *starts, int64_t p, int64_t npixels)
{
    return starts ? starts[p] : p * npixels;
}

static inline int64_t plane_size(const int64_t *starts, int64_t p, int64_t npixels)
{
    return starts ? starts[p + 1] - starts[p] : npixels;
}

/* Planes lying in separate arrays (a ragged batch not packed): `places` holds 2 * nplanes
 * addresses, where plane p's pixels are read (places[2p]) and its result written
 * (places[2p + 1]); without it, plane p is at `at` of `values` and of the output. */
#define GPU_HISTEQ_PLANE_VALUES(T, values, places, p, at)                                      \
    ((places) ? (const T *)(uintptr_t)(places)[2 * (p)] : (values) + (at))
#define GPU_HISTEQ_PLANE_OUT(T, out, places, p, at)                                            \
    ((places) ? (T *)(uintptr_t)(places)[2 * (p) + 1] : (out) + (at))

/* Add the eight pixels of the 8 bytes at `at` (one load) to the uint32 sub-histograms
 * sub[4][256], two to each. The counters' scattered stores bound the count: about one a cycle
 * (measured on AMD Zen 4, where stores to different cache lines retire one a cycle), so fewer
 * loads and more sub-histograms do not make it faster; the sub-histograms keep runs of equal
 * values from serialising on one counter. */
#define GPU_HISTEQ_COUNT_WORD(sub, at)                                                          \
    do {                                                                                       \
        uint64_t w_;                                                                           \
        memcpy(&w_, (at), 8);                                                                  \
        ++(sub)[0][w_ & 255];                                                                  \
        ++(sub)[1][(w_ >> 8) & 255];                                                           \
        ++(sub)[2][(w_ >> 16) & 255];                                                          \
        ++(sub)[3][(w_ >> 24) & 255];                                                          \
        ++(sub)[0][(w_ >> 32) & 255];                                                          \
        ++(sub)[1][(w_ >> 40) & 255];                                                          \
        ++(sub)[2][(w_ >> 48) & 255];                                                          \
        ++(sub)[3][w_ >> 56];                                                                  \
    } while (0)

/* Defined with the other SIMD loops below, each doing nothing (returning 0) where the CPU or
 * GPU_HISTEQ_CPU_SIMD rules it out:
 * simd_level: the widest loops to use (GPU_HISTEQ_GENERIC, _WITH_AVX2, _WITH_AVX512);
 * remap_vbmi_u8: the uint8 table lookup of whole 64-pixel pieces with AVX-512 VBMI; returns the
 *      pixels it did;
 * opencv_table_avx512_u8, pil_table_avx512: opencv_table_u8 and pil_table 16 (8) levels at a
 *      time, for planes of under 2^31 pixels; return 1 when they made the table;
 * equalize_vbmi_u8: the equalization of unmasked uint8 planes with the count of each plane and
 *      the remap of the one before in one loop; returns 1 when it did the planes. */
enum { GPU_HISTEQ_GENERIC = 0, GPU_HISTEQ_WITH_AVX2 = 1, GPU_HISTEQ_WITH_AVX512 = 2 };
static int simd_level(void);
static int64_t remap_vbmi_u8(const uint8_t *v, int64_t n, const uint8_t *table, uint8_t *o);
static int opencv_table_avx512_u8(const int64_t *counts, uint8_t *lut);
static int pil_table_avx512(const int64_t *counts, uint8_t *lut);
static int equalize_vbmi_u8(const uint8_t *values, int64_t nplanes, int64_t npixels,
                            const int64_t *starts, const int64_t *places, int64_t method,
                            int simd, uint8_t *out);

/* Counts of (nplanes, npixels) planes, or with `starts` of packed planes of any sizes (plane p
 * at starts[p]:starts[p + 1]), added to (nplanes, LEVELS) `counts`. */
GPU_HISTEQ_EXPORT int gpu_histeq_count_u8(const uint8_t *values, const uint8_t *selected,
                                          int64_t nplanes, int64_t npixels,
                                          const int64_t *starts, int64_t *counts)
{
    uint32_t sub[4][256];
    for (int64_t p = 0; p < nplanes; ++p) {
        const int64_t at = plane_at(starts, p, npixels);
        const int64_t n = plane_size(starts, p, npixels);
        const uint8_t *v = values + at;
        const uint8_t *s = selected ? selected + at : NULL;
        memset(sub, 0, sizeof(sub));
        int64_t done = 0;
        if (s == NULL) /* eight pixels per load (about a fifth faster than a load each) */
            for (; done + 8 <= n; done += 8) GPU_HISTEQ_COUNT_WORD(sub, v + done);
        GPU_HISTEQ_COUNT4(v + done, s, n - done, sub[0], 256);
        int64_t *c = counts + p * 256;
        for (int k = 0; k < 256; ++k) c[k] += (int64_t)sub[0][k] + sub[1][k] + sub[2][k] + sub[3][k];
    }
    return 0;
}

GPU_HISTEQ_EXPORT int gpu_histeq_count_u16(const uint16_t *values, const uint8_t *selected,
                                           int64_t nplanes, int64_t npixels,
                                           const int64_t *starts, int64_t *counts)
{
    for (int64_t p = 0; p < nplanes; ++p) {
        const int64_t at = plane_at(starts, p, npixels);
        const int64_t n = plane_size(starts, p, npixels);
        const uint16_t *v = values + at;
        const uint8_t *s = selected ? selected + at : NULL;
        int64_t *c = counts + p * 65536;
        if (s == NULL) {
            for (int64_t i = 0; i < n; ++i) ++c[v[i]];
        } else {
            for (int64_t i = 0; i < n; ++i) c[v[i]] += s[i] != 0;
        }
    }
    return 0;
}

/* remap: out[plane, i] = tables[plane * LEVELS + values[plane, i]], tables of the pixel type
 * (uint8: 64 pixels per step with AVX-512 VBMI where the CPU has it). */
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

GPU_HISTEQ_EXPORT int gpu_histeq_remap_u8(const uint8_t *values, int64_t nplanes, int64_t npixels,
                                          const uint8_t *tables, uint8_t *out)
{
    for (int64_t p = 0; p < nplanes; ++p) {
        const uint8_t *v = values + p * npixels, *t = tables + p * 256;
        uint8_t *o = out + p * npixels;
        for (int64_t i = remap_vbmi_u8(v, npixels, t, o); i < npixels; ++i) o[i] = t[v[i]];
    }
    return 0;
}
GPU_HISTEQ_REMAP(uint16_t, u16, 65536)

/* The level tables of equalize.py, from one plane's counts (they agree bit for bit in tests).
 * opencv: cv2.equalizeHist -- lut[v] = round_half_even(float(cum[v] - h[first]) * scale),
 *      scale = float(L - 1) / float(total - h[first]), clipped to [0, L - 1]; `first` is the
 *      lowest level present; a plane with one level (or none) is left unchanged.
 * pil: PIL.ImageOps.equalize -- step = (total - h[last]) / 255 (integer division),
 *      lut[v] = (step / 2 + cum[v - 1]) / step clipped to 255; a plane with one level, or
 *      step 0, is left unchanged. */
enum { GPU_HISTEQ_OPENCV = 0, GPU_HISTEQ_PIL = 1 };

#define GPU_HISTEQ_LEVEL_TABLES(T, NAME, LEVELS)                                                \
    static void opencv_table_##NAME(const int64_t *counts, T *lut)                             \
    {                                                                                          \
        const float top = (float)((LEVELS) - 1);                                               \
        int64_t first = 0, total = 0;                                                          \
        while (first < (LEVELS) - 1 && counts[first] == 0) ++first;                            \
        for (int64_t k = 0; k < (LEVELS); ++k) total += counts[k];                             \
        const int64_t spread = total - counts[first];                                          \
        const float scale = top / (float)(spread > 0 ? spread : 1);                            \
        int64_t cumulative = 0;                                                                \
        for (int64_t k = 0; k < (LEVELS); ++k) {                                               \
            cumulative += counts[k];                                                           \
            float value = rintf((float)(cumulative - counts[first]) * scale);                  \
            value = value < 0.0f ? 0.0f : value;                                               \
            value = value > top ? top : value;                                                 \
            lut[k] = spread == 0 ? (T)k : (T)value;                                            \
        }                                                                                      \
    }
GPU_HISTEQ_LEVEL_TABLES(uint8_t, u8, 256)
GPU_HISTEQ_LEVEL_TABLES(uint16_t, u16, 65536)

static void pil_table(const int64_t *counts, uint8_t *lut)
{
    int64_t last = 255, total = 0, present = 0;
    while (last > 0 && counts[last] == 0) --last;
    for (int k = 0; k < 256; ++k) {
        total += counts[k];
        present += counts[k] > 0;
    }
    const int64_t step = (total - counts[last]) / 255;
    int64_t below = 0;
    for (int k = 0; k < 256; ++k) {
        const int64_t value = (step / 2 + below) / (step > 0 ? step : 1);
        lut[k] = present <= 1 || step == 0 ? (uint8_t)k : (uint8_t)(value < 255 ? value : 255);
        below += counts[k];
    }
}

/* Equalize a block of whole level-indexed planes into `out`, plane by plane: the count above,
 * the table, the remap above. Planes are (nplanes, npixels) rows, or with `starts` (nplanes + 1
 * offsets) packed planes of any sizes, plane p at starts[p]:starts[p + 1] (a ragged batch; an
 * empty plane is skipped). A plane is read from memory twice (count, remap) and stays in the
 * cache in between; no per-pixel index. Unmasked uint8 planes go through equalize_vbmi_u8 where
 * the CPU has AVX-512 VBMI (the same steps, the remap of each plane inside the count of the
 * next). Returns 0, or -1 without memory. */
#define GPU_HISTEQ_EQUALIZE_LEVELS(T, NAME, LEVELS)                                             \
    GPU_HISTEQ_EXPORT int gpu_histeq_equalize_levels_##NAME(const T *values,                   \
        const uint8_t *selected, int64_t nplanes, int64_t npixels, const int64_t *starts,      \
        const int64_t *places, int64_t method, T *out)                                        \
    {                                                                                          \
        const int simd = simd_level();                                                         \
        if (selected == NULL && GPU_HISTEQ_PIPELINED_##NAME(values, nplanes, npixels, starts,  \
                                                            places, method, simd, out))        \
            return 0;                                                                          \
        int64_t *counts = malloc((LEVELS) * sizeof(int64_t));                                  \
        T *lut = malloc((LEVELS) * sizeof(T));                                                 \
        const int status = -(counts == NULL || lut == NULL);                                   \
        for (int64_t p = 0; p < nplanes && status == 0; ++p) {                                 \
            const int64_t at = plane_at(starts, p, npixels);                                   \
            const int64_t n = plane_size(starts, p, npixels);                                  \
            const T *plane = GPU_HISTEQ_PLANE_VALUES(T, values, places, p, at);                \
            if (n == 0) continue;                                                              \
            memset(counts, 0, (LEVELS) * sizeof(int64_t));                                    \
            gpu_histeq_count_##NAME(plane, selected ? selected + at : NULL, 1, n, NULL, counts); \
            GPU_HISTEQ_LEVEL_TABLE_##NAME(method, counts, simd, lut);                          \
            gpu_histeq_remap_##NAME(plane, 1, n, lut,                                          \
                                    GPU_HISTEQ_PLANE_OUT(T, out, places, p, at));              \
        }                                                                                      \
        free(counts);                                                                          \
        free(lut);                                                                             \
        return status;                                                                         \
    }

/* One plane's uint8 table by `method` (with AVX-512, several levels at a time). */
static void level_table_u8(int64_t method, const int64_t *counts, int simd, uint8_t *lut)
{
    const int wide = simd == GPU_HISTEQ_WITH_AVX512;
    if (method == GPU_HISTEQ_PIL) {
        if (!wide || !pil_table_avx512(counts, lut)) pil_table(counts, lut);
    } else if (!wide || !opencv_table_avx512_u8(counts, lut)) {
        opencv_table_u8(counts, lut);
    }
}
#define GPU_HISTEQ_LEVEL_TABLE_u8 level_table_u8
#define GPU_HISTEQ_LEVEL_TABLE_u16(method, counts, simd, lut) ((void)(simd), opencv_table_u16(counts, lut))
#define GPU_HISTEQ_PIPELINED_u8 equalize_vbmi_u8
#define GPU_HISTEQ_PIPELINED_u16(values, nplanes, npixels, starts, places, method, simd, out) 0
GPU_HISTEQ_EQUALIZE_LEVELS(uint8_t, u8, 256)
GPU_HISTEQ_EQUALIZE_LEVELS(uint16_t, u16, 65536)

/* Floating planes: numpy.histogram's bins over each plane's [min, max], then numpy.interp
 * through each plane's CDF, as skimage.exposure.equalize_hist computes them.
 *
 * range: the plane's minimum and maximum over its selected pixels; 0 when a pixel (selected or
 *      not) is NaN or infinite.
 * edges: numpy.linspace(first, last, nbins + 1) in the images' type (an empty range widened by
 *      0.5 on each side), as histogram.UniformBinning builds them: e[k] = k * step + first for
 *      k < nbins, e[nbins] = last; 0 when two edges repeat (numpy.histogram refuses those bins).
 * bin: each pixel's bin k (e[k] <= x < e[k + 1], the last bin closed) and its numpy.interp
 *      segment j (k - 1 left of the bin's center c[k] = (e[k] + e[k + 1]) / 2, else k). The
 *      scaled offset s = (x - first) * (nbins / width), in the images' type and clamped to
 *      [0, nbins - 1], is within the tolerance of the exact position, so its floor k is off by
 *      at most one bin, only next to an edge. The exact loop recomputes e[k] and e[k + 1] as
 *      linspace does and compares: k - (x < e[k]) + (x >= e[k + 1]) is the bin, and
 *      k - (x < c[k]) the segment (next to an edge both answers give the same segment). No
 *      branch and no table, so it vectorises (setup.py compiles with -fno-trapping-math, which
 *      lets the compiler turn its selects into vector blends). Where the tolerance reaches a
 *      quarter of a bin (a range narrow for its magnitude), the step is subnormal, the scale
 *      overflows or the edges do not follow the formula, the checked loop does what numpy
 *      does: numpy.histogram's guess ((x - first) / width) * nbins corrected by one bin
 *      against the edges table, and numpy.interp's own binary search of the centers.
 *      Values outside a mask's range land in the end bins. The count then adds each selected
 *      pixel to four interleaved sub-histograms (runs of equal bins do not serialise on one
 *      counter).
 * interp: numpy.interp in double, slope[j] * (x - centers[j]) + cdf[j], j = -1 below the first
 *      center (slope 0, the first value) and slope 0 on the last segment; where a plane's
 *      slopes are not all finite, also numpy.interp's exact hits and NaN fallbacks.
 * equalize: all of the above plane by plane, with the tables built exactly as equalize.py
 *      builds them (cdf = cumsum / total in double, cast to the images' type; centers =
 *      (left + right) / 2 in the images' type; numpy.interp's slopes in double). A plane of up to
 *      GPU_HISTEQ_PLANE_CHUNK pixels is read from memory once: its pixels, bins, segments and
 *      tables stay in L1/L2 from the range to the remap (traffic per pixel: 4 or 8 bytes read,
 *      4 or 8 written); a larger one is read three times (range, count, remap). */
#define GPU_HISTEQ_LANES 8 /* independent minima and maxima per masked range */
#define GPU_HISTEQ_PLANE_CHUNK (1 << 16) /* pixels binned at a time: their scratch stays in L2 */
/* Pixels the SIMD bin loops bin before they are counted: their 2 KiB of bins are still in L1
 * when the count reads them (binning a whole plane first, then counting, measured 4-8% slower
 * for float64 on one thread: the bins came back from L2). */
#define GPU_HISTEQ_PIECE 512
enum { GPU_HISTEQ_OK = 0, GPU_HISTEQ_NOT_FINITE = 1, GPU_HISTEQ_REPEATED_EDGES = 2 };

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
/* Unmasked range of the first `whole` pixels (a multiple of 4 / 2 lanes twice over) with two
 * accumulators per statistic, kept in registers; reduced into lo[], hi[], bad[] (one lane
 * each). bad sums x - x: 0 for finite pixels, NaN once one is NaN or infinite. (Written with
 * intrinsics: compilers keep the generic version's lanes in memory.) */
#define GPU_HISTEQ_RANGE_SSE2(T, NAME, V, SUFFIX, WIDTH, LARGEST)                               \
    static void range_vector_##NAME(const T *v, int64_t whole, T *lo, T *hi, T *bad)           \
    {                                                                                          \
        V lo0 = _mm_set1_##SUFFIX(LARGEST), lo1 = lo0, hi0 = _mm_set1_##SUFFIX(-(LARGEST));    \
        V hi1 = hi0, bad0 = _mm_setzero_##SUFFIX(), bad1 = bad0;                               \
        for (int64_t i = 0; i < whole; i += 2 * (WIDTH)) {                                     \
            const V a = _mm_loadu_##SUFFIX(v + i), b = _mm_loadu_##SUFFIX(v + i + (WIDTH));    \
            lo0 = _mm_min_##SUFFIX(lo0, a);                                                    \
            lo1 = _mm_min_##SUFFIX(lo1, b);                                                    \
            hi0 = _mm_max_##SUFFIX(hi0, a);                                                    \
            hi1 = _mm_max_##SUFFIX(hi1, b);                                                    \
            bad0 = _mm_add_##SUFFIX(bad0, _mm_sub_##SUFFIX(a, a));                             \
            bad1 = _mm_add_##SUFFIX(bad1, _mm_sub_##SUFFIX(b, b));                             \
        }                                                                                      \
        _mm_storeu_##SUFFIX(lo, _mm_min_##SUFFIX(lo0, lo1));                                   \
        _mm_storeu_##SUFFIX(hi, _mm_max_##SUFFIX(hi0, hi1));                                   \
        _mm_storeu_##SUFFIX(bad, _mm_add_##SUFFIX(bad0, bad1));                                \
    }
GPU_HISTEQ_RANGE_SSE2(float, f32, __m128, ps, 4, FLT_MAX)
GPU_HISTEQ_RANGE_SSE2(double, f64, __m128d, pd, 2, DBL_MAX)

#define GPU_HISTEQ_VECTOR_RANGE 1
#else
#define GPU_HISTEQ_VECTOR_RANGE 0
#define GPU_HISTEQ_NO_RANGE_VECTOR(T, NAME)                                                    \
    static void range_vector_##NAME(const T *v, int64_t whole, T *lo, T *hi, T *bad) {}
GPU_HISTEQ_NO_RANGE_VECTOR(float, f32)
GPU_HISTEQ_NO_RANGE_VECTOR(double, f64)
#endif

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

/* How far (in bins) the scaled offset may be from the edges' verdict. The offset and the edges
 * k * step + first are each rounded a few times: together at most about
 * 5 u nbins + 2 u M nbins / width bins apart, u the unit roundoff and M the larger magnitude of
 * the range (for normal numbers). Twice that margin. */
static double tolerance(double unit, double first, double width, int64_t nbins)
{
    const double largest = fmax(fabs(first), fabs(first + width));
    return 2 * unit * (double)nbins * (5 + 2 * largest / width) + 4 * unit;
}

/* Add the four sub-histograms into `counts` (unless NULL) and clear them. */
static void flush(uint32_t *sub, int64_t nbins, int64_t *counts)
{
    for (int64_t k = 0; k < nbins; ++k) {
        if (counts) counts[k] += (int64_t)sub[k] + sub[nbins + k] + sub[2 * nbins + k] + sub[3 * nbins + k];
        sub[k] = sub[nbins + k] = sub[2 * nbins + k] = sub[3 * nbins + k] = 0;
    }
}

/* skimage's CDF (cumsum / total in double, cast to `cdf_is_float` ? float : double) and
 * numpy.interp's slopes between the centers, into `t`. */
static void interp_tables(const int64_t *counts, int64_t nbins, int cdf_is_float,
                          gpu_histeq_interp_table t)
{
    int64_t total = 0, cumulative = 0;
    for (int64_t k = 0; k < nbins; ++k) total += counts[k];
    const double denominator = (double)(total > 0 ? total : 1);
    for (int64_t k = 0; k < nbins; ++k) {
        cumulative += counts[k];
        const double cdf = (double)cumulative / denominator;
        t.cdf[k] = cdf_is_float ? (double)(float)cdf : cdf;
    }
    for (int64_t k = 0; k + 1 < nbins; ++k)
        t.slopes[k] = (t.cdf[k + 1] - t.cdf[k]) / (t.centers[k + 1] - t.centers[k]);
    t.slopes[nbins - 1] = 0.0;
    pad(t);
}

/* True when every slope of `t` is finite: numpy.interp's arithmetic is then slope * (x - c) + f
 * at every pixel of its segment. */
static int regular(gpu_histeq_interp_table t, int64_t nbins)
{
    for (int64_t k = 0; k + 1 < nbins; ++k)
        if (!isfinite(t.slopes[k])) return 0;
    return 1;
}

/* numpy.interp at x in segment j (c[j] <= x < c[j + 1]; -1 below the first center) when slopes
 * may be infinite or NaN (centers that repeat or lie a few subnormal units apart): its exact hit
 * at a center, and its second try from the right end where the first gives NaN. */
static double interp_irregular(double x, int64_t j, gpu_histeq_interp_table t, int64_t nbins)
{
    if (j < 0 || j >= nbins - 1 || x == t.centers[j]) return t.cdf[j]; /* cdf[-1] = cdf[0] */
    double value = t.slopes[j] * (x - t.centers[j]) + t.cdf[j];
    if (isnan(value)) {
        value = t.slopes[j] * (x - t.centers[j + 1]) + t.cdf[j + 1];
        if (isnan(value) && t.cdf[j] == t.cdf[j + 1]) value = t.cdf[j];
    }
    return value;
}

/* AVX-512 and AVX2 versions of the per-pixel loops of the floating path (AVX-512: the range of
 * unmasked planes, the exact bin loop and the regular remap; AVX2: the bin loop and the remap),
 * chosen at run time from what the CPU has (GPU_HISTEQ_CPU_SIMD=0 keeps the generic loops,
 * GPU_HISTEQ_CPU_SIMD=avx2 stops at AVX2). They do the same IEEE operations in the same order as
 * the generic loops below -- max/min where those select, the conversions the casts do, x * 0.5
 * for x / 2 (the same real number, so the same rounding) -- so the results are bit for bit the
 * same; no fused multiply-add (fp-contract off here whatever the build flags). Work per pixel,
 * double (float): bin 14 vector operations per 8 (16) pixels, remap 3 gathers and 3 operations
 * per 8 pixels (AVX-512); the plane's 4 or 8 bytes read by the range and written by the remap
 * are its only memory traffic (bins and segments stay in L1/L2), and the next plane is
 * prefetched into L2 while one is binned. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#include <immintrin.h>
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#define GPU_HISTEQ_TARGET(features) __attribute__((target(features)))
#else
#define GPU_HISTEQ_TARGET(features) __attribute__((target(features), optimize("fp-contract=off")))
#endif
#define GPU_HISTEQ_AVX512 GPU_HISTEQ_TARGET("avx512f,avx512vl,avx512dq")
#define GPU_HISTEQ_AVX2 GPU_HISTEQ_TARGET("avx2")

/* The widest loops to use: what the CPU has, capped by GPU_HISTEQ_CPU_SIMD. */
static int simd_level(void)
{
    const char *setting = getenv("GPU_HISTEQ_CPU_SIMD");
    int cap = GPU_HISTEQ_WITH_AVX512;
    if (setting != NULL && strcmp(setting, "0") == 0) cap = GPU_HISTEQ_GENERIC;
    if (setting != NULL && strcmp(setting, "avx2") == 0) cap = GPU_HISTEQ_WITH_AVX2;
    if (cap >= GPU_HISTEQ_WITH_AVX512 && __builtin_cpu_supports("avx512f")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        return GPU_HISTEQ_WITH_AVX512;
    if (cap >= GPU_HISTEQ_WITH_AVX2 && __builtin_cpu_supports("avx2")) return GPU_HISTEQ_WITH_AVX2;
    return GPU_HISTEQ_GENERIC;
}

/* Range of v[0, n) into lo[8], hi[8], bad[8] (as the generic lanes); returns how many pixels
 * it covered (a multiple of 8). */
GPU_HISTEQ_AVX512 static int64_t range_avx512_f64(const double *v, int64_t n, double *lo,
                                                  double *hi, double *bad)
{
    __m512d lo0 = _mm512_set1_pd(DBL_MAX), lo1 = lo0, hi0 = _mm512_set1_pd(-DBL_MAX), hi1 = hi0;
    __m512d bad0 = _mm512_setzero_pd(), bad1 = bad0;
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512d a = _mm512_loadu_pd(v + i), b = _mm512_loadu_pd(v + i + 8);
        lo0 = _mm512_min_pd(lo0, a);
        lo1 = _mm512_min_pd(lo1, b);
        hi0 = _mm512_max_pd(hi0, a);
        hi1 = _mm512_max_pd(hi1, b);
        bad0 = _mm512_add_pd(bad0, _mm512_sub_pd(a, a));
        bad1 = _mm512_add_pd(bad1, _mm512_sub_pd(b, b));
    }
    for (; i + 8 <= n; i += 8) {
        const __m512d a = _mm512_loadu_pd(v + i);
        lo0 = _mm512_min_pd(lo0, a);
        hi0 = _mm512_max_pd(hi0, a);
        bad0 = _mm512_add_pd(bad0, _mm512_sub_pd(a, a));
    }
    _mm512_storeu_pd(lo, _mm512_min_pd(lo0, lo1));
    _mm512_storeu_pd(hi, _mm512_max_pd(hi0, hi1));
    _mm512_storeu_pd(bad, _mm512_add_pd(bad0, bad1));
    return i;
}

GPU_HISTEQ_AVX512 static int64_t range_avx512_f32(const float *v, int64_t n, float *lo,
                                                  float *hi, float *bad)
{
    __m512 lo0 = _mm512_set1_ps(FLT_MAX), hi0 = _mm512_set1_ps(-FLT_MAX), bad0 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 a = _mm512_loadu_ps(v + i);
        lo0 = _mm512_min_ps(lo0, a);
        hi0 = _mm512_max_ps(hi0, a);
        bad0 = _mm512_add_ps(bad0, _mm512_sub_ps(a, a));
    }
    __m256 lo8 = _mm256_min_ps(_mm512_castps512_ps256(lo0), _mm512_extractf32x8_ps(lo0, 1));
    __m256 hi8 = _mm256_max_ps(_mm512_castps512_ps256(hi0), _mm512_extractf32x8_ps(hi0, 1));
    __m256 bad8 = _mm256_add_ps(_mm512_castps512_ps256(bad0), _mm512_extractf32x8_ps(bad0, 1));
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_loadu_ps(v + i);
        lo8 = _mm256_min_ps(lo8, a);
        hi8 = _mm256_max_ps(hi8, a);
        bad8 = _mm256_add_ps(bad8, _mm256_sub_ps(a, a));
    }
    _mm256_storeu_ps(lo, lo8);
    _mm256_storeu_ps(hi, hi8);
    _mm256_storeu_ps(bad, bad8);
    return i;
}

/* The exact bin loop (see bin_plane below) on v[0, n); returns how many pixels it did. */
GPU_HISTEQ_AVX512 static int64_t bin_avx512_f64(const double *v, int64_t n, double first,
    double scale, double last_bin, double step, double last, int32_t *bins, int32_t *segments, const double *next)
{
    const __m512d vfirst = _mm512_set1_pd(first), vscale = _mm512_set1_pd(scale);
    const __m512d vlast_bin = _mm512_set1_pd(last_bin), vstep = _mm512_set1_pd(step);
    const __m512d vlast = _mm512_set1_pd(last), one = _mm512_set1_pd(1.0), half = _mm512_set1_pd(0.5);
    const __m256i top = _mm256_set1_epi32((int32_t)last_bin), ione = _mm256_set1_epi32(1);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        if (next) _mm_prefetch((const char *)(next + i), _MM_HINT_T1);
        const __m512d x = _mm512_max_pd(_mm512_loadu_pd(v + i), vfirst);
        const __m512d scaled = _mm512_min_pd(_mm512_mul_pd(_mm512_sub_pd(x, vfirst), vscale), vlast_bin);
        const __m256i k = _mm512_cvttpd_epi32(scaled);
        const __m512d kd = _mm512_cvtepi32_pd(k);
        const __m512d left = _mm512_add_pd(_mm512_mul_pd(kd, vstep), vfirst);
        const __mmask8 at_top = _mm256_cmpeq_epi32_mask(k, top);
        const __m512d right = _mm512_mask_blend_pd(
            at_top, _mm512_add_pd(_mm512_mul_pd(_mm512_add_pd(kd, one), vstep), vfirst), vlast);
        const __mmask8 below = _mm512_cmp_pd_mask(x, left, _CMP_LT_OQ);
        const __mmask8 above = _mm512_cmp_pd_mask(x, right, _CMP_GE_OQ) & (__mmask8)~at_top;
        const __mmask8 before_center =
            _mm512_cmp_pd_mask(x, _mm512_mul_pd(_mm512_add_pd(left, right), half), _CMP_LT_OQ);
        const __m256i bin = _mm256_mask_add_epi32(_mm256_mask_sub_epi32(k, below, k, ione), above,
                                                  _mm256_mask_sub_epi32(k, below, k, ione), ione);
        _mm256_storeu_si256((__m256i *)(bins + i), bin);
        _mm256_storeu_si256((__m256i *)(segments + i), _mm256_mask_sub_epi32(k, before_center, k, ione));
    }
    return i;
}

GPU_HISTEQ_AVX512 static int64_t bin_avx512_f32(const float *v, int64_t n, float first,
    float scale, float last_bin, float step, float last, int32_t *bins, int32_t *segments, const float *next)
{
    const __m512 vfirst = _mm512_set1_ps(first), vscale = _mm512_set1_ps(scale);
    const __m512 vlast_bin = _mm512_set1_ps(last_bin), vstep = _mm512_set1_ps(step);
    const __m512 vlast = _mm512_set1_ps(last), one = _mm512_set1_ps(1.0f), half = _mm512_set1_ps(0.5f);
    const __m512i top = _mm512_set1_epi32((int32_t)last_bin), ione = _mm512_set1_epi32(1);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        if (next) _mm_prefetch((const char *)(next + i), _MM_HINT_T1);
        const __m512 x = _mm512_max_ps(_mm512_loadu_ps(v + i), vfirst);
        const __m512 scaled = _mm512_min_ps(_mm512_mul_ps(_mm512_sub_ps(x, vfirst), vscale), vlast_bin);
        const __m512i k = _mm512_cvttps_epi32(scaled);
        const __m512 kf = _mm512_cvtepi32_ps(k);
        const __m512 left = _mm512_add_ps(_mm512_mul_ps(kf, vstep), vfirst);
        const __mmask16 at_top = _mm512_cmpeq_epi32_mask(k, top);
        const __m512 right = _mm512_mask_blend_ps(
            at_top, _mm512_add_ps(_mm512_mul_ps(_mm512_add_ps(kf, one), vstep), vfirst), vlast);
        const __mmask16 below = _mm512_cmp_ps_mask(x, left, _CMP_LT_OQ);
        const __mmask16 above = _mm512_cmp_ps_mask(x, right, _CMP_GE_OQ) & (__mmask16)~at_top;
        const __mmask16 before_center =
            _mm512_cmp_ps_mask(x, _mm512_mul_ps(_mm512_add_ps(left, right), half), _CMP_LT_OQ);
        const __m512i lowered = _mm512_mask_sub_epi32(k, below, k, ione);
        _mm512_storeu_si512(bins + i, _mm512_mask_add_epi32(lowered, above, lowered, ione));
        _mm512_storeu_si512(segments + i, _mm512_mask_sub_epi32(k, before_center, k, ione));
    }
    return i;
}

/* The regular remap (slope * (x - center) + cdf in double, through each pixel's segment) on
 * v[0, n); returns how many pixels it did. */
GPU_HISTEQ_AVX512 static int64_t interp_avx512_f64(const double *v, const int32_t *segments,
    int64_t n, const double *centers, const double *slopes, const double *cdf, double *o)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i j = _mm256_loadu_si256((const __m256i *)(segments + i));
        const __m512d c = _mm512_i32gather_pd(j, centers, 8), s = _mm512_i32gather_pd(j, slopes, 8);
        const __m512d f = _mm512_i32gather_pd(j, cdf, 8);
        _mm512_storeu_pd(o + i, _mm512_add_pd(_mm512_mul_pd(s, _mm512_sub_pd(_mm512_loadu_pd(v + i), c)), f));
    }
    return i;
}

GPU_HISTEQ_AVX512 static int64_t interp_avx512_f32(const float *v, const int32_t *segments,
    int64_t n, const double *centers, const double *slopes, const double *cdf, float *o)
{
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i j = _mm256_loadu_si256((const __m256i *)(segments + i));
        const __m512d c = _mm512_i32gather_pd(j, centers, 8), s = _mm512_i32gather_pd(j, slopes, 8);
        const __m512d f = _mm512_i32gather_pd(j, cdf, 8);
        const __m512d x = _mm512_cvtps_pd(_mm256_loadu_ps(v + i));
        _mm256_storeu_ps(o + i, _mm512_cvtpd_ps(_mm512_add_pd(_mm512_mul_pd(s, _mm512_sub_pd(x, c)), f)));
    }
    return i;
}

/* AVX2 versions of the exact bin loop and the regular remap, for CPUs without AVX-512: the same
 * operations 4 (double) or 8 (float) lanes wide, the comparisons' all-ones lanes (-1) added to
 * the bin. */
GPU_HISTEQ_AVX2 static int64_t bin_avx2_f64(const double *v, int64_t n, double first,
    double scale, double last_bin, double step, double last, int32_t *bins, int32_t *segments,
    const double *next)
{
    const __m256d vfirst = _mm256_set1_pd(first), vscale = _mm256_set1_pd(scale);
    const __m256d vlast_bin = _mm256_set1_pd(last_bin), vstep = _mm256_set1_pd(step);
    const __m256d vlast = _mm256_set1_pd(last), one = _mm256_set1_pd(1.0), half = _mm256_set1_pd(0.5);
    const __m128i top = _mm_set1_epi32((int32_t)last_bin);
    const __m256i low_halves = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        if (next && (i & 7) == 0) _mm_prefetch((const char *)(next + i), _MM_HINT_T1);
        const __m256d x = _mm256_max_pd(_mm256_loadu_pd(v + i), vfirst);
        const __m256d scaled = _mm256_min_pd(_mm256_mul_pd(_mm256_sub_pd(x, vfirst), vscale), vlast_bin);
        const __m128i k = _mm256_cvttpd_epi32(scaled);
        const __m256d kd = _mm256_cvtepi32_pd(k);
        const __m256d left = _mm256_add_pd(_mm256_mul_pd(kd, vstep), vfirst);
        const __m256d at_top = _mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm_cmpeq_epi32(k, top)));
        const __m256d right = _mm256_blendv_pd(
            _mm256_add_pd(_mm256_mul_pd(_mm256_add_pd(kd, one), vstep), vfirst), vlast, at_top);
        const __m256d below = _mm256_cmp_pd(x, left, _CMP_LT_OQ);
        const __m256d above = _mm256_andnot_pd(at_top, _mm256_cmp_pd(x, right, _CMP_GE_OQ));
        const __m256d before_center =
            _mm256_cmp_pd(x, _mm256_mul_pd(_mm256_add_pd(left, right), half), _CMP_LT_OQ);
#define GPU_HISTEQ_NARROW(mask) \
    _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(_mm256_castpd_si256(mask), low_halves))
        const __m128i bin = _mm_sub_epi32(_mm_add_epi32(k, GPU_HISTEQ_NARROW(below)),
                                          GPU_HISTEQ_NARROW(above));
        _mm_storeu_si128((__m128i *)(bins + i), bin);
        _mm_storeu_si128((__m128i *)(segments + i), _mm_add_epi32(k, GPU_HISTEQ_NARROW(before_center)));
#undef GPU_HISTEQ_NARROW
    }
    return i;
}

GPU_HISTEQ_AVX2 static int64_t bin_avx2_f32(const float *v, int64_t n, float first,
    float scale, float last_bin, float step, float last, int32_t *bins, int32_t *segments,
    const float *next)
{
    const __m256 vfirst = _mm256_set1_ps(first), vscale = _mm256_set1_ps(scale);
    const __m256 vlast_bin = _mm256_set1_ps(last_bin), vstep = _mm256_set1_ps(step);
    const __m256 vlast = _mm256_set1_ps(last), one = _mm256_set1_ps(1.0f), half = _mm256_set1_ps(0.5f);
    const __m256i top = _mm256_set1_epi32((int32_t)last_bin);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        if (next && (i & 15) == 0) _mm_prefetch((const char *)(next + i), _MM_HINT_T1);
        const __m256 x = _mm256_max_ps(_mm256_loadu_ps(v + i), vfirst);
        const __m256 scaled = _mm256_min_ps(_mm256_mul_ps(_mm256_sub_ps(x, vfirst), vscale), vlast_bin);
        const __m256i k = _mm256_cvttps_epi32(scaled);
        const __m256 kf = _mm256_cvtepi32_ps(k);
        const __m256 left = _mm256_add_ps(_mm256_mul_ps(kf, vstep), vfirst);
        const __m256 at_top = _mm256_castsi256_ps(_mm256_cmpeq_epi32(k, top));
        const __m256 right = _mm256_blendv_ps(
            _mm256_add_ps(_mm256_mul_ps(_mm256_add_ps(kf, one), vstep), vfirst), vlast, at_top);
        const __m256 below = _mm256_cmp_ps(x, left, _CMP_LT_OQ);
        const __m256 above = _mm256_andnot_ps(at_top, _mm256_cmp_ps(x, right, _CMP_GE_OQ));
        const __m256 before_center =
            _mm256_cmp_ps(x, _mm256_mul_ps(_mm256_add_ps(left, right), half), _CMP_LT_OQ);
        const __m256i bin = _mm256_sub_epi32(_mm256_add_epi32(k, _mm256_castps_si256(below)),
                                             _mm256_castps_si256(above));
        _mm256_storeu_si256((__m256i *)(bins + i), bin);
        _mm256_storeu_si256((__m256i *)(segments + i),
                            _mm256_add_epi32(k, _mm256_castps_si256(before_center)));
    }
    return i;
}

GPU_HISTEQ_AVX2 static int64_t interp_avx2_f64(const double *v, const int32_t *segments,
    int64_t n, const double *centers, const double *slopes, const double *cdf, double *o)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m128i j = _mm_loadu_si128((const __m128i *)(segments + i));
        const __m256d c = _mm256_i32gather_pd(centers, j, 8), s = _mm256_i32gather_pd(slopes, j, 8);
        const __m256d f = _mm256_i32gather_pd(cdf, j, 8);
        _mm256_storeu_pd(o + i, _mm256_add_pd(_mm256_mul_pd(s, _mm256_sub_pd(_mm256_loadu_pd(v + i), c)), f));
    }
    return i;
}

GPU_HISTEQ_AVX2 static int64_t interp_avx2_f32(const float *v, const int32_t *segments,
    int64_t n, const double *centers, const double *slopes, const double *cdf, float *o)
{
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const __m128i j = _mm_loadu_si128((const __m128i *)(segments + i));
        const __m256d c = _mm256_i32gather_pd(centers, j, 8), s = _mm256_i32gather_pd(slopes, j, 8);
        const __m256d f = _mm256_i32gather_pd(cdf, j, 8);
        const __m256d x = _mm256_cvtps_pd(_mm_loadu_ps(v + i));
        _mm_storeu_ps(o + i, _mm256_cvtpd_ps(_mm256_add_pd(_mm256_mul_pd(s, _mm256_sub_pd(x, c)), f)));
    }
    return i;
}

/* 64 table lookups per step: the 256-entry uint8 table in four registers, one two-register
 * byte permute for each half of it (indexed by the low 7 bits of a value) and a blend on the
 * value's top bit. Three vector operations per 64 pixels, so the lookup runs at the speed of
 * memory (one pixel read, one written). */
#define GPU_HISTEQ_VBMI GPU_HISTEQ_TARGET("avx512f,avx512bw,avx512vbmi")
GPU_HISTEQ_VBMI static inline __m512i lookup_vbmi_u8(__m512i x, const __m512i *table)
{
    const __m512i low = _mm512_permutex2var_epi8(table[0], x, table[1]);
    const __m512i high = _mm512_permutex2var_epi8(table[2], x, table[3]);
    return _mm512_mask_blend_epi8(_mm512_movepi8_mask(x), low, high);
}

GPU_HISTEQ_VBMI static inline void load_table_vbmi_u8(const uint8_t *table, __m512i *t)
{
    for (int k = 0; k < 4; ++k) t[k] = _mm512_loadu_si512(table + 64 * k);
}

GPU_HISTEQ_VBMI static int64_t remap_vbmi_body_u8(const uint8_t *v, int64_t n,
                                                 const uint8_t *table, uint8_t *o)
{
    __m512i t[4];
    load_table_vbmi_u8(table, t);
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) _mm512_storeu_si512(o + i, lookup_vbmi_u8(_mm512_loadu_si512(v + i), t));
    return i;
}

/* The remap of one plane of `n` pixels: 64 at a time, then the rest. */
static void remap_plane_vbmi_u8(const uint8_t *v, int64_t n, const uint8_t *table, uint8_t *o)
{
    for (int64_t i = n >= 64 ? remap_vbmi_body_u8(v, n, table, o) : 0; i < n; ++i) o[i] = table[v[i]];
}

static int vbmi_usable(int simd)
{
    return simd == GPU_HISTEQ_WITH_AVX512 && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vbmi");
}

static int64_t remap_vbmi_u8(const uint8_t *v, int64_t n, const uint8_t *table, uint8_t *o)
{
    if (n < 64 || !vbmi_usable(simd_level())) return 0;
    return remap_vbmi_body_u8(v, n, table, o);
}

/* The 256 counts' sum when it is under 2^31, else -1; and then their cumulative sums in int32,
 * inclusive (`cumulative`) and exclusive (`below`, unless NULL), by four shifted additions per
 * 16 levels. */
GPU_HISTEQ_AVX512 static int64_t cumulative_avx512(const int64_t *counts, int32_t *cumulative,
                                                   int32_t *below)
{
    __m512i sum = _mm512_setzero_si512();
    for (int k = 0; k < 256; k += 8) sum = _mm512_add_epi64(sum, _mm512_loadu_si512(counts + k));
    const int64_t total = _mm512_reduce_add_epi64(sum);
    if (total >= INT32_MAX) return -1;
    const __m512i zero = _mm512_setzero_si512();
    __m512i carry = zero;
    for (int k = 0; k < 256; k += 16) {
        const __m512i h = _mm512_inserti64x4(
            _mm512_castsi256_si512(_mm512_cvtepi64_epi32(_mm512_loadu_si512(counts + k))),
            _mm512_cvtepi64_epi32(_mm512_loadu_si512(counts + k + 8)), 1);
        __m512i c = _mm512_add_epi32(h, _mm512_alignr_epi32(h, zero, 15));
        c = _mm512_add_epi32(c, _mm512_alignr_epi32(c, zero, 14));
        c = _mm512_add_epi32(c, _mm512_alignr_epi32(c, zero, 12));
        c = _mm512_add_epi32(_mm512_add_epi32(c, _mm512_alignr_epi32(c, zero, 8)), carry);
        _mm512_storeu_si512(cumulative + k, c);
        if (below) _mm512_storeu_si512(below + k, _mm512_sub_epi32(c, h));
        carry = _mm512_permutexvar_epi32(_mm512_set1_epi32(15), c);
    }
    return total;
}

/* opencv_table_u8 16 levels at a time: h[first] as the least cumulative count above zero, then
 * the same float operations lane by lane (no fused multiply-add; the rounding of rintf, the
 * current mode). About 150 vector operations instead of some 1,500 cycles of scalar ones, a
 * tenth of a 96x96 plane's count. */
GPU_HISTEQ_AVX512 static int opencv_table_avx512_u8(const int64_t *counts, uint8_t *lut)
{
    int32_t cumulative[256];
    const int64_t total = cumulative_avx512(counts, cumulative, NULL);
    if (total < 0) return 0;
    const __m512i zero = _mm512_setzero_si512(), none = _mm512_set1_epi32(INT32_MAX);
    __m512i lowest = none;
    for (int k = 0; k < 256; k += 16) {
        const __m512i c = _mm512_loadu_si512(cumulative + k);
        lowest = _mm512_min_epi32(lowest, _mm512_mask_mov_epi32(none, _mm512_cmpgt_epi32_mask(c, zero), c));
    }
    const int32_t at_first = total > 0 ? _mm512_reduce_min_epi32(lowest) : 0; /* h[first] */
    const int32_t spread = (int32_t)total - at_first;
    if (spread == 0) {
        for (int k = 0; k < 256; ++k) lut[k] = (uint8_t)k;
        return 1;
    }
    const __m512 scale = _mm512_set1_ps(255.0f / (float)spread), top = _mm512_set1_ps(255.0f);
    const __m512i base = _mm512_set1_epi32(at_first);
    for (int k = 0; k < 256; k += 16) {
        const __m512i c = _mm512_sub_epi32(_mm512_loadu_si512(cumulative + k), base);
        __m512 value = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(c), scale),
                                            _MM_FROUND_CUR_DIRECTION);
        value = _mm512_min_ps(_mm512_max_ps(value, _mm512_setzero_ps()), top);
        _mm_storeu_si128((__m128i *)(lut + k), _mm512_cvtepi32_epi8(_mm512_cvttps_epi32(value)));
    }
    return 1;
}

/* pil_table 8 levels at a time: (step / 2 + below) / step in double, truncated. Both are under
 * 2^32, so the rounded quotient is within q * 2^-52 < 1 / step of the exact one: it crosses no
 * integer, and its truncation is the integer division's. */
GPU_HISTEQ_AVX512 static int pil_table_avx512(const int64_t *counts, uint8_t *lut)
{
    int32_t cumulative[256], below[256];
    const int64_t total = cumulative_avx512(counts, cumulative, below);
    if (total < 0) return 0;
    int last = 0, present = 0;
    for (int k = 0; k < 256; k += 8) {
        const __mmask8 seen = _mm512_cmpgt_epi64_mask(_mm512_loadu_si512(counts + k), _mm512_setzero_si512());
        present += __builtin_popcount(seen);
        if (seen) last = k + 31 - __builtin_clz(seen);
    }
    const int64_t step = (total - counts[last]) / 255;
    if (present <= 1 || step == 0) {
        for (int k = 0; k < 256; ++k) lut[k] = (uint8_t)k;
        return 1;
    }
    const __m512d divisor = _mm512_set1_pd((double)step), half = _mm512_set1_pd((double)(step / 2));
    const __m512d top = _mm512_set1_pd(255.0);
    for (int k = 0; k < 256; k += 8) {
        const __m512d x = _mm512_add_pd(half, _mm512_cvtepi32_pd(_mm256_loadu_si256((const __m256i *)(below + k))));
        const __m256i value = _mm512_cvttpd_epi32(_mm512_min_pd(_mm512_div_pd(x, divisor), top));
        _mm_storel_epi64((__m128i *)(lut + k), _mm256_cvtepi32_epi8(value));
    }
    return 1;
}

/* Count `n` pixels at `next` into `counts` (set, not added) while remapping the `m` pixels at
 * `v` through `table` into `o`, 64 pixels of each per step. The count is bound by its scattered
 * counter stores (GPU_HISTEQ_COUNT_WORD); the lookup's few vector operations and its one
 * 64-byte store run beside them, and its output's cache misses overlap the count instead of
 * stalling a loop of their own. */
GPU_HISTEQ_VBMI static void count_and_remap_vbmi_u8(const uint8_t *next, int64_t n,
    int64_t *counts, const uint8_t *v, int64_t m, const uint8_t *table, uint8_t *o)
{
    uint32_t sub[4][256];
    memset(sub, 0, sizeof(sub));
    __m512i t[4];
    load_table_vbmi_u8(table, t);
    int64_t i = 0, j = 0;
    for (; i + 64 <= n && j + 64 <= m; i += 64, j += 64) {
        _mm512_storeu_si512(o + j, lookup_vbmi_u8(_mm512_loadu_si512(v + j), t));
        for (int k = 0; k < 64; k += 8) GPU_HISTEQ_COUNT_WORD(sub, next + i + k);
    }
    for (; i + 8 <= n; i += 8) GPU_HISTEQ_COUNT_WORD(sub, next + i);
    for (; i < n; ++i) ++sub[0][next[i]];
    for (; j + 64 <= m; j += 64) _mm512_storeu_si512(o + j, lookup_vbmi_u8(_mm512_loadu_si512(v + j), t));
    for (; j < m; ++j) o[j] = table[v[j]];
    for (int k = 0; k < 256; ++k) counts[k] = (int64_t)sub[0][k] + sub[1][k] + sub[2][k] + sub[3][k];
}

/* The planes of gpu_histeq_equalize_levels_u8 (unmasked) pipelined: each step counts a plane
 * and remaps the one before through its table, then makes the counted plane's table. Each
 * plane is still read twice (its count, then its remap one step later, from L1/L2: two planes
 * of up to 16 KiB stay in L1). A plane of more than GPU_HISTEQ_PIPELINED_PIXELS is remapped
 * right after its table instead, while it is still in L2. */
#define GPU_HISTEQ_PIPELINED_PIXELS (1 << 17)
static int equalize_vbmi_u8(const uint8_t *values, int64_t nplanes, int64_t npixels,
                            const int64_t *starts, const int64_t *places, int64_t method,
                            int simd, uint8_t *out)
{
    if (!vbmi_usable(simd)) return 0;
    int64_t counts[256];
    uint8_t lut[256];
    const uint8_t *previous = NULL;
    uint8_t *result = out; /* the previous plane's result */
    int64_t size = 0;      /* and its size */
    memset(lut, 0, sizeof(lut));
    for (int64_t p = 0; p < nplanes; ++p) {
        const int64_t at = plane_at(starts, p, npixels), n = plane_size(starts, p, npixels);
        if (n == 0) continue;
        const uint8_t *plane = GPU_HISTEQ_PLANE_VALUES(uint8_t, values, places, p, at);
        count_and_remap_vbmi_u8(plane, n, counts, previous, size, lut, result);
        level_table_u8(method, counts, simd, lut);
        previous = plane;
        result = GPU_HISTEQ_PLANE_OUT(uint8_t, out, places, p, at);
        size = n;
        if (n > GPU_HISTEQ_PIPELINED_PIXELS) {
            remap_plane_vbmi_u8(previous, size, lut, result);
            size = 0;
        }
    }
    remap_plane_vbmi_u8(previous, size, lut, result);
    return 1;
}
#else
static int simd_level(void) { return GPU_HISTEQ_GENERIC; }
static int64_t remap_vbmi_u8(const uint8_t *v, int64_t n, const uint8_t *table, uint8_t *o) { return 0; }
static int vbmi_usable(int simd) { return 0; }
static int opencv_table_avx512_u8(const int64_t *counts, uint8_t *lut) { return 0; }
static int pil_table_avx512(const int64_t *counts, uint8_t *lut) { return 0; }
static int equalize_vbmi_u8(const uint8_t *values, int64_t nplanes, int64_t npixels,
                            const int64_t *starts, const int64_t *places, int64_t method,
                            int simd, uint8_t *out)
{
    return 0;
}
#define GPU_HISTEQ_NO_SIMD(T, NAME, ISA)                                                       \
    static int64_t bin_##ISA##_##NAME(const T *v, int64_t n, T first, T scale, T last_bin,     \
        T step, T last, int32_t *bins, int32_t *segments, const T *next) { return 0; }         \
    static int64_t interp_##ISA##_##NAME(const T *v, const int32_t *segments, int64_t n,       \
        const double *centers, const double *slopes, const double *cdf, T *o) { return 0; }
static int64_t range_avx512_f32(const float *v, int64_t n, float *lo, float *hi, float *bad) { return 0; }
static int64_t range_avx512_f64(const double *v, int64_t n, double *lo, double *hi, double *bad) { return 0; }
GPU_HISTEQ_NO_SIMD(float, f32, avx512)
GPU_HISTEQ_NO_SIMD(double, f64, avx512)
GPU_HISTEQ_NO_SIMD(float, f32, avx2)
GPU_HISTEQ_NO_SIMD(double, f64, avx2)
#endif

#define GPU_HISTEQ_FLOAT_KERNELS(T, NAME, EPSILON, SMALLEST, LARGEST)                           \
    static int range_##NAME(const T *v, const uint8_t *s, int64_t npixels, T *first, T *last)  \
    {                                                                                          \
        T lo[GPU_HISTEQ_LANES], hi[GPU_HISTEQ_LANES], bad[GPU_HISTEQ_LANES];                   \
        for (int l = 0; l < GPU_HISTEQ_LANES; ++l) {                                           \
            lo[l] = LARGEST;                                                                   \
            hi[l] = -LARGEST;                                                                  \
            bad[l] = (T)0;                                                                     \
        }                                                                                      \
        const int64_t whole = npixels - npixels % GPU_HISTEQ_LANES;                            \
        int64_t i = 0;                                                                         \
        if (s == NULL && simd_level() == GPU_HISTEQ_WITH_AVX512) {                             \
            i = range_avx512_##NAME(v, whole, lo, hi, bad);                                    \
        } else if (GPU_HISTEQ_VECTOR_RANGE && s == NULL) {                                     \
            range_vector_##NAME(v, whole, lo, hi, bad);                                        \
            i = whole;                                                                         \
        }                                                                                      \
        for (; i < whole; i += GPU_HISTEQ_LANES) {                                             \
            for (int l = 0; l < GPU_HISTEQ_LANES; ++l) {                                       \
                const T x = v[i + l], keep = s == NULL || s[i + l];                            \
                const T x_low = keep ? x : LARGEST, x_high = keep ? x : -LARGEST;              \
                bad[l] += x - x; /* NaN for NaN and infinity, else 0 */                        \
                lo[l] = x_low < lo[l] ? x_low : lo[l];                                         \
                hi[l] = x_high > hi[l] ? x_high : hi[l];                                       \
            }                                                                                  \
        }                                                                                      \
        for (; i < npixels; ++i) {                                                             \
            bad[0] += v[i] - v[i];                                                             \
            if (s != NULL && !s[i]) continue;                                                  \
            lo[0] = v[i] < lo[0] ? v[i] : lo[0];                                               \
            hi[0] = v[i] > hi[0] ? v[i] : hi[0];                                               \
        }                                                                                      \
        T not_finite = (T)0;                                                                   \
        *first = LARGEST;                                                                      \
        *last = -LARGEST;                                                                      \
        for (int l = 0; l < GPU_HISTEQ_LANES; ++l) {                                           \
            *first = lo[l] < *first ? lo[l] : *first;                                          \
            *last = hi[l] > *last ? hi[l] : *last;                                             \
            not_finite += bad[l];                                                              \
        }                                                                                      \
        return not_finite == (T)0;                                                             \
    }                                                                                          \
    static int edges_##NAME(T first, T last, int64_t nbins, T *e, T *width)                    \
    {                                                                                          \
        if (first == last) {                                                                   \
            first -= (T)0.5;                                                                   \
            last += (T)0.5;                                                                    \
        }                                                                                      \
        const T span = last - first, count = (T)nbins, step = span / count;                    \
        for (int64_t k = 0; k < nbins; ++k)                                                    \
            e[k] = (step == (T)0 ? ((T)k / count) * span : (T)k * step) + first;               \
        e[nbins] = last;                                                                       \
        *width = span;                                                                         \
        for (int64_t k = 0; k < nbins; ++k)                                                    \
            if (!(e[k + 1] > e[k])) return 0;                                                  \
        return 1;                                                                              \
    }                                                                                          \
    static void centers_##NAME(const T *e, int64_t nbins, T *centers, double *wide)            \
    {                                                                                          \
        for (int64_t k = 0; k < nbins; ++k) {                                                  \
            centers[k] = (e[k] + e[k + 1]) / (T)2;                                             \
            if (wide) wide[k] = (double)centers[k];                                            \
        }                                                                                      \
    }                                                                                          \
    /* True when e[k] = k * step + first for every k < nbins (linspace's formula). */         \
    static int follows_formula_##NAME(const T *e, int64_t nbins, T first, T step)              \
    {                                                                                          \
        for (int64_t k = 0; k < nbins; ++k)                                                    \
            if (e[k] != (T)k * step + first) return 0;                                         \
        return 1;                                                                              \
    }                                                                                          \
    /* Bins and segments of one plane into `bins` and `segments` (npixels words each); counts  \
     * of its selected pixels added to `sub` (unless NULL). */                                 \
    static void bin_plane_##NAME(const T *v, const uint8_t *s, int64_t npixels, T first,       \
        T width, const T *e, const T *centers, int64_t nbins, int32_t *bins, int32_t *segments, \
        uint32_t *sub, const T *next)                                                          \
    {                                                                                          \
        const T near = (T)tolerance(EPSILON / 2, first, width, nbins), count = (T)nbins;       \
        const T last_bin = (T)(nbins - 1), scale = count / width, step = width / count;        \
        const T last = e[nbins];                                                               \
        const int32_t top = (int32_t)(nbins - 1);                                              \
        int64_t counted = 0; /* pixels the SIMD pieces counted */                              \
        /* the tolerance holds for normal numbers: a subnormal step or an infinite scale goes  \
         * to the checked loop */                                                              \
        if (near < (T)0.25 && step >= SMALLEST && scale <= LARGEST                             \
            && follows_formula_##NAME(e, nbins, first, step)) {                                \
            const int simd = simd_level();                                                     \
            int64_t i = 0;                                                                     \
            while (simd != GPU_HISTEQ_GENERIC && i < npixels) { /* piece by piece */           \
                const int64_t n = npixels - i < GPU_HISTEQ_PIECE ? npixels - i : GPU_HISTEQ_PIECE; \
                const int64_t done = simd == GPU_HISTEQ_WITH_AVX512                            \
                    ? bin_avx512_##NAME(v + i, n, first, scale, last_bin, step, last, bins + i, \
                                        segments + i, next ? next + i : NULL)                  \
                    : bin_avx2_##NAME(v + i, n, first, scale, last_bin, step, last, bins + i,  \
                                      segments + i, next ? next + i : NULL);                   \
                if (sub) GPU_HISTEQ_COUNT4(bins + i, s ? s + i : NULL, done, sub, nbins);      \
                counted = i += done;                                                           \
                if (done < n) break; /* a last few pixels for the loop below */               \
            }                                                                                  \
            for (; i < npixels; ++i) {                                                         \
                const T x = v[i] > first ? v[i] : first;                                       \
                T scaled = (x - first) * scale;                                                \
                scaled = scaled < last_bin ? scaled : last_bin;                                \
                const int32_t k = (int32_t)scaled;                                             \
                const T left = (T)k * step + first;                                            \
                const T right = k == top ? last : (T)(k + 1) * step + first;                   \
                bins[i] = k - (x < left) + ((k != top) & (x >= right));                        \
                segments[i] = k - (x < (left + right) / (T)2);                                 \
            }                                                                                  \
        } else { /* numpy.histogram's own guess, then its correction by one bin */            \
            for (int64_t i = 0; i < npixels; ++i) {                                            \
                T scaled = (v[i] - first) / width * count;                                     \
                scaled = scaled > (T)0 ? scaled : (T)0;                                        \
                scaled = scaled < last_bin ? scaled : last_bin;                                \
                int32_t k = (int32_t)scaled;                                                   \
                k -= v[i] < e[k];                                                              \
                k = k < 0 ? 0 : k;                                                             \
                k += (k != top) & (v[i] >= e[k + 1]);                                          \
                bins[i] = k;                                                                   \
                /* numpy.interp's own search: the last center at or below v[i] (or -1) */      \
                int64_t low = 0, high = nbins;                                                 \
                while (low < high) {                                                           \
                    const int64_t middle = (low + high) / 2;                                   \
                    if (centers[middle] <= v[i]) low = middle + 1;                             \
                    else high = middle;                                                        \
                }                                                                              \
                segments[i] = (int32_t)(low - 1);                                              \
            }                                                                                  \
        }                                                                                      \
        if (sub) GPU_HISTEQ_COUNT4(bins + counted, s ? s + counted : NULL, npixels - counted, sub, \
                                   nbins);                                                     \
    }                                                                                          \
    static void interp_plane_##NAME(const T *v, const int32_t *segments, int64_t npixels,      \
        gpu_histeq_interp_table t, int64_t nbins, T *o)                                        \
    {                                                                                          \
        const double *centers = t.centers, *slopes = t.slopes, *cdf = t.cdf;                   \
        if (!regular(t, nbins)) {                                                              \
            for (int64_t i = 0; i < npixels; ++i)                                              \
                o[i] = (T)interp_irregular((double)v[i], segments[i], t, nbins);               \
            return;                                                                            \
        }                                                                                      \
        const int simd = simd_level();                                                         \
        int64_t i = 0;                                                                         \
        if (simd == GPU_HISTEQ_WITH_AVX512)                                                    \
            i = interp_avx512_##NAME(v, segments, npixels, centers, slopes, cdf, o);           \
        else if (simd == GPU_HISTEQ_WITH_AVX2)                                                 \
            i = interp_avx2_##NAME(v, segments, npixels, centers, slopes, cdf, o);             \
        for (; i < npixels; ++i) {                                                             \
            const int32_t j = segments[i];                                                     \
            o[i] = (T)(slopes[j] * ((double)v[i] - centers[j]) + cdf[j]);                      \
        }                                                                                      \
    }                                                                                          \
    /* Segments of every pixel of a block binned by the caller's edges (into `segments`, unless \
     * NULL: counts only); its counts added to `counts` (when not NULL). Planes are rows of     \
     * npixels, or with `starts` packed planes of up to npixels (as equalize below). */        \
    GPU_HISTEQ_EXPORT int gpu_histeq_bin_##NAME(const T *values, const uint8_t *selected,      \
        int64_t nplanes, int64_t npixels, const int64_t *starts, const T *first, const T *width, \
        const T *edges, int64_t nbins, int32_t *segments, int64_t *counts)                     \
    {                                                                                          \
        const int64_t chunk = npixels < GPU_HISTEQ_PLANE_CHUNK ? npixels : GPU_HISTEQ_PLANE_CHUNK; \
        uint32_t *sub = calloc((size_t)(4 * nbins), sizeof(uint32_t));                         \
        T *centers = malloc((size_t)nbins * sizeof(T));                                        \
        int32_t *bins = malloc((size_t)(2 * chunk + 1) * sizeof(int32_t)), *spare = bins + chunk; \
        int status = -(sub == NULL || centers == NULL || bins == NULL);                        \
        for (int64_t p = 0; p < nplanes && status == 0; ++p) {                                 \
            const int64_t at = plane_at(starts, p, npixels);                                   \
            const int64_t n_plane = plane_size(starts, p, npixels);                            \
            const T *e = edges + p * (nbins + 1);                                              \
            centers_##NAME(e, nbins, centers, NULL);                                           \
            for (int64_t c = 0; c < n_plane; c += chunk)                                       \
                bin_plane_##NAME(values + at + c, selected ? selected + at + c : NULL,         \
                                 n_plane - c < chunk ? n_plane - c : chunk, first[p], width[p], \
                                 e, centers, nbins, bins, segments ? segments + at + c : spare, \
                                 sub, NULL);                                                   \
            flush(sub, nbins, counts ? counts + p * nbins : NULL);                             \
        }                                                                                      \
        free(sub);                                                                             \
        free(bins);                                                                            \
        free(centers);                                                                         \
        return status;                                                                         \
    }                                                                                          \
    /* The remap of a block through its planes' (P, nbins) tables, from its segments. */       \
    GPU_HISTEQ_EXPORT int gpu_histeq_interp_##NAME(const T *values, const int32_t *segments,   \
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
            interp_plane_##NAME(values + p * npixels, segments + p * npixels, npixels, t, nbins, \
                                out + p * npixels);                                            \
        }                                                                                      \
        free(tables);                                                                          \
        return 0;                                                                              \
    }                                                                                          \
    /* Equalize a block of whole planes into `out`, plane by plane, in chunks of at most        \
     * GPU_HISTEQ_PLANE_CHUNK pixels (the bins and segments of one chunk are the scratch). The   \
     * planes are (nplanes, npixels) rows, or with `starts` packed planes of any sizes up to     \
     * npixels, plane p at starts[p]:starts[p + 1] (an empty one skipped). A                    \
     * plane larger than a chunk is binned twice: once to count, once more to remap. Returns     \
     * GPU_HISTEQ_OK, or NOT_FINITE / REPEATED_EDGES with the plane in *failed, or -1 without  \
     * memory. */                                                                              \
    GPU_HISTEQ_EXPORT int gpu_histeq_equalize_##NAME(const T *values, const uint8_t *selected, \
        int64_t nplanes, int64_t npixels, const int64_t *starts, int64_t nbins, T *out,        \
        int64_t *failed)                                                                       \
    {                                                                                          \
        const int64_t chunk = npixels < GPU_HISTEQ_PLANE_CHUNK ? npixels : GPU_HISTEQ_PLANE_CHUNK; \
        int32_t *bins = malloc((size_t)(2 * chunk + 1) * sizeof(int32_t)), *segments = bins + chunk; \
        uint32_t *sub = calloc((size_t)(4 * nbins), sizeof(uint32_t));                        \
        int64_t *counts = malloc((size_t)nbins * sizeof(int64_t));                             \
        T *edges = malloc((size_t)(2 * nbins + 1) * sizeof(T)), *centers = edges + nbins + 1;  \
        double *tables = malloc((size_t)(3 * (nbins + 1)) * sizeof(double));                   \
        int status = -(bins == NULL || sub == NULL || counts == NULL || edges == NULL          \
                       || tables == NULL);                                                     \
        gpu_histeq_interp_table t = table_of(tables, nbins);                                   \
        for (int64_t p = 0; p < nplanes && status == GPU_HISTEQ_OK; ++p) {                     \
            const int64_t at = plane_at(starts, p, npixels);                                   \
            const int64_t n_plane = plane_size(starts, p, npixels);                            \
            if (n_plane == 0) continue;                                                        \
            const T *v = values + at;                                                          \
            const uint8_t *s = selected ? selected + at : NULL;                                \
            T first, last, width;                                                              \
            if (!range_##NAME(v, s, n_plane, &first, &last))                                   \
                status = GPU_HISTEQ_NOT_FINITE;                                                \
            else if (!edges_##NAME(first, last, nbins, edges, &width) && nbins > 1)            \
                status = GPU_HISTEQ_REPEATED_EDGES;                                            \
            if (status != GPU_HISTEQ_OK) {                                                     \
                *failed = p;                                                                   \
                break;                                                                         \
            }                                                                                  \
            centers_##NAME(edges, nbins, centers, t.centers);                                  \
            const T *next = n_plane <= chunk && p + 1 < nplanes                                \
                ? values + (starts ? starts[p + 1] : at + n_plane) : NULL;                     \
            for (int64_t c = 0; c < n_plane; c += chunk)                                       \
                bin_plane_##NAME(v + c, s ? s + c : NULL, n_plane - c < chunk ? n_plane - c : chunk, \
                                 edges[0], width, edges, centers, nbins, bins, segments, sub,  \
                                 next);                                                        \
            memset(counts, 0, (size_t)nbins * sizeof(int64_t));                                \
            flush(sub, nbins, counts);                                                         \
            interp_tables(counts, nbins, sizeof(T) == sizeof(float), t);                       \
            for (int64_t c = 0; c < n_plane; c += chunk) {                                     \
                const int64_t n = n_plane - c < chunk ? n_plane - c : chunk;                   \
                if (n_plane > chunk) /* the segments of this chunk again */                    \
                    bin_plane_##NAME(v + c, NULL, n, edges[0], width, edges, centers, nbins,   \
                                     bins, segments, NULL, NULL);                              \
                interp_plane_##NAME(v + c, segments, n, t, nbins, out + at + c);               \
            }                                                                                  \
        }                                                                                      \
        free(bins);                                                                            \
        free(sub);                                                                             \
        free(counts);                                                                          \
        free(edges);                                                                           \
        free(tables);                                                                          \
        return status;                                                                         \
    }

typedef float gpu_histeq_f32;
typedef double gpu_histeq_f64;
GPU_HISTEQ_FLOAT_KERNELS(gpu_histeq_f32, f32, FLT_EPSILON, FLT_MIN, FLT_MAX)
GPU_HISTEQ_FLOAT_KERNELS(gpu_histeq_f64, f64, DBL_EPSILON, DBL_MIN, DBL_MAX)

/* Python entry points (METH_FASTCALL) for the calls whose fixed cost matters: a small image per
 * call pays about 1 us per array for an address through ctypes (numpy's .ctypes.data) and more
 * for the argument conversions; these take the arrays themselves through the buffer protocol
 * and check their sizes against the shape (a mismatch is an internal error: ValueError). The
 * GIL is released around work large enough for it to matter, so blocks still run on all cores. */
#define GPU_HISTEQ_GIL_PIXELS (1 << 14)

static int gpu_histeq_buffer(PyObject *object, Py_buffer *view, int writable, Py_ssize_t size,
                             Py_ssize_t itemsize, const char *name)
{
    if (PyObject_GetBuffer(object, view, PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0)
        return -1;
    if ((size >= 0 && view->len != size) || (itemsize > 0 && view->itemsize != itemsize)) {
        PyErr_Format(PyExc_ValueError, "internal error: `%s` of %zd bytes (items of %zd), "
                     "expected %zd (items of %zd)", name, view->len, view->itemsize, size,
                     itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* equalize_levels(values, selected, nplanes, npixels, starts, method, out[, places]) -> status:
 * the equalize_levels kernel above of uint8 (items of 1 byte) or uint16 (2) planes; `selected`
 * (uint8 per pixel) and `starts` (int64, nplanes + 1) may be None. `places` (int64, 2 * nplanes:
 * where each plane is read and its result written, in separate arrays the caller keeps alive,
 * C-contiguous, of the sizes `starts` gives, with no `selected`) replaces `values` and `out`,
 * which then give only the item size (empty arrays of the dtype). */
/* addresses(arrays, writable, out): the address of each C-contiguous buffer of the sequence
 * `arrays` (writable ones when `writable`) into the int64 `out`, one per array (the `places` of
 * equalize_levels; the caller keeps the arrays alive while they are used). */
static PyObject *gpu_histeq_py_addresses(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "addresses takes 3 arguments");
        return NULL;
    }
    const int writable = PyObject_IsTrue(args[1]);
    if (writable < 0) return NULL;
    PyObject *const arrays = PySequence_Fast(args[0], "`arrays` must be a sequence");
    if (arrays == NULL) return NULL;
    const Py_ssize_t count = PySequence_Fast_GET_SIZE(arrays);
    Py_buffer out, view;
    PyObject *result = NULL;
    if (gpu_histeq_buffer(args[2], &out, 1, count * (Py_ssize_t)sizeof(int64_t), 0, "out") < 0)
        goto release_arrays;
    for (Py_ssize_t i = 0; i < count; ++i) {
        if (PyObject_GetBuffer(PySequence_Fast_GET_ITEM(arrays, i), &view,
                               PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0)) < 0)
            goto release_out;
        ((int64_t *)out.buf)[i] = (int64_t)(uintptr_t)view.buf;
        PyBuffer_Release(&view);
    }
    Py_INCREF(Py_None);
    result = Py_None;
release_out:
    PyBuffer_Release(&out);
release_arrays:
    Py_DECREF(arrays);
    return result;
}

static PyObject *gpu_histeq_py_equalize_levels(PyObject *self, PyObject *const *args,
                                               Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 7 && nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "equalize_levels takes 7 or 8 arguments");
        return NULL;
    }
    PyObject *const given_places = nargs == 8 ? args[7] : Py_None;
    if (given_places != Py_None && (args[4] == Py_None || args[1] != Py_None)) {
        PyErr_SetString(PyExc_ValueError, "internal error: `places` needs `starts`, no `selected`");
        return NULL;
    }
    const long long nplanes = PyLong_AsLongLong(args[2]), npixels = PyLong_AsLongLong(args[3]);
    const long method = PyLong_AsLong(args[5]);
    if (PyErr_Occurred()) return NULL;
    Py_buffer values, out, selected = {0}, starts = {0}, places = {0};
    if (gpu_histeq_buffer(args[0], &values, 0, -1, 0, "values") < 0) return NULL;
    const Py_ssize_t itemsize = values.itemsize, count = values.len / (itemsize ? itemsize : 1);
    int status = -2;
    if ((itemsize != 1 && itemsize != 2)
        || (args[4] == Py_None && (long long)count != nplanes * npixels)) {
        PyErr_Format(PyExc_ValueError, "internal error: `values` of %zd items of %zd bytes for "
                     "%lld planes of %lld pixels", count, itemsize, nplanes, npixels);
        goto release_values;
    }
    if (gpu_histeq_buffer(args[6], &out, 1, values.len, itemsize, "out") < 0) goto release_values;
    if (args[1] != Py_None && gpu_histeq_buffer(args[1], &selected, 0, count, 1, "selected") < 0)
        goto release_out;
    if (args[4] != Py_None && gpu_histeq_buffer(args[4], &starts, 0,
            (Py_ssize_t)(nplanes + 1) * (Py_ssize_t)sizeof(int64_t), 0, "starts") < 0)
        goto release_selected;
    if (given_places != Py_None && gpu_histeq_buffer(given_places, &places, 0,
            2 * (Py_ssize_t)nplanes * (Py_ssize_t)sizeof(int64_t), 0, "places") < 0)
        goto release_starts;
    {
        const uint8_t *s = selected.buf;
        const int64_t *at = starts.buf, *from = places.buf;
        const long long pixels = from != NULL ? at[nplanes] - at[0] : (long long)count;
        PyThreadState *state = pixels >= GPU_HISTEQ_GIL_PIXELS ? PyEval_SaveThread() : NULL;
        status = itemsize == 1
            ? gpu_histeq_equalize_levels_u8(values.buf, s, nplanes, npixels, at, from, method,
                                            out.buf)
            : gpu_histeq_equalize_levels_u16(values.buf, s, nplanes, npixels, at, from, method,
                                             out.buf);
        if (state != NULL) PyEval_RestoreThread(state);
    }
    if (places.obj != NULL) PyBuffer_Release(&places);
release_starts:
    if (starts.obj != NULL) PyBuffer_Release(&starts);
release_selected:
    if (selected.obj != NULL) PyBuffer_Release(&selected);
release_out:
    PyBuffer_Release(&out);
release_values:
    PyBuffer_Release(&values);
    if (status == -2) return NULL;
    return PyLong_FromLong(status);
}

/* The CLAHE of _clahe.c: tile tables and blend, plane by plane. */
int gpu_histeq_clahe_u8(const uint8_t *values, int64_t nplanes, int64_t height, int64_t width,
    int64_t grid_rows, int64_t grid_cols, int64_t tile_rows, int64_t tile_cols,
    const int64_t *source_rows, const int64_t *source_cols, int64_t limit, float scale,
    const int64_t *rows, const float *row_weights, const int64_t *cols, const float *col_weights,
    uint8_t *out);
int gpu_histeq_clahe_u16(const uint16_t *values, int64_t nplanes, int64_t height, int64_t width,
    int64_t grid_rows, int64_t grid_cols, int64_t tile_rows, int64_t tile_cols,
    const int64_t *source_rows, const int64_t *source_cols, int64_t limit, float scale,
    const int64_t *rows, const float *row_weights, const int64_t *cols, const float *col_weights,
    uint16_t *out);

/* clahe(values, nplanes, height, width, grid_rows, grid_cols, tile_rows, tile_cols,
 *       source_rows, source_cols, limit, scale, rows, row_weights, cols, col_weights, out)
 * -> 0: OpenCV's CLAHE (gpu_histeq_clahe_u8 / _u16 of _clahe.c) of (nplanes, height * width)
 * uint8 or uint16 planes, plane by plane: the tile tables of a plane and at once its blend. source_rows / source_cols (int64) are the source row / column of
 * each padded row / column (grid_rows * tile_rows, grid_cols * tile_cols of them); rows / cols
 * (int64) and row_weights / col_weights (float32) the (2, height) / (2, width) neighbour tiles
 * and weights. MemoryError without memory for the tables. */
static PyObject *gpu_histeq_py_clahe(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 17) {
        PyErr_SetString(PyExc_TypeError, "clahe takes 17 arguments");
        return NULL;
    }
    long long n[7];
    for (int k = 0; k < 7; ++k) n[k] = PyLong_AsLongLong(args[1 + k]);
    const long long limit = PyLong_AsLongLong(args[10]);
    const double scale = PyFloat_AsDouble(args[11]);
    if (PyErr_Occurred()) return NULL;
    const int64_t nplanes = n[0], height = n[1], width = n[2], grid_rows = n[3], grid_cols = n[4];
    const int64_t tile_rows = n[5], tile_cols = n[6];
    Py_buffer views[7] = {{0}};
    PyObject *result = NULL;
    const int which[7] = {0, 8, 9, 12, 13, 14, 15};
    const Py_ssize_t items[7] = {-1, grid_rows * tile_rows * 8, grid_cols * tile_cols * 8,
                                 2 * height * 8, 2 * height * 4, 2 * width * 8, 2 * width * 4};
    const char *names[7] = {"values", "source_rows", "source_cols", "rows", "row_weights", "cols",
                            "col_weights"};
    int got = 0;
    for (; got < 7; ++got)
        if (gpu_histeq_buffer(args[which[got]], &views[got], 0, items[got], 0, names[got]) < 0)
            goto release;
    const Py_ssize_t itemsize = views[0].itemsize;
    if ((itemsize != 1 && itemsize != 2) || views[0].len != nplanes * height * width * itemsize) {
        PyErr_Format(PyExc_ValueError, "internal error: `values` of %zd bytes (items of %zd) for "
                     "%lld planes of %lld x %lld", views[0].len, itemsize, (long long)nplanes,
                     (long long)height, (long long)width);
        goto release;
    }
    Py_buffer out;
    if (gpu_histeq_buffer(args[16], &out, 1, views[0].len, itemsize, "out") < 0) goto release;
    {
        const int64_t *sr = views[1].buf, *sc = views[2].buf, *nr = views[3].buf, *nc = views[5].buf;
        const float *wr = views[4].buf, *wc = views[6].buf;
        int status;
        Py_BEGIN_ALLOW_THREADS
        status = itemsize == 1
            ? gpu_histeq_clahe_u8(views[0].buf, nplanes, height, width, grid_rows, grid_cols,
                                  tile_rows, tile_cols, sr, sc, limit, (float)scale, nr, wr, nc,
                                  wc, out.buf)
            : gpu_histeq_clahe_u16(views[0].buf, nplanes, height, width, grid_rows, grid_cols,
                                   tile_rows, tile_cols, sr, sc, limit, (float)scale, nr, wr, nc,
                                   wc, out.buf);
        Py_END_ALLOW_THREADS
        if (status != 0)
            PyErr_SetString(PyExc_MemoryError, "the compiled CLAHE could not allocate its tables");
        else
            result = PyLong_FromLong(0);
    }
    PyBuffer_Release(&out);
release:
    for (int k = 0; k < got; ++k) PyBuffer_Release(&views[k]);
    return result;
}

/* The module: the Python entry points above; every other kernel is called through ctypes
 * (gpu_histeq/_cpu.py), and tests check both kinds of binding against these declarations. */
/* simd() -> str: the SIMD loops the kernels choose now ("generic", "avx2", "avx512", or
 * "avx512-vbmi": also the uint8 byte lookups and the pipelined uint8 equalize), from the CPU and
 * GPU_HISTEQ_CPU_SIMD. */
static PyObject *gpu_histeq_py_simd(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    const int simd = simd_level();
    return PyUnicode_FromString(simd == GPU_HISTEQ_WITH_AVX512 ? (vbmi_usable(simd) ? "avx512-vbmi" : "avx512")
                                : simd == GPU_HISTEQ_WITH_AVX2 ? "avx2" : "generic");
}

static PyMethodDef gpu_histeq_cpu_kernels_methods[] = {
    {"simd", gpu_histeq_py_simd, METH_NOARGS, "simd() -> the SIMD loops the kernels choose now"},
    {"addresses", (PyCFunction)(void (*)(void))gpu_histeq_py_addresses, METH_FASTCALL,
     "addresses(arrays, writable, out) -> None"},
    {"equalize_levels", (PyCFunction)(void (*)(void))gpu_histeq_py_equalize_levels, METH_FASTCALL,
     "equalize_levels(values, selected, nplanes, npixels, starts, method, out[, places]) -> "
     "status"},
    {"clahe", (PyCFunction)(void (*)(void))gpu_histeq_py_clahe, METH_FASTCALL,
     "clahe(values, nplanes, height, width, grid_rows, grid_cols, tile_rows, tile_cols, "
     "source_rows, source_cols, limit, scale, rows, row_weights, cols, col_weights, out) -> 0"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef gpu_histeq_cpu_kernels_module = {PyModuleDef_HEAD_INIT, "_cpu_kernels",
    "Compiled CPU kernels of gpu_histeq (count, tables, remap, CLAHE), called through ctypes and "
    "through the few Python entry points of its method table.",
    -1, gpu_histeq_cpu_kernels_methods};

PyMODINIT_FUNC PyInit__cpu_kernels(void) { return PyModule_Create(&gpu_histeq_cpu_kernels_module); }
