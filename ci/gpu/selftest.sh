#!/usr/bin/env bash
# Checks the GPU-check scripts on a machine WITHOUT a GPU (here, or CI); no GPU number comes of it.
#   1. bash -n on every script of ci/gpu/
#   2. bench_gpu.py: --help, --dry-run, bad arguments refused, the plan_runs doctest, and a clean
#      refusal (exit 1, one line) where CuPy is missing
#   3. on-device.sh where CuPy is missing: exits 0, its summary lists every stage skipped with why
#   4. on-device.sh with GPU_CHECK_ASSUME_GPU=1 (the python3 here is left alone), a stand-in
#      compute-sanitizer and tests/test_cuda_kernels.py only: every stage runs and its row says how
#      it ended (the tests may pass or fail: the row must carry pytest's summary; the benchmark
#      fails for want of CuPy, and says so)
# Steps 2-4 need a python3 that imports gpu_histeq and has no CuPy. Usage: bash ci/gpu/selftest.sh
set -uo pipefail
cd "$(dirname "$0")/../.."
scratch=$(mktemp -d /tmp/gpu-check-selftest.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
failures=0
check() {  # check DESCRIPTION COMMAND...: run it, report
    if "${@:2}" >"$scratch/last" 2>&1; then echo "ok    $1"; else echo "FAIL  $1"; sed 's/^/      /' "$scratch/last" | tail -15; failures=$((failures + 1)); fi
}
has() { grep -qE -- "$2" "$1" || { echo "no line matches: $2"; grep "^| " "$1"; return 1; }; }

for script in ci/gpu/*.sh; do check "bash -n $script" bash -n "$script"; done
if python3 -c "import cupy" 2>/dev/null; then
    echo "CuPy is importable here: steps 2-4 are for machines without it (run on-device.sh itself)"
    exit $(( failures > 0 ))
fi

check "bench_gpu.py --help" python3 benchmarks/bench_gpu.py --help
check "bench_gpu.py --dry-run" python3 benchmarks/bench_gpu.py --dry-run --time-limit-s 150 --cases large-u8,seed-u8
check "bench_gpu.py refuses an unknown case" bash -c '! python3 benchmarks/bench_gpu.py --cases nope 2>/dev/null'
check "bench_gpu.py refuses a bad tag" bash -c '! python3 benchmarks/bench_gpu.py --tag "a b" 2>/dev/null'
check "bench_gpu.py plan_runs doctest" python3 -m doctest benchmarks/bench_gpu.py
python3 benchmarks/bench_gpu.py --out "$scratch/bench" >"$scratch/bench.log" 2>&1
code=$?
check "bench_gpu.py without CuPy: exit 1, one line naming CuPy" \
    bash -c "[ $code = 1 ] && [ \$(wc -l < '$scratch/bench.log') -le 1 ] && grep -q 'needs CuPy' '$scratch/bench.log'"

OUT=$scratch/no-gpu bash ci/gpu/on-device.sh > "$scratch/no-gpu.log" 2>&1
code=$?
summary=$scratch/no-gpu/gpu-check-summary.md
check "on-device.sh without CuPy exits 0" test $code = 0
check "... its summary says no GPU" has "$summary" '^\| info \| no GPU \|'
for stage in install tests memcheck racecheck bench; do
    check "... $stage skipped with a reason" has "$summary" "^\| $stage \| skipped \| 0 \| .*(GPU|CuPy)"
done

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
PATH=$scratch/bin:$PATH GPU_CHECK_ASSUME_GPU=1 GPU_CHECK_TESTS=tests/test_cuda_kernels.py GPU_CHECK_WHEELS=$scratch/none \
    OUT=$scratch/assumed bash ci/gpu/on-device.sh --deadline 300 > "$scratch/assumed.log" 2>&1
code=$?
summary=$scratch/assumed/gpu-check-summary.md
check "on-device.sh (GPU assumed) exits 0" test $code = 0
check "... info finds the stand-in sanitizer" has "$summary" "^\| info \| ok \|.*compute-sanitizer: $scratch/bin/compute-sanitizer"
check "... install leaves this python3 alone" has "$scratch/assumed/gpu-setup.log" 'this python3 is left alone'
check "... install says no wheels were carried" has "$summary" '^\| install \| ok \|.*no wheels carried'
check "... tests ran pytest to its summary (pass or fail)" \
    has "$summary" '^\| tests \| (ok|failed \(exit 1\)) \| [0-9]+ \| [^|]*[0-9]+ (passed|failed|skipped)[^|]* in [0-9.]+s'
check "... memcheck: pytest and sanitizer summaries" has "$summary" '^\| memcheck \| ok \| [0-9]+ \| [0-9]+ skipped, [0-9]+ deselected in .*ERROR SUMMARY: 0 errors'
check "... racecheck: pytest and sanitizer summaries" has "$summary" '^\| racecheck \| ok \| [0-9]+ \| [0-9]+ skipped, [0-9]+ deselected in .*RACECHECK SUMMARY: 0 hazards'
check "... bench failed without CuPy, and says so" has "$summary" '^\| bench \| failed \(exit 1\) \|'
check "... no more than 8 files in \$OUT (what comes back)" test "$(ls "$scratch/assumed" | wc -l)" -le 8
check "... no stage left pending or running" bash -c "! grep -qE '\| (pending|running) \|' '$summary'"
[ $failures = 0 ] && echo "all checks passed" || echo "$failures check(s) failed"
exit $(( failures > 0 ))
