#!/usr/bin/env bash
# The one-call GPU check of ci/gpu/README.md. Run ON THE GPU MACHINE, from the repository root:
#
#   bash ci/gpu/on-device.sh [--deadline SECONDS] [STAGE ...]
#
# Stages, one after another, the most valuable evidence first (default: all but stage/cvcuda):
#   info       GPU, driver, CUDA, Python packages, where compute-sanitizer is
#   install    the carried wheels ($GPU_CHECK_WHEELS, default .whl/gpu: kornia, kornia_rs, cuCIM)
#              into /tmp/gpu_histeq_check/site; gpu_histeq itself (pip install -e: the compiled CPU path)
#   cuda       the CUDA tests on real CuPy: every `cupy` case (-m gpu) of tests/test_cuda_*.py,
#              tests/test_cuda_kernels.py, _edge_cases.py and _ragged.py first (the kernel cache
#              they fill serves every later stage)
#   backends   every other `cupy` case of the suite (-m gpu: the xp fixture's CuPy parameter)
#   bench      benchmarks/bench_gpu.py: CUDA-event timings, written as JSON and Markdown
#   memcheck   compute-sanitizer --tool memcheck over a subset of the three kernel test files
#   racecheck  compute-sanitizer --tool racecheck over a smaller subset
#   synccheck  compute-sanitizer --tool synccheck over a smaller subset
#   stage DIR  keep the files carried in DIR in /tmp/gpu_histeq_check/peers (kept while the machine
#              stays warm between calls: the optional CV-CUDA calls)
#   cvcuda     join the staged CV-CUDA parts, install it, benchmark it beside gpu_histeq
#
# The machine has no dask, no pytest-xdist and no pytest-timeout: pytest runs in one process
# (-p no:xdist -p no:timeout wherever it runs), and each pytest stage ends at its own deadline
# through ci/gpu/stage_deadline.py, so that pytest still prints its summary line; `timeout` is
# only the backstop. Each stage has a cap (CAPS below) and never runs past what the later stages'
# floors leave; the whole call ends by --deadline (default 470 s). Everything goes to $OUT (at most
# 8 files come back): gpu-check-summary.md (each stage's status, seconds and pytest's / the
# sanitizer's summary line, rewritten as stages start and end), gpu-setup.log, gpu-tests.log
# (cuda, backends), gpu-bench.log and the benchmark's gpu-<date>-<device>.json / .md,
# gpu-sanitizers.log (memcheck, racecheck, synccheck). Exits 0 whatever the stages found (2 for
# bad arguments): the summary says what passed, failed, was cut or skipped, and why.
#
# Knobs (environment): GPU_CHECK_WHEELS, GPU_CHECK_CUDA_TESTS (the cuda stage's files),
# GPU_CHECK_SANITIZER_TESTS (the sanitizers' files), GPU_CHECK_MEMCHECK_K / _RACECHECK_K /
# _SYNCCHECK_K (their pytest -k subsets), GPU_CHECK_BENCH_ARGS, GPU_CHECK_WORK (scratch folder,
# default /tmp/gpu_histeq_check: kept while the machine stays warm).
# For ci/gpu/dry-run.sh only (a CPU machine): GPU_CHECK_DRY_RUN=1, the emulated CuPy stands in
# for the GPU (the `cupy-emulated` twin of every `cupy` case: -m 'not gpu' -k emulated for -m gpu), the
# local python3 is left alone, the benchmark only prints its plan (--dry-run);
# GPU_CHECK_TIME_SCALE=N multiplies every stage's cap and floor (give --deadline to match).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
repo=$PWD
out=${OUT:-$repo/out/gpu-check}
work=${GPU_CHECK_WORK:-/tmp/gpu_histeq_check}
deadline=470
dry=${GPU_CHECK_DRY_RUN:-0}
command_line="bash ci/gpu/on-device.sh${*:+ $*}"
stages=()
stage_dirs=()
while [ $# -gt 0 ]; do
    case "$1" in
    --deadline) deadline=${2:?--deadline needs seconds}; shift ;;
    info|install|cuda|backends|bench|memcheck|racecheck|synccheck|cvcuda) stages+=("$1") ;;
    stage) stages+=("stage"); stage_dirs+=("${2:?stage needs a folder}"); shift ;;
    -h|--help) sed -n '2,40p' "$0"; exit 0 ;;
    *) echo "on-device.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$deadline" in ''|*[!0-9]*) echo "on-device.sh: --deadline must be whole seconds, got $deadline" >&2; exit 2 ;; esac
