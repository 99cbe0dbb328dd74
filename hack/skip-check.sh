#!/usr/bin/env bash
# Passes go test -v output through; with CI=true, a skipped test fails the
# run (rootless behaviour must be proven, not skipped). Exits 1 too when no
# test ran at all.
set -uo pipefail
skipped=0 ran=0
while IFS= read -r line; do
	printf '%s\n' "$line"
	case "$line" in
	*"--- SKIP:"*) skipped=$((skipped + 1)) ;;
	*"--- PASS:"* | *"--- FAIL:"*) ran=$((ran + 1)) ;;
	esac
done
if [ "${CI:-}" = true ] && [ "$skipped" -gt 0 ]; then
	echo "skip-check: $skipped test(s) skipped under CI=true: a skipped integration test is a failure" >&2
	exit 1
fi
if [ "$ran" -eq 0 ]; then
	echo "skip-check: no test ran" >&2
	exit 1
fi
