// The luma round trip of luminance=True: OpenCV's RGB -> YCrCb -> RGB (cv2.COLOR_RGB2YCrCb /
// COLOR_YCrCb2RGB), bit for bit the portable gpu_histeq/color.py and the compiled _color.c.
// Compiled after common.cuh, levels.cu (gpu_histeq_level_table), ranks.cu (the rank keys, the
// bitonic sort and its searches) and uniform.cu (numpy.histogram's bins, the interpolation
// table): _sources.PRELUDES.
//
// Integers (uint8, uint16): 14-bit fixed point in int32, every intermediate within 31 bits,
// `>>` of a negative int an arithmetic shift (floor), as NumPy's:
//   Y  = (4899 R + 9617 G + 1868 B + 2**13) >> 14
//   Cr = clamp(((R - Y) 11682 + (half << 14) + 2**13) >> 14), Cb the same with B and 9241
//   R' = clamp(Y' + (((Cr - half) 22987 + 2**13) >> 14)), G' with -11698 Cr' - 5636 Cb', B' with
//   29049 Cb' (Cr' = Cr - half, Cb' = Cb - half; half = 128 or 32768)
// Floats (float32, float64): OpenCV's float coefficients, one rounding per operation
// (--fmad=false), in the pixels' type, as the portable path's array operations; the result
// clipped to [0, 1].
//
// Pixels: C-contiguous (outer, 3, inner) RGB (channels last: inner = 1; channels first: inner =
// H * W); luma index j = o * inner + i is channel c at o * 3 * inner + c * inner + i. `bgr`
// swaps the red and blue channels (OpenCV's BGR order, on the same array: no copy). The merge
// recomputes Y, Cr and Cb from the pixels instead of storing the chroma: a few multiply-adds
// per pixel against two chroma planes written and read.
//
// Kernels (launched by _color.py): gpu_histeq_equalize_luma_small_u8, the whole equalization of
// small uint8 planes in one launch; gpu_histeq_luma_histogram, levels.cu's gpu_histeq_level_tables
// and gpu_histeq_luma_remap for uint8 / uint16 planes of any size (Y never stored);
// gpu_histeq_equalize_luma_ranked, uint16 planes by rank in one launch (no 65536-bin scratch);
// gpu_histeq_equalize_luma_small_float, small float planes in one launch; and
// gpu_histeq_split_luma / gpu_histeq_merge_luma around the masked (or large float) equalization
// of a stored Y plane.

__device__ long long gpu_histeq_pixel_element(long long j, long long inner) {
    if (inner == 1) return 3 * j;
    const long long o = j / inner;
    return o * 3 * inner + (j - o * inner);
}

__device__ void gpu_histeq_channel_offsets(long long inner, int bgr, long long* red,
                                           long long* green, long long* blue) {
    *red = (bgr ? 2 : 0) * inner;
    *green = inner;
    *blue = (bgr ? 0 : 2) * inner;
}

// Integer pixels: Y and the chroma Cr - half, Cb - half of R, G, B.
template <typename T>
__device__ int gpu_histeq_fixed_luma(int r, int g, int b) {
    return (r * 4899 + g * 9617 + b * 1868 + (1 << 13)) >> 14;
}

template <typename T>
__device__ void gpu_histeq_fixed_chroma(int r, int b, int y, int* cr, int* cb) {
    constexpr int top = sizeof(T) == 1 ? 255 : 65535, half = (top + 1) / 2;
    constexpr int delta = (half << 14) + (1 << 13);
    const int red = ((r - y) * 11682 + delta) >> 14, blue = ((b - y) * 9241 + delta) >> 14;
    *cr = (red < 0 ? 0 : (red > top ? top : red)) - half;
    *cb = (blue < 0 ? 0 : (blue > top ? top : blue)) - half;
}

template <typename T>
__device__ T gpu_histeq_fixed_channel(int y, int term) {
    constexpr int top = sizeof(T) == 1 ? 255 : 65535;
    const int v = y + ((term + (1 << 13)) >> 14);
    return (T)(v < 0 ? 0 : (v > top ? top : v));
}

// The floating formulas, in T (a Python float times a float32 array is float32 arithmetic).
template <typename T>
__device__ T gpu_histeq_float_luma(T r, T g, T b) {
    return (T)0.299 * r + (T)0.587 * g + (T)0.114 * b;
}

