// Equalization by rank: integer planes whose levels are too many for a table per plane (int32,
// uint32) or whose 65536-level table would be mostly empty (small uint16 / int16 planes), and
// small int8 planes (larger ones take the uint8 level kernels, sign-flipped). Compiled after
// common.cuh.
//
// The table of every method is a function of three counts only: cum(v), the selected pixels at or
// below v; first, the selected pixels at the lowest selected level; total, the selected pixels.
// A block sorts its plane's selected values and reads cum(v) by binary search, so no bin per
// level is ever made and the result does not depend on the plane's range:
//   opencv (uint16): rint(float(cum(v) - first) * float((L - 1) / float(total - first))),
//                    clipped to [0, L - 1]; v itself when total == first (one level)
//   skimage:         max(cum(v), first) / total in double, as histogram.cdf_table over the
//                    plane's own levels (levels below the first selected one take its value)
// bit for bit equalize.opencv_lut / _tables.cdf_table of the portable path.

// The unsigned key of a value: order-preserving (signed values with their sign bit flipped,
// floats as their bits with the order of their values, -0.0 as 0.0), the largest key marking
// padding and unselected pixels; value(key) gives the value back as a double, finite(v) says
// whether a float is neither NaN nor infinite (integers always are). Integer operations only,
// so float32 subnormals keep their order under -ftz=true as in CuPy's sort.
template <typename T> struct gpu_histeq_rank_key;
template <typename T, typename K, unsigned long long SIGN>
struct gpu_histeq_integer_key {
    typedef K type;
    static __device__ type of(T v) { return (type)((K)v ^ (K)SIGN); }
    static __device__ double value(type k) { return (double)(T)(K)(k ^ (K)SIGN); }
    static __device__ bool finite(T) { return true; }
};
template <> struct gpu_histeq_rank_key<unsigned char>
    : gpu_histeq_integer_key<unsigned char, unsigned char, 0> {};
template <> struct gpu_histeq_rank_key<signed char>
    : gpu_histeq_integer_key<signed char, unsigned char, 0x80> {};
template <> struct gpu_histeq_rank_key<unsigned short>
    : gpu_histeq_integer_key<unsigned short, unsigned short, 0> {};
template <> struct gpu_histeq_rank_key<short>
    : gpu_histeq_integer_key<short, unsigned short, 0x8000> {};
template <> struct gpu_histeq_rank_key<unsigned int>
    : gpu_histeq_integer_key<unsigned int, unsigned int, 0> {};
template <> struct gpu_histeq_rank_key<int>
    : gpu_histeq_integer_key<int, unsigned int, 0x80000000u> {};
template <> struct gpu_histeq_rank_key<float> {
    typedef unsigned int type;
    static __device__ type of(float v) {
        unsigned bits = __float_as_uint(v);
        if ((bits & 0x7fffffffu) == 0) bits = 0;
        return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
    }
    static __device__ double value(type k) {
        return (double)__uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
    }
    static __device__ bool finite(float v) {
        return (__float_as_uint(v) & 0x7f800000u) != 0x7f800000u;
    }
};
template <> struct gpu_histeq_rank_key<double> {
    typedef unsigned long long type;
    static __device__ type of(double v) {
        unsigned long long bits = (unsigned long long)__double_as_longlong(v);
        const unsigned long long sign = 1ULL << 63;
        if ((bits & ~sign) == 0) bits = 0;
        return (bits & sign) ? ~bits : (bits | sign);
    }
    static __device__ double value(type k) {
        const unsigned long long sign = 1ULL << 63;
        return __longlong_as_double((long long)((k & sign) ? (k & ~sign) : ~k));
    }
    static __device__ bool finite(double v) {
        const unsigned long long exponent = 0x7ffULL << 52;
        return ((unsigned long long)__double_as_longlong(v) & exponent) != exponent;
    }
};

