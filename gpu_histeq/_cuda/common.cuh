// Helpers shared by every gpu_histeq kernel. _sources.py puts this text in front of each .cu file
// (no #include, so CuPy's compile cache, keyed on the source text, sees every change).
//
// Arithmetic is written with plain operators and casts and compiled with the options in
// _sources.py (--fmad=false, --ftz=true): the same instructions as CuPy's own elementwise
// kernels, which the portable path runs, so every table and every value is bit-identical.

#define GPU_HISTEQ_THREADS 256                       // threads of every block
#define GPU_HISTEQ_WARPS (GPU_HISTEQ_THREADS / 32)
#define GPU_HISTEQ_SMALL_BINS 256                    // bins that fit the shared tables below

#define GPU_HISTEQ_OPENCV 0                          // method ids, as in _sources.METHODS
#define GPU_HISTEQ_PIL 1
#define GPU_HISTEQ_SKIMAGE 2

// N values of T read or written as one access of min(N * sizeof(T), 16) bytes.
template <typename T, int N>
struct alignas(sizeof(T) * N < 16 ? sizeof(T) * N : 16) gpu_histeq_pack {
    T v[N];
};

template <typename T>
struct gpu_histeq_pixels {
    static constexpr int per_pack = 16 / sizeof(T);  // pixels in one 16-byte load
    typedef gpu_histeq_pack<T, per_pack> pack;
    typedef gpu_histeq_pack<bool, per_pack> mask_pack;
};

// Calls visit(value, selected) for the pixels first, first + stride, ... of one plane of n
// pixels, one 16-byte pack at a time when `aligned` (plane and mask rows start on a pack).
template <typename T, typename Visit>
__device__ void gpu_histeq_for_pixels(const T* plane, const bool* mask, long long n, bool aligned,
                                      long long first, long long stride, Visit visit) {
    typedef gpu_histeq_pixels<T> px;
    const long long packed = aligned ? n / px::per_pack * px::per_pack : 0;
    for (long long i = first * px::per_pack; i < packed; i += stride * px::per_pack) {
        const typename px::pack values = *reinterpret_cast<const typename px::pack*>(plane + i);
        if (mask) {
            const typename px::mask_pack selected =
                *reinterpret_cast<const typename px::mask_pack*>(mask + i);
            for (int k = 0; k < px::per_pack; ++k) visit(values.v[k], selected.v[k]);
        } else {
            for (int k = 0; k < px::per_pack; ++k) visit(values.v[k], true);
        }
    }
    for (long long i = packed + first; i < n; i += stride) visit(plane[i], mask ? mask[i] : true);
}

// Where a block's threads count: their warp's histogram among `privates` (GPU_HISTEQ_WARPS x
// nbins in dynamic shared memory, cleared here) when `private_bins`, else `hist` itself.
__device__ unsigned* gpu_histeq_count_target(unsigned* privates, unsigned* hist, int nbins,
                                             int private_bins) {
    if (!private_bins) return hist;
    for (int i = threadIdx.x; i < GPU_HISTEQ_WARPS * nbins; i += GPU_HISTEQ_THREADS) privates[i] = 0;
    __syncthreads();
    return privates + (threadIdx.x / 32) * nbins;
}

// Adds the warps' private histograms into `hist` (one global atomic per non-zero bin).
__device__ void gpu_histeq_flush_private(const unsigned* privates, unsigned* hist, int nbins,
                                         int private_bins) {
    if (!private_bins) return;
    __syncthreads();
    for (int bin = threadIdx.x; bin < nbins; bin += GPU_HISTEQ_THREADS) {
        unsigned count = 0;
        for (int w = 0; w < GPU_HISTEQ_WARPS; ++w) count += privates[w * nbins + bin];
        if (count) atomicAdd(&hist[bin], count);
    }
}

