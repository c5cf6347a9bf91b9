// Floating images with nbins equal bins per plane (method skimage): numpy.histogram's binning
// (histogram.UniformBinning), scikit-image's cumulative distribution and numpy.interp's gather
// (lut.InterpTable / lut.gather), bit-identical to the portable path. Compiled after common.cuh.

// float16 (numpy.float16) as NumPy and CuPy compute it: each operation in float32, its result
// rounded to the nearest float16 (ties to even, infinity past 65504). Rounding the float32
// result of + - * / once more to float16 gives the correctly rounded float16 result (24 >= 2 *
// 11 + 2 bits), so these are numpy.float16's numbers; float32 subnormals never occur (the
// smallest float16 is 2**-24), so -ftz=true changes none of them. Two bytes, as stored.
__device__ unsigned short gpu_histeq_half_bits(float x) {
    const unsigned f = __float_as_uint(x);
    const unsigned short sign = (unsigned short)((f >> 16) & 0x8000u);
    const unsigned a = f & 0x7fffffffu;
    if (a > 0x7f800000u) return sign | 0x7e00;   // NaN
    if (a >= 0x477ff000u) return sign | 0x7c00;  // 65520 and above: infinity
    if (a >= 0x38800000u)                        // normal: keep 10 of 23 mantissa bits
        return sign | (unsigned short)((a + 0xfffu + ((a >> 13) & 1u) - 0x38000000u) >> 13);
    return sign | (unsigned short)rintf(__uint_as_float(a) * 16777216.0f);  // k * 2**-24
}

