// CUDA built-ins for running gpu_histeq's kernel sources, unmodified, as host C++ (tests only).
//
// A launch runs its blocks on a few OS threads; the blockDim.x threads of a block run as fibers on
// one OS thread, switched only at __syncthreads and at the warp shuffles. Static __shared__
// variables are thread_local (one block per OS thread at a time, so per block); each
// `extern __shared__` array gets a 48 KiB thread_local buffer from the generated wrapper (see
// build.py), filled with 0xCD at block start up to the requested size (ASan builds poison the
// rest). __syncthreads is a counting barrier that reports divergence and deadlock instead of
// hanging. Atomics are relaxed __atomic builtins. See README.md beside this file.
#pragma once

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <cmath>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__x86_64__)
#include <xmmintrin.h>
#else
#include <ucontext.h>
#endif

#if defined(__SANITIZE_THREAD__)
#define EMU_TSAN 1
extern "C" {
void* __tsan_get_current_fiber(void);
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
}
#else
#define EMU_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
extern "C" {
void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, size_t size);
void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old, size_t* size_old);
void __asan_poison_memory_region(void const volatile* addr, size_t size);
void __asan_unpoison_memory_region(void const volatile* addr, size_t size);
}
#else
#define EMU_ASAN 0
#endif

#define EMU_EXPORT extern "C" __attribute__((visibility("default")))
// The harness's own bookkeeping (current fiber, saved stacks, wait states) is shared between the
// scheduler and the fibers of one OS thread, which ThreadSanitizer sees as separate threads:
// those functions are not instrumented, so that only the kernels' accesses are checked.
#if EMU_TSAN
#define EMU_HARNESS __attribute__((noinline, no_sanitize_thread))
#else
#define EMU_HARNESS inline
#endif

// ---- declaration specifiers
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// thread_local at block scope implies static; `extern __shared__ T a[];` becomes an extern
// thread_local declaration that the generated wrapper defines.
#define __shared__ thread_local

struct uint3 { unsigned x, y, z; };
struct dim3 { unsigned x, y, z; };
struct alignas(16) uint4 { unsigned x, y, z, w; };