// Keys at or below `key` among the `count` sorted keys (an upper bound by binary search).
template <typename K>
__device__ long long gpu_histeq_rank_of(const K* keys, long long count, K key) {
    long long lo = 0, hi = count;
    while (lo < hi) {
        const long long mid = lo + (hi - lo) / 2;
        if (keys[mid] <= key) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

// Keys strictly below `key` among the `count` sorted keys (a lower bound).
template <typename K>
__device__ long long gpu_histeq_rank_below(const K* keys, long long count, K key) {
    long long lo = 0, hi = count;
    while (lo < hi) {
        const long long mid = lo + (hi - lo) / 2;
        if (keys[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

// Sorts `size` keys (a power of two) ascending, the whole block taking part (bitonic: each of
// the log2(size) * (log2(size) + 1) / 2 passes compares and exchanges disjoint pairs, then a
// barrier). The caller's barrier must have made the keys visible.
template <typename K>
__device__ void gpu_histeq_bitonic_sort(K* keys, long long size) {
    for (long long k = 2; k <= size; k *= 2) {
        for (long long j = k / 2; j > 0; j /= 2) {
            for (long long i = threadIdx.x; i < size; i += GPU_HISTEQ_THREADS) {
                const long long partner = i ^ j;
                if (partner > i) {
                    const K a = keys[i], b = keys[partner];
                    if (((i & k) == 0) == (b < a)) {
                        keys[i] = b;
                        keys[partner] = a;
                    }
                }
            }
            __syncthreads();
        }
    }
}

// Sorts `n` keys (any n) ascending, the whole block taking part: the bitonic network of the next
// power of two in its all-ascending form (the first pass of each stage compares i with its
// mirror i ^ (k - 1), the others i with i ^ j), over n real keys and virtual largest keys past
// them. An ascending comparator never moves a largest key down, so every comparator that
// reaches past n is skipped and nothing past n is stored or read: log2(size) * (log2(size) +
// 1) / 2 passes over n keys, not over the padded size. The caller's barrier must have made the
// keys visible.
template <typename K>
__device__ void gpu_histeq_bitonic_sort_n(K* keys, long long n) {
    long long size = 1;
    while (size < n) size *= 2;
    for (long long k = 2; k <= size; k *= 2) {
        for (long long j = k / 2; j > 0; j /= 2) {
            const long long mask = j == k / 2 ? k - 1 : j;  // the stage's mirror, then halves
            for (long long i = threadIdx.x; i < n; i += GPU_HISTEQ_THREADS) {
                const long long partner = i ^ mask;
                if (partner > i && partner < n) {
                    const K a = keys[i], b = keys[partner];
                    if (b < a) {
                        keys[i] = b;
                        keys[partner] = a;
                    }
                }
            }
            __syncthreads();
        }
    }
}

// Equalize plane blockIdx.x (its span with `spans`, gpu_histeq_locate) by rank, one block per
// plane, into `out`. The keys of its `size` slots (a power of two, at least the plane's pixels)
// live in dynamic shared memory when `scratch` is null, else at scratch + plane * stride in global
// memory. Work per pixel: one key written, log2(size) * (log2(size) + 1) / 2 compare-exchanges of
// the bitonic sort (shared memory, or global memory that stays in L2 for planes of a few MiB),
// and one binary search of log2(total) key reads. Traffic per pixel from global memory:
// sizeof(T) read twice (+1 mask byte) and sizeof(OutT) written; with global scratch also
// 2 * sizeof(K) per compare-exchange pass.
template <typename T, int METHOD, typename OutT>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_equalize_ranked(const T* planes, const bool* masks, const long long* spans,
                           long long n, int aligned,
                           typename gpu_histeq_rank_key<T>::type* scratch, long long stride,
                           OutT* out) {
    typedef gpu_histeq_rank_key<T> rank_key;
    typedef typename rank_key::type K;
    extern __shared__ uint4 gpu_histeq_rank_cache[];
    const gpu_histeq_work work = gpu_histeq_locate(spans, nullptr, 0, n);
    if (work.n == 0) return;  // a packed plane of 0 pixels: nothing to write
    const T* plane = planes + work.offset;
    const bool* mask = masks ? masks + work.offset : nullptr;
    K* keys = scratch ? scratch + work.plane * stride : reinterpret_cast<K*>(gpu_histeq_rank_cache);
    long long size = 1;
    while (size < work.n) size *= 2;
    const K padding = (K)~(K)0;
    long long selected = 0;
    for (long long i = threadIdx.x; i < size; i += GPU_HISTEQ_THREADS) {
        const bool counted = i < work.n && (!mask || mask[i]);
        keys[i] = counted ? rank_key::of(plane[i]) : padding;
        selected += counted;
    }
    // the reduction's barrier also makes every key visible to the block
    const long long total = gpu_histeq_block_reduce(selected, gpu_histeq_sum_op());
    // ascending: the `total` selected keys first (padding is the largest key, so the first
    // `total` slots hold exactly the selected multiset whatever its ties)
    gpu_histeq_bitonic_sort(keys, size);
    const long long first = total ? gpu_histeq_rank_of(keys, total, keys[0]) : 0;
    const long long head = gpu_histeq_head<T>(work.offset, aligned);
    if constexpr (METHOD == GPU_HISTEQ_OPENCV) {  // 16-bit planes only
        constexpr int levels = 1 << (8 * sizeof(T));
        const long long spread = total - first;
        const float scale = gpu_histeq_opencv_scale(levels, spread);
        gpu_histeq_map_pixels(plane, out + work.offset, work.n, head, threadIdx.x,
                              GPU_HISTEQ_THREADS, [&](T v) {
            const long long cumulative = gpu_histeq_rank_of(keys, total, rank_key::of(v));
            const float entry = gpu_histeq_opencv_entry(cumulative, first, scale, levels);
            return spread == 0 ? (OutT)v : (OutT)entry;
        });
    } else {
        gpu_histeq_map_pixels(plane, out + work.offset, work.n, head, threadIdx.x,
                              GPU_HISTEQ_THREADS, [&](T v) {
            const long long cumulative = gpu_histeq_rank_of(keys, total, rank_key::of(v));
            return (OutT)gpu_histeq_skimage_entry(cumulative, first, total);
        });
    }
}

// ---- match_histograms (scikit-image's): quantiles of the source mapped through the reference's

// The keys of row[0 .. n) written to `keys` and sorted (gpu_histeq_bitonic_sort_n); ORs `flag`
// into *status (when not null) when a value is NaN or infinite. Every thread of the block calls it.
template <typename T>
__device__ void gpu_histeq_sorted_keys(const T* row, long long n,
                                       typename gpu_histeq_rank_key<T>::type* keys, int flag,
                                       int* status) {
    typedef gpu_histeq_rank_key<T> rank_key;
    int finite = 1;
    for (long long i = threadIdx.x; i < n; i += GPU_HISTEQ_THREADS) {
        const T v = row[i];
        finite &= rank_key::finite(v);
        keys[i] = rank_key::of(v);
    }
    finite = gpu_histeq_block_reduce(finite, gpu_histeq_min_op());  // also the keys' barrier
    if (!finite && threadIdx.x == 0 && status) atomicOr(status, flag);
    gpu_histeq_bitonic_sort_n(keys, n);
}

// Sorts row blockIdx.x of `rows` ((R, n), C-contiguous) into keys[row * stride ...] (stride at
// least n; nothing past n is written); ORs `flag` into `status` when the row holds NaN or
// infinity. One block per row. Work per value: one key written and log2(size) * (log2(size) +
// 1) / 2 compare-exchanges (size: the next power of two) in global memory (L2 for rows of a few
// MiB), gpu_histeq_bitonic_sort_n. Traffic: sizeof(T) read, sizeof(K) written, and the n keys
// read and written once per pass (L2).
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_sort_keys(const T* rows, long long n, typename gpu_histeq_rank_key<T>::type* keys,
                     long long stride, int flag, int* status) {
    gpu_histeq_sorted_keys(rows + (long long)blockIdx.x * n, n, keys + (long long)blockIdx.x * stride,
                           flag, status);
}

// numpy.interp(c / ns, C_k / nt, t_k) through one reference's sorted keys `ref` (nt of them):
// its distinct values t_k with C_k of its values at or below each. With bound = c * nt / ns
// (c * nt < 2**62, checked by the caller), the knots at or below the source quantile are the
// values below ref[bound]: the segment runs from the largest of them to ref[bound]. Every
// product, quotient and sum is matching._interp's float64 operation, in its order.
template <typename R>
__device__ double gpu_histeq_match_value(long long c, long long ns,
                                         const typename gpu_histeq_rank_key<R>::type* ref,
                                         long long nt) {
    typedef gpu_histeq_rank_key<R> rank_key;
    const long long bound = c * nt / ns;
    if (bound >= nt) return rank_key::value(ref[nt - 1]);  // at or past the last knot
    const typename rank_key::type next = ref[bound];
    const long long below = gpu_histeq_rank_below(ref, nt, next);
    if (below == 0) return rank_key::value(ref[0]);  // before the first knot
    const double size = (double)nt;
    const double x = (double)c / (double)ns;
    const double x_knot = (double)below / size;
    const double v_knot = rank_key::value(ref[below - 1]);
    if (x == x_knot) return v_knot;
    const double x_next = (double)gpu_histeq_rank_of(ref, nt, next) / size;
    const double slope = (rank_key::value(next) - v_knot) / (x_next - x_knot);
    return slope * (x - x_knot) + v_knot;
}

// out[p, i] = the match of planes[p, i] (rank c among its plane's ns sorted `source` keys)
// through reference row owner[p] of `reference` (nt sorted keys per row); without `owner`,
// row p * owner_step (0: one reference for every plane, 1: one per plane). Grid (planes, blocks
// per plane). Work per pixel: one binary search of log2(ns) source keys and up to two of
// log2(nt) reference keys, about 10 float64 operations, the result cast to OutT (float32 for
// float32 images: numpy's astype of the float64 value). Traffic per pixel: sizeof(S) read,
// sizeof(OutT) written, the searched keys (L2- or L1-resident).
template <typename S, typename R, typename OutT>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_match(const S* planes, long long ns,
                 const typename gpu_histeq_rank_key<S>::type* source, long long source_stride,
                 const typename gpu_histeq_rank_key<R>::type* reference,
                 long long reference_stride, long long nt, const long long* owner,
                 long long owner_step, OutT* out) {
    const long long p = blockIdx.x;
    const auto* sorted = source + p * source_stride;
    const auto* ref = reference + (owner ? owner[p] : p * owner_step) * reference_stride;
    for (long long i = (long long)blockIdx.y * GPU_HISTEQ_THREADS + threadIdx.x; i < ns;
         i += (long long)gridDim.y * GPU_HISTEQ_THREADS) {
        const long long c = gpu_histeq_rank_of(sorted, ns, gpu_histeq_rank_key<S>::of(planes[p * ns + i]));
        out[p * ns + i] = (OutT)gpu_histeq_match_value<R>(c, ns, ref, nt);
    }
}

// gpu_histeq_match with the images' sort in the same block: block p sorts plane p's ns keys in
// dynamic shared memory (gpu_histeq_bitonic_sort_n, ns * sizeof(K) bytes), ORs `flag` into
// `status` when the plane holds NaN or infinity, then matches each pixel through reference row
// owner[p] (or p * owner_step) as gpu_histeq_match. Grid (planes,). Work per pixel: one key
// written, the sort's compare-exchanges in shared memory, one binary search of log2(ns) shared
// keys and up to two of log2(nt) reference keys. Traffic per pixel: sizeof(S) read twice (the
// second from L2), sizeof(OutT) written; the source keys never leave the block.
template <typename S, typename R, typename OutT>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_match_shared(const S* planes, long long ns,
                        const typename gpu_histeq_rank_key<R>::type* reference,
                        long long reference_stride, long long nt, const long long* owner,
                        long long owner_step, int flag, int* status, OutT* out) {
    typedef gpu_histeq_rank_key<S> rank_key;
    typedef typename rank_key::type K;
    extern __shared__ uint4 gpu_histeq_match_keys[];
    K* keys = reinterpret_cast<K*>(gpu_histeq_match_keys);
    const long long p = blockIdx.x;
    const S* plane = planes + p * ns;
    gpu_histeq_sorted_keys(plane, ns, keys, flag, status);
    const auto* ref = reference + (owner ? owner[p] : p * owner_step) * reference_stride;
    for (long long i = threadIdx.x; i < ns; i += GPU_HISTEQ_THREADS) {
        const long long c = gpu_histeq_rank_of(keys, ns, rank_key::of(plane[i]));
        out[p * ns + i] = (OutT)gpu_histeq_match_value<R>(c, ns, ref, nt);
    }
}