// out[i] = map(plane[i]) for the same pixels, packed loads and stores when `aligned`.
template <typename T, typename OutT, typename Map>
__device__ void gpu_histeq_map_pixels(const T* plane, OutT* out, long long n, bool aligned,
                                      long long first, long long stride, Map map) {
    typedef gpu_histeq_pixels<T> px;
    typedef gpu_histeq_pack<OutT, px::per_pack> out_pack;
    const long long packed = aligned ? n / px::per_pack * px::per_pack : 0;
    for (long long i = first * px::per_pack; i < packed; i += stride * px::per_pack) {
        const typename px::pack values = *reinterpret_cast<const typename px::pack*>(plane + i);
        out_pack mapped;
        for (int k = 0; k < px::per_pack; ++k) mapped.v[k] = map(values.v[k]);
        *reinterpret_cast<out_pack*>(out + i) = mapped;
    }
    for (long long i = packed + first; i < n; i += stride) out[i] = map(plane[i]);
}

// Copies a plane of n pixels into shared memory, 16 bytes per thread and step (aligned planes).
template <typename T>
__device__ void gpu_histeq_copy_plane(const T* plane, T* cache, long long n) {
    const long long bytes = n * (long long)sizeof(T);
    const uint4* source = reinterpret_cast<const uint4*>(plane);
    uint4* target = reinterpret_cast<uint4*>(cache);
    for (long long i = threadIdx.x; i < bytes / 16; i += GPU_HISTEQ_THREADS) target[i] = source[i];
    const char* source_tail = reinterpret_cast<const char*>(plane);
    char* target_tail = reinterpret_cast<char*>(cache);
    for (long long i = bytes / 16 * 16 + threadIdx.x; i < bytes; i += GPU_HISTEQ_THREADS)
        target_tail[i] = source_tail[i];
    __syncthreads();
}

// Block-wide reduction with a binary operation; every thread of the block calls it and gets
// the result.
template <typename T, typename Op>
__device__ T gpu_histeq_block_reduce(T value, Op op) {
    __shared__ T warp_results[GPU_HISTEQ_WARPS];
    for (int offset = 16; offset > 0; offset /= 2)
        value = op(value, __shfl_xor_sync(0xffffffffu, value, offset));
    if (threadIdx.x % 32 == 0) warp_results[threadIdx.x / 32] = value;
    __syncthreads();
    T result = warp_results[0];
    for (int w = 1; w < GPU_HISTEQ_WARPS; ++w) result = op(result, warp_results[w]);
    __syncthreads();  // warp_results may be reused by the next call
    return result;
}

// Exclusive prefix sum of one value per thread (in thread order) and the block's total.
__device__ long long gpu_histeq_block_exclusive_sum(long long value, long long* total) {
    __shared__ long long warp_sums[GPU_HISTEQ_WARPS];
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    long long inclusive = value;
    for (int offset = 1; offset < 32; offset *= 2) {
        const long long below = __shfl_up_sync(0xffffffffu, inclusive, offset);
        if (lane >= offset) inclusive += below;
    }
    if (lane == 31) warp_sums[warp] = inclusive;
    __syncthreads();
    long long before = 0, sum = 0;
    for (int w = 0; w < GPU_HISTEQ_WARPS; ++w) {
        if (w < warp) before += warp_sums[w];
        sum += warp_sums[w];
    }
    __syncthreads();
    *total = sum;
    return before + inclusive - value;
}

struct gpu_histeq_min_op { template <typename T> __device__ T operator()(T a, T b) const { return b < a ? b : a; } };
struct gpu_histeq_max_op { template <typename T> __device__ T operator()(T a, T b) const { return a < b ? b : a; } };
struct gpu_histeq_sum_op { template <typename T> __device__ T operator()(T a, T b) const { return a + b; } };

// The bins [begin, end) of `nbins` that one thread of the block walks in order.
__device__ void gpu_histeq_thread_bins(int nbins, int* begin, int* end) {
    const int run = (nbins + GPU_HISTEQ_THREADS - 1) / GPU_HISTEQ_THREADS;
    *begin = min(nbins, (int)threadIdx.x * run);
    *end = min(nbins, *begin + run);
}
