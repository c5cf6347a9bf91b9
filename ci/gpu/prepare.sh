#!/usr/bin/env bash
# Run HERE (no GPU needed), from the repository root, before the device calls of ci/gpu/README.md.
# Downloads the GPU peers' wheels (kornia, kornia_rs, cuCIM, CV-CUDA in 40 MiB parts) and sorts
# them into .whl/call1, .whl/call2, ...: one folder per device call, each small enough to be
# carried with the working tree (64 MiB in all per call). .whl/ is git-ignored.
# Usage: bash ci/gpu/prepare.sh [PATH/TO/prepare-peer-wheels.sh]
set -euo pipefail
cd "$(dirname "$0")/../.."
fetch=${1:-../shared/gpu/prepare-peer-wheels.sh}
[ -f "$fetch" ] || fetch=/work/shared/gpu/prepare-peer-wheels.sh
grep -qx '/.whl/' .gitignore .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .whl/all .whl/call*
bash "$fetch" .whl/all >/dev/null
tree_kib=$(git ls-files -co --exclude-standard | xargs du -ck 2>/dev/null | tail -1 | cut -f1)
budget_kib=$(( 62 * 1024 - tree_kib ))   # what one call may carry beside the working tree
# first fit, largest first: as few calls as the 64 MiB per call allows (one per 40 MiB part)
python3 - "$budget_kib" <<'PY'
import os, shutil, sys
budget = int(sys.argv[1]) * 1024
files = sorted((os.path.join(".whl/all", f) for f in os.listdir(".whl/all")), key=os.path.getsize, reverse=True)
calls = []
for path in files:
    size = os.path.getsize(path)
    call = next((c for c in calls if c["used"] + size <= budget), None)
    if call is None:
        call = {"used": 0, "files": []}
        calls.append(call)
    call["used"] += size
    call["files"].append(path)
for number, call in enumerate(calls, 1):
    os.makedirs(f".whl/call{number}")
    for path in call["files"]:
        shutil.copy(path, f".whl/call{number}/")
PY
call=$(ls -d .whl/call* | wc -l)
echo "device calls needed: $call (each carries .whl/callN)"
for dir in .whl/call*; do echo "$dir: $(ls "$dir" | tr '\n' ' ')"; done