[ ${#stages[@]} -gt 0 ] || stages=(info install cuda backends bench memcheck racecheck synccheck)
[ "${stages[0]}" = info ] || stages=(info "${stages[@]}")  # every call says what it ran on
light=1  # only staging files: info reads nvidia-smi alone
for name in "${stages[@]}"; do case $name in info|stage) ;; *) light=0 ;; esac; done

# Seconds each stage may take at most, and the least it is started with; a stage never takes
# time that the floors of the stages after it need. Expected times: ci/gpu/README.md.
declare -A CAPS=([info]=60 [install]=90 [cuda]=150 [backends]=75 [bench]=75 [memcheck]=60
                 [racecheck]=45 [synccheck]=40 [cvcuda]=60)
declare -A FLOORS=([info]=0 [install]=0 [cuda]=30 [backends]=20 [bench]=45 [memcheck]=25
                   [racecheck]=20 [synccheck]=20 [cvcuda]=0 [stage]=0)
scale=${GPU_CHECK_TIME_SCALE:-1}  # the dry run's emulator is slower than a GPU: it scales both
case "$scale" in ''|*[!0-9]*|0) echo "on-device.sh: GPU_CHECK_TIME_SCALE must be a whole number >= 1, got $scale" >&2; exit 2 ;; esac
for name in "${!CAPS[@]}"; do CAPS[$name]=$(( CAPS[$name] * scale )); FLOORS[$name]=$(( ${FLOORS[$name]:-0} * scale )); done

wheels=${GPU_CHECK_WHEELS:-.whl/gpu}
core_tests="tests/test_cuda_kernels.py tests/test_cuda_edge_cases.py tests/test_cuda_ragged.py"
cuda_tests=${GPU_CHECK_CUDA_TESTS:-$(printf '%s\n' $core_tests tests/test_cuda_*.py | awk '!seen[$0]++' | tr '\n' ' ')}
sanitizer_tests=${GPU_CHECK_SANITIZER_TESTS:-$core_tests}
# Subsets sized to the caps above: every kernel and launcher branch, one-block and multi-block,
# masks, unaligned views, the hooks, the far-out values and repeated edges that once overflowed,
# ragged launches with 0-pixel and unaligned planes (counts: ci/gpu/README.md).
memcheck_k=${GPU_CHECK_MEMCHECK_K:-"(fused_equals_portable and random and (small or large) and not mask) or multi_block_kernels_on_small_planes or unaligned or hook or nan_raises or far_out_unselected_values_multi_block or repeated_bin_edges_multi_block or random_lists or empty_lists or packed_counts"}
racecheck_k=${GPU_CHECK_RACECHECK_K:-"(fused_equals_portable and random and (small or large) and mask) or multi_block_kernels_on_small_planes or random_lists"}
synccheck_k=${GPU_CHECK_SYNCCHECK_K:-"(fused_equals_portable and random and large) or multi_block_kernels_on_many_groups or errors_come_in_the_portable_order"}

mkdir -p "$out" "$work/site" "$work/peers" "$work/cupy-cache"
rm -rf "$work/results" && mkdir -p "$work/results"
export PYTHONPATH="$work/site:$repo:$repo/ci/gpu${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export CUPY_CACHE_DIR="$work/cupy-cache"  # the tests fill it, the sanitizers reuse it; bench_gpu.py starts its own
setup_log=$out/gpu-setup.log
tests_log=$out/gpu-tests.log
sanitizers_log=$out/gpu-sanitizers.log
started=$SECONDS
started_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)
gpu_line="(not probed yet)"
gpu_ok=0
gpu_reason="not probed"
sanitizer=""
sanitizer_reason=""

left() { echo $(( deadline - (SECONDS - started) )); }
min() { if [ "$1" -lt "$2" ]; then echo "$1"; else echo "$2"; fi; }

# ---- the summary: one row per stage, from $work/results/<n>-<stage>[.running]

stage_file() { echo "$work/results/$(printf %02d "$1")-$2"; }

record() {  # record INDEX STAGE STATUS SECONDS NOTE
    printf '%s\t%s\t%s\n' "$3" "$4" "$(printf %s "$5" | tr '|\n\t' '/  ')" > "$(stage_file "$1" "$2").tmp"
    mv "$(stage_file "$1" "$2").tmp" "$(stage_file "$1" "$2")"
    rm -f "$(stage_file "$1" "$2").running"
    write_summary
}

