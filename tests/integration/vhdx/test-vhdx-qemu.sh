#!/bin/bash
# Images qemu-img makes (convert -O vhdx with each option) read through our
# mount equal to qemu-img convert -O raw, and SEEK_HOLE reports only ranges
# that are zero; a 4 KiB-sector image of ours reads back what was put in.
. "$(dirname "$0")/../lib.sh"
LIB="python3 $(dirname "$0")/vhdx-lib.py"

# a 40 MiB source with data, holes and zero-filled stretches
src=$T/src.raw
truncate -s 40M "$src"
for i in 0 3 17 18 39; do
    head -c 700K /dev/urandom | dd of="$src" bs=1K seek=$((i * 1024 + 5)) conv=notrunc status=none
done
dd if=/dev/zero of="$src" bs=1M seek=20 count=2 conv=notrunc status=none
want=$(sha "$src")

# one directory mount for all of them: mounts are cheap, unmounts are not
optsets=("subformat=dynamic" "subformat=fixed"
         "subformat=dynamic,block_state_zero=off"
         "subformat=fixed,block_state_zero=off"
         "block_size=1M" "block_size=8M,log_size=4M" "block_size=256M")
imgs=()
for n in "${!optsets[@]}"; do
    img=$T/q$n.vhdx
    qemu-img convert -f raw -O vhdx -o "${optsets[$n]}" "$src" "$img"
    imgs+=("$img")
done
# qemu-img create with each option: empty images read as zeroes
empties=("subformat=dynamic" "subformat=fixed" "block_state_zero=off"
         "block_size=32M,log_size=2M")
for n in "${!empties[@]}"; do
    qemu-img create -q -f vhdx -o "${empties[$n]}" "$T/e$n.vhdx" 100M
    imgs+=("$T/e$n.vhdx")
done
for n in "${!optsets[@]}"; do
    expect_eq "$(qemu_raw_sha "$T/q$n.vhdx" vhdx)" "$want" "qemu's reading of ${optsets[$n]}"
done

mkdir "$T/mnt"
mount_img -r "${imgs[@]}" "$T/mnt"
for n in "${!optsets[@]}"; do
    opts=${optsets[$n]} raw=$T/mnt/q$n.raw
    expect_eq "$(sha "$raw")" "$want" "$opts: content"
    holes=$($LIB holes "$raw" "$src")
    case $opts in
        *dynamic*|block_size=1M) [ "$holes" -gt 0 ] || fail "$opts: no holes reported" ;;
    esac
    note "$opts: ok ($holes holes)"
done
# with 1 MiB blocks the data extents are exactly the blocks qemu wrote
expect_eq "$($LIB extents "$T/mnt/q4.raw")" "0+1 3+1 17+2 39+1" "block_size=1M: SEEK_DATA extents"
for n in "${!empties[@]}"; do
    cmp -s -n 104857600 "$T/mnt/e$n.raw" /dev/zero || fail "empty ${empties[$n]} is not zero"
done
unmount_img "$T/mnt"
echo ok
