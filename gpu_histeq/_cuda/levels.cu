// Integer images with one bin per level (uint8: 256, uint16: 65536): methods opencv, pil and
// skimage. Compiled after common.cuh. Every table is bit-identical to the portable path's
// (equalize.opencv_lut, equalize.pil_lut, histogram.cdf_table over the plane's own levels).

// The table of one plane from its level counts; every thread of the block takes part.
// opencv:  round_half_even(float(cum[v] - h[first]) * float((L - 1) / float(total - h[first])))
// pil:     (step / 2 + cum[v - 1]) / step with step = (total - h[last]) / 255
// skimage: max(cum[v], h[first]) / total in double (levels below the first one take its value)
template <int METHOD, typename OutT>
__device__ void gpu_histeq_level_table(const unsigned* hist, int levels, OutT* table) {
    int begin, end;
    gpu_histeq_thread_bins(levels, &begin, &end);
    long long sum = 0;
    int first = levels, last = -1, present = 0;
    for (int v = begin; v < end; ++v) {
        const unsigned count = hist[v];
        sum += count;
        if (count) {
            first = min(first, v);
            last = v;
            ++present;
        }
    }
    long long total;
    long long cumulative = gpu_histeq_block_exclusive_sum(sum, &total);
    first = gpu_histeq_block_reduce(first, gpu_histeq_min_op());
    last = gpu_histeq_block_reduce(last, gpu_histeq_max_op());
    present = gpu_histeq_block_reduce(present, gpu_histeq_sum_op());
    const long long first_count = present ? hist[first] : 0;
    const long long last_count = present ? hist[last] : 0;
    if (METHOD == GPU_HISTEQ_OPENCV) {
        const long long spread = total - first_count;
        const float scale = gpu_histeq_opencv_scale(levels, spread);
        for (int v = begin; v < end; ++v) {
            cumulative += hist[v];
            const float entry = gpu_histeq_opencv_entry(cumulative, first_count, scale, levels);
            table[v] = spread == 0 ? (OutT)v : (OutT)entry;
        }
    } else if (METHOD == GPU_HISTEQ_PIL) {
        const long long step = (total - last_count) / 255;
        const bool unchanged = present <= 1 || step == 0;
        for (int v = begin; v < end; ++v) {
            const long long level = (step / 2 + cumulative) / (step > 1 ? step : 1);
            table[v] = unchanged ? (OutT)v : (OutT)(level < 255 ? level : 255);
            cumulative += hist[v];
        }
    } else {
        for (int v = begin; v < end; ++v) {
            cumulative += hist[v];
            table[v] = (OutT)gpu_histeq_skimage_entry(cumulative, first_count, total);
        }
    }
    __syncthreads();
}

// The 256-level table of a block whose warps counted into their own rows of `warp_hists`: a
// barrier, thread t merges bin t of every warp into warp_hists[0], then the method's table.
template <int METHOD, typename OutT>
__device__ void gpu_histeq_warp_level_table(unsigned (*warp_hists)[256], OutT* table) {
    __syncthreads();
    unsigned count = 0;
    for (int w = 0; w < GPU_HISTEQ_WARPS; ++w) count += warp_hists[w][threadIdx.x];
    warp_hists[0][threadIdx.x] = count;
    __syncthreads();
    gpu_histeq_level_table<METHOD>(warp_hists[0], 256, table);
}

// Small uint8 planes, the whole pipeline in one launch: block p equalizes plane p (its span
// with `spans`, gpu_histeq_locate). Per pixel: one shared-memory atomic (histograms private to
// each warp) and one shared-memory table read. Traffic per pixel: 1 byte read (+1 mask byte)
// and sizeof(OutT) bytes written; with `cache` the plane stays in shared memory between the
// passes, else the remap reads it a second time (mostly from L2, which the block filled a
// moment before). A plane of 0 pixels writes nothing.
template <int METHOD, typename OutT>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_equalize_small_u8(const unsigned char* planes, const bool* masks,
                             const long long* spans, long long n, int aligned, int cache,
                             OutT* out) {
    __shared__ unsigned warp_hists[GPU_HISTEQ_WARPS][256];
    __shared__ OutT table[256];
    extern __shared__ uint4 gpu_histeq_plane_cache[];
    const gpu_histeq_work work = gpu_histeq_locate(spans, nullptr, 0, n);
    const long long head = gpu_histeq_head<unsigned char>(work.offset, aligned);
    const unsigned char* plane = planes + work.offset;
    const bool* mask = masks ? masks + work.offset : nullptr;
    for (int i = threadIdx.x; i < GPU_HISTEQ_WARPS * 256; i += GPU_HISTEQ_THREADS)
        warp_hists[i / 256][i % 256] = 0;
    if (cache) plane = gpu_histeq_copy_plane(plane, gpu_histeq_plane_cache, work.n, head);
    __syncthreads();
    unsigned* hist = warp_hists[threadIdx.x / 32];
    gpu_histeq_for_pixels(plane, mask, work.n, head, threadIdx.x, GPU_HISTEQ_THREADS,
                          [&](unsigned char v, bool selected) { if (selected) atomicAdd(&hist[v], 1u); });
    gpu_histeq_warp_level_table<METHOD>(warp_hists, table);
    gpu_histeq_map_pixels(plane, out + work.offset, work.n, head, threadIdx.x, GPU_HISTEQ_THREADS,
                          [&](unsigned char v) { return table[v]; });
}