template <typename T>
__device__ T gpu_histeq_unit_clip(T v) {
    return v < (T)0 ? (T)0 : (v > (T)1 ? (T)1 : v);
}

// Writes the pixel at `e` of `out` from the pixel at `e` of `rgb` with its luma replaced by
// `y_new` (integers: a level of T; floats: a value of T).
template <typename T>
__device__ void gpu_histeq_replace_luma(const T* rgb, T* out, long long e, long long red,
                                        long long green, long long blue, T y_new) {
    if constexpr (sizeof(T) <= 2) {
        const int r = rgb[e + red], g = rgb[e + green], b = rgb[e + blue];
        int cr, cb;
        gpu_histeq_fixed_chroma<T>(r, b, gpu_histeq_fixed_luma<T>(r, g, b), &cr, &cb);
        const int y = (int)y_new;
        out[e + red] = gpu_histeq_fixed_channel<T>(y, cr * 22987);
        out[e + green] = gpu_histeq_fixed_channel<T>(y, cb * -5636 + cr * -11698);
        out[e + blue] = gpu_histeq_fixed_channel<T>(y, cb * 29049);
    } else {
        const T r = rgb[e + red], g = rgb[e + green], b = rgb[e + blue];
        const T y = gpu_histeq_float_luma(r, g, b);
        const T cr = ((r - y) * (T)0.713 + (T)0.5) - (T)0.5;
        const T cb = ((b - y) * (T)0.564 + (T)0.5) - (T)0.5;
        out[e + red] = gpu_histeq_unit_clip(y_new + (T)1.403 * cr);
        out[e + green] = gpu_histeq_unit_clip(y_new + (T)-0.714 * cr + (T)-0.344 * cb);
        out[e + blue] = gpu_histeq_unit_clip(y_new + (T)1.773 * cb);
    }
}

template <typename T>
__device__ T gpu_histeq_pixel_luma(const T* rgb, long long e, long long red, long long green,
                                   long long blue) {
    if constexpr (sizeof(T) <= 2)
        return (T)gpu_histeq_fixed_luma<T>(rgb[e + red], rgb[e + green], rgb[e + blue]);
    else
        return gpu_histeq_float_luma(rgb[e + red], rgb[e + green], rgb[e + blue]);
}

// luma[j] = Y of pixel j, for the `count` = outer * inner pixels; a grid-stride loop over a 1-d
// grid. Per pixel: 3 loads, 3 multiply-adds, 1 store. Traffic: 4 sizeof(T) bytes per pixel.
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_split_luma(const T* rgb, long long count, long long inner, int bgr, T* luma) {
    long long red, green, blue;
    gpu_histeq_channel_offsets(inner, bgr, &red, &green, &blue);
    for (long long j = blockIdx.x * (long long)GPU_HISTEQ_THREADS + threadIdx.x; j < count;
         j += (long long)gridDim.x * GPU_HISTEQ_THREADS)
        luma[j] = gpu_histeq_pixel_luma(rgb, gpu_histeq_pixel_element(j, inner), red, green, blue);
}

// out = rgb with the luma of pixel j replaced by luma[j] (T), or for integer T and LumaT double,
// by rint(luma[j] * top) (scikit-image's CDF back to the levels, as the portable path's
// rint(cdf * max).astype). Per pixel: 4 loads, about 12 multiply-adds, 3 stores. Traffic: 7
// sizeof(T) bytes per pixel (4 + 3 sizeof(T) with a double luma).
template <typename T, typename LumaT>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_merge_luma(const T* rgb, const LumaT* luma, long long count, long long inner, int bgr,
                      T* out) {
    long long red, green, blue;
    gpu_histeq_channel_offsets(inner, bgr, &red, &green, &blue);
    constexpr double top = sizeof(T) == 1 ? 255.0 : 65535.0;
    for (long long j = blockIdx.x * (long long)GPU_HISTEQ_THREADS + threadIdx.x; j < count;
         j += (long long)gridDim.x * GPU_HISTEQ_THREADS) {
        T y;
        if constexpr (sizeof(LumaT) == sizeof(T)) y = (T)luma[j];
        else y = (T)rint((double)luma[j] * top);
        gpu_histeq_replace_luma(rgb, out, gpu_histeq_pixel_element(j, inner), red, green, blue, y);
    }
}

