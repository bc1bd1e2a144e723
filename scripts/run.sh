#!/bin/bash
# The main job in one command: install what is needed, build, and mount an
# image as a raw file. With no IMAGE, a small demo image is made first.
#   bash scripts/run.sh [IMAGE [MOUNTPOINT]]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
img=${1:-}
if [ -z "$img" ]; then
    img=$PWD/demo/demo.img
    mkdir -p demo
    if [ ! -f "$img" ]; then
        fmt=raw
        if ./build/imgfuse create -F qcow2 "$PWD/demo/demo.qcow2" 64M >/dev/null 2>&1; then
            img=$PWD/demo/demo.qcow2
            fmt=qcow2
        else
            ./build/imgfuse create -F raw "$img" 64M >/dev/null
        fi
        # a recognisable first sector and some data further in
        ./build/imgfuse -F $fmt "$img" "$PWD/demo/fill.raw"
        printf 'imgfuse demo image\n' | dd of="$PWD/demo/fill.raw" conv=notrunc status=none
        seq 1 100000 | dd of="$PWD/demo/fill.raw" bs=1M seek=8 conv=notrunc status=none
        fusermount3 -u "$PWD/demo/fill.raw"
        sleep 0.5
    fi
    [ -f "$PWD/demo/demo.qcow2" ] && img=$PWD/demo/demo.qcow2
fi
mnt=${2:-$PWD/demo/$(basename "${img%.*}").raw}
./build/imgfuse "$img" "$mnt"
echo "mounted $img as the raw file $mnt"
echo "try:      head -c 64 $mnt; fdisk -l $mnt"
echo "unmount:  fusermount3 -u $mnt"
