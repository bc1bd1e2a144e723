#!/bin/bash
# The long fuzz run: every target under libFuzzer for FUZZ_SECONDS (default
# 600) each, with what it finds merged into tests/fuzz/corpus/ (-m). Prints
# executions, coverage (edges) and crashes per target. Not part of the
# suite: run it when asked, and turn every crash into a regression input.
exec "$(dirname "$0")/libfuzzer.sh" -s "${FUZZ_SECONDS:-600}" -m "$@"
