#!/bin/sh
# deb-test.sh PACKAGE VERSION COMMIT: install the Debian package on this
# machine with dpkg, check what it installed and that it works (version,
# man pages, completions, unit, configuration), then remove and purge it
# and check that nothing is left. Needs root and dpkg; skips without them.
# Run by `make test` (target deb-test) on CI.
set -eu
deb=$1 version=$2 commit=$3
say() { echo "deb-test: $*"; }
fail() { echo "deb-test: FAIL: $*" >&2; exit 1; }

if [ "$(id -u)" != 0 ] || ! command -v dpkg >/dev/null; then
	say "skipped: installing a package needs root and dpkg"
	exit 0
fi
[ -f "$deb" ] || fail "$deb not found (make deb builds it)"
command -v man >/dev/null || fail "man is not installed (apt-get install man-db; .ci/run does)"
# One install test at a time on a shared machine.
exec 9>"${TMPDIR:-/tmp}/qguard-deb-test.lock"
flock 9

if dpkg-query -W -f='${Status}' qguard 2>/dev/null | grep -q 'ok installed\|config-files'; then
	if [ "${CI:-}" != true ]; then
		fail "a qguard package is installed on this machine; this test would replace and purge it: dpkg --purge qguard first"
	fi
	say "purging a qguard package left by an earlier run"
	dpkg --purge qguard >/dev/null
fi
t0=$(date +%s)
# A configuration someone left in /etc/qguard (make install) is put aside
# for the test and back afterwards: purge would remove it.
saved=
if [ -e /etc/qguard ]; then
	saved=$(mktemp -d)
	mv /etc/qguard "$saved/"
fi
restore() {
	dpkg --purge qguard >/dev/null 2>&1 || true
	if [ -n "$saved" ]; then
		rm -rf /etc/qguard
		mv "$saved/qguard" /etc/qguard && rmdir "$saved"
	fi
}
trap restore EXIT

# Images that leave out man pages and docs (path-exclude) keep ours.
dpkg -i --force-confdef --force-confold --path-include='/usr/share/man/man8/qguard*' --path-include='/usr/share/doc/qguard/*' "$deb" >/dev/null ||
	fail "dpkg -i $deb"
dpkg-query -W -f='${Status}' qguard | grep -q 'install ok installed' || fail "not installed: $(dpkg-query -W -f='${Status}' qguard)"

for f in /usr/bin/qguard /usr/lib/systemd/system/qguard.service /etc/qguard/qguard.yaml \
	/usr/share/man/man8/qguard.8.gz /usr/share/man/man8/qguard-run.8.gz /usr/share/man/man8/qguard-rules-show.8.gz \
	/usr/share/bash-completion/completions/qguard /usr/share/zsh/vendor-completions/_qguard \
	/usr/share/fish/vendor_completions.d/qguard.fish /usr/share/doc/qguard/daemon.md \
	/usr/share/doc/qguard/README.md /usr/share/doc/qguard/examples/qguard.yaml; do
	[ -f "$f" ] || fail "$f not installed"
done
dpkg-query -W -f='${Conffiles}' qguard | grep -q '^ /etc/qguard/qguard.yaml ' || fail "/etc/qguard/qguard.yaml is not a conffile"

# The binary says what it is.
want_commit=${commit%-dirty}
[ -n "$want_commit" ] || want_commit=unknown # built outside git
[ "$want_commit" = "$commit" ] || want_commit="$want_commit+dirty"
out=$(/usr/bin/qguard --version) || fail "qguard --version: exit $?"
[ "$(echo "$out" | sed -n 1p)" = "qguard $version" ] || fail "qguard --version: $out (want qguard $version)"
[ "$(echo "$out" | sed -n 2p)" = "commit $want_commit" ] || fail "qguard --version: $out (want commit $want_commit)"
[ "$(/usr/bin/qguard version)" = "$out" ] || fail "qguard version and --version differ"
/usr/bin/qguard check /etc/qguard/qguard.yaml >/dev/null || fail "the installed configuration does not pass qguard check"

# Man pages are found and render.
[ "$(man -w qguard)" = /usr/share/man/man8/qguard.8.gz ] || fail "man -w qguard: $(man -w qguard 2>&1)"
page=$(MANPAGER=cat MANWIDTH=80 man qguard-run 2>&1) || fail "man qguard-run: $page"
for w in 'qguard-run - run the inline firewall daemon' SIGNALS 'EXIT STATUS' --log-format; do
	echo "$page" | grep -q -- "$w" || fail "man qguard-run lacks \"$w\""
done

# Completions load and know the flag values.
bash -c '. /usr/share/bash-completion/completions/qguard && complete -p qguard' >/dev/null ||
	fail "bash completion does not register for qguard"
grep -q 'compdef _qguard qguard' /usr/share/zsh/vendor-completions/_qguard || fail "zsh completion lacks compdef"
grep -q 'complete -c qguard' /usr/share/fish/vendor_completions.d/qguard.fish || fail "fish completion lacks complete -c qguard"
[ "$(/usr/bin/qguard __complete run --log-format '' 2>/dev/null | head -2 | tr '\n' ' ')" = "text json " ] ||
	fail "qguard __complete run --log-format: $(/usr/bin/qguard __complete run --log-format '' 2>&1)"

# The unit runs the installed binary and points at installed docs.
unit=/usr/lib/systemd/system/qguard.service
grep -q '^ExecStart=/usr/bin/qguard run --config /etc/qguard/qguard.yaml' $unit || fail "$unit: ExecStart: $(grep ExecStart= $unit)"
grep -q '^Documentation=.*man:qguard-run(8)' $unit || fail "$unit lacks man:qguard-run(8)"
grep '^Documentation=' $unit | tr ' =' '\n\n' | sed -n 's|^file://||p' | while read -r doc; do
	[ -f "$doc" ] || fail "$unit: Documentation $doc not installed"
done

# Remove keeps the edited configuration, purge takes everything.
files=$(dpkg-query -L qguard | while read -r f; do [ -f "$f" ] && echo "$f"; done)
echo "# edited" >>/etc/qguard/qguard.yaml
dpkg -r qguard >/dev/null || fail "dpkg -r qguard"
[ -f /etc/qguard/qguard.yaml ] || fail "dpkg -r removed the edited configuration"
[ ! -e /usr/bin/qguard ] || fail "dpkg -r left /usr/bin/qguard"
dpkg --purge qguard >/dev/null || fail "dpkg --purge qguard"
for f in $files /etc/qguard; do
	[ ! -e "$f" ] || fail "left behind after purge: $f"
done
if dpkg-query -W -f='${Status}' qguard 2>/dev/null | grep -q 'installed\|config-files'; then
	fail "still known to dpkg after purge"
fi
restore
trap - EXIT
say "ok: installed, checked $(echo "$files" | wc -l) files, ran, purged clean in $(($(date +%s) - t0))s"
