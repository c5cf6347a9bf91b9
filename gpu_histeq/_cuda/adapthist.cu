// scikit-image's equalize_adapthist (CLAHE with its iterative clip redistribution) of images of
// 2 to 6 axes, compiled after common.cuh. Four launches, no host decision between them:
//   gpu_histeq_adapt_prepare   img_as_uint of every pixel (uint16 levels written once, unless the
//                              input is uint16) and each plane's range; floats: NaN/inf and
//                              [-1, 1] bits in the status word;
//   gpu_histeq_adapt_tables    one block per contextual region (tile): the histogram of its
//                              reflect-padded pixels rescaled to [0, 2**14 - 1] and binned, the
//                              clip with scikit-image's redistribution loop run on the device
//                              until the excess is spent, and the region's table;
//   gpu_histeq_adapt_interp    each pixel's 2**D neighbouring tables, weighted and summed in
//                              float32 as scikit-image, truncated to uint16 (in place over the
//                              levels of prepare), and each plane's range of the result;
//   gpu_histeq_adapt_rescale   the final rescale of each plane's range to [0, 1].
// The geometry (reflect padding, regions, weights) is computed from scalars in the kernels.
// Every value equals the portable path's (adaptive._adapthist_planes, _tables.clahe_skimage_clip)
// bit for bit: the same integer clip, the same float64 gray levels and tables, the same float32
// accumulation in the same corner order.
// `stats` (one zeroed uint32 array) holds the status word, then four words per plane, all starting
// at 0: max(level), max(65535 - level) of the input's uint16 levels, then of the interpolated
// levels. Every kernel takes whole arrays and the first plane of its launch (`first`), so that a
// launch plan (_kernels.planned) can replay it with the next call's arrays.

#define GPU_HISTEQ_ADAPT_GRAY 16383         // NR_OF_GRAY - 1: scikit-image's working range
#define GPU_HISTEQ_ADAPT_NOT_FINITE 1u      // status bits (_adapthist.STATUS_*)
#define GPU_HISTEQ_ADAPT_OUT_OF_RANGE 2u

// skimage.util.img_as_uint of one value, as adaptive._as_uint16 (the same integer arithmetic;
// floats scaled in their own type, rounded half to even, clipped). A float that is not finite
// or lies outside [-1, 1] sets its status bit (the call then raises; NaN maps to 0 so nothing
// below converts it).
__device__ unsigned gpu_histeq_adapt_level(unsigned char v, unsigned*) { return v * 257u; }
__device__ unsigned gpu_histeq_adapt_level(unsigned short v, unsigned*) { return v; }
__device__ unsigned gpu_histeq_adapt_level(signed char v, unsigned*) {
    return v > 0 ? (unsigned)((int)v * 16513 / 32) : 0u;  // 7 bits to 16 through int32
}
__device__ unsigned gpu_histeq_adapt_level(short v, unsigned*) {
    return v > 0 ? (unsigned)((int)v * 32769 / 16384) : 0u;  // 15 bits to 16 through int32
}
template <typename F>
__device__ unsigned gpu_histeq_adapt_float_level(F v, unsigned* flags) {
    if (!isfinite(v)) {
        *flags |= GPU_HISTEQ_ADAPT_NOT_FINITE;
        return 0u;
    }
    if (v < (F)-1 || v > (F)1) *flags |= GPU_HISTEQ_ADAPT_OUT_OF_RANGE;
    F scaled = rint(v * (F)65535);
    scaled = scaled < (F)0 ? (F)0 : (scaled > (F)65535 ? (F)65535 : scaled);
    return (unsigned)scaled;
}
__device__ unsigned gpu_histeq_adapt_level(float v, unsigned* flags) {
    return gpu_histeq_adapt_float_level(v, flags);
}
__device__ unsigned gpu_histeq_adapt_level(double v, unsigned* flags) {
    return gpu_histeq_adapt_float_level(v, flags);
}