// The whole luma equalization of small uint8 planes in one launch: block p owns luma indices
// [p * n, (p + 1) * n) (plane p; the image axes are the luma's trailing axes), counts their Y in
// per-warp shared histograms without storing it, makes the method's table (gpu_histeq_level_table,
// as every level path), then reads the pixels again and writes the round trip through the table
// (scikit-image's CDF through rint(cdf * 255)). Per pixel: 3 loads, one shared-memory atomic;
// then 3 loads, one shared table read, about 15 multiply-adds, 3 stores. Traffic: 3 bytes read
// twice (the second time mostly from L2, which the block filled a moment before) and 3 written;
// shared memory: 8 KiB of histograms and a 256-entry table (2 KiB for scikit-image's doubles).
template <int METHOD, typename TableT>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_equalize_luma_small_u8(const unsigned char* rgb, long long n, long long inner, int bgr,
                                  unsigned char* out) {
    __shared__ unsigned warp_hists[GPU_HISTEQ_WARPS][256];
    __shared__ TableT table[256];
    long long red, green, blue;
    gpu_histeq_channel_offsets(inner, bgr, &red, &green, &blue);
    const long long first = (long long)blockIdx.x * n;
    for (int i = threadIdx.x; i < GPU_HISTEQ_WARPS * 256; i += GPU_HISTEQ_THREADS)
        warp_hists[i / 256][i % 256] = 0;
    __syncthreads();
    unsigned* hist = warp_hists[threadIdx.x / 32];
    for (long long k = threadIdx.x; k < n; k += GPU_HISTEQ_THREADS) {
        const long long e = gpu_histeq_pixel_element(first + k, inner);
        atomicAdd(&hist[gpu_histeq_pixel_luma(rgb, e, red, green, blue)], 1u);
    }
    gpu_histeq_warp_level_table<METHOD>(warp_hists, table);
    for (long long k = threadIdx.x; k < n; k += GPU_HISTEQ_THREADS) {
        const long long e = gpu_histeq_pixel_element(first + k, inner);
        const unsigned char y = gpu_histeq_pixel_luma(rgb, e, red, green, blue);
        const unsigned char level = METHOD == GPU_HISTEQ_SKIMAGE
                                        ? (unsigned char)rint((double)table[y] * 255.0)
                                        : (unsigned char)table[y];
        gpu_histeq_replace_luma(rgb, out, e, red, green, blue, level);
    }
}

// Level histograms of the luma of many planes (plane first_plane + blockIdx.x: luma indices
// [p * n, (p + 1) * n), its counts at row blockIdx.x of `hists`), grid (planes, blocks per
// plane), Y counted and never stored. Per pixel: 3 loads, 3
// multiply-adds and one shared-memory atomic when `private_bins` (per-warp histograms, flushed
// with at most nbins global atomics per block), else one global atomic. Traffic per pixel:
// 3 sizeof(T) bytes read.
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_luma_histogram(const T* rgb, long long first_plane, long long n, long long inner,
                          int bgr, int nbins, int private_bins, unsigned* hists) {
    extern __shared__ unsigned gpu_histeq_luma_private_hists[];  // GPU_HISTEQ_WARPS x nbins
    long long red, green, blue;
    gpu_histeq_channel_offsets(inner, bgr, &red, &green, &blue);
    const long long first = (first_plane + blockIdx.x) * n;
    unsigned* hist = hists + (long long)blockIdx.x * nbins;
    unsigned* target = gpu_histeq_count_target(gpu_histeq_luma_private_hists, hist, nbins,
                                               private_bins);
    for (long long k = (long long)blockIdx.y * GPU_HISTEQ_THREADS + threadIdx.x; k < n;
         k += (long long)gridDim.y * GPU_HISTEQ_THREADS) {
        const long long e = gpu_histeq_pixel_element(first + k, inner);
        atomicAdd(&target[gpu_histeq_pixel_luma(rgb, e, red, green, blue)], 1u);
    }
    gpu_histeq_flush_private(gpu_histeq_luma_private_hists, hist, nbins, private_bins);
}