// Level histograms of many planes, bin = clamp(v - low[plane]); grid (planes, blocks per plane),
// or with `spans` the 1-d grid of every plane's blocks (gpu_histeq_locate). Per pixel: one
// shared-memory atomic when `private_bins` (nbins <= 1024: per-warp histograms, flushed once per
// block with at most nbins global atomics), else one global atomic (L2). Traffic per pixel:
// sizeof(T) bytes read (+1 mask byte); with `spans` a binary search over the planes per block.
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_level_histogram(const T* planes, const bool* masks, const long long* spans,
                           const long long* first_blocks, long long nplanes, long long n,
                           int aligned, const long long* low, int nbins, int private_bins,
                           unsigned* hists) {
    extern __shared__ unsigned gpu_histeq_private_hists[];  // GPU_HISTEQ_WARPS x nbins
    const gpu_histeq_work work = gpu_histeq_locate(spans, first_blocks, nplanes, n);
    const long long shift = low ? low[work.plane] : 0;
    unsigned* hist = hists + work.plane * nbins;
    unsigned* target = gpu_histeq_count_target(gpu_histeq_private_hists, hist, nbins, private_bins);
    gpu_histeq_for_pixels(planes + work.offset, masks ? masks + work.offset : nullptr, work.n,
                          gpu_histeq_head<T>(work.offset, aligned),
                          work.block * GPU_HISTEQ_THREADS + threadIdx.x, work.blocks * GPU_HISTEQ_THREADS,
                          [&](T v, bool selected) {
                              if (!selected) return;
                              long long bin = (long long)v - shift;
                              bin = bin < 0 ? 0 : (bin >= nbins ? nbins - 1 : bin);
                              atomicAdd(&target[bin], 1u);
                          });
    gpu_histeq_flush_private(gpu_histeq_private_hists, hist, nbins, private_bins);
}

// Tables of many planes from their level counts, one block per plane. Per level: one count
// read (4 bytes) and one entry written (sizeof(OutT) bytes); no per-pixel work.
template <int METHOD, typename OutT>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_level_tables(const unsigned* hists, int levels, OutT* tables) {
    const long long p = blockIdx.x;
    gpu_histeq_level_table<METHOD>(hists + p * levels, levels, tables + p * levels);
}

// out = table[plane][value] for many planes, grids as gpu_histeq_level_histogram; table_stride 0
// shares one table. Per pixel: one table read, from shared memory when levels <= 256 (else
// global, L2-resident). Traffic per pixel: sizeof(T) read and sizeof(OutT) written, 16-byte
// loads.
template <typename T, typename OutT>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_remap(const T* planes, const long long* spans, const long long* first_blocks,
                 long long nplanes, long long n, int aligned, const OutT* tables,
                 long long table_stride, int levels, OutT* out) {
    __shared__ OutT shared_table[256];
    const gpu_histeq_work work = gpu_histeq_locate(spans, first_blocks, nplanes, n);
    const OutT* table = tables + work.plane * table_stride;
    if (levels <= 256) {
        for (int v = threadIdx.x; v < levels; v += GPU_HISTEQ_THREADS) shared_table[v] = table[v];
        __syncthreads();
        table = shared_table;
    }
    gpu_histeq_map_pixels(planes + work.offset, out + work.offset, work.n,
                          gpu_histeq_head<T>(work.offset, aligned),
                          work.block * GPU_HISTEQ_THREADS + threadIdx.x, work.blocks * GPU_HISTEQ_THREADS,
                          [&](T v) { return table[v]; });
}

