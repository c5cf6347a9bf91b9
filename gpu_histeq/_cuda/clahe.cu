// OpenCV's CLAHE (cv2.createCLAHE(clip, grid).apply) of uint8 / uint16 planes, compiled after
// common.cuh. Two launches, as OpenCV's CUDA CLAHE divides the work: one block per tile makes
// the tile's histogram, clips and redistributes it and writes the tile's table; then every
// pixel blends its four neighbouring tables. Both take the geometry as scalars and compute the
// reflect-101 sources, tiles and weights in the kernel: nothing per pixel comes from the host.
// Every value equals the portable path's (adaptive._clahe_planes) and _clahe.c's bit for bit:
// the same integer clip, the same float32 products in the same order, rounded half to even.
// Small uint16 planes take one launch without any 65536-entry table (gpu_histeq_clahe_ranked:
// each tile's values sorted, as ranks.cu sorts a plane; compiled after ranks.cu, PRELUDES).

// OpenCV's BORDER_REFLECT_101 of a padded index (periodic with period 2 * (size - 1)); a
// single row or column repeats itself (adaptive.reflect101).
__device__ long long gpu_histeq_reflect101(long long index, long long size) {
    if (size == 1) return 0;
    const long long period = 2 * (size - 1);
    const long long folded = index % period;
    return folded >= size ? period - folded : folded;
}

// Calls count(v) for the value v of every pixel of tile (row0, col0) of tile_rows x tile_cols
// padded pixels, the sources reflected at the bottom and right. Per pixel: one read and the
// caller's atomic.
template <typename T, typename Count>
__device__ void gpu_histeq_clahe_count_tile(const T* values, long long height, long long width,
                                            long long row0, long long col0, long long tile_rows,
                                            long long tile_cols, Count count) {
    const long long area = tile_rows * tile_cols;
    for (long long i = threadIdx.x; i < area; i += GPU_HISTEQ_THREADS) {
        const long long y = gpu_histeq_reflect101(row0 + i / tile_cols, height);
        const long long x = gpu_histeq_reflect101(col0 + i % tile_cols, width);
        count(values[y * width + x]);
    }
}

