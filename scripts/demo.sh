#!/bin/bash
# The demo scripts/run.sh shows when given no image: a qcow2 holding a GPT
# disk with an ext4 and a FAT partition that contain a few files, mounted in
# directory mode, where each partition is a file of its own.
#   bash scripts/demo.sh IMGFUSE DIR
# No root loop devices: the file systems are made in plain files, the disk
# is partitioned and filled through an imgfuse mount of the qcow2.
set -euo pipefail
imgfuse=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
img=$dir/demo.qcow2
mnt=$dir/mnt

if grep -q " $mnt fuse" /proc/mounts; then
    echo "the demo is mounted already"
else
    if [ ! -f "$img" ]; then
        work=$(mktemp -d "$dir/.build.XXXXXX")
        trap 'fusermount3 -u "$work/disk.raw" 2>/dev/null || true; rm -rf "$work"' EXIT
        mkdir "$work/files"
        echo "Hello from an ext4 partition inside a qcow2 image." > "$work/files/hello.txt"
        printf '%s\n' "imgfuse mounts disk images as raw files;" \
            "each partition appears as NAME-pN.raw beside the disk." > "$work/files/README"
        mkdir "$work/files/docs"
        seq 1 2000 > "$work/files/docs/numbers.txt"
        # p1: 24 MiB ext4 from the directory, at 1 MiB; p2: 16 MiB FAT
        # with mtools, at 25 MiB
        mkfs.ext4 -q -F -L demo-ext4 -d "$work/files" "$work/p1" 24M >/dev/null
        truncate -s 16M "$work/p2"
        mkfs.fat -n DEMOFAT "$work/p2" >/dev/null
        mcopy -i "$work/p2" "$work/files/hello.txt" "$work/files/README" ::/
        # the disk: a 48 MiB qcow2, partitioned and filled through imgfuse
        "$imgfuse" create -F qcow2 "$work/demo.qcow2" 48M >/dev/null
        "$imgfuse" -F qcow2 --pidfile="$work/pid" "$work/demo.qcow2" "$work/disk.raw"
        pid=$(cat "$work/pid")
        sgdisk -n 1:2048:+24M -t 1:8300 -c 1:demo-ext4 \
                  -n 2:51200:+16M -t 2:0700 -c 2:demo-fat "$work/disk.raw" >/dev/null
        dd if="$work/p1" of="$work/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
        dd if="$work/p2" of="$work/disk.raw" bs=1M seek=25 conv=notrunc,sparse status=none
        fusermount3 -u "$work/disk.raw"
        # the daemon flushes and exits after the unmount: wait for it
        for _ in $(seq 1 200); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        mv "$work/demo.qcow2" "$img"
    fi
    mkdir -p "$mnt"
    "$imgfuse" -F qcow2 "$img" "$mnt"
fi
cat <<TXT
mounted $img in $mnt:
$(ls -l "$mnt" | tail -n +2 | sed 's/^/    /')
look at it:
    fdisk -l $mnt/demo.raw
    debugfs -R 'ls -l /' $mnt/demo-p1.raw       # the ext4 partition
    debugfs -R 'cat /hello.txt' $mnt/demo-p1.raw
    mdir -i $mnt/demo-p2.raw ::                  # the FAT partition
    mtype -i $mnt/demo-p2.raw ::/README
    imgfuse list
unmount:
    fusermount3 -u $mnt
TXT
