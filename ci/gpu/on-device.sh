#!/usr/bin/env bash
# Run ON THE GPU MACHINE, from the repository root, by the device calls of ci/gpu/README.md.
#   stage DIR  keep the wheels and wheel parts carried in DIR (.whl/callN) in /tmp/gpu_histeq_peers
#              (the machine keeps /tmp while it stays warm between calls)
#   join       join every split wheel from its parts (once the last part is staged)
#   install    install every whole wheel in /tmp/site (PYTHONPATH) and list the peers found
#   tests      the whole test suite (CuPy backend included), log to $OUT/gpu-tests.log
#   bench      benchmarks/bench_gpu.py, results (.json, .md) and its log to $OUT
# Several subcommands may follow each other: on-device.sh stage .whl/call1 install tests
set -uo pipefail
peers=/tmp/gpu_histeq_peers
site=/tmp/site
out=${OUT:-/tmp/gpu_histeq_out}
mkdir -p "$peers" "$site" "$out"
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
status=0
while [ $# -gt 0 ]; do
    case "$1" in
    stage)
        cp -v "$2"/* "$peers"/ && shift ;;
    join)
        for first in "$peers"/*.whl.part-00; do
            [ -e "$first" ] || continue
            wheel=${first%.part-00}
            cat $(ls "$wheel".part-* | sort) > "$wheel" && rm -f "$wheel".part-* && ls -l "$wheel"
        done ;;
    install)
        ls "$peers"/*.whl >/dev/null 2>&1 &&
            python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
                --target "$site" "$peers"/*.whl 2>&1 | tail -5
        python3 - <<'PY'
import importlib
for name in ("cupy", "torch", "torchvision", "kornia", "cucim", "cvcuda"):
    try:
        module = importlib.import_module(name)
        print(f"{name} {getattr(module, '__version__', '?')}")
    except Exception as error:
        print(f"{name} MISSING ({type(error).__name__}: {error})")
PY
        ;;
    tests)
        nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$out/gpu-tests.log"
        python3 -m pytest -p no:cacheprovider -ra -q tests 2>&1 | tee -a "$out/gpu-tests.log"
        [ "${PIPESTATUS[0]}" -eq 0 ] || status=1 ;;
    bench)
        python3 benchmarks/bench_gpu.py --out "$out" 2>&1 | tee "$out/gpu-bench.log"
        [ "${PIPESTATUS[0]}" -eq 0 ] || status=1 ;;
    *)
        echo "unknown subcommand $1" >&2; exit 2 ;;
    esac
    shift
done
exit $status
