// OpenCV's CLAHE (cv2.createCLAHE(clip, grid).apply) of uint8 / uint16 planes, compiled after
// common.cuh. Two launches, as OpenCV's CUDA CLAHE divides the work: one block per tile makes
// the tile's histogram, clips and redistributes it and writes the tile's table; then every
// pixel blends its four neighbouring tables. Both take the geometry as scalars and compute the
// reflect-101 sources, tiles and weights in the kernel: nothing per pixel comes from the host.
// Every value equals the portable path's (adaptive._clahe_planes) and _clahe.c's bit for bit:
// the same integer clip, the same float32 products in the same order, rounded half to even.

// OpenCV's BORDER_REFLECT_101 of a padded index (periodic with period 2 * (size - 1)); a
// single row or column repeats itself (adaptive.reflect101).
__device__ long long gpu_histeq_reflect101(long long index, long long size) {
    if (size == 1) return 0;
    const long long period = 2 * (size - 1);
    const long long folded = index % period;
    return folded >= size ? period - folded : folded;
}

// One tile table per block: block b is tile b % ntiles of plane b / ntiles, a grid of
// grid_rows x grid_cols tiles of tile_rows x tile_cols pixels over the padded plane (OpenCV's
// reflect-101 padding at the bottom and right). L = 256 (uint8: the histogram is private to each
// warp in static shared memory, 8 KiB) or 65536 (uint16: the block's slice of `scratch`,
// L uint32 per tile of the launch, cleared here). Then, as _tables.clahe_opencv_clip: cap every
// bin at `limit` (> 0), add clipped / L to every bin and one more to bins 0, s, 2s, ... (the
// remainder r of them) with s = max(L / r, 1); table[v] = rint(float(cumsum[v]) * scale).
// Per tile pixel: one 16-bit / 8-bit read and one shared (uint8) or global (uint16) atomic.
// Per bin: O(1) and one T written. Traffic: the plane once (plus the padding), L entries per
// tile written (and for uint16 the L uint32 counters cleared, counted and read back).
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_clahe_tables(const T* planes, long long height, long long width, int grid_rows,
                        int grid_cols, long long tile_rows, long long tile_cols, long long limit,
                        float scale, unsigned* scratch, T* tables) {
    constexpr int L = sizeof(T) == 1 ? 256 : 65536;
    __shared__ unsigned warp_hists[sizeof(T) == 1 ? GPU_HISTEQ_WARPS : 1][256];
    const long long ntiles = (long long)grid_rows * grid_cols;
    const long long plane = blockIdx.x / ntiles, tile = blockIdx.x % ntiles;
    const long long row0 = tile / grid_cols * tile_rows, col0 = tile % grid_cols * tile_cols;
    const T* values = planes + plane * height * width;
    unsigned* hist;
    if (sizeof(T) == 1) {
        for (int i = threadIdx.x; i < GPU_HISTEQ_WARPS * 256; i += GPU_HISTEQ_THREADS)
            warp_hists[i / 256][i % 256] = 0;
        hist = warp_hists[threadIdx.x / 32];
    } else {
        hist = scratch + blockIdx.x * (long long)L;
        for (int i = threadIdx.x; i < L; i += GPU_HISTEQ_THREADS) hist[i] = 0;
    }
    __syncthreads();
    const long long area = tile_rows * tile_cols;
    for (long long i = threadIdx.x; i < area; i += GPU_HISTEQ_THREADS) {
        const long long y = gpu_histeq_reflect101(row0 + i / tile_cols, height);
        const long long x = gpu_histeq_reflect101(col0 + i % tile_cols, width);
        atomicAdd(&hist[values[y * width + x]], 1u);
    }
    __syncthreads();
    if (sizeof(T) == 1) {  // thread t merges bin t of every warp into warp_hists[0]
        unsigned count = 0;
        for (int w = 0; w < GPU_HISTEQ_WARPS; ++w) count += warp_hists[w][threadIdx.x];
        __syncthreads();
        warp_hists[0][threadIdx.x] = count;
        hist = warp_hists[0];
        __syncthreads();
    }
    int begin, end;
    gpu_histeq_thread_bins(L, &begin, &end);
    long long batch = 0, residual = 0, step = 1;
    if (limit > 0) {
        long long over = 0;
        for (int v = begin; v < end; ++v) over += hist[v] > limit ? hist[v] - limit : 0;
        const long long clipped = gpu_histeq_block_reduce(over, gpu_histeq_sum_op());
        batch = clipped / L;
        residual = clipped % L;
        step = residual > 0 && L / residual > 1 ? L / residual : 1;
    }
    long long sum = 0;  // this thread's bins after clipping
    for (int v = begin; v < end; ++v) {
        long long count = hist[v];
        if (limit > 0)
            count = (count < limit ? count : limit) + batch + (v % step == 0 && v / step < residual);
        sum += count;
    }
    long long total;
    long long cumulative = gpu_histeq_block_exclusive_sum(sum, &total);
    T* table = tables + blockIdx.x * (long long)L;
    for (int v = begin; v < end; ++v) {
        long long count = hist[v];
        if (limit > 0)
            count = (count < limit ? count : limit) + batch + (v % step == 0 && v / step < residual);
        cumulative += count;
        table[v] = (T)rintf((float)cumulative * scale);
    }
}

