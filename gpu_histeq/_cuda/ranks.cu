// Equalization by rank: integer planes whose levels are too many for a table per plane (int32,
// uint32) or whose 65536-level table would be mostly empty (small uint16 / int16 planes), and
// int8 planes. Compiled after common.cuh.
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

// The unsigned key of a value: order-preserving (signed values with their sign bit flipped),
// and the largest key marks padding and unselected pixels.
template <typename T> struct gpu_histeq_rank_key;
template <> struct gpu_histeq_rank_key<signed char> {
    typedef unsigned char type;
    static __device__ type of(signed char v) { return (type)((unsigned char)v ^ 0x80u); }
};
template <> struct gpu_histeq_rank_key<unsigned short> {
    typedef unsigned short type;
    static __device__ type of(unsigned short v) { return v; }
};
template <> struct gpu_histeq_rank_key<short> {
    typedef unsigned short type;
    static __device__ type of(short v) { return (type)((unsigned short)v ^ 0x8000u); }
};
template <> struct gpu_histeq_rank_key<unsigned int> {
    typedef unsigned int type;
    static __device__ type of(unsigned int v) { return v; }
};
template <> struct gpu_histeq_rank_key<int> {
    typedef unsigned int type;
    static __device__ type of(int v) { return (type)v ^ 0x80000000u; }
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
    // bitonic sort, ascending: the `total` selected keys first (padding is the largest key, so
    // the first `total` slots hold exactly the selected multiset whatever its ties)
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
    const long long first = total ? gpu_histeq_rank_of(keys, total, keys[0]) : 0;
    const long long head = gpu_histeq_head<T>(work.offset, aligned);
    if (METHOD == GPU_HISTEQ_OPENCV) {
        constexpr long long levels = 1LL << (8 * sizeof(T));
        const long long spread = total - first;
        const float scale = (float)(levels - 1) / (float)(spread > 1 ? spread : 1);
        gpu_histeq_map_pixels(plane, out + work.offset, work.n, head, threadIdx.x,
                              GPU_HISTEQ_THREADS, [&](T v) {
            const long long cumulative = gpu_histeq_rank_of(keys, total, rank_key::of(v));
            const float level = rintf((float)(cumulative - first) * scale);
            const float clipped = fminf(fmaxf(level, 0.0f), (float)(levels - 1));
            return spread == 0 ? (OutT)v : (OutT)clipped;
        });
    } else {
        const double denominator = (double)(total > 1 ? total : 1);
        gpu_histeq_map_pixels(plane, out + work.offset, work.n, head, threadIdx.x,
                              GPU_HISTEQ_THREADS, [&](T v) {
            const long long cumulative = gpu_histeq_rank_of(keys, total, rank_key::of(v));
            return (OutT)((double)(cumulative > first ? cumulative : first) / denominator);
        });
    }
}