// Lowest and highest selected level of many planes (histogram's per-plane range), grids as
// gpu_histeq_level_histogram; `ranges` is (2, nplanes) int64, row 0 starting at the largest
// int64 (a plane keeps it when no pixel is selected), row 1 at the smallest. Per pixel: two
// integer comparisons; two global atomics per block. Traffic: sizeof(T) bytes read per pixel
// (+1 mask byte), 16 bytes written per block.
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_level_range(const T* planes, const bool* masks, const long long* spans,
                       const long long* first_blocks, long long nplanes, long long n,
                       int aligned, long long* ranges) {
    const gpu_histeq_work work = gpu_histeq_locate(spans, first_blocks, nplanes, n);
    long long lo = 0x7fffffffffffffffLL, hi = -0x7fffffffffffffffLL - 1;
    gpu_histeq_for_pixels(planes + work.offset, masks ? masks + work.offset : nullptr, work.n,
                          gpu_histeq_head<T>(work.offset, aligned),
                          work.block * GPU_HISTEQ_THREADS + threadIdx.x, work.blocks * GPU_HISTEQ_THREADS,
                          [&](T v, bool selected) {
                              if (!selected) return;
                              lo = (long long)v < lo ? (long long)v : lo;
                              hi = (long long)v > hi ? (long long)v : hi;
                          });
    lo = gpu_histeq_block_reduce(lo, gpu_histeq_min_op());
    hi = gpu_histeq_block_reduce(hi, gpu_histeq_max_op());
    if (threadIdx.x == 0 && lo <= hi) {
        atomicMin(ranges + work.plane, lo);
        atomicMax(ranges + nplanes + work.plane, hi);
    }
}

// scikit-image's tables of many 16-bit planes without a table: block p turns plane p's level
// counts into inclusive cumulative counts in place and writes stats[2p] = the count of its
// lowest level present, stats[2p + 1] = its total, from which gpu_histeq_remap_cumulative makes
// each pixel's entry (the same gpu_histeq_skimage_entry as gpu_histeq_level_table). Per level:
// one count read twice and written once (4 bytes each); no per-pixel work.
template <typename Count>  // unsigned: the level histograms' counts
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_level_cumulative(Count* hists, int levels, long long* stats) {
    Count* hist = hists + (long long)blockIdx.x * levels;
    int begin, end;
    gpu_histeq_thread_bins(levels, &begin, &end);
    long long sum = 0;
    int first = levels;
    for (int v = begin; v < end; ++v) {
        sum += hist[v];
        if (hist[v] && first == levels) first = v;
    }
    first = gpu_histeq_block_reduce(first, gpu_histeq_min_op());
    const long long first_count = first < levels ? hist[first] : 0;
    long long total;
    long long cumulative = gpu_histeq_block_exclusive_sum(sum, &total);  // barriers: reads done
    for (int v = begin; v < end; ++v) {
        cumulative += hist[v];
        hist[v] = (Count)cumulative;
    }
    if (threadIdx.x == 0) {
        stats[2 * blockIdx.x] = first_count;
        stats[2 * blockIdx.x + 1] = total;
    }
}

// out = max(cum[v + offset], first) / max(total, 1) (gpu_histeq_skimage_entry) of every pixel,
// grids as gpu_histeq_level_histogram; `cumulative` and `stats` from gpu_histeq_level_cumulative
// (offset 32768 for int16 levels binned from -32768). Per pixel: one cumulative count read
// (L2-resident) and one float64 division. Traffic per pixel: sizeof(T) read, 8 bytes written.
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_remap_cumulative(const T* planes, const long long* spans, const long long* first_blocks,
                            long long nplanes, long long n, int aligned, const unsigned* cumulative,
                            long long stride, long long offset, const long long* stats,
                            double* out) {
    const gpu_histeq_work work = gpu_histeq_locate(spans, first_blocks, nplanes, n);
    const unsigned* cum = cumulative + work.plane * stride + offset;
    const long long first_count = stats[2 * work.plane], total = stats[2 * work.plane + 1];
    gpu_histeq_map_pixels(planes + work.offset, out + work.offset, work.n,
                          gpu_histeq_head<T>(work.offset, aligned),
                          work.block * GPU_HISTEQ_THREADS + threadIdx.x, work.blocks * GPU_HISTEQ_THREADS,
                          [&](T v) { return gpu_histeq_skimage_entry(cum[v], first_count, total); });
}
