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

// Adds the counts of tile (row0, col0) of tile_rows x tile_cols padded pixels into `hist`
// (shared or global), the sources reflected at the bottom and right. Per pixel: one read and
// one atomic.
template <typename T>
__device__ void gpu_histeq_clahe_count_tile(const T* values, long long height, long long width,
                                            long long row0, long long col0, long long tile_rows,
                                            long long tile_cols, unsigned* hist) {
    const long long area = tile_rows * tile_cols;
    for (long long i = threadIdx.x; i < area; i += GPU_HISTEQ_THREADS) {
        const long long y = gpu_histeq_reflect101(row0 + i / tile_cols, height);
        const long long x = gpu_histeq_reflect101(col0 + i % tile_cols, width);
        atomicAdd(&hist[values[y * width + x]], 1u);
    }
}

// The table of one tile from its L counts (every thread of the block calls it), as
// _tables.clahe_opencv_clip and clahe_opencv_tables: cap every bin at `limit` (> 0), add
// clipped / L to every bin and one more to bins 0, s, 2s, ... (the remainder r of them) with
// s = max(L / r, 1); table[v] = rint(float(cumsum[v]) * scale). O(1) per bin; ends with a
// barrier, so `hist` may be reused at once.
template <int L, typename T>
__device__ void gpu_histeq_clahe_tile_table(const unsigned* hist, long long limit, float scale,
                                            T* table) {
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
    for (int v = begin; v < end; ++v) {
        long long count = hist[v];
        if (limit > 0)
            count = (count < limit ? count : limit) + batch + (v % step == 0 && v / step < residual);
        cumulative += count;
        table[v] = (T)rintf((float)cumulative * scale);
    }
    __syncthreads();
}

// Clears the warps' private 256-bin histograms (uint8 tiles).
__device__ void gpu_histeq_clahe_clear(unsigned (*warp_hists)[256]) {
    for (int i = threadIdx.x; i < GPU_HISTEQ_WARPS * 256; i += GPU_HISTEQ_THREADS)
        warp_hists[i / 256][i % 256] = 0;
    __syncthreads();
}

// Thread t adds bin t of every warp's histogram into warp_hists[0] (256 threads, 256 bins).
__device__ unsigned* gpu_histeq_clahe_merge(unsigned (*warp_hists)[256]) {
    __syncthreads();
    unsigned count = 0;
    for (int w = 0; w < GPU_HISTEQ_WARPS; ++w) count += warp_hists[w][threadIdx.x];
    warp_hists[0][threadIdx.x] = count;
    __syncthreads();
    return warp_hists[0];
}

