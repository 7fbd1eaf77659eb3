#!/bin/sh
# Prints this checkout's version for the build stamp, or with "deb" the
# same as a Debian version. With tags it is what `git describe --tags
# --always --dirty` says (v1.2.3, v1.2.3-4-gabcdef0, ...-dirty); before the
# first tag v0.0.0-N-gHASH, N commits from the root. Outside git: devel.
set -u
cd "$(dirname "$0")/.."
if d=$(git describe --tags --dirty 2>/dev/null); then
	v=$d
elif h=$(git describe --always --dirty 2>/dev/null); then
	v="v0.0.0-$(git rev-list --count HEAD)-g$h"
else
	v=devel
fi
if [ "${1:-}" != deb ]; then
	echo "$v"
	exit 0
fi
# v1.2.3-4-gabcdef0-dirty -> 1.2.3+4.gabcdef0.dirty (sorts after 1.2.3,
# before 1.2.4; Debian keeps "-" for the package revision).
case $v in
devel) echo 0.0.0+devel ;;
*) echo "$v" | sed -e 's/^v//' -e 's/-/+/' -e 's/-/./g' ;;
esac
