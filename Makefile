# nsbox: see README.md. `make test` is what CI runs (as root, on a clean
# clone); run as root it first prepares the host (hack/setup-host.sh).

GO      ?= go
PREFIX  ?= /usr/local
BIN     := bin/nsbox
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null)
# A static binary: the stage re-executes it, and a static exec skips the
# dynamic loader. netgo/osusergo keep glibc's NSS out of the static link.
TAGS    := netgo,osusergo
# TESTTAGS builds the stage's CONFIG writer into the unit tests
# (sandbox/internal/stage/configcheck.go); the shipped binary lacks it.
TESTTAGS := nsbox_configcheck
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT) -linkmode external -extldflags -static
export CGO_ENABLED := 1

# The C library of the static binaries: musl when musl-gcc is installed
# (Debian: musl-tools; hack/setup-host.sh installs it), else glibc. A
# static glibc program spends about 0.6 ms of every start probing the
# CPU's features and caches (CPUID, which a hypervisor traps); musl's start
# takes 0.03 ms: `nsbox version` 2.67 -> 2.14 ms, `nsbox run` 0.35-0.45 ms
# faster on the 2-core VM (docs/startup.md). musl has no kernel headers:
# the kernel's linux/, asm/ and asm-generic/ are put on its include path,
# and nothing else of glibc's.
MUSL_GCC := $(shell command -v musl-gcc 2>/dev/null)
KHDRS    := build/kernel-headers
ifneq ($(and $(MUSL_GCC),$(wildcard /usr/include/linux/mount.h)),)
STATIC_CC := CC=$(MUSL_GCC) CGO_CFLAGS='-O2 -g -idirafter $(CURDIR)/$(KHDRS)'
STATIC_DEPS := $(KHDRS)/asm
endif

.PHONY: all build test unit integration lint install demo bench bench-net bench-startup bench-image bench-live clean fuzz deb release

all: build

# The helper program (cmd/nsbox-helper: --net user's stack, which nsbox
# itself does not link, so a start without it runs none of gVisor's
# package inits) is built first and embedded in nsbox (build tag
# nsbox_helper; cmd/internal/helper runs it, mapped from nsbox's file by
# its loader or copied into a sealed memfd), so bin/nsbox stays one file. The helper is pure Go (no C, no libc: its start has
# nothing to initialise before Go's runtime), static as nsbox is.
HELPER := build/nsbox-helper
# The image pulls' helper: the same program with only its image job
# (go-containerregistry's inits stay out of the network helper's start).
IMAGE_HELPER := cmd/internal/helper/nsbox-image-helper

# On x86-64 the network's helper starts without a copy: a loader of a few
# KB (cmd/internal/helper/loader) maps it from nsbox's own file, which
# needs the helper at a page boundary of that file. The raw helper is
# build/nsbox-helper (make install's); the embedded one is it after as many
# zero bytes as put it on a page boundary: nsbox is linked, align measures
# how far off one the helper landed, and nsbox is linked again with that
# much more padding. The linker orders string data by size, so the helper's
# blob stays where it was and only its padding moves it. Where it still is
# off (another linker's layout), the helper is copied into a memfd. Once
# it is on one, align's mark writes where the helper and the loader are
# into the binary's record for the ELF constructor, which starts the
# helper before the Go runtime (cmd/internal/helper/early.c).
HELPER_EMBED := cmd/internal/helper/nsbox-helper
LOADER := cmd/internal/helper/nsbox-helper-loader
LOADER_CFLAGS := -nostdlib -static -O2 -ffreestanding -fno-builtin -fno-tree-loop-distribute-patterns \
	-fno-stack-protector -fpie -no-pie -fno-asynchronous-unwind-tables -Wall -Werror -s \
	-Wl,-Ttext-segment=0x7e0000000000 -Wl,--build-id=none

