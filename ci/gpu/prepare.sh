#!/usr/bin/env bash
# Run HERE (no GPU needed), from anywhere in the repository, before the device call of
# ci/gpu/README.md. Fetches the GPU peers' wheels and packs what the one call carries:
#
#   .whl/gpu          kornia, kornia_rs, cuCIM (about 24 MB): carried by the one call
#   .whl/cvcuda-K     with --cvcuda only: CV-CUDA for CPython 3.12 (the wheel less its bindings for
#                     other Pythons, about 121 MB) cut into parts that each fit one call beside the
#                     working tree: the optional CV-CUDA calls (README, step 3)
#
# Each folder must fit one call: 64 MiB, less the working tree that travels with it (tracked and
# untracked, not ignored files), less 2 MiB of slack; the script checks and says so. .whl/ is
# git-ignored. Usage:
#
#   bash ci/gpu/prepare.sh [--cvcuda] [--from DIR]
#
# --from DIR takes wheels (and CV-CUDA .part-NN files) already downloaded into DIR instead of
# running shared/gpu/prepare-peer-wheels.sh (which downloads all four peers, CV-CUDA included).
set -euo pipefail
cd "$(dirname "$0")/../.."
cvcuda=0
from=""
while [ $# -gt 0 ]; do
    case "$1" in
    --cvcuda) cvcuda=1 ;;
    --from) from=${2:?--from needs a folder}; shift ;;
    *) echo "prepare.sh: unknown argument $1 (usage: prepare.sh [--cvcuda] [--from DIR])" >&2; exit 2 ;;
    esac
    shift
done
git check-ignore -q .whl/x || { echo "prepare.sh: .whl/ is not git-ignored; it would travel as part of the tree" >&2; exit 1; }

if [ -z "$from" ]; then
    fetch=""
    for candidate in ../shared/gpu/prepare-peer-wheels.sh shared/gpu/prepare-peer-wheels.sh /work/shared/gpu/prepare-peer-wheels.sh; do
        [ -f "$candidate" ] && { fetch=$candidate; break; }
    done
    [ -n "$fetch" ] || { echo "prepare.sh: shared/gpu/prepare-peer-wheels.sh not found; pass --from DIR" >&2; exit 1; }
    rm -rf .whl/all
    bash "$fetch" .whl/all >/dev/null
    from=.whl/all
fi

# what travels with every call: the tracked and untracked, not ignored files
tree_bytes=$(git ls-files -z -co --exclude-standard | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
budget=$(( 64 * 1024 * 1024 - tree_bytes - 2 * 1024 * 1024 ))
echo "working tree that travels: $(( tree_bytes / 1024 )) KiB; each call may carry $(( budget / 1024 )) KiB more"

rm -rf .whl/gpu .whl/cvcuda-*
mkdir -p .whl/gpu
for pattern in 'kornia-*.whl' 'kornia_rs-*.whl' 'cucim*.whl'; do
    found=$(find "$from" -maxdepth 1 -name "$pattern" | sort | tail -1)
    [ -n "$found" ] || { echo "prepare.sh: no $pattern in $from" >&2; exit 1; }
    cp "$found" .whl/gpu/
done
size=$(du -cb .whl/gpu/*.whl | tail -1 | cut -f1)
if [ "$size" -gt "$budget" ]; then
    echo "prepare.sh: .whl/gpu holds $(( size / 1024 )) KiB, over the $(( budget / 1024 )) KiB one call may carry" >&2
    exit 1
fi
echo ".whl/gpu: $(( size / 1024 )) KiB: $(cd .whl/gpu && ls | tr '\n' ' ')"

[ $cvcuda = 1 ] || exit 0

# CV-CUDA: join its parts, keep the CPython 3.12 binding only (the GPU machine's python3), cut
# the slim wheel into parts that each fit one call
mkdir -p .whl/cvcuda-all
first=$(find "$from" -maxdepth 1 -name 'cvcuda*.whl.part-00' | sort | tail -1)
if [ -n "$first" ]; then
    wheel=.whl/cvcuda-all/$(basename "${first%.part-00}")
    cat $(ls "${first%.part-00}".part-* | sort) > "$wheel"
else
    wheel=$(find "$from" -maxdepth 1 -name 'cvcuda*.whl' | sort | tail -1)
    [ -n "$wheel" ] || { echo "prepare.sh: no CV-CUDA wheel or parts in $from" >&2; exit 1; }
    cp "$wheel" .whl/cvcuda-all/ && wheel=.whl/cvcuda-all/$(basename "$wheel")
fi
python3 - "$wheel" <<'PY'
import re, sys, zipfile
path = sys.argv[1]
other_python = re.compile(r"\.cpython-3(?!12-)\d+t?-[^/]*\.so$")  # bindings for Pythons other than 3.12
with zipfile.ZipFile(path) as source:
    keep = [info for info in source.infolist() if not other_python.search(info.filename)]
    dropped = len(source.infolist()) - len(keep)
    slim = path + ".slim"
    with zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as target:
        for info in keep:
            data = source.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                data = "".join(line for line in data.decode().splitlines(True)
                               if not other_python.search(line.split(",")[0])).encode()
            target.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
import os
os.replace(slim, path)
print(f"CV-CUDA: dropped {dropped} bindings for other Pythons")
PY
size=$(stat -c %s "$wheel")
split -b "$budget" -d "$wheel" "$wheel.part-"
count=0
for part in "$wheel".part-*; do
    count=$(( count + 1 ))
    mkdir -p ".whl/cvcuda-$count" && mv "$part" ".whl/cvcuda-$count/"
done
rm -rf .whl/cvcuda-all
echo "CV-CUDA $(basename "$wheel"): $(( size / 1024 )) KiB in $count part(s): $(ls -d .whl/cvcuda-* | tr '\n' ' ')"
echo "optional CV-CUDA calls: $(( count - 1 )) x stage, then 'stage .whl/cvcuda-$count cvcuda' (ci/gpu/README.md, step 3)"
