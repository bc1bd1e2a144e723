#!/bin/bash
# Build imgfuse into build/ (release, asserts kept) and, with --asan,
# build-asan/ with AddressSanitizer and UndefinedBehaviorSanitizer. Both trees
# build with -Werror, and an existing tree is reconfigured to these options
# each time, so an old tree never keeps old settings. Under CI=true a driver
# whose library is missing stops the build instead of being left out.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=skip
if [ "${CI:-}" = true ]; then
    missing=error
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# quiet CMD...: run CMD with its output in $log, shown only when it fails.
quiet() {
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        return 1
    fi
}

# setup DIR OPTION...: configure DIR, or reconfigure it, with these options,
# and pass on meson's message for each driver it left out.
setup() {
    local dir=$1 mode=()
    shift
    if [ -f "$dir/meson-private/coredata.dat" ]; then
        mode=(--reconfigure)
    fi
    quiet meson setup "${mode[@]}" "$dir" -Dwerror=true -Db_ndebug=false \
        -Dmissing_drivers="$missing" "$@"
    grep '^Message: .* driver left out' "$log" >&2 || true
}

setup build --buildtype=release
quiet ninja -C build
if [ "${1:-}" = "--asan" ]; then
    setup build-asan --buildtype=debug -Db_sanitize=address,undefined \
        -Db_lundef=false
    quiet ninja -C build-asan
fi