build: $(STATIC_DEPS)
	@mkdir -p build
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(TAGS) -ldflags '-s -w' -o $(HELPER) ./cmd/nsbox-helper
	CGO_ENABLED=0 $(GO) build -trimpath -tags $(TAGS),nsbox_helper_image -ldflags '-s -w' -o $(IMAGE_HELPER) ./cmd/nsbox-helper
	if [ "$$($(GO) env GOARCH)" = amd64 ]; then $(or $(MUSL_GCC),$(CC)) $(LOADER_CFLAGS) -o $(LOADER) cmd/internal/helper/loader/loader.c; fi
	pad=0; for try in 1 2 3; do \
		{ head -c $$pad /dev/zero; cat $(HELPER); } >$(HELPER_EMBED); \
		$(STATIC_CC) $(GO) build -trimpath -tags $(TAGS),nsbox_helper -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/nsbox || exit 1; \
		[ "$$($(GO) env GOARCH)" = amd64 ] || exit 0; \
		need=$$($(GO) run ./cmd/internal/helper/align $(BIN) $(HELPER)) || exit 1; \
		[ "$$need" = 0 ] && exec $(GO) run ./cmd/internal/helper/align mark $(BIN) $(HELPER) $(LOADER); \
		pad=$$(( (pad + need) % 4096 )); \
	done; echo "make: the helper is not page-aligned in $(BIN) (it will be copied at each start)" >&2

# The embedding benchmark's program, built as nsbox is: Start re-executes
# it as each sandbox's stage (hack/bench.sh).
bin/embed: $(STATIC_DEPS) FORCE
	$(STATIC_CC) $(GO) build -trimpath -tags $(TAGS) -ldflags '-s -w -linkmode external -extldflags -static' -o $@ ./hack/embedbench

# The live operations through the API, without the CLI's start
# (hack/bench-live.sh); built as nsbox is, since they re-execute it.
bin/livebench: $(STATIC_DEPS) FORCE
	$(STATIC_CC) $(GO) build -trimpath -tags $(TAGS) -ldflags '-s -w -linkmode external -extldflags -static' -o $@ ./hack/livebench

$(KHDRS)/asm:
	mkdir -p $(KHDRS)
	ln -sfn /usr/include/linux $(KHDRS)/linux
	ln -sfn /usr/include/asm-generic $(KHDRS)/asm-generic
	ln -sfn /usr/include/$$(gcc -print-multiarch)/asm $(KHDRS)/asm

FORCE:

# Unit tests (with -race) then the integration tests, as an unprivileged
# user: hack/test.sh explains who runs what.
test:
	hack/test.sh

unit:
	$(GO) test -race -tags $(TESTTAGS) $$($(GO) list ./... | grep -v /tests)