namespace emu {

constexpr int kWarp = 32;
constexpr size_t kDynamicCapacity = 48 * 1024;  // bytes behind each extern __shared__ array

enum State { RUNNABLE = 0, WAITING = 1, DONE = 2 };
enum WaitKind { WAIT_NONE = 0, WAIT_BLOCK = 1, WAIT_WARP = 2 };

struct Fiber {
    void* sp = nullptr;            // saved stack pointer (x86-64 switch)
#if !defined(__x86_64__)
    ucontext_t context;
#endif
    char* stack = nullptr;
    size_t stack_size = 0;
    std::atomic<int> state{RUNNABLE};
    std::atomic<int> wait_kind{WAIT_NONE};
    std::atomic<int> wait_site{0};
    uint3 index{0, 0, 0};
    void* tsan_fiber = nullptr;
    bool tsan_started = false;
};

struct Block;

struct Worker {                    // one per OS thread running blocks
    void* scheduler_sp = nullptr;
#if !defined(__x86_64__)
    ucontext_t scheduler_context;
#endif
    void* tsan_scheduler = nullptr;
    void* asan_fake_stack = nullptr;
    const void* asan_scheduler_bottom = nullptr;
    size_t asan_scheduler_size = 0;
    Block* block = nullptr;
    Fiber* current = nullptr;
    std::vector<Fiber> fibers;
    char* stacks = nullptr;
    size_t stacks_bytes = 0;
};

struct Block {
    void (*body)(void*) = nullptr;
    void* context = nullptr;
    uint3 block_idx{0, 0, 0};
    int threads = 0;
    std::atomic<unsigned> generation{0};    // block barriers released so far
    std::vector<unsigned> warp_generation;  // warp barriers released, per warp
    std::vector<unsigned long long> exchange;  // shuffle slots, one per thread
    std::string error;
    char sync_objects[2];                   // TSan: block barrier, by generation parity
    char end_sync = 0;                      // TSan: every thread's exit, before the next block
    std::vector<char> warp_sync_objects;    // TSan: warp barriers, 2 per warp
};

static thread_local Worker* tls_worker = nullptr;
static thread_local uint3 tls_block_idx{0, 0, 0};
static thread_local dim3 tls_block_dim{1, 1, 1};
static thread_local dim3 tls_grid_dim{1, 1, 1};

EMU_HARNESS Fiber* current_fiber() { return tls_worker->current; }

// ---- context switch: callee-saved registers, MXCSR and the x87 control word on the stack
#if defined(__x86_64__)
extern "C" void gpu_histeq_emu_switch(void** save_sp, void* next_sp);
extern "C" void gpu_histeq_emu_start();
asm(R"(
.text
.hidden gpu_histeq_emu_switch
.globl gpu_histeq_emu_switch
.type gpu_histeq_emu_switch,@function
gpu_histeq_emu_switch:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
.size gpu_histeq_emu_switch, .-gpu_histeq_emu_switch
.hidden gpu_histeq_emu_start
.globl gpu_histeq_emu_start
.type gpu_histeq_emu_start,@function
gpu_histeq_emu_start:
    movq %r12, %rdi
    callq *%r13
    ud2
.size gpu_histeq_emu_start, .-gpu_histeq_emu_start
)");
#endif

void fiber_main(void* fiber);
#if !defined(__x86_64__)
void fiber_main_ucontext();
#endif

EMU_HARNESS void prepare_fiber(Fiber& f) {
#if defined(__x86_64__)
    uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack) + f.stack_size) & ~uintptr_t(15);
    uint64_t* sp = reinterpret_cast<uint64_t*>(top - 80);
    unsigned mxcsr = _mm_getcsr();
    sp[0] = uint64_t(mxcsr) | (uint64_t(0x37f) << 32);              // MXCSR, x87 control word
    sp[1] = 0;                                                        // r15
    sp[2] = 0;                                                        // r14
    sp[3] = reinterpret_cast<uint64_t>(&fiber_main);                  // r13: entry
    sp[4] = reinterpret_cast<uint64_t>(&f);                           // r12: argument
    sp[5] = 0;                                                        // rbx
    sp[6] = 0;                                                        // rbp
    sp[7] = reinterpret_cast<uint64_t>(&gpu_histeq_emu_start);        // return address
    f.sp = sp;
#else
    getcontext(&f.context);
    f.context.uc_stack.ss_sp = f.stack;
    f.context.uc_stack.ss_size = f.stack_size;
    f.context.uc_link = nullptr;
    makecontext(&f.context, reinterpret_cast<void (*)()>(&fiber_main_ucontext), 0);
#endif
}

// Scheduler -> fiber.
EMU_HARNESS void switch_to_fiber(Worker& w, Fiber& f) {
    w.current = &f;
#if EMU_TSAN
    // The first entry of a fiber synchronizes with the scheduler (block setup happens before);
    // later switches do not, so that only the modelled barriers order the threads.
    __tsan_switch_to_fiber(f.tsan_fiber, f.tsan_started ? 1u : 0u);
    f.tsan_started = true;
#endif
#if EMU_ASAN
    __sanitizer_start_switch_fiber(&w.asan_fake_stack, f.stack, f.stack_size);
#endif
#if defined(__x86_64__)
    gpu_histeq_emu_switch(&w.scheduler_sp, f.sp);
#else
    swapcontext(&w.scheduler_context, &f.context);
#endif
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(w.asan_fake_stack, nullptr, nullptr);
#endif
}

// Fiber -> scheduler; `finished`: the fiber never runs again.
EMU_HARNESS void switch_to_scheduler(bool finished) {
    Worker& w = *tls_worker;
    Fiber& f = *w.current;
#if EMU_TSAN
    // Never synchronizes: a thread's exit is published through Block::end_sync, which the
    // scheduler acquires once the whole block is done (so exited threads do not order the rest).
    if (finished) __tsan_release(&w.block->end_sync);
    __tsan_switch_to_fiber(w.tsan_scheduler, 1u);
#endif
#if EMU_ASAN
    void* fake_stack = nullptr;
    __sanitizer_start_switch_fiber(finished ? nullptr : &fake_stack, w.asan_scheduler_bottom,
                                   w.asan_scheduler_size);
#endif
#if defined(__x86_64__)
    gpu_histeq_emu_switch(&f.sp, w.scheduler_sp);
#else
    swapcontext(&f.context, &w.scheduler_context);
#endif
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
}