// ((u - low) / span * 16383) rounded half to even, or min(u, 16383) for a constant plane (span
// 0): adaptive._rescale_to_gray in float64.
__device__ unsigned gpu_histeq_adapt_gray(unsigned u, double low, double span) {
    if (span == 0.0) return u < GPU_HISTEQ_ADAPT_GRAY ? u : GPU_HISTEQ_ADAPT_GRAY;
    return (unsigned)rint(((double)u - low) / span * (double)GPU_HISTEQ_ADAPT_GRAY);
}

// The lowest and highest level of a plane from its two stats words.
struct gpu_histeq_adapt_range {
    double low, span;
    __device__ gpu_histeq_adapt_range(const unsigned* words) {
        low = (double)(65535u - words[1]);
        span = (double)words[0] - low;
    }
};

// Adds this block's max(level) and max(65535 - level) into the plane's two stats words.
__device__ void gpu_histeq_adapt_add_range(unsigned high, unsigned flipped_low, unsigned* words) {
    high = gpu_histeq_block_reduce(high, gpu_histeq_max_op());
    flipped_low = gpu_histeq_block_reduce(flipped_low, gpu_histeq_max_op());
    if (threadIdx.x == 0) {
        atomicMax(&words[0], high);
        atomicMax(&words[1], flipped_low);
    }
}

// The image geometry as kernel arguments: the sizes and region shapes (kernel_size) of
// GPU_HISTEQ_ADAPT_AXES axes, an image of D axes in the last D (the host pads with 1).
#define GPU_HISTEQ_ADAPT_AXES 6
#define GPU_HISTEQ_ADAPT_GEOMETRY                                                                  \
    long long s0, long long s1, long long s2, long long s3, long long s4, long long s5,           \
    long long k0, long long k1, long long k2, long long k3, long long k4, long long k5
#define GPU_HISTEQ_ADAPT_GEOMETRY_ARGS s0, s1, s2, s3, s4, s5, k0, k1, k2, k3, k4, k5

// The geometry of a D-axis image: sizes, region shape and regions per axis, regions and pixels
// per plane.
template <int D>
struct gpu_histeq_adapt_geometry {
    long long size[D], kernel[D], count[D];
    long long ntiles, n;
    __device__ gpu_histeq_adapt_geometry(GPU_HISTEQ_ADAPT_GEOMETRY) {
        const long long s[GPU_HISTEQ_ADAPT_AXES] = {s0, s1, s2, s3, s4, s5};
        const long long k[GPU_HISTEQ_ADAPT_AXES] = {k0, k1, k2, k3, k4, k5};
        ntiles = n = 1;
        for (int a = 0; a < D; ++a) {
            size[a] = s[GPU_HISTEQ_ADAPT_AXES - D + a];
            kernel[a] = k[GPU_HISTEQ_ADAPT_AXES - D + a];
            count[a] = (size[a] + kernel[a] - 1) / kernel[a];
            ntiles *= count[a];
            n *= size[a];
        }
    }
};

// numpy.pad's "reflect" past the end of an axis (the padding is shorter than the axis).
__device__ long long gpu_histeq_adapt_reflect(long long index, long long size) {
    if (size == 1) return 0;
    return index >= size ? 2 * (size - 1) - index : index;
}

// The four stats words of a plane (after the status word).
__device__ unsigned* gpu_histeq_adapt_words(unsigned* stats, long long plane) {
    return stats + 1 + 4 * plane;
}

// img_as_uint of every pixel (written to `levels` unless null) and each plane's range; grid
// (blocks over the pixels of a plane, planes first, first + 1, ...). Per pixel: one read, one
// 2-byte write, a few integer or float operations. Traffic: sizeof(T) + 2 bytes per pixel.
template <typename T>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_adapt_prepare(const T* planes, long long n, long long first, unsigned short* levels,
                         unsigned* stats) {
    const long long plane = first + blockIdx.y;
    const T* values = planes + plane * n;
    unsigned high = 0, flipped_low = 0, flags = 0;
    for (long long i = blockIdx.x * (long long)GPU_HISTEQ_THREADS + threadIdx.x; i < n;
         i += (long long)gridDim.x * GPU_HISTEQ_THREADS) {
        const unsigned u = gpu_histeq_adapt_level(values[i], &flags);
        if (levels) levels[plane * n + i] = (unsigned short)u;
        high = u > high ? u : high;
        flipped_low = 65535u - u > flipped_low ? 65535u - u : flipped_low;
    }
    if (flags) atomicOr(stats, flags);
    gpu_histeq_adapt_add_range(high, flipped_low, gpu_histeq_adapt_words(stats, plane));
}

