/* Where the compiled float equalize spends its time, per pixel, on one thread.
 *
 * Includes gpu_histeq/_levels.c and times its steps one by one on the seed's data
 * (np.random.rand(planes, 1, 96, 96): uniform [0, 1) planes of 9216 pixels), float64 and float32:
 * range (the plane's first read from memory), bin (bins and segments), count (the four
 * sub-histograms), tables (CDF and slopes), remap (numpy.interp through the segments, into a
 * warm output); bin and count together as equalize does them (512 pixels binned, then counted
 * while their bins are in L1), then the whole gpu_histeq_equalize_* call into a warm output and into fresh
 * pages (the page faults and zeroing that NumPy's fresh result costs; huge pages advised as NumPy
 * does). Each figure is the best of `repeats` passes
 * over all planes, in this thread's CPU time (time preempted by other work on a shared machine
 * does not count). Built and run by `python benchmarks/bench_cpu.py --breakdown` with the flags
 * setup.py uses; GPU_HISTEQ_CPU_SIMD=0 times the generic loops, =avx2 the AVX2 ones.
 *
 * Usage: breakdown_float PLANES REPEATS
 */
#include "../gpu_histeq/_levels.c"

#include <stdio.h>
#include <sys/mman.h>
#include <time.h>

/* _levels.c's module init refers to it; never called here. */
PyObject *PyModule_Create2(PyModuleDef *definition, int version) { return NULL; }

#define PIXELS 9216
#define NBINS 256

/* This thread's CPU time: the machine is shared, and time spent preempted is not the code's. */
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* What one now() call costs (subtracted from each timed step). */
static double clock_cost(void)
{
    double best = 1e30;
    for (int r = 0; r < 1000; ++r) {
        const double a = now(), b = now();
        best = b - a < best ? b - a : best;
    }
    return best;
}
static double tick;

static uint64_t state = 0x9E3779B97F4A7C15u;
static double uniform(void) /* xorshift64*, [0, 1) */
{
    state ^= state >> 12;
    state ^= state << 25;
    state ^= state >> 27;
    return (double)((state * 2685821657736338717u) >> 11) * 0x1.0p-53;
}

static void *fresh(size_t bytes)
{
    void *memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(memory, bytes, MADV_HUGEPAGE); /* as NumPy does for large arrays */
#endif
    return memory;
}