EMU_HARNESS void fiber_main(void* arg) {
#if EMU_ASAN
    __sanitizer_finish_switch_fiber(nullptr, &tls_worker->asan_scheduler_bottom,
                                    &tls_worker->asan_scheduler_size);
#endif
    Fiber& f = *static_cast<Fiber*>(arg);
    Block& b = *tls_worker->block;
    b.body(b.context);
    f.state.store(DONE, std::memory_order_relaxed);
    switch_to_scheduler(true);
    abort();  // never resumed
}

#if !defined(__x86_64__)
inline void fiber_main_ucontext() { fiber_main(tls_worker->current); }
#endif

// ---- barriers (called on a fiber)
[[noreturn]] EMU_HARNESS void fail_in_fiber(const std::string& message) {
    Block& b = *tls_worker->block;
    if (b.error.empty()) b.error = message;
    current_fiber()->state.store(WAITING, std::memory_order_relaxed);
    current_fiber()->wait_kind.store(WAIT_NONE, std::memory_order_relaxed);
    switch_to_scheduler(false);
    abort();  // the scheduler abandons the block
}

EMU_HARNESS void wait_block(int site) {
    Worker& w = *tls_worker;
    Fiber& f = *w.current;
    unsigned parity = w.block->generation.load(std::memory_order_relaxed) & 1u;
#if EMU_TSAN
    __tsan_release(&w.block->sync_objects[parity]);
#endif
    f.wait_site.store(site, std::memory_order_relaxed);
    f.wait_kind.store(WAIT_BLOCK, std::memory_order_relaxed);
    f.state.store(WAITING, std::memory_order_relaxed);
    switch_to_scheduler(false);
#if EMU_TSAN
    __tsan_acquire(&w.block->sync_objects[parity]);
#endif
    (void)parity;
}

EMU_HARNESS void wait_warp(int site) {
    Worker& w = *tls_worker;
    Fiber& f = *w.current;
    const unsigned warp = f.index.x / kWarp;
    unsigned parity = w.block->warp_generation[warp] & 1u;
#if EMU_TSAN
    __tsan_release(&w.block->warp_sync_objects[2 * warp + parity]);
#endif
    f.wait_site.store(site, std::memory_order_relaxed);
    f.wait_kind.store(WAIT_WARP, std::memory_order_relaxed);
    f.state.store(WAITING, std::memory_order_relaxed);
    switch_to_scheduler(false);
#if EMU_TSAN
    __tsan_acquire(&w.block->warp_sync_objects[2 * warp + parity]);
#endif
    (void)parity;
}

template <typename T>
inline T shuffle(unsigned mask, T value, int line, bool up, int lane_arg) {
    static_assert(sizeof(T) <= 8, "shuffle of a value wider than 8 bytes");
    if (mask != 0xffffffffu) fail_in_fiber("line " + std::to_string(line) +
                                           ": the emulator supports full-warp shuffles only");
    Worker& w = *tls_worker;
    const int lane = int(current_fiber()->index.x % kWarp);
    const int base = int(current_fiber()->index.x) - lane;
    unsigned long long bits = 0;
    memcpy(&bits, &value, sizeof(T));
    __atomic_store_n(&w.block->exchange[base + lane], bits, __ATOMIC_RELAXED);
    wait_warp(2 * line);
    int source = up ? lane - lane_arg : (lane ^ lane_arg);
    if (source < 0 || source >= kWarp) source = lane;
    bits = __atomic_load_n(&w.block->exchange[base + source], __ATOMIC_RELAXED);
    wait_warp(2 * line + 1);  // nobody overwrites a slot before every lane has read
    T result;
    memcpy(&result, &bits, sizeof(T));
    return result;
}

}  // namespace emu