// Sum of one value per lane over warp 0 (every lane gets it).
__device__ long long gpu_histeq_adapt_warp_sum(long long value) {
    for (int offset = 16; offset > 0; offset /= 2) value += __shfl_xor_sync(0xffffffffu, value, offset);
    return value;
}

// Largest value over warp 0 (every lane gets it).
__device__ long long gpu_histeq_adapt_warp_max(long long value) {
    for (int offset = 16; offset > 0; offset /= 2) {
        const long long other = __shfl_xor_sync(0xffffffffu, value, offset);
        value = other > value ? other : value;
    }
    return value;
}

// scikit-image's clip_histogram of one region's `nbins` counts in place (every thread of the
// block calls it; ends with a barrier), as _tables.clahe_skimage_clip: cap every bin at `limit`,
// give every bin under limit - excess / nbins that increment, set the bins from there to the
// limit to the limit; then, while excess is left, scikit-image's loop: for start = 0, 1, ...,
// one more count to every bin under the limit among start, start + s, start + 2s, ... with
// s = max(under / excess, 1), until the excess is spent, or a whole round spent none. The loop
// runs in warp 0, each lane on its own bins (b % 32 == lane), only the two counts it changes
// crossing lanes (one shuffle reduction per start); a round stops early past the last bin
// under the limit (no later start can pick one). No host decision.
__device__ void gpu_histeq_adapt_clip(unsigned* hist, int nbins, long long limit) {
    int begin, end;
    gpu_histeq_thread_bins(nbins, &begin, &end);
    long long over = 0;
    for (int v = begin; v < end; ++v) {
        if (hist[v] > limit) {
            over += hist[v] - limit;
            hist[v] = (unsigned)limit;
        }
    }
    long long excess = gpu_histeq_block_reduce(over, gpu_histeq_sum_op());
    const long long increment = excess / nbins, upper = limit - increment;
    long long change = 0;
    for (int v = begin; v < end; ++v) {
        long long count = hist[v];
        if (count < upper) {
            count += increment;
            change -= increment;
        }
        if (count >= upper && count < limit) {
            change += count - limit;
            count = limit;
        }
        hist[v] = (unsigned)count;
    }
    excess += gpu_histeq_block_reduce(change, gpu_histeq_sum_op());
    if (excess > 0 && threadIdx.x < 32) {
        const int lane = threadIdx.x;
        long long under = 0;
        for (int v = lane; v < nbins; v += 32) under += hist[v] < limit;
        under = gpu_histeq_adapt_warp_sum(under);
        for (;;) {
            const long long before = excess;
            long long last = -1;  // the last bin under the limit
            for (int v = lane; v < nbins; v += 32)
                if (hist[v] < limit) last = v;
            last = gpu_histeq_adapt_warp_max(last);
            for (long long start = 0; start <= last && excess > 0; ++start) {
                const long long step = under / excess > 1 ? under / excess : 1;
                long long changed = 0;  // picked << 32 | bins that reached the limit
                long long v = start + ((lane - start) % 32 + 32) % 32;
                for (; v < nbins; v += 32) {
                    if ((v - start) % step == 0 && hist[v] < limit) {
                        hist[v] += 1;
                        changed += (1ll << 32) + (hist[v] == limit);
                    }
                }
                changed = gpu_histeq_adapt_warp_sum(changed);
                excess -= changed >> 32;
                under -= changed & 0xffffffffll;
            }
            if (excess <= 0 || excess == before) break;
        }
    }
    __syncthreads();
}

