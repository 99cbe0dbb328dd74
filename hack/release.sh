#!/usr/bin/env bash
# hack/release.sh OUTDIR: make release. Static nsbox binaries for
# linux/amd64 and linux/arm64, the .deb of each (hack/deb.sh), and
# SHA256SUMS over all of them, in OUTDIR.
#
#   amd64: built as make build builds it (musl when musl-gcc is there,
#          else static glibc).
#   arm64: Debian's cross compiler, aarch64-linux-gnu-gcc
#          (apt-get install gcc-aarch64-linux-gnu), linking glibc
#          statically: Debian ships musl for the native architecture
#          only (musl-tools), no musl cross compiler for arm64.
#
# Where qemu-user-static runs arm64 binaries (binfmt_misc), the arm64
# binary's `nsbox version` is run as a smoke test.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/release}
GO=${GO:-go}
mkdir -p "$out"
rm -f "$out"/nsbox-linux-* "$out"/*.deb "$out"/SHA256SUMS

version=$(git describe --always --dirty 2>/dev/null || echo dev)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || true)
ldflags="-s -w -X main.version=$version -X main.commit=$commit -linkmode external -extldflags -static"

echo "== linux/amd64"
make --no-print-directory build BIN="$out/nsbox-linux-amd64"
"$out/nsbox-linux-amd64" version

echo "== linux/arm64"
if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
	echo "release: no aarch64-linux-gnu-gcc; fix: apt-get install gcc-aarch64-linux-gnu" >&2
	exit 1
fi
# The helper first, for arm64, embedded as make build embeds it (Makefile).
CGO_ENABLED=0 GOOS=linux GOARCH=arm64 \
	$GO build -trimpath -tags netgo,osusergo -ldflags "-s -w" -o cmd/internal/helper/nsbox-helper ./cmd/nsbox-helper
CGO_ENABLED=0 GOOS=linux GOARCH=arm64 \
	$GO build -trimpath -tags netgo,osusergo,nsbox_helper_image -ldflags "-s -w" -o cmd/internal/helper/nsbox-image-helper ./cmd/nsbox-helper
CGO_ENABLED=1 GOOS=linux GOARCH=arm64 CC=aarch64-linux-gnu-gcc \
	$GO build -trimpath -tags netgo,osusergo,nsbox_helper -ldflags "$ldflags" -o "$out/nsbox-linux-arm64" ./cmd/nsbox
file "$out/nsbox-linux-arm64" 2>/dev/null || true
if "$out/nsbox-linux-arm64" version 2>/dev/null; then
	echo "(ran under qemu-user through binfmt_misc)"
elif command -v qemu-aarch64-static >/dev/null; then
	qemu-aarch64-static "$out/nsbox-linux-arm64" version
	echo "(ran under qemu-aarch64-static; nsbox run cannot: qemu-user's threads make unshare(CLONE_NEWUSER) fail with EINVAL)"
else
	echo "release: the arm64 binary is built only (no qemu-user-static to run it)"
fi

echo "== packages"
hack/deb.sh "$out/nsbox-linux-amd64" amd64 "$out"
hack/deb.sh "$out/nsbox-linux-arm64" arm64 "$out" "$out/nsbox-linux-amd64"
(cd "$out" && sha256sum nsbox-linux-* *.deb >SHA256SUMS && cat SHA256SUMS)
