#!/usr/bin/env bash
# Fails when git tracks a build output: an ELF file or any file over 1 MiB.
# Build outputs belong in bin/ and build/, which .gitignore keeps out.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=()
while IFS= read -r -d '' f; do
	[ -f "$f" ] && [ ! -L "$f" ] || continue
	if [ "$(head -c4 "$f" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]; then
		bad+=("$f (an ELF binary)")
	elif [ "$(stat -c %s "$f")" -gt 1048576 ]; then
		bad+=("$f (over 1 MiB)")
	fi
done < <(git ls-files -z)
if [ ${#bad[@]} -gt 0 ]; then
	echo "tracked-files: git tracks build outputs or large files; git rm --cached them and ignore the path:" >&2
	printf '  %s\n' "${bad[@]}" >&2
	exit 1
fi