mark_running() {  # mark_running INDEX STAGE LIMIT
    echo "running since +$(( SECONDS - started )) s, limit $3 s" > "$(stage_file "$1" "$2").running"
    write_summary
}

write_summary() {
    local tmp=$work/summary.$BASHPID i name file status seconds note  # not in $OUT: a cut call returns no stray file
    {
        echo "# GPU check: $gpu_line"
        echo
        echo "\`$command_line\` -- started $started_utc, deadline $deadline s, $(( SECONDS - started )) s used so far"
        echo
        echo "| stage | status | seconds | note |"
        echo "|---|---|---:|---|"
        for i in "${!stages[@]}"; do
            name=${stages[$i]}
            file=$(stage_file "$i" "$name")
            if [ -f "$file" ]; then
                IFS=$'\t' read -r status seconds note < "$file"
                echo "| $name | $status | $seconds | $note |"
            elif [ -f "$file.running" ]; then
                echo "| $name | running | - | $(cat "$file.running") (a summary that still says this was cut at the call's limit) |"
            else
                echo "| $name | pending | - | |"
            fi
        done
    } > "$tmp" && mv "$tmp" "$out/gpu-check-summary.md"
}

too_short() {  # too_short INDEX STAGE LIMIT: record a skip (and succeed) when LIMIT is under 20 s
    [ "$3" -ge 20 ] && return 1
    record "$1" "$2" skipped 0 "$3 s left for it (20 needed) before the $deadline s deadline"
}

status_of() {  # status_of EXIT_CODE: the words for a stage's exit code
    case "$1" in
    0) echo ok ;;
    124|137) echo "timeout" ;;
    *) echo "failed (exit $1)" ;;
    esac
}

limit_of() {  # limit_of INDEX: the stage's cap, less the floors of the stages after it
    local name=${stages[$1]} later reserve=0
    for later in "${stages[@]:$(( $1 + 1 ))}"; do reserve=$(( reserve + ${FLOORS[$later]:-0} )); done
    min "${CAPS[$name]:-60}" $(( $(left) - reserve ))
}

# ---- stages

find_sanitizer() {
    local candidate looked="PATH"
    for candidate in "$(command -v compute-sanitizer 2>/dev/null)" /usr/local/cuda/bin/compute-sanitizer \
        /usr/local/cuda/compute-sanitizer/compute-sanitizer /usr/local/cuda-*/bin/compute-sanitizer \
        /usr/local/cuda-*/compute-sanitizer/compute-sanitizer /opt/nvidia/compute-sanitizer*/compute-sanitizer \
        /opt/nvidia/*/compute-sanitizer/compute-sanitizer; do
        [ -n "$candidate" ] || continue
        [ -x "$candidate" ] && { sanitizer=$candidate; return; }
    done
    looked="PATH, /usr/local/cuda*/bin, /usr/local/cuda*/compute-sanitizer, /opt/nvidia"
    candidate=$(timeout 20 find / -xdev -maxdepth 6 -type f -name compute-sanitizer -perm -u+x 2>/dev/null | head -1)
    if [ -n "$candidate" ]; then sanitizer=$candidate; return; fi
    sanitizer_reason="compute-sanitizer not found (looked in $looked, then / to depth 6)"
}

