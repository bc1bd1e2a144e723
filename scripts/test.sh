#!/bin/bash
# The whole test suite in one command: install, build (release and
# ASan/UBSan), unit tests under both, integration tests against the real
# oracles and servers, hostile-image tests under the sanitizers.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh || exit 1
bash scripts/build.sh --asan || exit 1
export SHARED_IMAGES=${SHARED_IMAGES:-$PWD/../shared/images}
status=0

echo "== unit tests (release)"
meson test -C build --suite unit --print-errorlogs --num-processes 2 || status=1
echo "== unit tests (ASan/UBSan)"
LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    meson test -C build-asan --suite unit --print-errorlogs --num-processes 2 || status=1

echo "== integration tests"
tests/integration/run.sh || status=1

echo "== hostile-image tests (ASan/UBSan)"
mapfile -t hostile < <(cd tests/integration && ls */test-*hostile*.sh */test-*errors*.sh 2>/dev/null)
if [ ${#hostile[@]} -gt 0 ]; then
    IMGFUSE=$PWD/build-asan/imgfuse ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
        UBSAN_OPTIONS=halt_on_error=1 tests/integration/run.sh "${hostile[@]}" || status=1
fi

echo "== fuzz targets (ASan/UBSan, brief)"
tests/fuzz/run.sh build-asan || status=1
exit $status