// The round trip through each plane's table (`levels` entries per plane, gpu_histeq_level_tables'
// output): the new Y of a pixel is table[Y] (TableT of T), or rint(table[Y] * top) (double:
// scikit-image's CDF). Grid as gpu_histeq_luma_histogram. Per pixel: 3 loads, one table read
// (shared memory when levels <= 256, else global, L2-resident), about 15 multiply-adds, 3 stores.
// Traffic per pixel: 6 sizeof(T) bytes.
template <typename T, typename TableT>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_luma_remap(const T* rgb, long long first_plane, long long n, long long inner, int bgr,
                      const TableT* tables, int levels, T* out) {
    __shared__ TableT shared_table[256];
    long long red, green, blue;
    gpu_histeq_channel_offsets(inner, bgr, &red, &green, &blue);
    const long long first = (first_plane + blockIdx.x) * n;
    const TableT* table = tables + (long long)blockIdx.x * levels;
    if (levels <= 256) {
        for (int v = threadIdx.x; v < levels; v += GPU_HISTEQ_THREADS) shared_table[v] = table[v];
        __syncthreads();
        table = shared_table;
    }
    constexpr double top = sizeof(T) == 1 ? 255.0 : 65535.0;
    for (long long k = (long long)blockIdx.y * GPU_HISTEQ_THREADS + threadIdx.x; k < n;
         k += (long long)gridDim.y * GPU_HISTEQ_THREADS) {
        const long long e = gpu_histeq_pixel_element(first + k, inner);
        const TableT entry = table[gpu_histeq_pixel_luma(rgb, e, red, green, blue)];
        T y;
        if constexpr (sizeof(TableT) == sizeof(T)) y = (T)entry;
        else y = (T)rint((double)entry * top);
        gpu_histeq_replace_luma(rgb, out, e, red, green, blue, y);
    }
}

// The whole luma equalization of uint16 planes by rank in one launch, no bin per level: block p
// owns luma indices [p * n, (p + 1) * n), writes the Y of its pixels as keys in dynamic shared
// memory (2 bytes per slot, the launcher keeps them within 32 KiB), sorts them (ranks.cu's bitonic sort over
// `size` slots, a power of two at least n, padded with the largest key) and reads the rank
// cum(Y) of each pixel's Y by binary search; the new Y is the method's table entry from cum(Y),
// the count at the lowest Y and n (the formulas of ranks.cu's gpu_histeq_equalize_ranked, bit for
// bit the level tables), then the round trip as gpu_histeq_luma_remap. Per pixel: 3 loads and 3
// multiply-adds for Y (twice), the sort's log2(size) * (log2(size) + 1) / 2 compare-exchanges, a
// binary search of log2(n) keys, about 15 multiply-adds and 3 stores. Traffic per pixel: 6 bytes
// read twice (the second time mostly from L2) and 6 written.
template <typename T, int METHOD>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_equalize_luma_ranked(const T* rgb, long long n, long long inner, int bgr, T* out) {
    typedef gpu_histeq_rank_key<T> rank_key;
    typedef typename rank_key::type K;
    constexpr int levels = 1 << (8 * sizeof(T));
    extern __shared__ uint4 gpu_histeq_luma_rank_keys[];
    K* keys = reinterpret_cast<K*>(gpu_histeq_luma_rank_keys);
    long long red, green, blue;
    gpu_histeq_channel_offsets(inner, bgr, &red, &green, &blue);
    const long long first_pixel = (long long)blockIdx.x * n;
    long long size = 1;
    while (size < n) size *= 2;
    for (long long k = threadIdx.x; k < size; k += GPU_HISTEQ_THREADS)
        keys[k] = k < n ? rank_key::of(gpu_histeq_pixel_luma(
                              rgb, gpu_histeq_pixel_element(first_pixel + k, inner), red, green, blue))
                        : (K)~(K)0;
    __syncthreads();
    gpu_histeq_bitonic_sort(keys, size);
    const long long lowest = gpu_histeq_rank_of(keys, n, keys[0]);  // pixels at the lowest Y
    const float scale = gpu_histeq_opencv_scale(levels, n - lowest);
    for (long long k = threadIdx.x; k < n; k += GPU_HISTEQ_THREADS) {
        const long long e = gpu_histeq_pixel_element(first_pixel + k, inner);
        const T y = gpu_histeq_pixel_luma(rgb, e, red, green, blue);
        const long long cumulative = gpu_histeq_rank_of(keys, n, rank_key::of(y));
        T level;
        if constexpr (METHOD == GPU_HISTEQ_OPENCV)
            level = n == lowest ? y : (T)gpu_histeq_opencv_entry(cumulative, lowest, scale, levels);
        else
            level = (T)rint(gpu_histeq_skimage_entry(cumulative, lowest, n) * (double)(levels - 1));
        gpu_histeq_replace_luma(rgb, out, e, red, green, blue, level);
    }
}