stage_info() {  # INDEX
    local t0=$SECONDS probe
    if [ "$light" = 1 ]; then  # a call that only stages files: the GPU's name, nothing imported
        gpu_line=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)
        gpu_line=${gpu_line:-not found}
        echo "GPU: $gpu_line"
        record "$1" info ok $(( SECONDS - t0 )) "nvidia-smi: $gpu_line (a staging call: nothing else probed)"
        return
    fi
    {
        echo "== info $(date -u +%FT%TZ)"
        if command -v nvidia-smi >/dev/null; then
            nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem,temperature.gpu,power.draw \
                --format=csv 2>&1
            nvidia-smi 2>&1 | head -20
        else
            echo "nvidia-smi: not found"
        fi
        uname -a; command -v python3; python3 -V
        command -v nvcc >/dev/null && nvcc --version | tail -2
        command -v g++ >/dev/null && g++ --version | head -1
    } >> "$setup_log" 2>&1
    probe=$(timeout 60 python3 - 2>&1 <<'PY'
import importlib
for name in ("numpy", "cupy", "torch", "torchvision", "skimage", "cv2", "pytest", "hypothesis", "tqdm",
             "dask", "xdist", "pytest_timeout", "kornia", "cucim", "cvcuda"):
    try:
        module = importlib.import_module(name)
        print(f"# {name} {getattr(module, '__version__', '?')}")
    except Exception as error:
        print(f"# {name} MISSING ({type(error).__name__}: {error})")
try:
    import cupy
    runtime = cupy.cuda.runtime
    if runtime.getDeviceCount() < 1:
        raise RuntimeError("CuPy sees no CUDA device")
    cupy.zeros(1).sum().item()
    name = runtime.getDeviceProperties(0)["name"].decode()
    print(f"GPU_OK\t{name}, driver {runtime.driverGetVersion()}, CUDA runtime {runtime.runtimeGetVersion()}, "
          f"CuPy {cupy.__version__}")
except Exception as error:
    print(f"GPU_NO\tCuPy cannot use a GPU here ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})")
PY
)
    echo "$probe" | grep -v '^GPU_' >> "$setup_log"
    if [ "$dry" = 1 ] && ! echo "$probe" | grep -q '^GPU_OK'; then
        echo "$probe" | grep '^GPU_NO' >> "$setup_log"
        probe=$'GPU_OK\tnone: a dry run (GPU_CHECK_DRY_RUN=1) on the emulated CuPy; no number here is a GPU\'s'
    fi
    if echo "$probe" | grep -q '^GPU_OK'; then
        gpu_ok=1
        gpu_line=$(echo "$probe" | grep '^GPU_OK' | cut -f2)
        command -v nvidia-smi >/dev/null && gpu_line="$gpu_line; nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)"
    else
        gpu_reason=$(echo "$probe" | grep '^GPU_NO' | cut -f2)
        [ -n "$gpu_reason" ] || gpu_reason="the CuPy probe printed nothing: $(echo "$probe" | tail -1)"
        gpu_line="no usable GPU: $gpu_reason"
    fi
    if [ $gpu_ok = 1 ]; then find_sanitizer; else sanitizer_reason="not looked for without a GPU"; fi
    echo "compute-sanitizer: ${sanitizer:-$sanitizer_reason}" >> "$setup_log"
    echo "GPU: $gpu_line"
    record "$1" info "$([ $gpu_ok = 1 ] && echo ok || echo 'no GPU')" $(( SECONDS - t0 )) \
        "$gpu_line; compute-sanitizer: ${sanitizer:-$sanitizer_reason}"
}

