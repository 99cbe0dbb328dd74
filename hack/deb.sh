#!/usr/bin/env bash
# hack/deb.sh BINARY ARCH OUTDIR [HOST-NSBOX]: builds the Debian packages
# of nsbox with dpkg-deb (make deb, make release):
#
#   OUTDIR/nsbox_VERSION_ARCH.deb        the binary, nsbox(1), completions,
#                                        docs, the AppArmor profile
#   OUTDIR/nsbox-bwrap_VERSION_all.deb   /usr/bin/bwrap -> nsbox, for who
#                                        chooses it over bubblewrap
#
# dpkg-deb, not nfpm: it comes with dpkg on every Debian and Ubuntu, and
# nothing joins the library's go.mod. The man page and completions come
# from `HOST-NSBOX man` and `HOST-NSBOX completion SHELL` (default:
# BINARY; for another architecture, a binary this machine runs), so they
# say what the binary says. Files are owned by root and dated from the
# commit (SOURCE_DATE_EPOCH), so a rebuild of a commit is the same .deb.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$1 arch=$2 out=$3 host=${4:-$1}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

# A Debian version from nsbox's: v1.2.3-4-gabc -> 1.2.3+4+gabc; a bare
# commit (no tag yet) -> 0~gitYYYYMMDD.abc, which sorts before any 0.x.
v=$("$host" version | sed -n '1s/^nsbox //p')
if [[ $v =~ ^v?[0-9]+(\.[0-9]+)+ ]]; then
	version=${v#v}
else # a commit (which may start with a digit), or dev
	version=0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d).$v
fi
version=${version//-/+}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# --- nsbox ---
root=$work/nsbox
doc=$root/usr/share/doc/nsbox
install -D -m 0755 "$bin" "$root/usr/bin/nsbox"
install -d "$root/usr/share/man/man1" "$doc" "$root/usr/share/nsbox/apparmor" \
	"$root/usr/share/bash-completion/completions" "$root/usr/share/zsh/vendor-completions" \
	"$root/usr/share/fish/vendor_completions.d"
"$host" man >"$work/nsbox.1"
gzip -9n <"$work/nsbox.1" >"$root/usr/share/man/man1/nsbox.1.gz"
"$host" completion bash >"$root/usr/share/bash-completion/completions/nsbox"
"$host" completion zsh >"$root/usr/share/zsh/vendor-completions/_nsbox"
"$host" completion fish >"$root/usr/share/fish/vendor_completions.d/nsbox.fish"
sed 's#@BINDIR@#/usr/bin#' contrib/apparmor/nsbox >"$root/usr/share/nsbox/apparmor/nsbox"
install -m 0644 packaging/deb/copyright "$doc/copyright"
install -D -m 0644 packaging/deb/lintian-overrides "$root/usr/share/lintian/overrides/nsbox"
install -m 0644 README.md "$doc/README.md"
install -m 0644 docs/*.md -t "$doc"
install -m 0644 contrib/apparmor/README.md "$doc/README.apparmor.md"
gzip -9n "$doc"/*.md
changelog() { # changelog PACKAGE: a native package's changelog, from git
	{
		echo "$1 ($version) unstable; urgency=medium"
		echo
		echo "  * Built from $(git log -1 --format='%h: %s' 2>/dev/null | cut -c1-55 || echo "$v")."
		echo
		echo " -- nsbox developers <nsbox@users.noreply.github.com>  $(date -u -R -d "@$SOURCE_DATE_EPOCH")"
	} | gzip -9n
}
changelog nsbox >"$doc/changelog.gz"
install -d "$root/DEBIAN"
install -m 0755 packaging/deb/postinst packaging/deb/prerm packaging/deb/postrm "$root/DEBIAN/"

# --- nsbox-bwrap ---
broot=$work/nsbox-bwrap
install -d "$broot/usr/bin" "$broot/usr/share/man/man1" "$broot/usr/share/doc/nsbox-bwrap" "$broot/DEBIAN"
ln -s nsbox "$broot/usr/bin/bwrap"
ln -s nsbox.1.gz "$broot/usr/share/man/man1/bwrap.1.gz"
install -m 0644 packaging/deb/copyright "$broot/usr/share/doc/nsbox-bwrap/copyright"
changelog nsbox-bwrap >"$broot/usr/share/doc/nsbox-bwrap/changelog.gz"

# control files, sums, dates; then the packages.
for pkg in nsbox nsbox-bwrap; do
	r=$work/$pkg
	control=packaging/deb/control
	[ "$pkg" = nsbox-bwrap ] && control=packaging/deb/control-bwrap
	size=$(du -sk --exclude=DEBIAN "$r" | cut -f1)
	sed -e "s/@VERSION@/$version/g" -e "s/@ARCH@/$arch/g" -e "s/@SIZE@/$size/g" "$control" >"$r/DEBIAN/control"
	(cd "$r" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0r md5sum) >"$r/DEBIAN/md5sums"
	chmod 0644 "$r/DEBIAN/control" "$r/DEBIAN/md5sums"
	find "$r" -type d -exec chmod 0755 {} +
	find "$r" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
	a=$arch
	[ "$pkg" = nsbox-bwrap ] && a=all
	dpkg-deb --root-owner-group -Zxz --build "$r" "$out/${pkg}_${version}_${a}.deb" >/dev/null
	echo "$out/${pkg}_${version}_${a}.deb"
done