__device__ float gpu_histeq_half_float(unsigned short h) {
    const unsigned sign = (unsigned)(h & 0x8000u) << 16, exponent = (h >> 10) & 0x1fu,
                   mantissa = h & 0x3ffu;
    if (exponent == 0x1fu) return __uint_as_float(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0) {
        const float magnitude = (float)mantissa * 5.9604644775390625e-08f;  // exact: k * 2**-24
        return sign ? -magnitude : magnitude;
    }
    return __uint_as_float(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

struct gpu_histeq_half {
    unsigned short bits;
    gpu_histeq_half() = default;
    // from float, and from int / double constants through float (exact for those used here)
    __device__ explicit gpu_histeq_half(float x) : bits(gpu_histeq_half_bits(x)) {}
    __device__ explicit gpu_histeq_half(double x) : bits(gpu_histeq_half_bits((float)x)) {}
    __device__ explicit gpu_histeq_half(int x) : bits(gpu_histeq_half_bits((float)x)) {}
    __device__ explicit gpu_histeq_half(long long x) : bits(gpu_histeq_half_bits((float)x)) {}
    __device__ explicit operator float() const { return gpu_histeq_half_float(bits); }
    __device__ explicit operator double() const { return (double)gpu_histeq_half_float(bits); }
    __device__ explicit operator long long() const { return (long long)gpu_histeq_half_float(bits); }
    __device__ gpu_histeq_half operator-() const {
        gpu_histeq_half negated;
        negated.bits = bits ^ 0x8000;
        return negated;
    }
};
#define GPU_HISTEQ_HALF_OP(op)                                                                    \
    __device__ gpu_histeq_half operator op(gpu_histeq_half a, gpu_histeq_half b) {                \
        return gpu_histeq_half((float)a op (float)b);                                             \
    }
GPU_HISTEQ_HALF_OP(+)
GPU_HISTEQ_HALF_OP(-)
GPU_HISTEQ_HALF_OP(*)
GPU_HISTEQ_HALF_OP(/)
#define GPU_HISTEQ_HALF_COMPARE(op)                                                               \
    __device__ bool operator op(gpu_histeq_half a, gpu_histeq_half b) { return (float)a op (float)b; }
GPU_HISTEQ_HALF_COMPARE(<)
GPU_HISTEQ_HALF_COMPARE(>)
GPU_HISTEQ_HALF_COMPARE(<=)
GPU_HISTEQ_HALF_COMPARE(>=)
GPU_HISTEQ_HALF_COMPARE(==)
GPU_HISTEQ_HALF_COMPARE(!=)

// Per floating type: `wide` holds its values in block reductions (shuffles take built-in types),
// `cdf` is scikit-image's cumulative distribution type and equalize_hist's result type.
template <typename T> struct gpu_histeq_float_traits { typedef T wide; typedef T cdf; };
template <> struct gpu_histeq_float_traits<gpu_histeq_half> { typedef float wide; typedef float cdf; };

__device__ bool gpu_histeq_isfinite(float x) { return isfinite(x); }
__device__ bool gpu_histeq_isfinite(double x) { return isfinite(x); }
__device__ bool gpu_histeq_isfinite(gpu_histeq_half x) { return (x.bits & 0x7c00) != 0x7c00; }
__device__ gpu_histeq_half gpu_histeq_fmin(gpu_histeq_half a, gpu_histeq_half b) {
    return gpu_histeq_half(fminf((float)a, (float)b));
}
__device__ gpu_histeq_half gpu_histeq_fmax(gpu_histeq_half a, gpu_histeq_half b) {
    return gpu_histeq_half(fmaxf((float)a, (float)b));
}
__device__ gpu_histeq_half gpu_histeq_infinity(gpu_histeq_half) { return gpu_histeq_half(__int_as_float(0x7f800000)); }
__device__ gpu_histeq_half gpu_histeq_smallest_normal(gpu_histeq_half) { return gpu_histeq_half(6.103515625e-05f); }

__device__ float gpu_histeq_fmin(float a, float b) { return fminf(a, b); }
__device__ double gpu_histeq_fmin(double a, double b) { return fmin(a, b); }
__device__ float gpu_histeq_fmax(float a, float b) { return fmaxf(a, b); }
__device__ double gpu_histeq_fmax(double a, double b) { return fmax(a, b); }
__device__ bool gpu_histeq_negative(float x) { return __float_as_int(x) < 0; }
__device__ bool gpu_histeq_negative(double x) { return __double_as_longlong(x) < 0; }
__device__ float gpu_histeq_infinity(float) { return __int_as_float(0x7f800000); }
__device__ double gpu_histeq_infinity(double) { return __longlong_as_double(0x7ff0000000000000LL); }
__device__ float gpu_histeq_smallest_normal(float) { return __int_as_float(0x00800000); }
__device__ double gpu_histeq_smallest_normal(double) { return __longlong_as_double(0x0010000000000000LL); }

// Bits of the status word the float kernels set (atomicOr), as _kernels.STATUS_*: NaN or
// infinity in a plane; repeated bin edges (numpy.histogram refuses them); a plane whose bin
// centers are less than two smallest normals apart or whose slopes are not finite, which the
// portable path interpolates with numpy.interp's own search (the caller runs it there).
#define GPU_HISTEQ_NOT_FINITE 1
#define GPU_HISTEQ_REPEATED_EDGES 2
#define GPU_HISTEQ_IRREGULAR 4

struct gpu_histeq_fmin_op { template <typename T> __device__ T operator()(T a, T b) const { return gpu_histeq_fmin(a, b); } };
struct gpu_histeq_fmax_op { template <typename T> __device__ T operator()(T a, T b) const { return gpu_histeq_fmax(a, b); } };
struct gpu_histeq_or_op { __device__ int operator()(int a, int b) const { return a | b; } };

// Atomic minimum / maximum of a float or double in memory: the bit patterns of non-negative
// values order as signed integers, those of negative values (sign bit set) in reverse as unsigned.
__device__ void gpu_histeq_atomic_min(float* address, float value) {
    if (gpu_histeq_negative(value)) atomicMax(reinterpret_cast<unsigned*>(address), __float_as_uint(value));
    else atomicMin(reinterpret_cast<int*>(address), __float_as_int(value));
}
__device__ void gpu_histeq_atomic_max(float* address, float value) {
    if (gpu_histeq_negative(value)) atomicMin(reinterpret_cast<unsigned*>(address), __float_as_uint(value));
    else atomicMax(reinterpret_cast<int*>(address), __float_as_int(value));
}
__device__ void gpu_histeq_atomic_min(double* address, double value) {
    const long long bits = __double_as_longlong(value);
    if (bits < 0) atomicMax(reinterpret_cast<unsigned long long*>(address), (unsigned long long)bits);
    else atomicMin(reinterpret_cast<long long*>(address), bits);
}
__device__ void gpu_histeq_atomic_max(double* address, double value) {
    const long long bits = __double_as_longlong(value);
    if (bits < 0) atomicMin(reinterpret_cast<unsigned long long*>(address), (unsigned long long)bits);
    else atomicMax(reinterpret_cast<long long*>(address), bits);
}

// numpy.histogram's nbins bins over [low, high] of one plane, widened by 0.5 on each side when
// `widen` and low == high. Edges and bins follow histogram.UniformBinning operation by operation.
template <typename T>
struct gpu_histeq_range {
    T first, width, last;

    __device__ gpu_histeq_range(T low, T high, bool widen) {
        if (widen && low == high) {
            low = low - (T)0.5;
            high = high + (T)0.5;
        }
        first = low;
        last = high;
        width = high - low;
    }

    // numpy.linspace: k * step + first, or (k / nbins) * width + first when the step is 0.
    __device__ T edge(long long k, int nbins) const {
        if (k == nbins) return last;
        const T step = width / (T)nbins;
        const T offset = step == (T)0 ? ((T)k / (T)nbins) * width : (T)k * step;
        return offset + first;
    }

    // The scaled offset clamped to [0, nbins - 1] in floating point, then truncated (as the
    // portable clip + astype: a value far outside the range, such as a masked-out 1e30, must not
    // reach the integer conversion), and corrected against the edges.
    __device__ int bin(T x, int nbins) const {
        const T scaled = (x - first) / width * (T)nbins;
        const T top = (T)(nbins - 1);
        const T clamped = scaled > top ? top : (scaled > (T)0 ? scaled : (T)0);  // NaN -> 0
        long long b = (long long)clamped;
        if (x < edge(b, nbins)) b -= 1;
        if (b < 0) b = 0;
        if (x >= edge(b + 1, nbins) && b != nbins - 1) b += 1;
        return (int)b;
    }
};

// Calls visit(k, count, fraction) for this thread's bins k of one plane's histogram, in order,
// with fraction = cumsum[k] / double(max(total, 1)) (histogram.cdf_table before its cast to
// scikit-image's type); every thread of the block calls it.
template <typename Visit>
__device__ void gpu_histeq_cdf_walk(const unsigned* hist, int nbins, Visit visit) {
    int begin, end;
    gpu_histeq_thread_bins(nbins, &begin, &end);
    long long sum = 0;
    for (int k = begin; k < end; ++k) sum += hist[k];
    long long total;
    long long cumulative = gpu_histeq_block_exclusive_sum(sum, &total);
    const double denominator = (double)(total > 1 ? total : 1);
    for (int k = begin; k < end; ++k) {
        cumulative += hist[k];
        visit(k, hist[k], (double)cumulative / denominator);
    }
}

// numpy.interp through (centers, cdf) of one plane, from the value's bin (lut.gather).
template <typename T>
__device__ double gpu_histeq_interp(T x, int bin, const double* values, const double* positions,
                                    const double* slopes) {
    const bool below = (double)x < positions[bin];
    const bool before_first = below && bin == 0;
    const int segment = bin - (below && !before_first ? 1 : 0);
    const double slope = before_first ? 0.0 : slopes[segment];
    const double distance = (double)x - positions[segment];
    return slope * distance + values[segment];
}

// The interpolation table of one plane from its counts; every thread of the block takes part.
// values = T(cum / total) (scikit-image's cdf dtype) as double, positions = bin centers,
// slopes between neighbouring points (0 after the last), as the portable InterpTable. Sets
// GPU_HISTEQ_REPEATED_EDGES and GPU_HISTEQ_IRREGULAR in *status as the portable binning and
// InterpTable find them.
template <typename T>
__device__ void gpu_histeq_interp_table(const unsigned* hist, const gpu_histeq_range<T>& range,
                                        int nbins, double* values, double* positions, double* slopes,
                                        int* status) {
    gpu_histeq_cdf_walk(hist, nbins, [&](int k, unsigned, double fraction) {
        values[k] = (double)(typename gpu_histeq_float_traits<T>::cdf)fraction;
        positions[k] = (double)((range.edge(k, nbins) + range.edge(k + 1, nbins)) / (T)2);
    });
    __syncthreads();
    int begin, end;
    gpu_histeq_thread_bins(nbins, &begin, &end);
    int flags = 0;
    const double tiny = (double)gpu_histeq_smallest_normal(T());
    for (int k = begin; k < end; ++k) {
        if (nbins > 1 && !(range.edge(k + 1, nbins) > range.edge(k, nbins)))
            flags |= GPU_HISTEQ_REPEATED_EDGES;
        if (k + 1 < nbins) {
            const double spacing = positions[k + 1] - positions[k];
            slopes[k] = (values[k + 1] - values[k]) / spacing;
            if (spacing < 2 * tiny || !isfinite(slopes[k])) flags |= GPU_HISTEQ_IRREGULAR;
        } else {
            slopes[k] = 0.0;
        }
    }
    flags = gpu_histeq_block_reduce(flags, gpu_histeq_or_op());
    if (threadIdx.x == 0 && flags) atomicOr(status, flags);
}

// The block's minimum and maximum of the selected pixels among first, first + stride, ... of
// one plane, and 1 in *bad when any of them (selected or not) is NaN or infinite; every thread
// of the block gets the block's result.
template <typename T>
__device__ void gpu_histeq_block_range(const T* plane, const bool* mask, long long n, long long head,
                                       long long first, long long stride, T* low, T* high, int* bad) {
    typedef typename gpu_histeq_float_traits<T>::wide W;  // exact: every T is a W
    T lo = gpu_histeq_infinity(T()), hi = -gpu_histeq_infinity(T());
    int nonfinite = 0;
    gpu_histeq_for_pixels(plane, mask, n, head, first, stride, [&](T v, bool selected) {
        nonfinite |= !gpu_histeq_isfinite(v);
        if (selected) {
            lo = gpu_histeq_fmin(lo, v);
            hi = gpu_histeq_fmax(hi, v);
        }
    });
    *low = T(gpu_histeq_block_reduce((W)lo, gpu_histeq_fmin_op()));
    *high = T(gpu_histeq_block_reduce((W)hi, gpu_histeq_fmax_op()));
    *bad = gpu_histeq_block_reduce(nonfinite, gpu_histeq_max_op());
}

// Per-plane minimum and maximum of the selected pixels and a flag for any NaN or infinity,
// grid (planes, blocks per plane), or with `spans` the 1-d grid of every plane's blocks
// (gpu_histeq_locate); low / high start at +inf / -inf (a plane of 0 pixels keeps its start
// values: it has no block); low / high are float32 for float16 planes (no 16-bit atomics; every
// float16 is a float32). Per pixel: two comparisons and a finiteness test; traffic sizeof(T)
// bytes read (+1 mask byte); two atomics per block.
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_minmax(const T* planes, const bool* masks, const long long* spans,
                  const long long* first_blocks, long long nplanes, long long n, int aligned,
                  typename gpu_histeq_float_traits<T>::wide* low, typename gpu_histeq_float_traits<T>::wide* high, int* status) {
    const gpu_histeq_work work = gpu_histeq_locate(spans, first_blocks, nplanes, n);
    T lo, hi;
    int bad;
    gpu_histeq_block_range(planes + work.offset, masks ? masks + work.offset : nullptr, work.n,
                           gpu_histeq_head<T>(work.offset, aligned),
                           work.block * GPU_HISTEQ_THREADS + threadIdx.x,
                           work.blocks * GPU_HISTEQ_THREADS, &lo, &hi, &bad);
    if (threadIdx.x == 0) {
        gpu_histeq_atomic_min(low + work.plane, (typename gpu_histeq_float_traits<T>::wide)lo);
        gpu_histeq_atomic_max(high + work.plane, (typename gpu_histeq_float_traits<T>::wide)hi);
        if (bad) atomicOr(status, GPU_HISTEQ_NOT_FINITE);
    }
}

// Counts of numpy.histogram's bins, grids as gpu_histeq_minmax; `widen` as gpu_histeq_range
// (0 when low / high are already a binning's first and last edge). Per pixel: a scaled offset,
// two edge comparisons and one shared-memory atomic when `private_bins` (per-warp histograms
// flushed once per block), else one global atomic. Traffic: sizeof(T) read (+1 mask byte).
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_uniform_histogram(const T* planes, const bool* masks, const long long* spans,
                             const long long* first_blocks, long long nplanes, long long n,
                             int aligned, const typename gpu_histeq_float_traits<T>::wide* low, const typename gpu_histeq_float_traits<T>::wide* high, int widen, int nbins,
                             int private_bins, unsigned* hists) {
    extern __shared__ unsigned gpu_histeq_private_hists[];  // GPU_HISTEQ_WARPS x nbins
    const gpu_histeq_work work = gpu_histeq_locate(spans, first_blocks, nplanes, n);
    const gpu_histeq_range<T> range(T(low[work.plane]), T(high[work.plane]), widen);
    unsigned* hist = hists + work.plane * nbins;
    unsigned* target = gpu_histeq_count_target(gpu_histeq_private_hists, hist, nbins, private_bins);
    gpu_histeq_for_pixels(planes + work.offset, masks ? masks + work.offset : nullptr, work.n,
                          gpu_histeq_head<T>(work.offset, aligned),
                          work.block * GPU_HISTEQ_THREADS + threadIdx.x, work.blocks * GPU_HISTEQ_THREADS,
                          [&](T v, bool selected) { if (selected) atomicAdd(&target[range.bin(v, nbins)], 1u); });
    gpu_histeq_flush_private(gpu_histeq_private_hists, hist, nbins, private_bins);
}

// Interpolation tables of many planes, one block per plane, with the status bits of
// gpu_histeq_interp_table. Per bin: one count read and three doubles written (24 bytes); no
// per-pixel work.
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_uniform_tables(const unsigned* hists, const typename gpu_histeq_float_traits<T>::wide* low, const typename gpu_histeq_float_traits<T>::wide* high, int nbins,
                          double* values, double* positions, double* slopes, int* status) {
    const long long p = blockIdx.x;
    const gpu_histeq_range<T> range(T(low[p]), T(high[p]), true);
    gpu_histeq_interp_table(hists + p * nbins, range, nbins, values + p * nbins,
                            positions + p * nbins, slopes + p * nbins, status);
}

// The interpolated gather, grids as gpu_histeq_minmax. Per pixel: the bin search of the
// histogram step and one interpolation (three table reads, shared memory when nbins <= 256).
// Traffic per pixel: sizeof(T) read and sizeof(T) written, 16-byte loads and stores.
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_uniform_remap(const T* planes, const long long* spans, const long long* first_blocks,
                         long long nplanes, long long n, int aligned, const typename gpu_histeq_float_traits<T>::wide* low, const typename gpu_histeq_float_traits<T>::wide* high,
                         int nbins, const double* values, const double* positions,
                         const double* slopes, typename gpu_histeq_float_traits<T>::cdf* out) {
    typedef typename gpu_histeq_float_traits<T>::cdf OutT;  // float32 for float16
    __shared__ double shared_tables[3][GPU_HISTEQ_SMALL_BINS];
    const gpu_histeq_work work = gpu_histeq_locate(spans, first_blocks, nplanes, n);
    const long long p = work.plane;
    const gpu_histeq_range<T> range(T(low[p]), T(high[p]), true);
    values += p * nbins;
    positions += p * nbins;
    slopes += p * nbins;
    if (nbins <= GPU_HISTEQ_SMALL_BINS) {
        for (int k = threadIdx.x; k < nbins; k += GPU_HISTEQ_THREADS) {
            shared_tables[0][k] = values[k];
            shared_tables[1][k] = positions[k];
            shared_tables[2][k] = slopes[k];
        }
        __syncthreads();
        values = shared_tables[0];
        positions = shared_tables[1];
        slopes = shared_tables[2];
    }
    gpu_histeq_map_pixels(planes + work.offset, out + work.offset, work.n,
                          gpu_histeq_head<T>(work.offset, aligned),
                          work.block * GPU_HISTEQ_THREADS + threadIdx.x, work.blocks * GPU_HISTEQ_THREADS,
                          [&](T v) { return (OutT)gpu_histeq_interp(v, range.bin(v, nbins), values, positions, slopes); });
}

// Small floating planes (nbins <= 256), the whole pipeline in one launch: block p equalizes
// plane p (its span with `spans`); float16 (gpu_histeq_half) planes get a float32 result.
// Per pixel: min/max, two bin searches (count and remap), one shared-memory atomic and one
// interpolation from shared-memory tables. Traffic per pixel: sizeof(T) read (+1 mask byte)
// and sizeof(OutT) written; with `cache` the plane is read from
// global memory once, else three times (the later two mostly from L2). A plane of 0 pixels
// writes nothing; its table is made over [0, 0] as the portable path makes it (its status bits
// count, as there).
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_equalize_small_float(const T* planes, const bool* masks, const long long* spans,
                                long long n, int aligned, int cache, int nbins, int* status,
                                typename gpu_histeq_float_traits<T>::cdf* out) {
    typedef typename gpu_histeq_float_traits<T>::cdf OutT;  // float32 for float16
    __shared__ unsigned hist[GPU_HISTEQ_SMALL_BINS];
    __shared__ double values[GPU_HISTEQ_SMALL_BINS], positions[GPU_HISTEQ_SMALL_BINS],
        slopes[GPU_HISTEQ_SMALL_BINS];
    extern __shared__ uint4 gpu_histeq_plane_cache[];
    const gpu_histeq_work work = gpu_histeq_locate(spans, nullptr, 0, n);
    const long long head = gpu_histeq_head<T>(work.offset, aligned);
    const T* plane = planes + work.offset;
    const bool* mask = masks ? masks + work.offset : nullptr;
    for (int k = threadIdx.x; k < nbins; k += GPU_HISTEQ_THREADS) hist[k] = 0;
    if (cache) plane = gpu_histeq_copy_plane(plane, gpu_histeq_plane_cache, work.n, head);
    T lo, hi;
    int bad;
    gpu_histeq_block_range(plane, mask, work.n, head, threadIdx.x, GPU_HISTEQ_THREADS, &lo, &hi, &bad);
    if (threadIdx.x == 0 && bad) atomicOr(status, GPU_HISTEQ_NOT_FINITE);
    if (work.n == 0) lo = hi = (T)0;
    const gpu_histeq_range<T> range(lo, hi, true);
    gpu_histeq_for_pixels(plane, mask, work.n, head, threadIdx.x, GPU_HISTEQ_THREADS,
                          [&](T v, bool selected) { if (selected) atomicAdd(&hist[range.bin(v, nbins)], 1u); });
    __syncthreads();
    gpu_histeq_interp_table(hist, range, nbins, values, positions, slopes, status);
    gpu_histeq_map_pixels(plane, out + work.offset, work.n, head, threadIdx.x, GPU_HISTEQ_THREADS,
                          [&](T v) { return (OutT)gpu_histeq_interp(v, range.bin(v, nbins), values, positions, slopes); });
}