// Neighbour tiles and weights of one row or column, as adaptive.blend_weights (float32):
// t = float(x) * (1 / tile) - 0.5, tiles floor(t) and floor(t) + 1 clamped to the grid,
// weights 1 - a and a with a = t - floor(t).
struct gpu_histeq_blend_axis {
    int first, second;
    float w1, w2;
    __device__ gpu_histeq_blend_axis(long long x, float inverse, int ntiles) {
        const float scaled = (float)x * inverse - 0.5f;
        const float low = floorf(scaled);
        const int tile = (int)low;
        w2 = scaled - low;
        w1 = 1.0f - w2;
        second = tile + 1 < ntiles - 1 ? tile + 1 : ntiles - 1;
        first = tile > 0 ? tile : 0;
    }
};

// The blend, grid (blocks over the pixels of a plane, planes): every pixel reads its four
// neighbouring tables at its own value and writes
// rint((tl * cw1 + tr * cw2) * rw1 + (bl * cw1 + br * cw2) * rw2), OpenCV's float32 order.
// Per pixel: two floors, four table reads (L2-resident: the tables of one plane are
// ntiles * L entries), ten float operations. Traffic per pixel: sizeof(T) read and written.
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_clahe_blend(const T* planes, long long height, long long width, int grid_rows,
                       int grid_cols, float row_inverse, float col_inverse, const T* tables,
                       T* out) {
    constexpr long long L = sizeof(T) == 1 ? 256 : 65536;
    const long long plane = blockIdx.y;
    const long long npixels = height * width;
    const T* values = planes + plane * npixels;
    const T* plane_tables = tables + plane * (long long)grid_rows * grid_cols * L;
    T* result = out + plane * npixels;
    for (long long i = blockIdx.x * (long long)GPU_HISTEQ_THREADS + threadIdx.x; i < npixels;
         i += (long long)gridDim.x * GPU_HISTEQ_THREADS) {
        const long long y = i / width, x = i % width;
        const gpu_histeq_blend_axis row(y, row_inverse, grid_rows), col(x, col_inverse, grid_cols);
        const long long v = values[i];
        const T* top = plane_tables + (long long)row.first * grid_cols * L;
        const T* bottom = plane_tables + (long long)row.second * grid_cols * L;
        const float upper = (float)top[col.first * L + v] * col.w1 + (float)top[col.second * L + v] * col.w2;
        const float lower = (float)bottom[col.first * L + v] * col.w1 + (float)bottom[col.second * L + v] * col.w2;
        result[i] = (T)rintf(upper * row.w1 + lower * row.w2);
    }
}
