#!/bin/bash
# vvfat rw: mtools (mcopy, mcopy -o, mdel, mmd, mren, mmove, mdeltree) write
# through the mounted disk; each tool's close flushes, which carries the
# change back into DIR. After every step DIR must equal a shadow tree the
# same operations made with plain shell commands, and fsck.fat finds the
# volume clean; a renamed file keeps its inode, a rewritten one its mode.
# A file changed on the host meanwhile is refused, named in
# the log, and keeps the host's bytes; nothing appears outside DIR; a
# second mount shows what the first carried back. FAT16 and FAT32.
. "$(dirname "$0")/../lib.sh"
export LC_ALL=C.UTF-8 MTOOLS_SKIP_CHECK=1

# start SOURCE IMG: mount in the foreground (its log in $T/log), in the
# background, and wait until it is live
start() {
    touch "$2"
    _MOUNTS+=("$2")
    "$IMGFUSE" -f "$1" "$2" 2>"$T/log" &
    DAEMON=$!
    for _ in $(seq 1 100); do
        is_mounted "$2" && return 0
        kill -0 $DAEMON 2>/dev/null || fail "$1: mount failed: $(cat "$T/log")"
        sleep 0.05
    done
    fail "$1: not mounted after 5 s"
}

stop() {
    fusermount3 -u "$1"
    wait $DAEMON || fail "imgfuse exited with an error: $(cat "$T/log")"
}

# same WHAT: DIR equals the shadow tree, and the volume is clean
same() {
    diff -r "$T/work/d" "$T/shadow" >"$T/diff" ||
        fail "$1: DIR differs from the shadow: $(head -5 "$T/diff")"
    # the partition: its first 64 MiB (all in use is there), then a hole
    rm -f "$T/vol"
    dd if="$IMG" of="$T/vol" bs=1M count=64 iflag=skip_bytes skip=32256 \
        conv=sparse status=none
    truncate -s $((528482304 - 32256)) "$T/vol"
    fsck.fat -n "$T/vol" >"$T/fsck" 2>&1 || fail "$1: fsck.fat: $(cat "$T/fsck")"
    note "$1: DIR as expected, fsck clean"
}

for kind in 16 32; do
    rm -rf "$T/work" "$T/shadow"
    mkdir -p "$T/work"
    python3 "$(dirname "$0")/make-tree.py" "$T/work/d" $kind 60 30000
    mkdir -p "$T/work/d/docs/old" "$T/work/d/gone dir/inner"
    echo "original" >"$T/work/d/docs/notes.txt"
    echo "bye" >"$T/work/d/docs/remove me.txt"
    echo "deep" >"$T/work/d/gone dir/inner/deep.txt"
    echo "host side" >"$T/work/d/conflict.txt"
    echo "outside" >"$T/work/sibling.txt"
    chmod 755 "$T/work/d/docs/notes.txt"
    head -c 50000 /dev/urandom >"$T/work/d/docs/keep me.dat"
    ino=$(stat -c %i "$T/work/d/docs/keep me.dat")
    cp -a "$T/work/d" "$T/shadow"
    head -c 300000 /dev/urandom >"$T/big.bin"
    echo "new text" >"$T/new.txt"
    echo "changed text, longer than before" >"$T/changed.txt"
    IMG=$T/m.raw
    I=(-i "$IMG@@32256")

    start "fat:$kind:rw:$T/work/d" "$IMG"
    [ $kind = 16 ] || grep -q "FAT32" "$T/log" || true

    mcopy "${I[@]}" "$T/big.bin" "::/A Big Random File.bin"
    cp "$T/big.bin" "$T/shadow/A Big Random File.bin"
    same "FAT$kind: new file with a long name"

    mcopy -o "${I[@]}" "$T/changed.txt" ::/docs/notes.txt
    cp "$T/changed.txt" "$T/shadow/docs/notes.txt"
    mdel "${I[@]}" "::/docs/remove me.txt"
    rm "$T/shadow/docs/remove me.txt"
    same "FAT$kind: changed and deleted files"
    expect_eq "$(stat -c %a "$T/work/d/docs/notes.txt")" 755 "FAT$kind: mode kept"

    mmd "${I[@]}" "::/New Folder" "::/New Folder/sub"
    mcopy "${I[@]}" "$T/new.txt" "::/New Folder/sub/Inner File.txt"
    mkdir -p "$T/shadow/New Folder/sub"
    cp "$T/new.txt" "$T/shadow/New Folder/sub/Inner File.txt"
    same "FAT$kind: new directories"

    mren "${I[@]}" ::/docs/old "::/docs/Renamed Dir"
    mv "$T/shadow/docs/old" "$T/shadow/docs/Renamed Dir"
    mmove "${I[@]}" "::/A Big Random File.bin" "::/New Folder/"
    mv "$T/shadow/A Big Random File.bin" "$T/shadow/New Folder/"
    mren "${I[@]}" "::/docs/keep me.dat" "::/docs/Renamed Kept.dat"
    mv "$T/shadow/docs/keep me.dat" "$T/shadow/docs/Renamed Kept.dat"
    mdeltree "${I[@]}" "::/gone dir"
    rm -rf "$T/shadow/gone dir"
    same "FAT$kind: renamed, moved and removed"
    expect_eq "$(stat -c %i "$T/work/d/docs/Renamed Kept.dat")" "$ino" \
        "FAT$kind: a renamed file is moved on the host, not copied"

    # the host changes a file; the disk's change to it is refused
    sleep 0.01
    echo "host changed it" >"$T/work/d/conflict.txt"
    cp "$T/work/d/conflict.txt" "$T/shadow/conflict.txt"
    mcopy -o "${I[@]}" "$T/new.txt" ::/conflict.txt
    same "FAT$kind: host's version kept"
    grep -q "conflict.txt: changed on the host" "$T/log" ||
        fail "FAT$kind: the refusal does not name the file: $(cat "$T/log")"

    # the disk still reads back what was written, after the commits
    mcopy -n "${I[@]}" "::/New Folder/A Big Random File.bin" "$T/back.bin"
    cmp -s "$T/back.bin" "$T/big.bin" || fail "FAT$kind: moved file reads back wrong"
    stop "$IMG"
    expect_eq "$(cd "$T/work" && ls -A | tr '\n' ' ')" "d sibling.txt " \
        "FAT$kind: nothing outside DIR"
    expect_eq "$(find "$T/work/d" -name '.vvfat-*' | wc -l)" 0 "temporary files left"

    # a new read-only mount shows what was carried back
    mount_img "fat:$kind:$T/work/d" "$IMG" 2>/dev/null
    rm -rf "$T/out" && mkdir "$T/out"
    mcopy -s -n -m -i "$IMG@@32256" '::*' "$T/out/"
    diff -r "$T/out" "$T/shadow" >"$T/diff" ||
        fail "FAT$kind: remount differs: $(head -5 "$T/diff")"
    unmount_img "$IMG"
    note "FAT$kind: a new mount shows the tree carried back"
done