stage_install() {  # INDEX LIMIT
    local t0=$SECONDS notes=() code
    if [ $gpu_ok != 1 ]; then
        record "$1" install skipped 0 "nothing installed without a GPU: $gpu_reason"; return
    fi
    too_short "$1" install "$2" && return
    mark_running "$1" install "$2"
    {
        echo "== install $(date -u +%FT%TZ)"
        if ls "$wheels"/*.whl >/dev/null 2>&1; then
            timeout -k 5 "$2" python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
                --upgrade --target "$work/site" "$wheels"/*.whl 2>&1 | tail -20
        else
            echo "no wheels in $wheels"
        fi
        if [ "$dry" = 1 ]; then
            echo "gpu_histeq not installed: a dry run (GPU_CHECK_DRY_RUN=1) leaves this python3 alone"
        elif python3 -c "import importlib.metadata as m, gpu_histeq._cpu as c; m.version('gpu_histeq'); assert c.BUILT" 2>/dev/null; then
            echo "gpu_histeq already installed with its compiled CPU path"
        else
            if ! timeout -k 5 "$2" python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . 2>&1 | tail -20; then
                # pip refused (an older setuptools than pyproject.toml needs?): build the compiled
                # CPU path alone, from a copy without pyproject.toml, and use the tree on PYTHONPATH
                echo "pip install -e . failed: building the extension alone (no installed metadata)"
                rm -rf "$work/build" && mkdir -p "$work/build" && cp -r setup.py gpu_histeq "$work/build/" &&
                    (cd "$work/build" && timeout -k 5 "$2" python3 setup.py -q build_ext --inplace 2>&1 | tail -20) &&
                    cp "$work"/build/gpu_histeq/_cpu_kernels*.so gpu_histeq/
            fi
        fi
    } >> "$setup_log" 2>&1
    ls "$wheels"/*.whl >/dev/null 2>&1 || notes+=("no wheels carried in $wheels: kornia and cuCIM rows will say why they are missing")
    notes+=("$(python3 - 2>&1 <<'PY'
import importlib, importlib.metadata
found = []
for name in ("kornia", "kornia_rs", "cucim", "cvcuda"):
    try:
        found.append(f"{name} {getattr(importlib.import_module(name), '__version__', '?')}")
    except Exception as error:
        found.append(f"{name} missing ({type(error).__name__})")
try:
    from gpu_histeq import _cpu
    found.append("compiled CPU path " + ("built" if _cpu.BUILT else "NOT built (no C compiler?)"))
    importlib.metadata.version("gpu_histeq")
except importlib.metadata.PackageNotFoundError:
    found.append("gpu_histeq NOT installed (test_packaging's metadata tests will fail; see gpu-setup.log)")
except Exception as error:
    found.append(f"gpu_histeq not importable ({type(error).__name__}: {error})")
print(", ".join(found))
PY
)")
    code=0
    python3 -c "import gpu_histeq" 2>/dev/null || code=1
    record "$1" install "$(status_of $code)" $(( SECONDS - t0 )) "$(IFS=';'; echo "${notes[*]}")"
}

# pytest in one process, the same plugins everywhere: none of xdist, timeout, benchmark, cache
PYTEST=(python3 -m pytest -p no:cacheprovider -p no:xdist -p no:timeout -p no:benchmark -p stage_deadline)

selection() {  # selection [K]: the pytest arguments choosing the real-CuPy cases (-k K among them)
    if [ "$dry" = 1 ]; then  # the emulated twins (not the real-CuPy cases, which carry the gpu mark)
        echo "-m"; echo "not gpu"
        echo "-k"; echo "emulated${1:+ and ($1)}"
    else
        echo "-m"; echo "gpu"
        [ -n "${1:-}" ] && { echo "-k"; echo "$1"; }
    fi
}

pytest_outcome() {  # pytest_outcome LOG: the last pytest summary line of a log, or how far a cut run got
    local line
    line=$(grep -E '[0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?)\b.* in [0-9.]+s' "$1" |
        tail -1 | sed 's/^=* *//; s/ *=*$//')
    [ -n "$line" ] && { echo "$line"; return; }
    line=$(grep -oE '\[ *[0-9]+%\]' "$1" | tail -1 | tr -d '[] ')
    echo "no summary line: cut${line:+ at $line of the tests}; the log holds what ran"
}

pytest_status() {  # pytest_status CODE LOG: the stage's status from pytest's exit code and log
    if grep -qE 'errors? during collection|^ERROR collecting' "$2"; then echo "collection errors"; return; fi
    case $1 in
    0) echo ok ;;
    1) echo "tests failed" ;;
    2) if grep -q "Interrupted: the stage's deadline" "$2"; then echo "cut at its deadline"; else echo "interrupted (exit 2)"; fi ;;
    5) echo "no tests selected" ;;
    86) echo "errors found" ;;
    *) status_of "$1" ;;
    esac
}

run_pytest() {  # run_pytest LOG LIMIT PREFIX... -- PYTEST ARGS...: pytest under its deadline, appended to LOG
    local log=$1 limit=$2 prefix=()
    shift 2
    while [ "$1" != -- ]; do prefix+=("$1"); shift; done
    shift
    GPU_CHECK_STAGE_DEADLINE=$(( $(date +%s) + limit - 15 )) \
        timeout -k 5 "$limit" "${prefix[@]}" "${PYTEST[@]}" "$@" >> "$log" 2>&1
}

stage_pytest() {  # INDEX STAGE LIMIT: the cuda and backends stages
    local t0=$SECONDS index=$1 name=$2 limit=$3 code part outcome cupy_skips args=() file
    if [ $gpu_ok != 1 ]; then
        record "$index" "$name" skipped 0 "the CuPy cases need a GPU: $gpu_reason (CI runs the rest)"; return
    fi
    too_short "$index" "$name" "$limit" && return
    mark_running "$index" "$name" "$limit"
    part=$work/$name.log
    if [ "$name" = cuda ]; then
        # shellcheck disable=SC2206
        args=($cuda_tests)
    else
        args=(tests)
        for file in $cuda_tests; do args+=("--ignore=$file"); done
    fi
    mapfile -t selected < <(selection)
    echo "== $name: ${PYTEST[*]} ${selected[*]} -q -ra --durations=10 ${args[*]}" > "$part"
    run_pytest "$part" "$limit" -- "${selected[@]}" -q -ra --durations=10 "${args[@]}"
    code=$?
    cat "$part" >> "$tests_log"
    outcome=$(pytest_outcome "$part")
    cupy_skips=$(grep -cE 'SKIPPED.*CuPy (is not importable|sees no|cannot use)' "$part")
    record "$index" "$name" "$(pytest_status $code "$part")" $(( SECONDS - t0 )) \
        "$outcome; $cupy_skips skip lines say CuPy could not run (0 expected)"
}