# Every fuzz target (FuzzXxx) of every package, one after the other, each
# for FUZZTIME; not part of make test. Crashers land in testdata/fuzz and
# become regression cases that go test runs from then on. A failure that
# writes no crasher is Go 1.26's fuzz-coordinator race at the -fuzztime
# deadline (golang/go#75804, fixed in Go 1.27): reported, not fatal.
FUZZTIME  ?= 1m
FUZZFLAGS ?= -parallel=2
fuzz:
	@set -e; for pkg in $$($(GO) list ./... | grep -v /tests); do \
		dir=$$($(GO) list -f '{{.Dir}}' $$pkg); \
		for f in $$($(GO) test -tags $(TESTTAGS) -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$f ($$pkg, $(FUZZTIME))"; \
			before=$$(ls $$dir/testdata/fuzz/$$f 2>/dev/null | wc -l); \
			if ! $(GO) test -tags $(TESTTAGS) -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) $$pkg; then \
				after=$$(ls $$dir/testdata/fuzz/$$f 2>/dev/null | wc -l); \
				if [ "$$after" != "$$before" ]; then echo "$$f: crasher in $$dir/testdata/fuzz/$$f"; exit 1; fi; \
				echo "$$f: failed at the deadline without a crasher (golang/go#75804); not counted"; \
			fi; \
		done; \
	done

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags $(TESTTAGS) ./...

# The AppArmor profile (contrib/apparmor) goes in only where AppArmor is
# there and restricts unprivileged user namespaces (Ubuntu 23.10+), and is
# loaded when installing for this system (no DESTDIR).
APPARMOR_DIR      ?= /etc/apparmor.d
APPARMOR_RESTRICT ?= /proc/sys/kernel/apparmor_restrict_unprivileged_userns
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/nsbox
	install -D -m 0755 $(HELPER) $(DESTDIR)$(PREFIX)/libexec/nsbox/nsbox-helper
	install -D -m 0755 $(IMAGE_HELPER) $(DESTDIR)$(PREFIX)/libexec/nsbox/nsbox-image-helper
	@if [ -d "$(DESTDIR)$(APPARMOR_DIR)" ] && [ "$$(cat $(APPARMOR_RESTRICT) 2>/dev/null)" = 1 ]; then \
		sed 's#@BINDIR@#$(PREFIX)/bin#' contrib/apparmor/nsbox >"$(DESTDIR)$(APPARMOR_DIR)/nsbox" && \
		echo "installed $(DESTDIR)$(APPARMOR_DIR)/nsbox (user namespaces for $(PREFIX)/bin/nsbox)"; \
		if [ -z "$(DESTDIR)" ] && command -v apparmor_parser >/dev/null; then \
			apparmor_parser -r "$(APPARMOR_DIR)/nsbox" && echo "loaded it (apparmor_parser -r)"; \
		fi; \
	fi

# The Debian packages of the binary make build makes, for this machine's
# architecture: build/deb/nsbox_VERSION_ARCH.deb (binary, nsbox(1),
# completions, docs, the AppArmor profile where the kernel wants one) and
# nsbox-bwrap_VERSION_all.deb (/usr/bin/bwrap -> nsbox, in place of
# bubblewrap, for who chooses it). hack/deb.sh says how.
DEB_ARCH ?= $(shell dpkg --print-architecture 2>/dev/null || $(GO) env GOARCH)
deb: build
	hack/deb.sh $(BIN) $(DEB_ARCH) build/deb

# Static binaries for linux/amd64 and linux/arm64, their .debs and
# SHA256SUMS in build/release (hack/release.sh): amd64 as make build links
# it (musl with musl-tools), arm64 with Debian's cross compiler
# (gcc-aarch64-linux-gnu), static glibc: Debian has no arm64 musl cross
# compiler.
release:
	hack/release.sh build/release

# From nothing to a sandboxed command (as root it prepares the host and runs
# the demo as the unprivileged test user).
demo:
	hack/demo.sh

# Side-by-side benchmarks against bubblewrap, unshare, rootlesskit and pasta
# (as root it installs them and runs as the unprivileged test user); writes
# docs/benchmarks.md and docs/benchmarks.png. Not part of make test.
bench:
	hack/bench.sh

# Only the network rows (startup with a network, iperf3 both ways, latency,
# RSS) into docs/benchmarks-net.md and docs/benchmarks-net.png.
bench-net:
	BENCH_ARGS="-net $(BENCH_ARGS)" hack/bench.sh

# Only the startup workloads (startup with and without --net user, process
# start against an empty Go program, parallel starts with CPU per start,
# the embedding path, idle memory, the launch profile) and issue 26's
# targets into docs/benchmarks-startup.md.
bench-startup:
	BENCH_ARGS="-startup $(BENCH_ARGS)" hack/bench.sh

# Only the image rows (nsbox run --image against nsbox run and docker run,
# nsbox image pull against docker pull, from a registry the harness serves
# on 127.0.0.1) into docs/benchmarks-image.md. Run as root: Docker's
# socket is root's, nsbox still runs as the test user.
bench-image:
	BENCH_ARGS="-image $(BENCH_ARGS)" hack/bench.sh

# The live-sandbox rows (nsbox mount, cp against cp -a, pause/resume of
# 100 processes) into docs/benchmarks-live.md (hack/bench-live.sh).
bench-live:
	hack/bench-live.sh

clean:
	rm -rf bin build $(HELPER_EMBED) $(IMAGE_HELPER) $(LOADER)
