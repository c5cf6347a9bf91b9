#!/usr/bin/env bash
# The one-call GPU check of ci/gpu/README.md. Run ON THE GPU MACHINE, from the repository root:
#
#   bash ci/gpu/on-device.sh [--deadline SECONDS] [--serial] [STAGE ...]
#
# Stages (default: info install tests memcheck racecheck bench; tests, memcheck and racecheck run
# side by side, the benchmark alone after them, so that its timings have the GPU to themselves):
#   info       GPU, driver, CUDA, Python packages, where compute-sanitizer is
#   install    the carried wheels ($GPU_CHECK_WHEELS, default .whl/gpu: kornia, kornia_rs, cuCIM)
#              into /tmp/gpu_histeq_check/site; gpu_histeq itself (pip install -e: the compiled CPU path)
#   tests      python3 -m pytest, the whole suite, CuPy backend included (xdist workers if installed)
#   memcheck   compute-sanitizer --tool memcheck over a selection of the kernel tests
#              (tests/test_cuda_kernels.py, tests/test_cuda_edge_cases.py, tests/test_cuda_ragged.py)
#   racecheck  compute-sanitizer --tool racecheck over a smaller selection
#   bench      benchmarks/bench_gpu.py with the time that is left
#   stage DIR  keep the files carried in DIR in /tmp/gpu_histeq_check/peers (kept while the machine
#              stays warm between calls: the optional CV-CUDA calls)
#   cvcuda     join the staged CV-CUDA parts, install it, benchmark it beside gpu_histeq
#
# Every stage has a time limit, so later stages still run; the whole call ends by --deadline
# (default 460 s). Everything goes to $OUT (at most 8 files come back): gpu-check-summary.md (each
# stage's status, seconds and why, rewritten as stages start and end), gpu-setup.log,
# gpu-tests.log, gpu-memcheck.log, gpu-racecheck.log, gpu-bench.log and the benchmark's
# gpu-<date>-<device>.json / .md. Exits 0 whatever the stages found (2 for bad arguments): the
# summary says what passed, failed, timed out or was skipped, and why.
#
# Knobs (environment): GPU_CHECK_WHEELS, GPU_CHECK_WORKERS (pytest-xdist workers, 0 = one process),
# GPU_CHECK_MEMCHECK_K / GPU_CHECK_RACECHECK_K (pytest -k selections), GPU_CHECK_BENCH_ARGS,
# GPU_CHECK_TESTS (pytest paths for the tests stage; default: the whole suite),
# GPU_CHECK_SANITIZER_TESTS (the sanitizers' test files; default the two above and tests/test_cuda_ragged.py). For testing this
# script on a machine without a GPU only (ci/gpu/selftest.sh): GPU_CHECK_ASSUME_GPU=1.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
repo=$PWD
out=${OUT:-$repo/out/gpu-check}
work=/tmp/gpu_histeq_check
deadline=460
serial=0
command_line="bash ci/gpu/on-device.sh${*:+ $*}"
stages=()
stage_dirs=()
while [ $# -gt 0 ]; do
    case "$1" in
    --deadline) deadline=${2:?--deadline needs seconds}; shift ;;
    --serial) serial=1 ;;
    info|install|tests|memcheck|racecheck|bench|cvcuda) stages+=("$1") ;;
    stage) stages+=("stage"); stage_dirs+=("${2:?stage needs a folder}"); shift ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "on-device.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done
case "$deadline" in ''|*[!0-9]*) echo "on-device.sh: --deadline must be whole seconds, got $deadline" >&2; exit 2 ;; esac
[ ${#stages[@]} -gt 0 ] || stages=(info install tests memcheck racecheck bench)
[ "${stages[0]}" = info ] || stages=(info "${stages[@]}")  # every call says what it ran on
light=1  # only staging files: info reads nvidia-smi alone
for name in "${stages[@]}"; do case $name in info|stage) ;; *) light=0 ;; esac; done

wheels=${GPU_CHECK_WHEELS:-.whl/gpu}
workers=${GPU_CHECK_WORKERS:-8}
memcheck_k=${GPU_CHECK_MEMCHECK_K:-"((fused_equals_portable and random) or multi_block or unaligned or hook or nan_raises or far_out or repeated_bin_edges or random_lists or empty_lists or packed_counts or apply_packed) and not emul"}
racecheck_k=${GPU_CHECK_RACECHECK_K:-"((fused_equals_portable and random and (small or large)) or multi_block or unaligned or random_lists) and not emul"}

