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

// Where the pixels of one block lie. Two layouts, chosen by `spans`:
// * uniform (spans null): C-contiguous (P, N) planes; block (blockIdx.x, blockIdx.y) works on
//   plane blockIdx.x, which starts at p * n, as block blockIdx.y of gridDim.y;
// * packed (ragged batches): plane q of the launch is [spans[2q], spans[2q + 1]) of the packed
//   arrays. One block per plane (first_blocks null: plane blockIdx.x), or a 1-d grid of the
//   planes' blocks one after the other, plane q owning first_blocks[q] .. first_blocks[q + 1] - 1
//   (a binary search over the nplanes + 1 entries; a plane of 0 blocks gets none).
// `plane` indexes everything kept per plane of the launch (histograms, tables, ranges).
struct gpu_histeq_work {
    long long plane, offset, n, block, blocks;
};

__device__ gpu_histeq_work gpu_histeq_locate(const long long* spans, const long long* first_blocks,
                                             long long nplanes, long long n) {
    gpu_histeq_work work;
    if (!spans) {
        work.plane = blockIdx.x;
        work.offset = work.plane * n;
        work.n = n;
        work.block = blockIdx.y;
        work.blocks = gridDim.y;
        return work;
    }
    long long q = blockIdx.x;
    work.block = 0;
    work.blocks = 1;
    if (first_blocks) {  // the last plane whose first block is at or before this one
        long long lo = 0, hi = nplanes - 1;
        while (lo < hi) {
            const long long mid = (lo + hi + 1) / 2;
            if (first_blocks[mid] <= (long long)blockIdx.x) lo = mid;
            else hi = mid - 1;
        }
        q = lo;
        work.block = blockIdx.x - first_blocks[q];
        work.blocks = first_blocks[q + 1] - first_blocks[q];
    }
    work.plane = q;
    work.offset = spans[2 * q];
    work.n = spans[2 * q + 1] - work.offset;
    return work;
}

// Pixels of a plane that starts `offset` pixels into its arrays before its first 16-byte pack,
// or -1 (no packed access) when the arrays' bases are not `aligned` (_kernels.aligned /
// packed_aligned: values on 16 bytes, mask and output on one pack of theirs). A plane that does
// not start on a pack peels these pixels off its head and takes the packs from there on.
template <typename T>
__device__ long long gpu_histeq_head(long long offset, int aligned) {
    constexpr int per_pack = 16 / sizeof(T);
    return aligned ? (per_pack - offset % per_pack) % per_pack : -1;
}

// Calls visit(value, selected) for the pixels first, first + stride, ... of one plane of n
// pixels: the `head` pixels before its first pack one by one, then one 16-byte pack at a time,
// then the tail one by one (every pixel one by one when head < 0). Nothing outside the plane
// is read.
template <typename T, typename Visit>
__device__ void gpu_histeq_for_pixels(const T* plane, const bool* mask, long long n, long long head,
                                      long long first, long long stride, Visit visit) {
    typedef gpu_histeq_pixels<T> px;
    const long long begin = head < 0 ? n : (head < n ? head : n);
    const long long packed = begin + (n - begin) / px::per_pack * px::per_pack;
    for (long long i = first; i < begin; i += stride) visit(plane[i], mask ? mask[i] : true);
    for (long long i = begin + first * px::per_pack; i < packed; i += stride * px::per_pack) {
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

// out[i] = map(plane[i]) for the same pixels, packed loads and stores after the head.
template <typename T, typename OutT, typename Map>
__device__ void gpu_histeq_map_pixels(const T* plane, OutT* out, long long n, long long head,
                                      long long first, long long stride, Map map) {
    typedef gpu_histeq_pixels<T> px;
    typedef gpu_histeq_pack<OutT, px::per_pack> out_pack;
    const long long begin = head < 0 ? n : (head < n ? head : n);
    const long long packed = begin + (n - begin) / px::per_pack * px::per_pack;
    for (long long i = first; i < begin; i += stride) out[i] = map(plane[i]);
    for (long long i = begin + first * px::per_pack; i < packed; i += stride * px::per_pack) {
        const typename px::pack values = *reinterpret_cast<const typename px::pack*>(plane + i);
        out_pack mapped;
        for (int k = 0; k < px::per_pack; ++k) mapped.v[k] = map(values.v[k]);
        *reinterpret_cast<out_pack*>(out + i) = mapped;
    }
    for (long long i = packed + first; i < n; i += stride) out[i] = map(plane[i]);
}

// Copies a plane of n pixels into shared memory, 16 bytes per thread and step from its first
// pack on (head >= 0: the plane's bases are aligned). Returns the copy, placed in `cache` at the
// plane's own phase (copy + head starts a pack), so the packs of the copy, of the mask and of
// the output are the same pixels; `cache` holds n + 16 / sizeof(T) - 1 pixels.
template <typename T>
__device__ T* gpu_histeq_copy_plane(const T* plane, uint4* cache, long long n, long long head) {
    constexpr int per_pack = 16 / sizeof(T);
    head = head < n ? head : n;
    T* copy = reinterpret_cast<T*>(cache) + (per_pack - head) % per_pack;
    for (long long i = threadIdx.x; i < head; i += GPU_HISTEQ_THREADS) copy[i] = plane[i];
    const long long bytes = (n - head) * (long long)sizeof(T);
    const uint4* source = reinterpret_cast<const uint4*>(plane + head);
    uint4* target = reinterpret_cast<uint4*>(copy + head);
    for (long long i = threadIdx.x; i < bytes / 16; i += GPU_HISTEQ_THREADS) target[i] = source[i];
    const char* source_tail = reinterpret_cast<const char*>(plane + head);
    char* target_tail = reinterpret_cast<char*>(copy + head);
    for (long long i = bytes / 16 * 16 + threadIdx.x; i < bytes; i += GPU_HISTEQ_THREADS)
        target_tail[i] = source_tail[i];
    __syncthreads();
    return copy;
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

// One entry of a level table from three counts: `cumulative` pixels at or below the level,
// `first_count` at the lowest level present, `total` (every method's table, levels.cu and
// ranks.cu alike, so the formulas have one home).
// opencv: round_half_even(float(cumulative - first_count) * scale), clipped to [0, levels - 1],
//         with scale = float(levels - 1) / float(max(total - first_count, 1)).
__device__ float gpu_histeq_opencv_scale(int levels, long long spread) {
    return (float)(levels - 1) / (float)(spread > 1 ? spread : 1);
}
__device__ float gpu_histeq_opencv_entry(long long cumulative, long long first_count, float scale,
                                         int levels) {
    const float level = rintf((float)(cumulative - first_count) * scale);
    return fminf(fmaxf(level, 0.0f), (float)(levels - 1));
}
// skimage: max(cumulative, first_count) / max(total, 1) in double.
__device__ double gpu_histeq_skimage_entry(long long cumulative, long long first_count,
                                           long long total) {
    return (double)(cumulative > first_count ? cumulative : first_count)
           / (double)(total > 1 ? total : 1);
}
