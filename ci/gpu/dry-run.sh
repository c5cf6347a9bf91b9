#!/usr/bin/env bash
# The one-call GPU check (ci/gpu/on-device.sh) run whole on a machine WITHOUT a GPU, as the lent
# machine would run it but against the emulated CuPy (tests/emulation), with dask hidden; CI runs
# it (.ci/run). No GPU number comes of it. It fails when:
#   - a script of ci/gpu/ does not parse, or bench_gpu.py mishandles its arguments;
#   - on-device.sh where CuPy is missing does not exit 0 with every stage skipped, and why;
#   - in the emulated run (GPU_CHECK_DRY_RUN=1, dask and distributed hidden, pytest with no xdist
#     or timeout plugin, a stand-in compute-sanitizer that runs the program and prints the real
#     one's summary line) any stage does not end "ok": a stage that collects no tests, errors in
#     collection, has a failing test or prints no summary line (pytest's, the sanitizer's, the
#     benchmark plan's) fails the run; so does a stage left pending or running, or more than the
#     8 files a device call brings back.
# The emulated stages run the `cupy-emulated` twin of every case the lent machine runs on CuPy
# (-m 'not gpu' -k emulated for -m gpu), under caps 4 times the GPU's (GPU_CHECK_TIME_SCALE): the dry run
# checks the machinery and the selections, not the GPU's timings.
# Needs python3 with gpu_histeq importable (the project's environment) and no CuPy, and a C++
# compiler for the emulator; NVRTC (the nvrtc extra) for the static shared memory check.
# Usage: bash ci/gpu/dry-run.sh            (about 4-6 minutes on 2 cores; the emulator's first build included)
set -uo pipefail
cd "$(dirname "$0")/../.."
scratch=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-dry-run.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
failures=0
check() {  # check DESCRIPTION COMMAND...: run it, report
    if "${@:2}" >"$scratch/last" 2>&1; then echo "ok    $1"; else echo "FAIL  $1"; sed 's/^/      /' "$scratch/last" | tail -15; failures=$((failures + 1)); fi
}
has() { grep -qE -- "$2" "$1" || { echo "no line matches: $2"; grep "^| " "$1"; return 1; }; }

