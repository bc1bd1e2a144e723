#!/bin/bash
# Install everything imgfuse needs to build, run and test on Debian 12, as
# root. Safe to run again; does nothing when all is there already.
set -euo pipefail

PKGS=(
  # build
  gcc meson ninja-build pkg-config
  libfuse3-dev fuse3 zlib1g-dev libzstd-dev liburing-dev nettle-dev
  libxml2-dev libbz2-dev liblzma-dev libnbd-dev libcriterion-dev libdeflate-dev
  libiscsi-dev liblz4-dev liblzo2-dev libsanlock-dev libblkid-dev libsystemd-dev
  # test oracles and servers
  qemu-utils qemu-block-extra qemu-system-common qemu-system-x86 nbdkit libnbd-bin gnutls-bin
  fio python3 bc util-linux e2fsprogs kmod procps psmisc openssl bzip2 gzip
  python3-libvhdi libvhdi-utils tgt libiscsi-bin
  bximage
  fdisk gdisk dosfstools mtools
  # luks: cryptsetup and Python's cryptography are its oracles
  cryptsetup-bin python3-cryptography
  cloop-utils python3-lz4 python3-lzo
  glusterfs-server glusterfs-client libglusterfs-dev
  sanlock libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
  libssh-dev openssh-server openssh-client
  # the host_cdrom test's guest (its kernel is downloaded, not installed)
  busybox-static cpio genisoimage
  # SCSI persistent reservations: sg_persist in the PR test's guest (whose
  # iscsistart comes from open-iscsi, downloaded, not installed)
  sg3-utils
  # the nvme driver (linux/vfio.h); bench/nvme-syscalls.sh (strace)
  linux-libc-dev strace
  # sanitizers
  libclang-rt-14-dev
)

missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "install-deps: need root to install: ${missing[*]}" >&2
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# FUSE needs its device node; containers sometimes lack it.
if [ ! -e /dev/fuse ] && [ "$(id -u)" = 0 ]; then
    mknod -m 0666 /dev/fuse c 10 229 2>/dev/null || true
fi
