#!/bin/bash
# The main job in one command: install what is needed, build, and mount an
# image as a raw file. With no IMAGE, a demo disk is made and mounted
# (scripts/demo.sh).
#   bash scripts/run.sh [IMAGE [MOUNTPOINT]]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
img=${1:-}
if [ -z "$img" ]; then
    # a qcow2 with a GPT, an ext4 and a FAT partition, mounted in directory
    # mode: the disk and each partition as a raw file (scripts/demo.sh)
    exec bash scripts/demo.sh "$PWD/build/imgfuse" "$PWD/demo/disk"
fi
mnt=${2:-$PWD/demo/$(basename "${img%.*}").raw}
mkdir -p "$(dirname "$mnt")"
./build/imgfuse "$img" "$mnt"
echo "mounted $img as the raw file $mnt"
echo "try:      head -c 64 $mnt; fdisk -l $mnt"
echo "unmount:  fusermount3 -u $mnt"