mkdir -p "$out" "$work/site" "$work/peers" "$work/cupy-cache"
rm -rf "$work/results" && mkdir -p "$work/results"
export PYTHONPATH="$work/site:$repo${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export CUPY_CACHE_DIR="$work/cupy-cache"  # tests and sanitizers; bench_gpu.py starts its own, empty
setup_log=$out/gpu-setup.log
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
    probe=$(timeout 120 python3 - 2>&1 <<'PY'
import importlib
for name in ("numpy", "cupy", "torch", "torchvision", "skimage", "cv2", "pytest", "xdist", "pytest_timeout",
             "hypothesis", "kornia", "cucim", "cvcuda"):
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
    if [ "${GPU_CHECK_ASSUME_GPU:-0}" = 1 ] && ! echo "$probe" | grep -q '^GPU_OK'; then
        echo "$probe" | grep '^GPU_NO' >> "$setup_log"
        probe=$'GPU_OK\tnone: GPU_CHECK_ASSUME_GPU=1 (testing this script; no number here is a GPU\'s)'
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
        if [ "${GPU_CHECK_ASSUME_GPU:-0}" = 1 ]; then
            echo "gpu_histeq not installed: GPU_CHECK_ASSUME_GPU=1 (a test of this script; this python3 is left alone)"
        elif python3 -c "import importlib.metadata as m, gpu_histeq._cpu as c; m.version('gpu_histeq'); assert c.BUILT" 2>/dev/null; then
            echo "gpu_histeq already installed with its compiled CPU path"
        else
            if ! timeout -k 5 "$(min 150 "$2")" python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . 2>&1 | tail -20; then
                # pip refused (an older setuptools than pyproject.toml needs?): build the compiled
                # CPU path alone, from a copy without pyproject.toml, and use the tree on PYTHONPATH
                echo "pip install -e . failed: building the extension alone (no installed metadata)"
                rm -rf "$work/build" && mkdir -p "$work/build" && cp -r setup.py gpu_histeq "$work/build/" &&
                    (cd "$work/build" && timeout -k 5 120 python3 setup.py -q build_ext --inplace 2>&1 | tail -20) &&
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
    import importlib.metadata
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

pytest_plugins() {  # extra pytest arguments for the plugins this python3 has
    local args=(-p no:cacheprovider -p no:benchmark)
    if [ "$1" = parallel ] && [ "$workers" -gt 0 ] && python3 -c "import xdist" 2>/dev/null; then
        args+=(-n "$workers")
    fi
    python3 -c "import pytest_timeout" 2>/dev/null && args+=(--timeout 120)
    echo "${args[@]}"
}

pytest_outcome() {  # the last pytest summary line of a log, or how far a cut run got
    local line
    line=$(grep -E '[0-9]+ (passed|failed|errors?|skipped|deselected|xfailed|xpassed|warnings?)\b.* in [0-9.]+s' "$1" |
        tail -1 | sed 's/^=* *//; s/ *=*$//')
    [ -n "$line" ] && { echo "$line"; return; }
    line=$(grep -oE '\[ *[0-9]+%\]' "$1" | tail -1 | tr -d '[] ')
    echo "cut before pytest's summary${line:+, at $line of the tests}: the log holds what ran"
}

stage_tests() {  # INDEX LIMIT
    local t0=$SECONDS code log=$out/gpu-tests.log outcome cupy_skips
    if [ $gpu_ok != 1 ]; then
        record "$1" tests skipped 0 "the CuPy suite needs a GPU: $gpu_reason (CI runs the NumPy suite)"; return
    fi
    too_short "$1" tests "$2" && return
    mark_running "$1" tests "$2"
    echo "== $gpu_line" > "$log"
    echo "== python3 -m pytest $(pytest_plugins parallel) -ra -q --durations=15 ${GPU_CHECK_TESTS:-}" >> "$log"
    # shellcheck disable=SC2046,SC2086
    timeout -k 10 "$2" python3 -m pytest $(pytest_plugins parallel) -ra -q --durations=15 ${GPU_CHECK_TESTS:-} >> "$log" 2>&1
    code=$?
    outcome=$(pytest_outcome "$log")
    cupy_skips=$(grep -cE 'SKIPPED.*CuPy (is not importable|sees no|cannot use)' "$log")
    record "$1" tests "$(status_of $code)" $(( SECONDS - t0 )) \
        "$outcome; $cupy_skips skip lines say CuPy could not run (0 expected on a GPU)"
}

stage_sanitizer() {  # INDEX TOOL LIMIT SELECTION
    local t0=$SECONDS code log=$out/gpu-$2.log outcome found status files=() file reports
    for file in ${GPU_CHECK_SANITIZER_TESTS:-tests/test_cuda_kernels.py tests/test_cuda_edge_cases.py tests/test_cuda_ragged.py}; do
        [ -f "$file" ] && files+=("$file")
    done
    if [ $gpu_ok != 1 ]; then
        record "$1" "$2" skipped 0 "needs a GPU: $gpu_reason"; return
    fi
    if [ -z "$sanitizer" ]; then
        record "$1" "$2" skipped 0 "$sanitizer_reason"; return
    fi
    too_short "$1" "$2" "$3" && return
    mark_running "$1" "$2" "$3"
    if [ ${#files[@]} = 0 ]; then
        record "$1" "$2" skipped 0 "none of the sanitizer test files is here"; return
    fi
    echo "== $sanitizer --tool $2 over ${files[*]} -k \"$4\"" > "$log"
    # shellcheck disable=SC2046
    timeout -k 10 "$3" "$sanitizer" --tool "$2" --report-api-errors no --error-exitcode 86 --print-limit 30 \
        python3 -m pytest $(pytest_plugins serial) -q -ra "${files[@]}" -k "$4" >> "$log" 2>&1
    code=$?
    outcome=$(pytest_outcome "$log")
    found=$(grep -E '(ERROR|RACECHECK) SUMMARY' "$log" | tail -1 | sed 's/^=* *//')
    reports=$(grep -cE '^=+ +(Invalid|Race|Error|Potential|Uninitialized|Barrier|Out-of-range|Misaligned)' "$log")
    [ -n "$found" ] || found="no sanitizer summary line, $reports report lines before the end"
    case $code in
    86) status="errors found" ;;
    5) status="no tests selected"; outcome="-k selected nothing: set GPU_CHECK_${2^^}_K" ;;
    *) status=$(status_of $code) ;;
    esac
    grep -q 'Device not supported' "$log" && found="compute-sanitizer: Device not supported (gVisor runtime?)"
    record "$1" "$2" "$status" $(( SECONDS - t0 )) "$outcome; $found"
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

# ---- the plan: stages in order; tests, memcheck and racecheck side by side unless --serial

write_summary
echo "gpu_histeq GPU check: ${stages[*]} (deadline $deadline s); summary in $out/gpu-check-summary.md"
parallel_done=0
for i in "${!stages[@]}"; do
    name=${stages[$i]}
    case $name in
    info) stage_info "$i" ;;
    install) stage_install "$i" "$(min 150 $(( $(left) - 60 )))" ;;
    stage) stage_stage "$i" "${stage_dirs[0]}"; stage_dirs=("${stage_dirs[@]:1}") ;;
    cvcuda)
        stages+=(bench)
        if stage_cvcuda "$i"; then
            stage_bench $(( ${#stages[@]} - 1 )) $(( $(left) - 10 )) --tag cvcuda \
                --implementations gpu_histeq,cvcuda --cases seed-u8,cvcuda-config-u8,large-u8
        else
            record $(( ${#stages[@]} - 1 )) bench skipped 0 "CV-CUDA is not installed (the cvcuda row)"
        fi ;;
    bench) stage_bench "$i" $(( $(left) - 10 )) ;;
    tests|memcheck|racecheck)
        [ $parallel_done = 1 ] && continue
        reserve=0
        for later in "${stages[@]:$i}"; do [ "$later" = bench ] && reserve=75; done
        window=$(( $(left) - reserve ))
        if [ $serial = 1 ] || [ $gpu_ok != 1 ]; then
            case $name in
            tests) stage_tests "$i" "$(min 270 $(( window - 80 )))" ;;
            memcheck) stage_sanitizer "$i" memcheck "$(min 200 $(( window - 40 )))" "$memcheck_k" ;;
            racecheck) stage_sanitizer "$i" racecheck "$(min 200 "$window")" "$racecheck_k" ;;
            esac
            continue
        fi
        parallel_done=1
        pids=()
        for j in "${!stages[@]}"; do
            case ${stages[$j]} in
            tests) stage_tests "$j" "$(min 270 "$window")" & pids+=($!) ;;
            memcheck) stage_sanitizer "$j" memcheck "$(min 200 "$window")" "$memcheck_k" & pids+=($!) ;;
            racecheck) stage_sanitizer "$j" racecheck "$(min 200 "$window")" "$racecheck_k" & pids+=($!) ;;
            esac
        done
        wait "${pids[@]}"
        write_summary ;;
    esac
done
write_summary

# ---- what the device tool's reply shows (the end of stdout): the summary and the failures
echo
cat "$out/gpu-check-summary.md"
if [ -f "$out/gpu-tests.log" ]; then
    echo; echo "== gpu-tests.log: short summary"
    sed -n '/short test summary info/,$p' "$out/gpu-tests.log" | grep -v '^SKIPPED' | head -40
fi
for tool in memcheck racecheck; do
    [ -f "$out/gpu-$tool.log" ] && { echo; echo "== gpu-$tool.log"; grep -E '^=+ (ERROR|RACECHECK|Invalid|Race|Error)|SUMMARY' "$out/gpu-$tool.log" | head -15; }
done
for md in "$out"/gpu-20*.md; do
    [ -f "$md" ] && { echo; echo "== $(basename "$md")"; sed -n '1,12p' "$md"; }
done
exit 0
