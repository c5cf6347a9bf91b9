// The (P, B) end of histogram / cumulative_distribution: from the uint32 counts of the level or
// uniform histogram kernels to the public results in one launch, one block per plane (the
// portable path: astype(int64), the bin centers, histogram.cdf_table). Compiled after
// common.cuh and uniform.cu (gpu_histeq_range, the status bits).

// Bit of the status word of gpu_histeq_uniform_finish (after uniform.cu's bits 1, 2 and 4): a
// plane whose low > high, i.e. no selected pixel (or only NaN selected; the caller tells the
// two apart from GPU_HISTEQ_NOT_FINITE).
#define GPU_HISTEQ_NO_PIXEL 8

// Counts and cumulative distribution of one plane (gpu_histeq_cdf_walk); `counts` / `cdf` may
// be null (not wanted). cdf as histogram.cdf_table: CdfT(cumsum / double(max(total, 1))).
template <typename CdfT>
__device__ void gpu_histeq_counts_and_cdf(const unsigned* hist, int nbins, long long* counts,
                                          CdfT* cdf) {
    gpu_histeq_cdf_walk(hist, nbins, [&](int k, unsigned count, double fraction) {
        if (counts) counts[k] = count;
        if (cdf) cdf[k] = (CdfT)fraction;
    });
}

// Level bins (integer planes): block p writes plane p's int64 counts (or its cdf) and its
// centers low[p] + k (low null: 0). Per bin: one count read (4 bytes), 16 bytes written.
template <typename CdfT>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_level_finish(const unsigned* hists, const long long* low, int nbins, long long* counts,
                        CdfT* cdf, long long* centers) {
    const long long p = blockIdx.x;
    gpu_histeq_counts_and_cdf(hists + p * nbins, nbins, counts ? counts + p * nbins : nullptr,
                              cdf ? cdf + p * nbins : nullptr);
    const long long first = low ? low[p] : 0;
    for (int k = threadIdx.x; k < nbins; k += GPU_HISTEQ_THREADS) centers[p * nbins + k] = first + k;
}

// Uniform bins (floating planes, numpy.histogram's over [low[p], high[p]], widened when equal;
// low / high float32 for float16 planes): block p writes plane p's int64 counts (or its cdf)
// and its centers (left + right) / 2 in T (histogram.UniformBinning.centers), and ORs into
// status[0] GPU_HISTEQ_REPEATED_EDGES (edges that do not increase, numpy.histogram refuses
// them) and GPU_HISTEQ_NO_PIXEL; status[1] keeps the largest nplanes - p of a plane with no
// pixel selected (the first such plane). Per bin: one count read, 8 + sizeof(T) bytes written.
template <typename T, typename CdfT>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_uniform_finish(const unsigned* hists, const typename gpu_histeq_float_traits<T>::wide* low,
                          const typename gpu_histeq_float_traits<T>::wide* high, int nbins,
                          long long* counts, CdfT* cdf, T* centers, int* status) {
    const long long p = blockIdx.x;
    const gpu_histeq_range<T> range(T(low[p]), T(high[p]), true);
    gpu_histeq_counts_and_cdf(hists + p * nbins, nbins, counts ? counts + p * nbins : nullptr,
                              cdf ? cdf + p * nbins : nullptr);
    int flags = 0;
    for (int k = threadIdx.x; k < nbins; k += GPU_HISTEQ_THREADS) {
        const T left = range.edge(k, nbins), right = range.edge(k + 1, nbins);
        centers[p * nbins + k] = (left + right) / (T)2;
        if (nbins > 1 && !(right > left)) flags |= GPU_HISTEQ_REPEATED_EDGES;
    }
    if (!(low[p] <= high[p])) flags |= GPU_HISTEQ_NO_PIXEL;
    flags = gpu_histeq_block_reduce(flags, gpu_histeq_or_op());
    if (threadIdx.x == 0 && flags) {
        atomicOr(status, flags);
        if (flags & GPU_HISTEQ_NO_PIXEL) atomicMax(status + 1, (int)(gridDim.x - p));
    }
}
