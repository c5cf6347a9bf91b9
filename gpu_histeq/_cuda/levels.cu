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
        const float scale = (float)(levels - 1) / (float)(spread > 1 ? spread : 1);
        for (int v = begin; v < end; ++v) {
            cumulative += hist[v];
            const float level = rintf((float)(cumulative - first_count) * scale);
            const float clipped = fminf(fmaxf(level, 0.0f), (float)(levels - 1));
            table[v] = spread == 0 ? (OutT)v : (OutT)clipped;
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
        const double denominator = (double)(total > 1 ? total : 1);
        for (int v = begin; v < end; ++v) {
            cumulative += hist[v];
            table[v] = (OutT)((double)(cumulative > first_count ? cumulative : first_count) / denominator);
        }
    }
    __syncthreads();
}

// Small uint8 planes, the whole pipeline in one launch: block p equalizes plane p.
// Per pixel: one shared-memory atomic (histograms private to each warp) and one shared-memory
// table read. Traffic per pixel: 1 byte read (+1 mask byte) and sizeof(OutT) bytes written;
// with `cache` the plane stays in shared memory between the passes, else the remap reads it a
// second time (mostly from L2, which the block filled a moment before).
template <int METHOD, typename OutT>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_equalize_small_u8(const unsigned char* planes, const bool* masks, long long n,
                             int aligned, int cache, OutT* out) {
    __shared__ unsigned warp_hists[GPU_HISTEQ_WARPS][256];
    __shared__ OutT table[256];
    extern __shared__ uint4 gpu_histeq_plane_cache[];
    const long long p = blockIdx.x;
    const unsigned char* plane = planes + p * n;
    const bool* mask = masks ? masks + p * n : nullptr;
    for (int i = threadIdx.x; i < GPU_HISTEQ_WARPS * 256; i += GPU_HISTEQ_THREADS)
        warp_hists[i / 256][i % 256] = 0;
    if (cache) {
        unsigned char* cached = reinterpret_cast<unsigned char*>(gpu_histeq_plane_cache);
        gpu_histeq_copy_plane(plane, cached, n);
        plane = cached;
    }
    __syncthreads();
    unsigned* hist = warp_hists[threadIdx.x / 32];
    gpu_histeq_for_pixels(plane, mask, n, aligned, threadIdx.x, GPU_HISTEQ_THREADS,
                          [&](unsigned char v, bool selected) { if (selected) atomicAdd(&hist[v], 1u); });
    __syncthreads();
    unsigned count = 0;  // thread t merges bin t of every warp into warp_hists[0]
    for (int w = 0; w < GPU_HISTEQ_WARPS; ++w) count += warp_hists[w][threadIdx.x];
    warp_hists[0][threadIdx.x] = count;
    __syncthreads();
    gpu_histeq_level_table<METHOD>(warp_hists[0], 256, table);
    gpu_histeq_map_pixels(plane, out + p * n, n, aligned, threadIdx.x, GPU_HISTEQ_THREADS,
                          [&](unsigned char v) { return table[v]; });
}

// Level histograms of many planes, grid (planes, blocks per plane): bin = clamp(v - low[p]).
// Per pixel: one shared-memory atomic when `private_bins` (nbins <= 1024: per-warp histograms,
// flushed once per block with at most nbins global atomics), else one global atomic (L2).
// Traffic per pixel: sizeof(T) bytes read (+1 mask byte).
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_level_histogram(const T* planes, const bool* masks, long long n, int aligned,
                           const long long* low, int nbins, int private_bins, unsigned* hists) {
    extern __shared__ unsigned gpu_histeq_private_hists[];  // GPU_HISTEQ_WARPS x nbins
    const long long p = blockIdx.x;
    const long long shift = low ? low[p] : 0;
    unsigned* hist = hists + p * nbins;
    unsigned* target = gpu_histeq_count_target(gpu_histeq_private_hists, hist, nbins, private_bins);
    gpu_histeq_for_pixels(planes + p * n, masks ? masks + p * n : nullptr, n, aligned,
                          blockIdx.y * GPU_HISTEQ_THREADS + threadIdx.x, gridDim.y * GPU_HISTEQ_THREADS,
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

// out = table[p][value] for many planes, grid (planes, blocks per plane); table_stride 0 shares
// one table. Per pixel: one table read, from shared memory when levels <= 256 (else global,
// L2-resident). Traffic per pixel: sizeof(T) read and sizeof(OutT) written, 16-byte loads.
template <typename T, typename OutT>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_remap(const T* planes, long long n, int aligned, const OutT* tables,
                 long long table_stride, int levels, OutT* out) {
    __shared__ OutT shared_table[256];
    const long long p = blockIdx.x;
    const OutT* table = tables + p * table_stride;
    if (levels <= 256) {
        for (int v = threadIdx.x; v < levels; v += GPU_HISTEQ_THREADS) shared_table[v] = table[v];
        __syncthreads();
        table = shared_table;
    }
    gpu_histeq_map_pixels(planes + p * n, out + p * n, n, aligned,
                          blockIdx.y * GPU_HISTEQ_THREADS + threadIdx.x, gridDim.y * GPU_HISTEQ_THREADS,
                          [&](T v) { return table[v]; });
}