#define threadIdx (::emu::current_fiber()->index)
#define blockIdx (::emu::tls_block_idx)
#define blockDim (::emu::tls_block_dim)
#define gridDim (::emu::tls_grid_dim)
#define warpSize 32
#define __syncthreads() ::emu::wait_block(__LINE__)
#define __shfl_xor_sync(mask, value, lane_mask, ...) ::emu::shuffle(mask, value, __LINE__, false, lane_mask)
#define __shfl_up_sync(mask, value, delta, ...) ::emu::shuffle(mask, value, __LINE__, true, delta)

// ---- atomics (relaxed, as CUDA's), on global and shared memory alike
#define EMU_ATOMIC_ADD(T) \
    inline T atomicAdd(T* address, T value) { return __atomic_fetch_add(address, value, __ATOMIC_RELAXED); }
EMU_ATOMIC_ADD(int)
EMU_ATOMIC_ADD(unsigned)
EMU_ATOMIC_ADD(unsigned long long)
#undef EMU_ATOMIC_ADD
#define EMU_ATOMIC_EXTREME(NAME, T, BETTER)                                                   \
    inline T NAME(T* address, T value) {                                                      \
        T old = __atomic_load_n(address, __ATOMIC_RELAXED);                                   \
        while (BETTER(value, old) &&                                                          \
               !__atomic_compare_exchange_n(address, &old, value, true, __ATOMIC_RELAXED,     \
                                            __ATOMIC_RELAXED)) {                              \
        }                                                                                     \
        return old;                                                                           \
    }
#define EMU_LESS(a, b) ((a) < (b))
#define EMU_GREATER(a, b) ((a) > (b))
EMU_ATOMIC_EXTREME(atomicMin, int, EMU_LESS)
EMU_ATOMIC_EXTREME(atomicMin, unsigned, EMU_LESS)
EMU_ATOMIC_EXTREME(atomicMin, long long, EMU_LESS)
EMU_ATOMIC_EXTREME(atomicMin, unsigned long long, EMU_LESS)
EMU_ATOMIC_EXTREME(atomicMax, int, EMU_GREATER)
EMU_ATOMIC_EXTREME(atomicMax, unsigned, EMU_GREATER)
EMU_ATOMIC_EXTREME(atomicMax, long long, EMU_GREATER)
EMU_ATOMIC_EXTREME(atomicMax, unsigned long long, EMU_GREATER)
#undef EMU_ATOMIC_EXTREME
inline int atomicOr(int* address, int value) { return __atomic_fetch_or(address, value, __ATOMIC_RELAXED); }
inline unsigned atomicOr(unsigned* address, unsigned value) { return __atomic_fetch_or(address, value, __ATOMIC_RELAXED); }