// One region's table per block: block b is region b % ntiles of plane first + b / ntiles, its
// table and global histogram the b-th of this launch. Its kernel_size pixels, past the image end reflected (numpy.pad "reflect"), are
// rescaled with the plane's range (gpu_histeq_adapt_gray), binned (gray / bin_size) and counted
// in `hist` (dynamic shared memory of nbins uint32, or the block's nbins slice of `scratch`
// when there are more bins than that holds); clipped (gpu_histeq_adapt_clip; not when the
// limit is at least the region's pixels: nothing to clip); then
// table[v] = floor(min(float64(cumsum[v]) * scale, 16383)) with scale = 16383 / pixels, as
// uint16 (exact: integers up to 16383). Per region pixel: one 2-byte read, a float64 division
// and a shared atomic. Traffic: the planes' levels once (plus the padding), nbins * 2 bytes per
// region written.
template <int D>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_adapt_tables(const unsigned short* levels, unsigned* stats, GPU_HISTEQ_ADAPT_GEOMETRY,
                        int nbins, int bin_size, long long limit, double scale, long long first,
                        unsigned* scratch, unsigned short* tables) {
    extern __shared__ unsigned gpu_histeq_adapt_shared_hist[];
    const gpu_histeq_adapt_geometry<D> g(GPU_HISTEQ_ADAPT_GEOMETRY_ARGS);
    const long long plane = first + blockIdx.x / g.ntiles, tile = blockIdx.x % g.ntiles;
    const unsigned short* values = levels + plane * g.n;
    const gpu_histeq_adapt_range range(gpu_histeq_adapt_words(stats, plane));
    unsigned* hist = scratch ? scratch + blockIdx.x * (long long)nbins : gpu_histeq_adapt_shared_hist;
    for (int v = threadIdx.x; v < nbins; v += GPU_HISTEQ_THREADS) hist[v] = 0;
    __syncthreads();
    long long origin[D], area = 1;
    for (long long a = D - 1, t = tile; a >= 0; --a) {  // the region's first pixel, C order
        origin[a] = t % g.count[a] * g.kernel[a];
        t /= g.count[a];
        area *= g.kernel[a];
    }
    for (long long i = threadIdx.x; i < area; i += GPU_HISTEQ_THREADS) {
        long long rest = i, index = 0, stride = 1;
        for (int a = D - 1; a >= 0; --a) {
            index += gpu_histeq_adapt_reflect(origin[a] + rest % g.kernel[a], g.size[a]) * stride;
            rest /= g.kernel[a];
            stride *= g.size[a];
        }
        atomicAdd(&hist[gpu_histeq_adapt_gray(values[index], range.low, range.span) / bin_size], 1u);
    }
    __syncthreads();
    if (limit < area) gpu_histeq_adapt_clip(hist, nbins, limit);
    int begin, end;
    gpu_histeq_thread_bins(nbins, &begin, &end);
    long long sum = 0;
    for (int v = begin; v < end; ++v) sum += hist[v];
    long long total;
    long long cumulative = gpu_histeq_block_exclusive_sum(sum, &total);
    unsigned short* table = tables + blockIdx.x * (long long)nbins;
    for (int v = begin; v < end; ++v) {
        cumulative += hist[v];
        const double mapped = (double)cumulative * scale;
        table[v] = (unsigned short)floor(mapped < (double)GPU_HISTEQ_ADAPT_GRAY
                                         ? mapped : (double)GPU_HISTEQ_ADAPT_GRAY);
    }
}