// The table of one tile from its L counts (every thread of the block calls it), as
// _tables.clahe_opencv_clip and clahe_opencv_tables: cap every bin at `limit` (> 0), add
// clipped / L to every bin and one more to bins 0, s, 2s, ... (the remainder r of them) with
// s = max(L / r, 1); table[v] = rint(float(cumsum[v]) * scale). O(1) per bin; ends with a
// barrier, so `hist` may be reused at once. `hist` may be `table` itself (16-bit counts of
// uint16 tiles: each thread reads its bins' counts before it writes their entries).
template <int L, typename H, typename T>
__device__ void gpu_histeq_clahe_tile_table(const H* hist, long long limit, float scale,
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
// warp in static shared memory, 8 KiB) or 65536 (uint16: with `scratch`, the block's slice of
// it, L uint32 per tile of the launch; without, tiles of fewer than 65536 pixels, 16-bit counts
// in the tile's own table, two to a 32-bit atomic: no count reaches 2**16, so none carries into
// its neighbour; cleared here); then gpu_histeq_clahe_tile_table.
// Per tile pixel: one read and one shared (uint8) or global (uint16) atomic. Traffic: the plane
// once (plus the padding), L entries per tile written (for uint16 also cleared, counted and read
// back, in the table itself or in the L uint32 counters of `scratch`).
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
    const long long row0 = tile / grid_cols * tile_rows, col0 = tile % grid_cols * tile_cols;
    T* table = tables + blockIdx.x * (long long)L;
    if constexpr (sizeof(T) == 1) {
        gpu_histeq_clahe_clear(warp_hists);
        unsigned* hist = warp_hists[threadIdx.x / 32];
        gpu_histeq_clahe_count_tile(values, height, width, row0, col0, tile_rows, tile_cols,
                                    [&](T v) { atomicAdd(&hist[v], 1u); });
        gpu_histeq_clahe_tile_table<L>(gpu_histeq_clahe_merge(warp_hists), limit, scale, table);
    } else if (scratch) {
        unsigned* hist = scratch + blockIdx.x * (long long)L;
        for (int i = threadIdx.x; i < L; i += GPU_HISTEQ_THREADS) hist[i] = 0;
        __syncthreads();
        gpu_histeq_clahe_count_tile(values, height, width, row0, col0, tile_rows, tile_cols,
                                    [&](T v) { atomicAdd(&hist[v], 1u); });
        __syncthreads();
        gpu_histeq_clahe_tile_table<L>(hist, limit, scale, table);
    } else {
        unsigned* pairs = reinterpret_cast<unsigned*>(table);  // (count of 2k + 1) << 16 | 2k
        for (int i = threadIdx.x; i < L / 2; i += GPU_HISTEQ_THREADS) pairs[i] = 0;
        __syncthreads();
        gpu_histeq_clahe_count_tile(values, height, width, row0, col0, tile_rows, tile_cols,
                                    [&](T v) { atomicAdd(&pairs[v >> 1], 1u << (16 * (v & 1))); });
        __syncthreads();
        gpu_histeq_clahe_tile_table<L>(table, limit, scale, table);
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

// Pixel i of a plane through its tile tables: `table(tile, v)` is the float32 table value of
// tile `tile` (row-major over the grid) at level v. rint((tl * cw1 + tr * cw2) * rw1 +
// (bl * cw1 + br * cw2) * rw2), OpenCV's float32 order.
template <typename T, typename Table>
__device__ T gpu_histeq_clahe_blend_pixel(const T* values, long long i, long long width,
                                          int grid_rows, int grid_cols, float row_inverse,
                                          float col_inverse, Table table) {
    const long long y = i / width, x = i % width;
    const gpu_histeq_blend_axis row(y, row_inverse, grid_rows), col(x, col_inverse, grid_cols);
    const long long v = values[i];
    const int top = row.first * grid_cols, bottom = row.second * grid_cols;
    const float upper = table(top + col.first, v) * col.w1 + table(top + col.second, v) * col.w2;
    const float lower = table(bottom + col.first, v) * col.w1 + table(bottom + col.second, v) * col.w2;
    return (T)rintf(upper * row.w1 + lower * row.w2);
}

// The lookup of gpu_histeq_clahe_blend_pixel in tables of L entries of T per tile.
template <int L, typename T>
struct gpu_histeq_clahe_level_tables {
    const T* tables;
    __device__ float operator()(int tile, long long v) const {
        return (float)tables[(long long)tile * L + v];
    }
};

// The blend of plane blockIdx.y (of height x width pixels) through `table` (a lookup of
// gpu_histeq_clahe_blend_pixel), the blocks of gridDim.x striding over its pixels.
template <typename T, typename Table>
__device__ void gpu_histeq_clahe_blend_plane(const T* planes, long long height, long long width,
                                             int grid_rows, int grid_cols, float row_inverse,
                                             float col_inverse, Table table, T* out) {
    const long long npixels = height * width;
    const T* values = planes + blockIdx.y * npixels;
    T* result = out + blockIdx.y * npixels;
    for (long long i = blockIdx.x * (long long)GPU_HISTEQ_THREADS + threadIdx.x; i < npixels;
         i += (long long)gridDim.x * GPU_HISTEQ_THREADS)
        result[i] = gpu_histeq_clahe_blend_pixel(values, i, width, grid_rows, grid_cols,
                                                 row_inverse, col_inverse, table);
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
    const T* plane_tables = tables + blockIdx.y * (long long)grid_rows * grid_cols * L;
    gpu_histeq_clahe_blend_plane(planes, height, width, grid_rows, grid_cols, row_inverse,
                                 col_inverse, gpu_histeq_clahe_level_tables<L, T>{plane_tables},
                                 out);
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
        unsigned* hist = warp_hists[threadIdx.x / 32];
        gpu_histeq_clahe_count_tile(values, height, width, tile / grid_cols * tile_rows,
                                    tile % grid_cols * tile_cols, tile_rows, tile_cols,
                                    [&](T v) { atomicAdd(&hist[v], 1u); });
        gpu_histeq_clahe_tile_table<256>(gpu_histeq_clahe_merge(warp_hists), limit, scale,
                                         gpu_histeq_clahe_shared_tables + tile * 256);
    }
    T* result = out + blockIdx.x * npixels;
    for (long long i = threadIdx.x; i < npixels; i += GPU_HISTEQ_THREADS)
        result[i] = gpu_histeq_clahe_blend_pixel(
            values, i, width, grid_rows, grid_cols, row_inverse, col_inverse,
            gpu_histeq_clahe_level_tables<256, T>{gpu_histeq_clahe_shared_tables});
}

// ---- small uint16 planes without tables: each tile's sorted values

// What the blend needs of one tile of a ranked plane (gpu_histeq_clahe_ranked): its distinct
// values at entries[first, first + count), the counts clipped off (redistributed as OpenCV does)
// and the step of the residual's bins.
struct gpu_histeq_clahe_tile_ranks {
    int first, count, clipped, step;
};

// Sorts the tile_rows x tile_cols padded pixels of the tile at (row0, col0) into `keys` (`size`
// slots, a power of two at least the tile's pixels m) and appends its distinct values v, in
// ascending order, to entries[first ...] as (v << 16) | S(v), S(v) = sum over the levels b <= v of
// min(count(b), limit) (the plain count without a limit: m < 65536, so S fits 16 bits). Every
// thread of the block calls it; it ends with a barrier. Per tile pixel: one read, the
// log2(size) * (log2(size) + 1) / 2 compare-exchanges of the bitonic sort in shared memory, and
// for the last pixel of each run of equal values one binary search (the run's length).
__device__ gpu_histeq_clahe_tile_ranks gpu_histeq_clahe_rank_tile(
        const unsigned short* values, long long height, long long width, long long row0,
        long long col0, long long tile_rows, long long tile_cols, long long limit,
        unsigned short* keys, long long size, unsigned* entries, int first) {
    const long long m = tile_rows * tile_cols;
    for (long long i = threadIdx.x; i < size; i += GPU_HISTEQ_THREADS) {
        unsigned short key = 0xffff;  // padding sorts last: keys[0, m) are the tile's values
        if (i < m) {
            const long long y = gpu_histeq_reflect101(row0 + i / tile_cols, height);
            const long long x = gpu_histeq_reflect101(col0 + i % tile_cols, width);
            key = values[y * width + x];
        }
        keys[i] = key;
    }
    __syncthreads();
    gpu_histeq_bitonic_sort(keys, size);
    int begin, end;  // this thread's sorted positions, in thread order
    gpu_histeq_thread_bins((int)m, &begin, &end);
    auto kept = [&](int i) -> long long {  // min(count, limit) of the run ending at i, or 0
        if (i + 1 < m && keys[i + 1] == keys[i]) return 0;
        const long long count = i + 1 - gpu_histeq_rank_below(keys, m, keys[i]);
        return limit > 0 && count > limit ? limit : count;
    };
    long long mine = 0;  // (distinct values << 32) + kept counts of this thread's runs
    for (int i = begin; i < end; ++i) {
        const long long k = kept(i);
        mine += k ? (1LL << 32) + k : 0;
    }
    long long total;
    const long long before = gpu_histeq_block_exclusive_sum(mine, &total);
    int d = first + (int)(before >> 32);
    unsigned sum = (unsigned)(before & 0xffffffffLL);
    for (int i = begin; i < end; ++i) {
        const long long k = kept(i);
        if (!k) continue;
        sum += (unsigned)k;
        entries[d++] = ((unsigned)keys[i] << 16) | sum;
    }
    gpu_histeq_clahe_tile_ranks tile;
    tile.first = first;
    tile.count = (int)(total >> 32);
    tile.clipped = limit > 0 ? (int)(m - (total & 0xffffffffLL)) : 0;
    const int residual = tile.clipped % 65536;
    tile.step = residual > 0 && 65536 / residual > 1 ? 65536 / residual : 1;
    __syncthreads();  // keys are reused by the next tile
    return tile;
}

// The table value of a ranked tile at level v, as gpu_histeq_clahe_tile_table computes it from
// the 65536 clipped counts: the clipped cumulative count S(v) (a binary search of the tile's
// distinct values), plus (v + 1) * batch and the residual's bins 0, step, 2 step, ... at or
// below v (min(residual, v / step + 1)), rounded as rint(float(cumulative) * scale).
struct gpu_histeq_clahe_ranked_tables {
    const unsigned* entries;
    const gpu_histeq_clahe_tile_ranks* tiles;
    float scale;
    __device__ float operator()(int t, long long v) const {
        const gpu_histeq_clahe_tile_ranks tile = tiles[t];
        const unsigned* own = entries + tile.first;
        const long long at = gpu_histeq_rank_of(own, (long long)tile.count,
                                                ((unsigned)v << 16) | 0xffffu);
        long long cumulative = at ? own[at - 1] & 0xffffu : 0;
        if (tile.clipped) {
            const long long residual = tile.clipped % 65536, bins = v / tile.step + 1;
            cumulative += (v + 1) * (tile.clipped / 65536) + (bins < residual ? bins : residual);
        }
        return rintf((float)cumulative * scale);
    }
};

// Small uint16 planes in one launch, one block per plane, no 65536-entry table anywhere: the
// tiles one after the other (gpu_histeq_clahe_rank_tile), their distinct values and clipped
// cumulative counts kept in dynamic shared memory, then the blend of the plane's pixels, each of
// the four table values a binary search (gpu_histeq_clahe_ranked_tables). Dynamic shared memory:
// 16 bytes per tile, 4 bytes per padded pixel (the distinct values, at most one per pixel) and 2
// bytes per sort slot (the launcher keeps it within 48 KiB). Per pixel: one read and the sort's
// compare-exchanges per tile it falls in (padding included), then four binary searches of
// log2(distinct values of a tile) shared reads and the blend's float operations. Traffic per
// pixel: 2 bytes read (twice, the second mostly from L1/L2) and 2 written.
// (T is unsigned short, the only instantiation.)
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_clahe_ranked(const T* planes, long long height, long long width, int grid_rows,
                        int grid_cols, long long tile_rows, long long tile_cols, long long limit,
                        float scale, float row_inverse, float col_inverse, long long size,
                        T* out) {
    static_assert(sizeof(T) == 2, "65536 levels");
    extern __shared__ uint4 gpu_histeq_clahe_ranked_shared[];
    const int ntiles = grid_rows * grid_cols;
    auto* tiles = reinterpret_cast<gpu_histeq_clahe_tile_ranks*>(gpu_histeq_clahe_ranked_shared);
    unsigned* entries = reinterpret_cast<unsigned*>(tiles + ntiles);
    unsigned short* keys = reinterpret_cast<unsigned short*>(
        entries + grid_rows * tile_rows * grid_cols * tile_cols);
    const long long npixels = height * width;
    const T* values = planes + blockIdx.x * npixels;
    int first = 0;
    for (int t = 0; t < ntiles; ++t) {
        const gpu_histeq_clahe_tile_ranks tile = gpu_histeq_clahe_rank_tile(
            values, height, width, t / grid_cols * tile_rows, t % grid_cols * tile_cols,
            tile_rows, tile_cols, limit, keys, size, entries, first);
        if (threadIdx.x == 0) tiles[t] = tile;
        first += tile.count;
    }
    __syncthreads();
    const gpu_histeq_clahe_ranked_tables tables{entries, tiles, scale};
    T* result = out + blockIdx.x * npixels;
    for (long long i = threadIdx.x; i < npixels; i += GPU_HISTEQ_THREADS)
        result[i] = gpu_histeq_clahe_blend_pixel(values, i, width, grid_rows, grid_cols,
                                                 row_inverse, col_inverse, tables);
}

// The tiles of larger uint16 planes whose tiles still sort in shared memory, one block per tile
// (block b: tile b % ntiles of plane b / ntiles): gpu_histeq_clahe_rank_tile into the plane's
// `entries` (ntiles x tile pixels uint32, the tile's at tile x tile pixels) and `tiles` (ntiles
// per plane). The keys in dynamic shared memory (2 bytes per sort slot). Per tile pixel: one
// read, the sort's compare-exchanges, one binary search per distinct value. Traffic per padded
// pixel: 2 bytes read, at most 4 written (one entry per distinct value).
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_clahe_rank_tiles(const T* planes, long long height, long long width, int grid_rows,
                            int grid_cols, long long tile_rows, long long tile_cols,
                            long long limit, long long size, unsigned* entries,
                            gpu_histeq_clahe_tile_ranks* tiles) {
    static_assert(sizeof(T) == 2, "65536 levels");
    extern __shared__ uint4 gpu_histeq_clahe_tile_keys[];
    const long long ntiles = (long long)grid_rows * grid_cols, area = tile_rows * tile_cols;
    const long long plane = blockIdx.x / ntiles, tile = blockIdx.x % ntiles;
    const gpu_histeq_clahe_tile_ranks ranks = gpu_histeq_clahe_rank_tile(
        planes + plane * height * width, height, width, tile / grid_cols * tile_rows,
        tile % grid_cols * tile_cols, tile_rows, tile_cols, limit,
        reinterpret_cast<unsigned short*>(gpu_histeq_clahe_tile_keys), size,
        entries + plane * ntiles * area, (int)(tile * area));
    if (threadIdx.x == 0) tiles[blockIdx.x] = ranks;
}

// The blend of gpu_histeq_clahe_blend through the tiles of gpu_histeq_clahe_rank_tiles: each of
// the four table values a binary search of log2(distinct values of a tile) entries (L1/L2:
// 4 bytes per padded pixel of the plane). Grid and traffic as gpu_histeq_clahe_blend.
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_clahe_ranked_blend(const T* planes, long long height, long long width, int grid_rows,
                              int grid_cols, long long area, float scale, float row_inverse,
                              float col_inverse, const unsigned* entries,
                              const gpu_histeq_clahe_tile_ranks* tiles, T* out) {
    const long long ntiles = (long long)grid_rows * grid_cols;
    const gpu_histeq_clahe_ranked_tables tables{entries + blockIdx.y * ntiles * area,
                                                tiles + blockIdx.y * ntiles, scale};
    gpu_histeq_clahe_blend_plane(planes, height, width, grid_rows, grid_cols, row_inverse,
                                 col_inverse, tables, out);
}