// The whole luma equalization of small float32 / float64 planes (scikit-image's, nbins <= 256)
// in one launch, Y recomputed from the pixels at each of its three passes and never stored:
// block p (luma indices [p * n, (p + 1) * n)) takes the plane's range of Y (ORing
// GPU_HISTEQ_NOT_FINITE into *status for NaN or infinity), counts numpy.histogram's bins of Y in
// shared memory, makes the interpolation table (uniform.cu's gpu_histeq_interp_table, with its
// status bits) and writes the round trip with Y replaced by its interpolated CDF, as
// gpu_histeq_equalize_small_float equalizes a stored Y plane. Per pixel: 3 loads and 3
// multiply-adds for Y three times, two bin searches, one shared atomic, one interpolation, about
// 15 multiply-adds and 3 stores. Traffic per pixel: 3 sizeof(T) bytes read three times (the
// later two mostly from L2) and 3 sizeof(T) written.
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_equalize_luma_small_float(const T* rgb, long long n, long long inner, int bgr,
                                     int nbins, int* status, T* out) {
    __shared__ unsigned hist[GPU_HISTEQ_SMALL_BINS];
    __shared__ double values[GPU_HISTEQ_SMALL_BINS], positions[GPU_HISTEQ_SMALL_BINS],
        slopes[GPU_HISTEQ_SMALL_BINS];
    long long red, green, blue;
    gpu_histeq_channel_offsets(inner, bgr, &red, &green, &blue);
    const long long first_pixel = (long long)blockIdx.x * n;
    auto luma = [&](long long k) {
        return gpu_histeq_pixel_luma(rgb, gpu_histeq_pixel_element(first_pixel + k, inner), red,
                                     green, blue);
    };
    for (int k = threadIdx.x; k < nbins; k += GPU_HISTEQ_THREADS) hist[k] = 0;
    T lo = gpu_histeq_infinity(T()), hi = -gpu_histeq_infinity(T());
    int nonfinite = 0;
    for (long long k = threadIdx.x; k < n; k += GPU_HISTEQ_THREADS) {
        const T y = luma(k);
        nonfinite |= !isfinite(y);
        lo = gpu_histeq_fmin(lo, y);
        hi = gpu_histeq_fmax(hi, y);
    }
    lo = gpu_histeq_block_reduce(lo, gpu_histeq_fmin_op());  // its barrier: hist is cleared
    hi = gpu_histeq_block_reduce(hi, gpu_histeq_fmax_op());
    if (gpu_histeq_block_reduce(nonfinite, gpu_histeq_max_op()) && threadIdx.x == 0)
        atomicOr(status, GPU_HISTEQ_NOT_FINITE);
    const gpu_histeq_range<T> range(lo, hi, true);
    for (long long k = threadIdx.x; k < n; k += GPU_HISTEQ_THREADS)
        atomicAdd(&hist[range.bin(luma(k), nbins)], 1u);
    __syncthreads();
    gpu_histeq_interp_table(hist, range, nbins, values, positions, slopes, status);
    for (long long k = threadIdx.x; k < n; k += GPU_HISTEQ_THREADS) {
        const long long e = gpu_histeq_pixel_element(first_pixel + k, inner);
        const T y = gpu_histeq_pixel_luma(rgb, e, red, green, blue);
        const T level = (T)gpu_histeq_interp(y, range.bin(y, nbins), values, positions, slopes);
        gpu_histeq_replace_luma(rgb, out, e, red, green, blue, level);
    }
}
