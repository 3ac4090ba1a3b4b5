#!/usr/bin/env bash
# The packages as a user gets them: bundles the debug build (already built by the tests)
# into a .deb and an .rpm, then checks the .deb the way a user's machine would meet it:
# its metadata and desktop entry, the installed binary's headless commands, the window
# opening under a display, and that its declared dependencies are what the binary links.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

fail() { printf 'package test: %s\n' "$*" >&2; exit 1; }

# `tauri bundle` packages target/debug/firebreak as the tests built and ran it (the
# `desktop` feature serves ui/dist from the binary in debug builds too); `tauri build`
# would compile the crate and its dependencies again with the features of a plain build.
[ -x target/debug/firebreak ] || fail "no target/debug/firebreak: run the tests (or cargo build) first"
rm -rf target/debug/bundle
ui/node_modules/.bin/tauri bundle --debug --bundles deb,rpm
deb=$(ls target/debug/bundle/deb/*.deb)
rpm=$(ls target/debug/bundle/rpm/*.rpm)
[ -s "$rpm" ] || fail "no .rpm was built"

work=$(mktemp -d)
# The staging folders hold a copy of the binary each; only the packages are kept.
trap 'rm -rf "$work" target/debug/bundle/deb/*/ target/debug/bundle/rpm/*/' EXIT
root="$work/root"
dpkg-deb -x "$deb" "$root"
bin="$root/usr/bin/firebreak"

# Metadata and desktop entry.
[ "$(dpkg-deb -f "$deb" Package)" = firebreak ] || fail "the package is not called firebreak"
depends=$(dpkg-deb -f "$deb" Depends)
for d in libwebkit2gtk-4.1-0 libgtk-3-0; do
  grep -qw -- "$d" <<<"$depends" || fail "Depends lacks $d: $depends"
done
desktop="$root/usr/share/applications/Firebreak.desktop"
[ -f "$desktop" ] || desktop=$(ls "$root"/usr/share/applications/*.desktop)
desktop-file-validate "$desktop"
grep -q '^Exec=firebreak' "$desktop" || fail "the desktop entry does not start firebreak"
for size in 32x32 64x64 128x128 512x512; do
  [ -f "$root/usr/share/icons/hicolor/$size/apps/firebreak.png" ] || fail "no $size icon"
done

# The installed binary: its version, and the headless demo recording into a store.
"$bin" --version | grep -q "^firebreak " || fail "--version says: $("$bin" --version)"
data="$work/data"
timeout 15 "$bin" --data-dir "$data" watch --demo >"$work/watch.out" 2>"$work/watch.err" || true
grep -q "built-in simulator" "$work/watch.err" || fail "the headless demo did not start: $(cat "$work/watch.err")"
[ -s "$data/firebreak.db" ] || fail "the headless demo recorded nothing"

# The window opens (the test suite runs this under Xvfb).
"$bin" --data-dir "$work/window" >"$work/window.log" 2>&1 &
pid=$!
opened=""
for _ in $(seq 1 100); do
  if xdotool search --name '^Firebreak' >/dev/null 2>&1; then opened=yes; break; fi
  sleep 0.2
done
kill "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
[ -n "$opened" ] || fail "the installed app opened no window: $(tail -5 "$work/window.log")"

# The startup benchmark on the packaged binary (README's figures come from the installed
# package): it starts the binary it runs as and waits for the page to report its paint.
"$bin" --data-dir "$work/bench" bench startup --runs 1 >"$work/bench.out" 2>"$work/bench.err" \
  || fail "bench startup on the packaged binary: $(tail -12 "$work/bench.err")"
grep -q "first paint of the console" "$work/bench.out" \
  || fail "bench startup printed no first paint: $(cat "$work/bench.out")"

# Declared dependencies against what the binary links: every library it links directly
# comes from a declared package or one they pull in, and every declared package gives it
# a library it links.
closure=$(apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
  --no-breaks --no-replaces --no-enhances $(tr ',' ' ' <<<"$depends" | tr -s ' ') 2>/dev/null \
  | grep -v '^ ' | sort -u)
essential="libc6 libgcc-s1"
linked_packages=""
while read -r lib; do
  case "$lib" in ld-linux*) continue ;; esac  # the dynamic loader, libc6's
  path=$(ldd "$bin" | awk -v l="$lib" '$1 == l {print $3}')
  [ -n "$path" ] || fail "$lib does not resolve"
  real=$(readlink -f "$path")
  pkg=$(dpkg -S "$real" 2>/dev/null | head -1 | cut -d: -f1) \
    || pkg=$(dpkg -S "$path" 2>/dev/null | head -1 | cut -d: -f1) || true
  [ -n "$pkg" ] || fail "no package owns $lib ($real)"
  linked_packages="$linked_packages $pkg"
  grep -qx "$pkg" <<<"$closure" || grep -qw "$pkg" <<<"$essential" \
    || fail "$lib comes from $pkg, which the package's Depends ($depends) does not pull in"
done < <(objdump -p "$bin" | awk '/NEEDED/ {print $2}')
for d in $(tr ',' ' ' <<<"$depends"); do
  grep -qw -- "$d" <<<"$linked_packages" || fail "Depends names $d, but the binary links nothing of it"
done
echo "package test: $(basename "$deb") and $(basename "$rpm") pass"

# The servers' packages (firebreak-gateway, firebreak-team-server).
bash .ci/package-test-servers.sh