// ---- bit casts and math
inline int __float_as_int(float x) { int r; memcpy(&r, &x, 4); return r; }
inline unsigned __float_as_uint(float x) { unsigned r; memcpy(&r, &x, 4); return r; }
inline float __int_as_float(int x) { float r; memcpy(&r, &x, 4); return r; }
inline float __uint_as_float(unsigned x) { float r; memcpy(&r, &x, 4); return r; }
inline long long __double_as_longlong(double x) { long long r; memcpy(&r, &x, 8); return r; }
inline double __longlong_as_double(long long x) { double r; memcpy(&r, &x, 8); return r; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
using std::isfinite;
using std::isnan;

// The tests' flushed reference (CuPy compiles its own kernels with -ftz=true): ORs `set` into
// this OS thread's x86 MXCSR and clears `clear` (FTZ 0x8000, DAZ 0x0040); returns the previous
// MXCSR. Off x86 it does nothing and returns 0xFFFFFFFF.
EMU_EXPORT unsigned gpu_histeq_emu_mxcsr(unsigned set, unsigned clear) {
#if defined(__x86_64__)
    const unsigned previous = _mm_getcsr();
    _mm_setcsr((previous | set) & ~clear);
    return previous;
#else
    (void)set; (void)clear;
    return 0xFFFFFFFFu;
#endif
}

namespace emu {

// ---- launches
struct DynamicShared {
    void* (*address)();  // this OS thread's buffer of one extern __shared__ array
};

struct LaunchConfig {
    unsigned grid[3];
    unsigned block[3];
    unsigned long long shared_mem;
    unsigned long long static_shared;  // the instantiation's static __shared__ bytes (NVRTC)
    int workers;       // OS threads running blocks
    int stack_bytes;   // per fiber
};

inline void set_error(char* error, int size, const std::string& message) {
    snprintf(error, size_t(size), "%s", message.c_str());
}

template <typename T>
struct ArgKind {
    static bool check(char kind, int width, const void* value, std::string* why) {
        if (std::is_pointer<T>::value) {
            if (!((kind == 'p' && width == 8) || (kind == 'u' && width == 8))) {
                *why = "a pointer (8 bytes)";
                return false;
            }
            uint64_t address;
            memcpy(&address, value, 8);
            typedef typename std::remove_cv<typename std::remove_pointer<T>::type>::type Pointee;
            const size_t align = std::is_void<Pointee>::value ? 1 : alignof(
                typename std::conditional<std::is_void<Pointee>::value, char, Pointee>::type);
            if (address % align) {
                *why = "a pointer aligned to " + std::to_string(align) + " bytes, got address " +
                       std::to_string(address);
                return false;
            }
            return true;
        }
        const char want = std::is_same<T, bool>::value ? 'b'
                          : std::is_floating_point<T>::value ? 'f'
                          : std::is_signed<T>::value ? 'i' : 'u';
        if (kind != want || width != int(sizeof(T))) {
            *why = std::string("kind '") + want + "' of " + std::to_string(sizeof(T)) +
                   " bytes, got '" + kind + "' of " + std::to_string(width) + " bytes";
            return false;
        }
        return true;
    }
};

struct GridRun {
    const LaunchConfig* config;
    void (*body)(void*);
    void* context;
    const DynamicShared* dynamic;
    int ndynamic;
    bool ftz;
    std::atomic<unsigned long long> next{0};
    unsigned long long nblocks = 0;
    std::atomic<int> failed{0};
    std::string error;
    std::atomic_flag error_lock = ATOMIC_FLAG_INIT;
};

EMU_HARNESS std::string run_block(Worker& w, Block& b) {
    const int n = b.threads;
    b.generation.store(0, std::memory_order_relaxed);
    b.warp_generation.assign((n + kWarp - 1) / kWarp, 0);
    b.exchange.assign(n, 0);
    b.warp_sync_objects.assign(2 * ((n + kWarp - 1) / kWarp), 0);
    b.error.clear();
    w.block = &b;
    for (int t = 0; t < n; ++t) {
        Fiber& f = w.fibers[t];
        f.state.store(RUNNABLE, std::memory_order_relaxed);
        f.wait_kind.store(WAIT_NONE, std::memory_order_relaxed);
        f.index = uint3{unsigned(t) % tls_block_dim.x, (unsigned(t) / tls_block_dim.x) % tls_block_dim.y,
                        unsigned(t) / (tls_block_dim.x * tls_block_dim.y)};
        prepare_fiber(f);
#if EMU_TSAN
        f.tsan_started = false;  // the TSan fiber itself lives as long as the worker
#endif
    }
    std::string error;
    for (unsigned pass = 0;; ++pass) {
        bool forward = pass % 2 == 0;  // alternate the order: a missing barrier shows sooner
        for (int k = 0; k < n; ++k) {
            Fiber& f = w.fibers[forward ? k : n - 1 - k];
            if (f.state.load(std::memory_order_relaxed) != RUNNABLE) continue;
            switch_to_fiber(w, f);
            if (!b.error.empty()) break;
        }
        if (!b.error.empty()) { error = b.error; break; }
        int done = 0, at_block = 0;
        int site = -1;
        bool same_site = true;
        for (int t = 0; t < n; ++t) {
            Fiber& f = w.fibers[t];
            int state = f.state.load(std::memory_order_relaxed);
            if (state == DONE) { ++done; continue; }
            if (f.wait_kind.load(std::memory_order_relaxed) == WAIT_BLOCK) {
                ++at_block;
                int s = f.wait_site.load(std::memory_order_relaxed);
                if (site >= 0 && s != site) same_site = false;
                site = s;
            }
        }
        if (done == n) break;
        bool released = false;
        for (int base = 0; base < n; base += kWarp) {  // warps whose lanes all wait at one shuffle
            int lanes = std::min(kWarp, n - base), waiting = 0;
            int s0 = w.fibers[base].wait_site.load(std::memory_order_relaxed);
            for (int l = 0; l < lanes; ++l) {
                Fiber& f = w.fibers[base + l];
                if (f.state.load(std::memory_order_relaxed) == WAITING &&
                    f.wait_kind.load(std::memory_order_relaxed) == WAIT_WARP &&
                    f.wait_site.load(std::memory_order_relaxed) == s0)
                    ++waiting;
            }
            if (waiting == lanes) {
                b.warp_generation[base / kWarp] += 1;
                for (int l = 0; l < lanes; ++l) {
                    w.fibers[base + l].wait_kind.store(WAIT_NONE, std::memory_order_relaxed);
                    w.fibers[base + l].state.store(RUNNABLE, std::memory_order_relaxed);
                }
                released = true;
            }
        }
        if (released) continue;
        if (at_block == n && same_site) {
            b.generation.fetch_add(1, std::memory_order_relaxed);
            for (int t = 0; t < n; ++t) {
                w.fibers[t].wait_kind.store(WAIT_NONE, std::memory_order_relaxed);
                w.fibers[t].state.store(RUNNABLE, std::memory_order_relaxed);
            }
            continue;
        }
        // nothing can run: describe why
        std::string message = "deadlock in block (" + std::to_string(b.block_idx.x) + "," +
                              std::to_string(b.block_idx.y) + "," + std::to_string(b.block_idx.z) + "): ";
        if (at_block > 0 && done > 0) {
            message += "divergent __syncthreads: " + std::to_string(done) + " threads exited while " +
                       std::to_string(at_block) + " wait at line " + std::to_string(site);
        } else if (at_block > 0 && !same_site) {
            message += "divergent __syncthreads: threads wait at different barriers (lines";
            int last = -1;
            for (int t = 0; t < n; ++t) {
                int s = w.fibers[t].wait_site.load(std::memory_order_relaxed);
                if (w.fibers[t].wait_kind.load(std::memory_order_relaxed) == WAIT_BLOCK && s != last) {
                    message += " " + std::to_string(s) + "(thread " + std::to_string(t) + ")";
                    last = s;
                }
            }
            message += ")";
        } else {
            message += "a warp shuffle (full mask) that not every lane of the warp reached";
            for (int t = 0; t < n; ++t)
                if (w.fibers[t].state.load(std::memory_order_relaxed) == WAITING &&
                    w.fibers[t].wait_kind.load(std::memory_order_relaxed) == WAIT_WARP) {
                    message += " (thread " + std::to_string(t) + " waits at line " +
                               std::to_string(w.fibers[t].wait_site.load() / 2) + ")";
                    break;
                }
        }
        error = message;
        break;
    }
#if EMU_TSAN
    __tsan_acquire(&b.end_sync);
#endif
    w.current = nullptr;
    return error;
}

// Fiber stacks (and ThreadSanitizer's fiber states) are kept for the next launch: creating
// them each time costs more than the kernels under the sanitizers.
struct FiberSet {
    char* stacks = nullptr;
    size_t bytes = 0;
    std::vector<void*> tsan;  // one TSan fiber per thread (ThreadSanitizer builds)
};

inline std::mutex& fiber_pool_mutex() { static std::mutex m; return m; }
inline std::vector<FiberSet>& fiber_pool() {
    static std::vector<FiberSet> pool;
    return pool;
}

inline FiberSet take_fibers(size_t bytes, int n) {
    {
        std::lock_guard<std::mutex> lock(fiber_pool_mutex());
        auto& pool = fiber_pool();
        for (size_t i = 0; i < pool.size(); ++i)
            if (pool[i].bytes == bytes && int(pool[i].tsan.size()) == n) {
                FiberSet set = pool[i];
                pool.erase(pool.begin() + long(i));
                return set;
            }
    }
    FiberSet set;
    void* stacks = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (stacks == MAP_FAILED) return set;
    set.stacks = static_cast<char*>(stacks);
    set.bytes = bytes;
    set.tsan.assign(n, nullptr);
#if EMU_TSAN
    for (int t = 0; t < n; ++t) set.tsan[t] = __tsan_create_fiber(0);
#endif
    return set;
}

inline void give_back_fibers(const FiberSet& set) {
    std::lock_guard<std::mutex> lock(fiber_pool_mutex());
    fiber_pool().push_back(set);
}

EMU_HARNESS void worker_loop(GridRun& run) {
    const LaunchConfig& c = *run.config;
    Worker w;
    tls_worker = &w;
    tls_block_dim = dim3{c.block[0], c.block[1], c.block[2]};
    tls_grid_dim = dim3{c.grid[0], c.grid[1], c.grid[2]};
    const int n = int(c.block[0] * c.block[1] * c.block[2]);
    w.fibers = std::vector<Fiber>(n);
    const size_t stack = size_t(c.stack_bytes);
    w.stacks_bytes = stack * n;
    const FiberSet set = take_fibers(w.stacks_bytes, n);
    w.stacks = set.stacks;
    if (w.stacks == nullptr) {
        run.failed.store(1);
        while (run.error_lock.test_and_set()) {}
        run.error = "cannot map fiber stacks";
        run.error_lock.clear();
        return;
    }
    for (int t = 0; t < n; ++t) {
        w.fibers[t].stack = w.stacks + t * stack;
        w.fibers[t].stack_size = stack;
    }
#if EMU_TSAN
    w.tsan_scheduler = __tsan_get_current_fiber();
    for (int t = 0; t < n; ++t) w.fibers[t].tsan_fiber = set.tsan[t];
#endif
#if defined(__x86_64__)
    const unsigned saved_csr = _mm_getcsr();
    if (run.ftz) _mm_setcsr(saved_csr | 0x8040);  // FTZ | DAZ: -ftz=true (float32 instantiations)
#endif
    Block b;
    b.threads = n;
    b.body = run.body;
    b.context = run.context;
    for (;;) {
        if (run.failed.load(std::memory_order_relaxed)) break;
        const unsigned long long id = run.next.fetch_add(1);
        if (id >= run.nblocks) break;
        b.block_idx = uint3{unsigned(id % c.grid[0]), unsigned(id / c.grid[0] % c.grid[1]),
                            unsigned(id / (unsigned long long)c.grid[0] / c.grid[1])};
        tls_block_idx = b.block_idx;
        for (int d = 0; d < run.ndynamic; ++d) {  // fresh dynamic shared memory: 0xCD pattern
            char* buffer = static_cast<char*>(run.dynamic[d].address());
#if EMU_ASAN
            __asan_unpoison_memory_region(buffer, kDynamicCapacity);
#endif
            memset(buffer, 0xCD, size_t(c.shared_mem));
#if EMU_ASAN
            __asan_poison_memory_region(buffer + c.shared_mem, kDynamicCapacity - c.shared_mem);
#endif
        }
        std::string error = run_block(w, b);
        if (!error.empty()) {
            run.failed.store(1);
            while (run.error_lock.test_and_set()) {}
            if (run.error.empty()) run.error = error;
            run.error_lock.clear();
            break;
        }
    }
#if EMU_ASAN
    for (int d = 0; d < run.ndynamic; ++d)
        __asan_unpoison_memory_region(run.dynamic[d].address(), kDynamicCapacity);
#endif
#if defined(__x86_64__)
    _mm_setcsr(saved_csr);
#endif
    give_back_fibers(set);
    tls_worker = nullptr;
}

template <size_t I, typename... P>
bool check_args(const char* kinds, const int* widths, void** args, std::string* why) {
    if constexpr (I == sizeof...(P)) {
        return true;
    } else {
        typedef typename std::tuple_element<I, std::tuple<P...>>::type T;
        std::string reason;
        if (!ArgKind<T>::check(kinds[I], widths[I], args[I], &reason)) {
            *why = "argument " + std::to_string(I) + " must be " + reason;
            return false;
        }
        return check_args<I + 1, P...>(kinds, widths, args, why);
    }
}

template <typename T>
T read_arg(void* address) {
    T value;
    memcpy(&value, address, sizeof(T));
    return value;
}

template <typename... P, size_t... I>
std::tuple<P...> unpack(void** args, std::index_sequence<I...>) {
    return std::tuple<P...>(read_arg<P>(args[I])...);
}

// Checks a launch as the driver would, then runs every block of the grid.
template <typename... P>
int launch(void (*kernel)(P...), unsigned launch_bound, bool ftz, const DynamicShared* dynamic,
           int ndynamic, const LaunchConfig* config, void** args, const char* kinds,
           const int* widths, int nargs, char* error, int error_size) {
    const LaunchConfig& c = *config;
    const unsigned long long threads = (unsigned long long)c.block[0] * c.block[1] * c.block[2];
    if (c.grid[0] < 1 || c.grid[1] < 1 || c.grid[2] < 1 || c.grid[0] > 2147483647u ||
        c.grid[1] > 65535 || c.grid[2] > 65535) {
        set_error(error, error_size, "invalid grid (" + std::to_string(c.grid[0]) + ", " +
                  std::to_string(c.grid[1]) + ", " + std::to_string(c.grid[2]) + ")");
        return 1;
    }
    if (c.block[0] < 1 || c.block[1] < 1 || c.block[2] < 1 || c.block[0] > 1024 ||
        c.block[1] > 1024 || c.block[2] > 64 || threads > 1024) {
        set_error(error, error_size, "invalid block size");
        return 1;
    }
    if (threads > launch_bound) {
        set_error(error, error_size, "block of " + std::to_string(threads) +
                  " threads exceeds __launch_bounds__(" + std::to_string(launch_bound) + ")");
        return 1;
    }
    if (c.shared_mem > kDynamicCapacity || c.static_shared + c.shared_mem > kDynamicCapacity) {
        set_error(error, error_size, "static shared memory of " + std::to_string(c.static_shared) +
                  " bytes plus dynamic shared memory of " + std::to_string(c.shared_mem) +
                  " bytes exceeds the 48 KiB a block gets without opting in");
        return 1;
    }
    if (nargs != int(sizeof...(P))) {
        set_error(error, error_size, "kernel takes " + std::to_string(sizeof...(P)) +
                  " arguments, got " + std::to_string(nargs));
        return 1;
    }
    std::string why;
    if (!check_args<0, P...>(kinds, widths, args, &why)) {
        set_error(error, error_size, why);
        return 1;
    }
    std::tuple<P...> values = unpack<P...>(args, std::index_sequence_for<P...>{});
    struct Call {
        void (*kernel)(P...);
        std::tuple<P...>* values;
        static void body(void* self) {
            Call& call = *static_cast<Call*>(self);
            std::apply(call.kernel, *call.values);
        }
    } call{kernel, &values};
    GridRun run;
    run.config = config;
    run.body = &Call::body;
    run.context = &call;
    run.dynamic = dynamic;
    run.ndynamic = ndynamic;
    run.ftz = ftz;
    run.nblocks = (unsigned long long)c.grid[0] * c.grid[1] * c.grid[2];
    const int workers = int(std::max<unsigned long long>(
        1, std::min<unsigned long long>(run.nblocks, (unsigned long long)std::max(1, c.workers))));
    std::vector<std::thread> threads_;
    for (int k = 1; k < workers; ++k) threads_.emplace_back([&run] { worker_loop(run); });
    worker_loop(run);
    for (auto& t : threads_) t.join();
    if (run.failed.load()) {
        set_error(error, error_size, run.error);
        return 2;
    }
    return 0;
}

}  // namespace emu