stage_sanitizer() {  # INDEX TOOL LIMIT SELECTION
    local t0=$SECONDS index=$1 tool=$2 limit=$3 code part outcome found status files=() file reports prefix
    for file in $sanitizer_tests; do [ -f "$file" ] && files+=("$file"); done
    if [ $gpu_ok != 1 ]; then
        record "$index" "$tool" skipped 0 "needs a GPU: $gpu_reason"; return
    fi
    if [ -z "$sanitizer" ]; then
        record "$index" "$tool" skipped 0 "$sanitizer_reason"; return
    fi
    too_short "$index" "$tool" "$limit" && return
    if [ ${#files[@]} = 0 ]; then
        record "$index" "$tool" skipped 0 "none of the sanitizer test files is here"; return
    fi
    mark_running "$index" "$tool" "$limit"
    part=$work/$tool.log
    mapfile -t selected < <(selection "$4")
    echo "== $tool: $sanitizer --tool $tool over ${files[*]} ${selected[*]}" > "$part"
    prefix=("$sanitizer" --tool "$tool" --report-api-errors no --error-exitcode 86 --print-limit 30)
    run_pytest "$part" "$limit" "${prefix[@]}" -- -q -ra "${selected[@]}" "${files[@]}"
    code=$?
    cat "$part" >> "$sanitizers_log"
    outcome=$(pytest_outcome "$part")
    found=$(grep -E '(ERROR|RACECHECK|SYNCCHECK) SUMMARY' "$part" | tail -1 | sed 's/^=* *//')
    reports=$(grep -cE '^=+ +(Invalid|Race|Error|Potential|Uninitialized|Barrier|Out-of-range|Misaligned)' "$part")
    [ -n "$found" ] || found="no sanitizer summary line, $reports report lines before the end"
    status=$(pytest_status $code "$part")
    grep -q 'Device not supported' "$part" && found="compute-sanitizer: Device not supported (gVisor runtime?)"
    record "$index" "$tool" "$status" $(( SECONDS - t0 )) "$outcome; $found"
}

stage_bench() {  # INDEX LIMIT [bench arguments...]
    local index=$1 limit=$2 t0=$SECONDS code log=$out/gpu-bench.log files
    shift 2
    if [ $gpu_ok != 1 ]; then
        record "$index" bench skipped 0 "needs a GPU: $gpu_reason"; return
    fi
    if [ "$limit" -lt 45 ]; then
        record "$index" bench skipped 0 "only $limit s left of the $deadline s deadline (45 needed)"; return
    fi
    mark_running "$index" bench "$limit"
    if [ "$dry" = 1 ]; then  # no GPU to time: the plan it would run, and its refusal without CuPy
        # shellcheck disable=SC2086
        python3 benchmarks/bench_gpu.py --dry-run --budget-s 2 --cases seed-u8,large-u8,float32,u16,cvcuda-config-u8 \
            --time-limit-s $(( limit - 20 )) "$@" ${GPU_CHECK_BENCH_ARGS:-} > "$log" 2>&1
        code=$?
        record "$index" bench "$(status_of $code)" $(( SECONDS - t0 )) \
            "dry run: $(grep -c 'read + written' "$log") cases planned ($(head -1 "$log")); nothing timed"
        return
    fi
    # shellcheck disable=SC2086
    # the cases issue 3 sets targets for first, CV-CUDA's own configuration last
    timeout -k 10 "$limit" python3 benchmarks/bench_gpu.py --out "$out" --budget-s 2 \
        --cases seed-u8,large-u8,float32,u16,cvcuda-config-u8 \
        --time-limit-s $(( limit - 20 )) "$@" ${GPU_CHECK_BENCH_ARGS:-} > "$log" 2>&1
    code=$?
    files=$(cd "$out" && ls gpu-20*.json 2>/dev/null | tr '\n' ' ')
    record "$index" bench "$(status_of $code)" $(( SECONDS - t0 )) \
        "${files:-no results file}; $(grep -c ' ms  (first' "$log") timings, $(grep -c 'missing:' "$log") not run (see the .md)"
}

stage_stage() {  # INDEX DIR
    local t0=$SECONDS
    if cp "$2"/* "$work/peers/" 2>>"$setup_log"; then
        record "$1" stage ok $(( SECONDS - t0 )) "kept $(ls "$2" | wc -l) file(s) of $2 in $work/peers: $(du -sh "$work/peers" | cut -f1) staged"
    else
        record "$1" stage failed $(( SECONDS - t0 )) "could not copy $2 (carried? see gpu-setup.log)"
    fi
}

stage_cvcuda() {  # INDEX; fails when CV-CUDA could not be installed
    local index=$1 t0=$SECONDS first wheel
    first=$(ls "$work"/peers/cvcuda*.whl.part-00 2>/dev/null | head -1)
    if [ -n "$first" ]; then
        wheel=${first%.part-00}
        cat $(ls "$wheel".part-* | sort) > "$wheel" && rm -f "$wheel".part-*
    fi
    if ! ls "$work"/peers/cvcuda*.whl >/dev/null 2>&1; then
        record "$index" cvcuda skipped 0 "no CV-CUDA wheel or parts in $work/peers (the machine went cold since the staging call?)"
        return 1
    fi
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$work/site" \
        "$work"/peers/cvcuda*.whl >> "$setup_log" 2>&1
    if ! python3 -c "import cvcuda" >> "$setup_log" 2>&1; then
        record "$index" cvcuda failed $(( SECONDS - t0 )) "CV-CUDA does not import (see gpu-setup.log)"; return 1
    fi
    record "$index" cvcuda ok $(( SECONDS - t0 )) "CV-CUDA installed; its benchmark is the bench row"
}

# ---- the plan: one stage after another, each under its own limit

write_summary
echo "gpu_histeq GPU check: ${stages[*]} (deadline $deadline s); summary in $out/gpu-check-summary.md"
for i in "${!stages[@]}"; do
    name=${stages[$i]}
    case $name in
    info) stage_info "$i" ;;
    install) stage_install "$i" "$(limit_of "$i")" ;;
    stage) stage_stage "$i" "${stage_dirs[0]}"; stage_dirs=("${stage_dirs[@]:1}") ;;
    cvcuda)
        stages+=(bench)
        if stage_cvcuda "$i"; then
            stage_bench $(( ${#stages[@]} - 1 )) $(( $(left) - 10 )) --tag cvcuda \
                --implementations gpu_histeq,cvcuda --cases seed-u8,cvcuda-config-u8,large-u8
        else
            record $(( ${#stages[@]} - 1 )) bench skipped 0 "CV-CUDA is not installed (the cvcuda row)"
        fi ;;
    cuda|backends) stage_pytest "$i" "$name" "$(limit_of "$i")" ;;
    bench) stage_bench "$i" "$(limit_of "$i")" ;;
    memcheck) stage_sanitizer "$i" memcheck "$(limit_of "$i")" "$memcheck_k" ;;
    racecheck) stage_sanitizer "$i" racecheck "$(limit_of "$i")" "$racecheck_k" ;;
    synccheck) stage_sanitizer "$i" synccheck "$(limit_of "$i")" "$synccheck_k" ;;
    esac
done
write_summary

# ---- what the device tool's reply shows (the end of stdout): the summary and the failures
echo
cat "$out/gpu-check-summary.md"
if [ -f "$tests_log" ]; then
    echo; echo "== gpu-tests.log: short summaries"
    sed -n '/short test summary info/,/ in [0-9.]*s/p' "$tests_log" | grep -v '^SKIPPED' | head -40
fi
if [ -f "$sanitizers_log" ]; then
    echo; echo "== gpu-sanitizers.log"
    grep -E '^=+ (ERROR|RACECHECK|SYNCCHECK|Invalid|Race|Error|Barrier)|SUMMARY' "$sanitizers_log" | head -15
fi
for md in "$out"/gpu-20*.md; do
    [ -f "$md" ] && { echo; echo "== $(basename "$md")"; sed -n '1,12p' "$md"; }
done
exit 0
