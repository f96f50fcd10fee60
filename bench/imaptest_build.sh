#!/bin/sh
# Build imaptest (Dovecot's IMAP stress tester, not packaged in Debian) against the
# installed Dovecot 2.3 development files, for bench/vs_dovecot.py.
#
#   bench/imaptest_build.sh SRC [COMMIT]
#
# SRC is a git checkout (or bare repository) of imaptest. It is never modified: the
# chosen commit is cloned to /tmp/imaptest-build/src and built out of tree in
# /tmp/imaptest-build/obj. The binary is copied to $IMAPTEST_BIN_DIR (default
# /usr/local/bin when writable) and its path is printed on the last line.
#
# Why an old commit: imaptest's main branch follows Dovecot 2.4's APIs. Commit
# f4f39aa (2022-07-07) moved to 2.4's lib-ssl-iostream API, so the default COMMIT is
# its parent, 924f619 (2022-03-09), which differs from the release-2.3 branch only in
# build scripts. Even that one calls imap_parser_create() with three arguments, while
# Dovecot 2.3.19 takes a fourth (parser parameters, NULL for the defaults), so that
# one call is adapted in the build copy.
set -eu

SRC=${1:?usage: $0 SRC [COMMIT]}
COMMIT=${2:-924f619}
WORK=${IMAPTEST_BUILD_DIR:-/tmp/imaptest-build}
DOVECOT_LIBDIR=/usr/lib/dovecot

if [ ! -f "$DOVECOT_LIBDIR/dovecot-config" ]; then
    echo "no $DOVECOT_LIBDIR/dovecot-config: install dovecot-dev" >&2
    exit 1
fi
missing=""
for tool in autoreconf automake libtoolize make cc; do
    command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
            autoconf automake libtool pkg-config make gcc >&2
    else
        echo "missing build tools:$missing (apt-get install autoconf automake libtool" \
             "pkg-config make gcc)" >&2
        exit 1
    fi
fi

rm -rf "$WORK"
mkdir -p "$WORK"
git clone -q "$SRC" "$WORK/src"
git -C "$WORK/src" checkout -q "$COMMIT"
echo "imaptest $(git -C "$WORK/src" log -1 --format='%h %ad %s' --date=short)" >&2

# Dovecot 2.3.19: imap_parser_create(input, output, max_line_size, params).
if grep -q 'const struct imap_parser_params \*params' /usr/include/dovecot/imap-parser.h; then
    for f in "$WORK"/src/src/*.c; do
        sed -i 's/imap_parser_create(\([^;]*\), (size_t)-1)/imap_parser_create(\1, (size_t)-1, NULL)/' "$f"
    done
fi

cd "$WORK/src"
autoreconf -if >"$WORK/autoreconf.log" 2>&1 || { cat "$WORK/autoreconf.log" >&2; exit 1; }
mkdir -p "$WORK/obj"
cd "$WORK/obj"
# libdovecot.so lives outside the linker's search path: record it in the binary.
"$WORK/src/configure" --with-dovecot="$DOVECOT_LIBDIR" \
    LDFLAGS="-Wl,-rpath,$DOVECOT_LIBDIR" >"$WORK/configure.log" 2>&1 \
    || { tail -30 "$WORK/configure.log" >&2; exit 1; }
make -j"$(nproc)" >"$WORK/make.log" 2>&1 || { grep -n 'error' "$WORK/make.log" >&2; exit 1; }

binary="$WORK/obj/src/imaptest"
dest=${IMAPTEST_BIN_DIR:-/usr/local/bin}
if [ -d "$dest" ] && [ -w "$dest" ]; then
    install -m 0755 "$binary" "$dest/imaptest"
    binary="$dest/imaptest"
fi
"$binary" --help >/dev/null 2>&1 || true  # loads libdovecot: fails loudly if the rpath is wrong
ldd "$binary" | grep -q 'not found' && { echo "unresolved libraries in $binary" >&2; exit 1; }
echo "$binary"