#define GPU_HISTEQ_BREAKDOWN(T, NAME)                                                          \
    static void breakdown_##NAME(const T *values, T *out, int64_t planes, int repeats)         \
    {                                                                                          \
        int32_t *bins = malloc(PIXELS * sizeof(int32_t)), *segments = malloc(PIXELS * sizeof(int32_t)); \
        uint32_t *sub = calloc(4 * NBINS, sizeof(uint32_t));                                   \
        int64_t counts[NBINS], failed;                                                         \
        T edges[2 * NBINS + 1], *centers = edges + NBINS + 1;                                  \
        double storage[3 * (NBINS + 1)];                                                       \
        gpu_histeq_interp_table t = table_of(storage, NBINS);                                  \
        double best[8] = {1e30, 1e30, 1e30, 1e30, 1e30, 1e30, 1e30, 1e30};                     \
        for (int r = 0; r < repeats; ++r) {                                                    \
            double step[6] = {0, 0, 0, 0, 0, 0};                                               \
            for (int64_t p = 0; p < planes; ++p) {                                             \
                const T *v = values + p * PIXELS;                                              \
                T first, last, width;                                                          \
                const double t0 = now();                                                       \
                range_##NAME(v, NULL, PIXELS, &first, &last);                                  \
                const double t1 = now();                                                       \
                edges_##NAME(first, last, NBINS, edges, &width);                               \
                centers_##NAME(edges, NBINS, centers, t.centers);                              \
                bin_plane_##NAME(v, NULL, PIXELS, edges[0], width, edges, centers, NBINS, bins, \
                                 segments, NULL, NULL);                                        \
                const double t2 = now();                                                       \
                GPU_HISTEQ_COUNT4(bins, (const uint8_t *)NULL, PIXELS, sub, NBINS);            \
                const double t3 = now();                                                       \
                memset(counts, 0, sizeof(counts));                                             \
                flush(sub, NBINS, counts);                                                     \
                interp_tables(counts, NBINS, sizeof(T) == sizeof(float), t);                   \
                const double t4 = now();                                                       \
                interp_plane_##NAME(v, segments, PIXELS, t, NBINS, out + p * PIXELS);          \
                const double t5 = now();                                                       \
                /* bin and count as equalize does them: 512 pixels at a time */                \
                bin_plane_##NAME(v, NULL, PIXELS, edges[0], width, edges, centers, NBINS, bins, \
                                 segments, sub, NULL);                                         \
                const double t6 = now();                                                       \
                flush(sub, NBINS, NULL);                                                       \
                step[0] += t1 - t0 - tick;                                                     \
                step[1] += t2 - t1 - tick;                                                     \
                step[2] += t3 - t2 - tick;                                                     \
                step[3] += t4 - t3 - tick;                                                     \
                step[4] += t5 - t4 - tick;                                                     \
                step[5] += t6 - t5 - tick;                                                     \
            }                                                                                  \
            for (int k = 0; k < 6; ++k) best[k] = step[k] < best[k] ? step[k] : best[k];       \
            double start = now();                                                              \
            gpu_histeq_equalize_##NAME(values, NULL, planes, PIXELS, NULL, NBINS, out, &failed); \
            const double warm = now() - start;                                                 \
            T *target = fresh((size_t)planes * PIXELS * sizeof(T));                            \
            start = now();                                                                     \
            gpu_histeq_equalize_##NAME(values, NULL, planes, PIXELS, NULL, NBINS, target, &failed); \
            const double cold = now() - start;                                                 \
            munmap(target, (size_t)planes * PIXELS * sizeof(T));                               \
            best[6] = warm < best[6] ? warm : best[6];                                         \
            best[7] = cold < best[7] ? cold : best[7];                                         \
        }                                                                                      \
        const double scale = 1e9 / ((double)planes * PIXELS);                                  \
        printf("%s: range %.2f bin %.2f count %.2f tables %.2f remap %.2f (sum %.2f); bin + "  \
               "count in 512-pixel pieces %.2f | equalize, warm output %.2f, fresh output "    \
               "%.2f ns/pixel\n", #NAME,                                                       \
               best[0] * scale, best[1] * scale, best[2] * scale, best[3] * scale,             \
               best[4] * scale, (best[0] + best[1] + best[2] + best[3] + best[4]) * scale,     \
               best[5] * scale, best[6] * scale, best[7] * scale);                             \
        free(bins);                                                                            \
        free(segments);                                                                        \
        free(sub);                                                                             \
    }
GPU_HISTEQ_BREAKDOWN(double, f64)
GPU_HISTEQ_BREAKDOWN(float, f32)

int main(int argc, char **argv)
{
    const int64_t planes = argc > 1 ? atoll(argv[1]) : 1000;
    const int repeats = argc > 2 ? atoi(argv[2]) : 5;
    const size_t n = (size_t)planes * PIXELS;
    double *values = malloc(n * sizeof(double)), *out = malloc(n * sizeof(double));
    float *values32 = malloc(n * sizeof(float)), *out32 = malloc(n * sizeof(float));
    if (!values || !out || !values32 || !out32) return 1;
    for (size_t i = 0; i < n; ++i) {
        values[i] = uniform();
        values32[i] = (float)values[i];
    }
    memset(out, 0, n * sizeof(double));
    memset(out32, 0, n * sizeof(float));
    tick = clock_cost();
    printf("%lld planes of %d pixels, %d bins, one thread, thread CPU time (%.0f ns per clock "
           "read subtracted), best of %d; loops: %s\n", (long long)planes, PIXELS, NBINS,
           tick * 1e9, repeats,
           (const char *[]){"generic", "AVX2", "AVX-512"}[simd_level()]);
    breakdown_f64(values, out, planes, repeats);
    breakdown_f32(values32, out32, planes, repeats);
    /* one thread's copy bandwidth: read + write of the float64 stack, warm destination */
    double best = 1e30;
    for (int r = 0; r < repeats; ++r) {
        const double start = now();
        memcpy(out, values, n * sizeof(double));
        const double took = now() - start;
        best = took < best ? took : best;
    }
    printf("memcpy of the float64 stack, one thread: %.1f GB/s (bytes read + written), %.2f "
           "ns/pixel\n", 2.0 * (double)(n * sizeof(double)) / best / 1e9, best * 1e9 / (double)n);
    return 0;
}
