#!/bin/bash
# Build imgfuse into build/ (release) and, with --asan, build-asan/ with
# AddressSanitizer and UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -f build/build.ninja ]; then
    meson setup build --buildtype=debugoptimized >/dev/null
fi
ninja -C build >/dev/null
if [ "${1:-}" = "--asan" ]; then
    if [ ! -f build-asan/build.ninja ]; then
        meson setup build-asan --buildtype=debug -Db_sanitize=address,undefined \
            -Db_lundef=false >/dev/null
    fi
    ninja -C build-asan >/dev/null
fi