// Each pixel through the tables of its 2**D neighbouring regions, as scikit-image: along each
// axis the pixel sits in block b = (x + k / 2) / k at c = ((x + k / 2) % k) / k (float64); corner
// e in {0, 1} takes region clip(b - 1 + e) with weight (1 - c, c)[e]; corners in C order
// (numpy.ndindex), each weight the product of its axes' factors from the last axis to the first,
// total += float32(float64(table) * weight) in float32, truncated to uint16. Grid (blocks over
// the pixels of a plane, planes first, first + 1, ...), plane p's tables the (p - table_first)-th
// of `tables`; `out` may be `levels` itself (each pixel reads only its own level). Adds each plane's range of the result into stats words 2 and 3. Per
// pixel: a 2-byte read and write, 2**D table reads (L2-resident: ntiles * nbins * 2 bytes per
// plane), 2**D float64 products.
template <int D>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_adapt_interp(const unsigned short* levels, unsigned* stats, GPU_HISTEQ_ADAPT_GEOMETRY,
                        int nbins, int bin_size, long long first, long long table_first,
                        const unsigned short* tables, unsigned short* out) {
    const gpu_histeq_adapt_geometry<D> g(GPU_HISTEQ_ADAPT_GEOMETRY_ARGS);
    const long long plane = first + blockIdx.y;
    const long long n = g.n;
    unsigned* words = gpu_histeq_adapt_words(stats, plane);
    const gpu_histeq_adapt_range range(words);
    const unsigned short* plane_tables = tables + (plane - table_first) * g.ntiles * nbins;
    unsigned high = 0, flipped_low = 0;
    for (long long i = blockIdx.x * (long long)GPU_HISTEQ_THREADS + threadIdx.x; i < n;
         i += (long long)gridDim.x * GPU_HISTEQ_THREADS) {
        long long region[D][2];
        double factor[D][2];
        long long rest = i;
        for (int a = D - 1; a >= 0; --a) {
            const long long padded = rest % g.size[a] + g.kernel[a] / 2;
            rest /= g.size[a];
            const long long block = padded / g.kernel[a];
            const double c = (double)(padded % g.kernel[a]) / (double)g.kernel[a];
            const long long first = block - 1 > 0 ? block - 1 : 0;
            const long long second = block < g.count[a] - 1 ? block : g.count[a] - 1;
            region[a][0] = first < g.count[a] - 1 ? first : g.count[a] - 1;
            region[a][1] = second;
            factor[a][0] = 1.0 - c;
            factor[a][1] = c;
        }
        const long long bin = gpu_histeq_adapt_gray(levels[plane * n + i], range.low, range.span)
                              / bin_size;
        float total = 0.0f;
        for (int corner = 0; corner < (1 << D); ++corner) {
            long long tile = 0;
            for (int a = 0; a < D; ++a) tile = tile * g.count[a] + region[a][(corner >> (D - 1 - a)) & 1];
            double weight = factor[D - 1][corner & 1];
            for (int a = D - 2; a >= 0; --a) weight = weight * factor[a][(corner >> (D - 1 - a)) & 1];
            total += (float)((double)plane_tables[tile * nbins + bin] * weight);
        }
        const unsigned level = (unsigned short)total;
        out[plane * n + i] = (unsigned short)level;
        high = level > high ? level : high;
        flipped_low = 65535u - level > flipped_low ? 65535u - level : flipped_low;
    }
    gpu_histeq_adapt_add_range(high, flipped_low, words + 2);
}

// The final rescale of each plane's interpolated levels to [0, 1] in the result type R, as
// adaptive._adapthist_planes: (level - low) / (high - low), or clip(level, 0, 1) for a constant
// plane. Grid (blocks over the pixels of a plane, planes first, first + 1, ...). Traffic: 2 bytes read and
// sizeof(R) written per pixel.
template <typename R>
__global__ void __launch_bounds__(GPU_HISTEQ_THREADS)
gpu_histeq_adapt_rescale(const unsigned short* levels, unsigned* stats, long long n,
                         long long first, R* out) {
    const long long plane = first + blockIdx.y;
    const unsigned* words = gpu_histeq_adapt_words(stats, plane);
    const R high = (R)words[2], low = (R)(65535u - words[3]);
    const R span = high - low;
    for (long long i = blockIdx.x * (long long)GPU_HISTEQ_THREADS + threadIdx.x; i < n;
         i += (long long)gridDim.x * GPU_HISTEQ_THREADS) {
        const R level = (R)levels[plane * n + i];
        out[plane * n + i] = span == (R)0 ? (level < (R)1 ? level : (R)1) : (level - low) / span;
    }
}
