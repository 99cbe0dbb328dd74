#!/usr/bin/env bash
# Builds a minimal local Docker image to run nsbox in, without a registry:
# a root filesystem of the static nsbox binary, busybox-static with its
# applets as symlinks, bubblewrap with the shared libraries it loads (for
# comparison), newuidmap/newgidmap, and a non-root user "user" (uid 1000)
# with no subordinate ids, as CI runners' containers have; then
# `docker import`s it.
# Usage: hack/docker-image.sh NSBOX_BINARY [TAG]   (default tag: nsbox-test:local)
# Needs: docker, /usr/bin/busybox (busybox-static), /usr/bin/bwrap
# (bubblewrap); hack/setup-host.sh installs both.
set -euo pipefail
bin=${1:?usage: hack/docker-image.sh NSBOX_BINARY [TAG]}
tag=${2:-nsbox-test:local}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

mkdir -p "$root"/{bin,usr/bin,etc,tmp,proc,sys,dev,home/user,root}
install -m 0755 /usr/bin/busybox "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
	[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
install -m 0755 "$bin" "$root/usr/bin/nsbox"
# Shared-library programs, with what ldd says they load.
for prog in /usr/bin/bwrap /usr/bin/newuidmap /usr/bin/newgidmap; do
	[ -e "$prog" ] || continue
	cp -a "$prog" "$root$prog"
	for lib in $(ldd "$prog" | grep -o '/[^ ]*'); do
		mkdir -p "$root$(dirname "$lib")"
		cp -L "$lib" "$root$lib"
	done
done
printf 'root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\nuser:x:1000:\n' >"$root/etc/group"
: >"$root/etc/subuid"
: >"$root/etc/subgid"
chmod 1777 "$root/tmp"
chown 1000:1000 "$root/home/user"
tar -C "$root" --numeric-owner -c . | docker import -c 'ENV PATH=/usr/bin:/bin' -c 'WORKDIR /home/user' - "$tag" >/dev/null
echo "$tag"