// One tile table per block: block b is tile b % ntiles of plane b / ntiles, a grid of
// grid_rows x grid_cols tiles of tile_rows x tile_cols pixels over the padded plane (OpenCV's
// reflect-101 padding at the bottom and right). L = 256 (uint8: the histogram is private to each
// warp in static shared memory, 8 KiB) or 65536 (uint16: the block's slice of `scratch`,
// L uint32 per tile of the launch, cleared here); then gpu_histeq_clahe_tile_table.
// Per tile pixel: one read and one shared (uint8) or global (uint16) atomic. Traffic: the plane
// once (plus the padding), L entries per tile written (and for uint16 the L uint32 counters
// cleared, counted and read back).
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_clahe_tables(const T* planes, long long height, long long width, int grid_rows,
                        int grid_cols, long long tile_rows, long long tile_cols, long long limit,
                        float scale, unsigned* scratch, T* tables) {
    constexpr int L = sizeof(T) == 1 ? 256 : 65536;
    __shared__ unsigned warp_hists[sizeof(T) == 1 ? GPU_HISTEQ_WARPS : 1][256];
    const long long ntiles = (long long)grid_rows * grid_cols;
    const long long plane = blockIdx.x / ntiles, tile = blockIdx.x % ntiles;
    const T* values = planes + plane * height * width;
    unsigned* hist;
    if (sizeof(T) == 1) {
        gpu_histeq_clahe_clear(warp_hists);
        hist = warp_hists[threadIdx.x / 32];
    } else {
        hist = scratch + blockIdx.x * (long long)L;
        for (int i = threadIdx.x; i < L; i += GPU_HISTEQ_THREADS) hist[i] = 0;
        __syncthreads();
    }
    gpu_histeq_clahe_count_tile(values, height, width, tile / grid_cols * tile_rows,
                                tile % grid_cols * tile_cols, tile_rows, tile_cols, hist);
    if (sizeof(T) == 1) hist = gpu_histeq_clahe_merge(warp_hists);
    else __syncthreads();
    gpu_histeq_clahe_tile_table<L>(hist, limit, scale, tables + blockIdx.x * (long long)L);
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

// Pixel i of a plane through the plane's tables (grid_rows x grid_cols tables of L entries):
// rint((tl * cw1 + tr * cw2) * rw1 + (bl * cw1 + br * cw2) * rw2), OpenCV's float32 order.
template <int L, typename T>
__device__ T gpu_histeq_clahe_blend_pixel(const T* values, const T* tables, long long i,
                                          long long width, int grid_rows, int grid_cols,
                                          float row_inverse, float col_inverse) {
    const long long y = i / width, x = i % width;
    const gpu_histeq_blend_axis row(y, row_inverse, grid_rows), col(x, col_inverse, grid_cols);
    const long long v = values[i];
    const T* top = tables + (long long)row.first * grid_cols * L;
    const T* bottom = tables + (long long)row.second * grid_cols * L;
    const float upper = (float)top[col.first * L + v] * col.w1 + (float)top[col.second * L + v] * col.w2;
    const float lower = (float)bottom[col.first * L + v] * col.w1 + (float)bottom[col.second * L + v] * col.w2;
    return (T)rintf(upper * row.w1 + lower * row.w2);
}

// The blend, grid (blocks over the pixels of a plane, planes): every pixel reads its four
// neighbouring tables at its own value (gpu_histeq_clahe_blend_pixel). Per pixel: two floors,
// four table reads (L2-resident: the tables of one plane are ntiles * L entries), ten float
// operations. Traffic per pixel: sizeof(T) read and written.
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_clahe_blend(const T* planes, long long height, long long width, int grid_rows,
                       int grid_cols, float row_inverse, float col_inverse, const T* tables,
                       T* out) {
    constexpr int L = sizeof(T) == 1 ? 256 : 65536;
    const long long plane = blockIdx.y;
    const long long npixels = height * width;
    const T* values = planes + plane * npixels;
    const T* plane_tables = tables + plane * (long long)grid_rows * grid_cols * L;
    T* result = out + plane * npixels;
    for (long long i = blockIdx.x * (long long)GPU_HISTEQ_THREADS + threadIdx.x; i < npixels;
         i += (long long)gridDim.x * GPU_HISTEQ_THREADS)
        result[i] = gpu_histeq_clahe_blend_pixel<L>(values, plane_tables, i, width, grid_rows,
                                                    grid_cols, row_inverse, col_inverse);
}

// Small uint8 planes in one launch, one block per plane: the tables of every tile, one tile
// after the other, into dynamic shared memory (ntiles x 256 bytes, at most 32 KiB), then the
// blend of the plane's pixels from there. The tables never reach global memory. Per pixel: one
// read and one atomic per tile it falls in (padding included), then the blend of
// gpu_histeq_clahe_blend_pixel from shared memory. Traffic per pixel: 1 byte read (twice, the
// second mostly from L1/L2) and 1 byte written. Each tile costs the block a few barriers: the
// launch is latency-bound on planes with many tiny tiles (not modelled by the cost model).
// (T is unsigned char, the only instantiation.)
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_clahe_small(const T* planes, long long height, long long width, int grid_rows,
                       int grid_cols, long long tile_rows, long long tile_cols, long long limit,
                       float scale, float row_inverse, float col_inverse, T* out) {
    static_assert(sizeof(T) == 1, "256 levels");
    extern __shared__ unsigned char gpu_histeq_clahe_shared_tables[];  // ntiles x 256
    __shared__ unsigned warp_hists[GPU_HISTEQ_WARPS][256];
    const long long npixels = height * width;
    const T* values = planes + blockIdx.x * npixels;
    for (int tile = 0; tile < grid_rows * grid_cols; ++tile) {
        gpu_histeq_clahe_clear(warp_hists);
        gpu_histeq_clahe_count_tile(values, height, width, tile / grid_cols * tile_rows,
                                    tile % grid_cols * tile_cols, tile_rows, tile_cols,
                                    warp_hists[threadIdx.x / 32]);
        gpu_histeq_clahe_tile_table<256>(gpu_histeq_clahe_merge(warp_hists), limit, scale,
                                         gpu_histeq_clahe_shared_tables + tile * 256);
    }
    T* result = out + blockIdx.x * npixels;
    for (long long i = threadIdx.x; i < npixels; i += GPU_HISTEQ_THREADS)
        result[i] = gpu_histeq_clahe_blend_pixel<256>(values, gpu_histeq_clahe_shared_tables, i,
                                                      width, grid_rows, grid_cols, row_inverse,
                                                      col_inverse);
}