for script in ci/gpu/*.sh; do check "bash -n $script" bash -n "$script"; done
if python3 -c "import cupy" 2>/dev/null; then
    echo "CuPy is importable here: the dry run is for machines without it (run on-device.sh itself)"
    exit 1
fi

# ---- the benchmark script's arguments
check "bench_gpu.py --help" python3 benchmarks/bench_gpu.py --help
check "bench_gpu.py --dry-run" python3 benchmarks/bench_gpu.py --dry-run --time-limit-s 150 --cases large-u8,seed-u8
check "bench_gpu.py refuses an unknown case" bash -c '! python3 benchmarks/bench_gpu.py --cases nope 2>/dev/null'
check "bench_gpu.py refuses a bad tag" bash -c '! python3 benchmarks/bench_gpu.py --tag "a b" 2>/dev/null'
check "bench_gpu.py plan_runs doctest" python3 -m doctest benchmarks/bench_gpu.py
python3 benchmarks/bench_gpu.py --out "$scratch/bench" >"$scratch/bench.log" 2>&1
code=$?
check "bench_gpu.py without CuPy: exit 1, one line naming CuPy" \
    bash -c "[ $code = 1 ] && [ \$(wc -l < '$scratch/bench.log') -le 1 ] && grep -q 'needs CuPy' '$scratch/bench.log'"

# ---- no GPU, no dry run: every stage skipped, and why
GPU_CHECK_WORK=$scratch/work-no-gpu OUT=$scratch/no-gpu bash ci/gpu/on-device.sh > "$scratch/no-gpu.log" 2>&1
code=$?
summary=$scratch/no-gpu/gpu-check-summary.md
check "on-device.sh without CuPy exits 0" test $code = 0
check "... its summary says no GPU" has "$summary" '^\| info \| no GPU \|'
for stage in install cuda backends bench memcheck racecheck synccheck; do
    check "... $stage skipped with a reason" has "$summary" "^\| $stage \| skipped \| 0 \| .*(GPU|CuPy)"
done

# ---- the whole check on the emulated CuPy, dask hidden
hidden=$scratch/hidden
for module in dask distributed; do
    mkdir -p "$hidden/$module"
    echo "raise ModuleNotFoundError(\"No module named '$module' (hidden by ci/gpu/dry-run.sh: the lent GPU machine has none)\", name='$module')" \
        > "$hidden/$module/__init__.py"
done
check "dask is hidden" bash -c "! PYTHONPATH='$hidden' python3 -c 'import dask.array' 2>/dev/null"
mkdir -p "$scratch/bin"
cat > "$scratch/bin/compute-sanitizer" <<'SAN'
#!/usr/bin/env bash
# stand-in: skip the options, run the program, print the summary line the real one prints
tool=memcheck
while [[ "${1:-}" == --* ]]; do [ "$1" = --tool ] && tool=$2; shift 2; done
"$@"; code=$?
if [ "$tool" = racecheck ]; then echo "========= RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)"
else echo "========= ERROR SUMMARY: 0 errors"; fi
exit $code
SAN
chmod +x "$scratch/bin/compute-sanitizer"
scale=${GPU_CHECK_TIME_SCALE:-4}
echo "...   the emulated run (caps x$scale; the log: $scratch/dry.log while it runs)"
PATH=$scratch/bin:$PATH PYTHONPATH="$hidden${PYTHONPATH:+:$PYTHONPATH}" GPU_CHECK_DRY_RUN=1 GPU_CHECK_TIME_SCALE=$scale \
    GPU_CHECK_WHEELS=$scratch/none GPU_CHECK_WORK=$scratch/work OUT=$scratch/dry \
    bash ci/gpu/on-device.sh --deadline $(( 470 * scale )) > "$scratch/dry.log" 2>&1
code=$?
summary=$scratch/dry/gpu-check-summary.md
grep '^| ' "$summary" | sed 's/^/      /'
check "on-device.sh (dry run) exits 0" test $code = 0
check "... info finds the stand-in sanitizer" has "$summary" "^\| info \| ok \|.*compute-sanitizer: $scratch/bin/compute-sanitizer"
check "... install leaves this python3 alone" has "$scratch/dry/gpu-setup.log" 'leaves this python3 alone'
check "... the probe saw no dask" has "$scratch/dry/gpu-setup.log" '^# dask MISSING'
pytest_row='[0-9]+ \| [1-9][0-9]* passed[^|]* in [0-9.]+s'
for stage in cuda backends; do
    check "... $stage: tests collected, all passed, pytest's summary line" has "$summary" "^\| $stage \| ok \| $pytest_row; 0 skip lines"
done
check "... bench: its plan" has "$summary" '^\| bench \| ok \| [0-9]+ \| dry run: 5 cases planned'
for tool in memcheck racecheck synccheck; do
    line='ERROR SUMMARY: 0 errors'
    [ $tool = racecheck ] && line='RACECHECK SUMMARY: 0 hazards'
    check "... $tool: tests collected and passed, pytest's and the sanitizer's summary lines" \
        has "$summary" "^\| $tool \| ok \| $pytest_row; .*$line"
done
check "... no collection error in any log" bash -c "! grep -lE 'errors? during collection|^ERROR collecting' '$scratch'/dry/*.log"
check "... no more than 8 files in \$OUT (what comes back)" test "$(ls "$scratch/dry" | wc -l)" -le 8
check "... no stage left pending or running" bash -c "! grep -qE '\| (pending|running) \|' '$summary'"
if [ $failures != 0 ]; then
    echo "the end of the emulated run's output:"; tail -30 "$scratch/dry.log" | sed 's/^/      /'
fi
[ $failures = 0 ] && echo "all checks passed" || echo "$failures check(s) failed"
exit $(( failures > 0 ))
