#!/usr/bin/env bash
# Builds the Debian packages of sunrise from this checkout, offline and
# reproducibly, and checks them with lintian:
#
#   scripts/build-debs.sh [OUTDIR]        (default: target/debian)
#
# 1. Copies the checkout's files (git ls-files: tracked and untracked, not
#    ignored) to OUTDIR/orig/sunrise-VERSION, vendors every crate Cargo.lock
#    names (cargo vendor: the only step that uses the network), removes the
#    prebuilt Windows objects vendored crates ship (scripts/debian/
#    prune-vendor.pl) and makes one orig tarball, named for both source
#    packages: sunrise_VERSION.orig.tar.gz (main) and
#    sunrise-cuda_VERSION.orig.tar.gz (contrib).
# 2. For each source package: unpacks the tarball, copies debian-main/ or
#    debian-contrib/ in as debian/ (a copy: dpkg-source rejects a symlinked
#    debian/), completes debian/copyright with the vendored crates, and runs
#    dpkg-buildpackage (source and binaries). Then a second, independent
#    build: the .dsc just made is unpacked elsewhere and built again
#    (binaries only). Both builds run without network (unshare -n when the
#    kernel allows it; cargo --frozen --offline in any case).
# 3. Checks that the two builds' .deb files are byte-identical, runs lintian
#    on each source package's .changes (errors and warnings fail; every
#    accepted warning is overridden in debian/*lintian-overrides with a
#    comment), and prints both build times and the lintian summary.
#
# The packages Build-Depend on cargo and rustc (>= 1.89), which Debian 12
# provides only as cargo-web and rustc-web. When only those two are unmet and
# the cargo and rustc on PATH (e.g. rustup's) are new enough, this script
# builds with the latter: it checks every other build dependency, then runs
# dpkg-buildpackage -d, saying so.
#
# Needs: dpkg-dev, debhelper, help2man, lintian, git, cargo, rustc, perl.
# Environment: SUNRISE_DEBS_ALLOW_NONFREE_HOST=1 lets the build run on a
# host with contrib/non-free packages installed (it refuses by default, so
# that a build here proves nothing non-free is needed).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/target/debian}
out=$(mkdir -p "$out" && cd "$out" && pwd)
case "$root/" in "$out"/*) echo "build-debs: refusing OUTDIR $out: it is emptied, and holds the checkout" >&2; exit 1 ;; esac
case "$out" in /|"$HOME") echo "build-debs: refusing OUTDIR $out (it is emptied)" >&2; exit 1 ;; esac
export LC_ALL=C.UTF-8 TZ=UTC
unset CARGO_TARGET_DIR RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_ENCODED_RUSTFLAGS
# debian/rules points CARGO_HOME into the build tree; a rustup toolchain is
# then still found through RUSTUP_HOME.
if command -v rustup >/dev/null; then
  RUSTUP_HOME=${RUSTUP_HOME:-$HOME/.rustup}
  export RUSTUP_HOME
fi

say() { printf '\n=== %s\n' "$*"; }
die() { printf 'build-debs: error: %s\n' "$*" >&2; exit 1; }

# --- what is needed ---------------------------------------------------------
for tool in dpkg-buildpackage dpkg-source dpkg-checkbuilddeps dh help2man lintian git cargo rustc perl; do
  command -v "$tool" >/dev/null ||
    die "$tool not found (apt-get install dpkg-dev debhelper help2man lintian git; cargo/rustc >= 1.89)"
done
nonfree=$(dpkg-query -W -f '${db:Status-Abbrev} ${Section} ${Package}\n' |
  awk '$1 ~ /^.i/ && $2 ~ /^(contrib|non-free|non-free-firmware)\// { print $3 " (" $2 ")" }')
if [ -n "$nonfree" ]; then
  if [ "${SUNRISE_DEBS_ALLOW_NONFREE_HOST:-}" = 1 ]; then
    printf 'note: contrib/non-free packages installed on this host (allowed by the environment):\n%s\n' "$nonfree"
  else
    die "contrib/non-free packages are installed on this host; the build must show it needs none:
$nonfree
(SUNRISE_DEBS_ALLOW_NONFREE_HOST=1 to build anyway)"
  fi
else
  echo "host: no contrib or non-free package installed"
fi

version=$(dpkg-parsechangelog -l "$root/debian-main/changelog" -S Version)
upstream=${version%-*}
cversion=$(dpkg-parsechangelog -l "$root/debian-contrib/changelog" -S Version)
crate_version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$root/Cargo.toml")
[ "$upstream" = "$crate_version" ] ||
  die "debian-main/changelog says $version, Cargo.toml's workspace version is $crate_version"
[ "$cversion" = "$version" ] ||
  die "debian-contrib/changelog ($cversion) and debian-main/changelog ($version) disagree"
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$root/debian-main/changelog" -S Timestamp)
export SOURCE_DATE_EPOCH

# Rust >= the workspace's rust-version, whichever cargo is on PATH.
need_rust=$(sed -n 's/^rust-version = "\(.*\)"/\1/p' "$root/Cargo.toml")
have_rust=$(rustc --version | awk '{ print $2 }')
dpkg --compare-versions "$have_rust" ge "$need_rust" ||
  die "rustc $have_rust on PATH is older than the workspace's rust-version $need_rust"

if unshare -n true 2>/dev/null; then
  offline=(unshare -n)
  offline_note="in a network namespace without interfaces (unshare -n)"
else
  offline=()
  offline_note="without network isolation (unshare -n not permitted here); cargo runs --frozen --offline"
fi

# --- 1. the orig tarball ----------------------------------------------------
say "orig tarball: sunrise $upstream with vendored crates"
t0=$(date +%s)
rm -rf "$out"
mkdir -p "$out/orig"
tree="$out/orig/sunrise-$upstream"
mkdir "$tree"
cd "$root"
untracked=$(git ls-files -o --exclude-standard)
if [ -n "$untracked" ]; then
  printf 'note: untracked files go into the tarball too (not a clean checkout):\n%s\n' "$untracked" | head -20
fi
modified=$(git diff --name-only HEAD)
if [ -n "$modified" ]; then
  printf 'note: uncommitted changes go into the tarball (not a clean checkout):\n%s\n' "$modified" | head -20
fi
git ls-files -z -c -o --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf - | tar -xf - -C "$tree"
[ -e "$tree/vendor" ] && die "the checkout has a vendor/ directory already"
(cd "$tree" && cargo vendor --locked --versioned-dirs --quiet vendor >/dev/null)
perl "$root/scripts/debian/prune-vendor.pl" "$tree/vendor" | tail -1
orig="$out/sunrise_$upstream.orig.tar.gz"
# Deterministic: sorted names, fixed owner and modes, every time the changelog's.
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 \
  --numeric-owner --mode='u+rw,go=rX' --format=gnu -C "$out/orig" -cf - "sunrise-$upstream" |
  gzip -9n > "$orig"
ln "$orig" "$out/sunrise-cuda_$upstream.orig.tar.gz"
printf '%s  %s (%s crates vendored, %ss)\n' "$(du -h "$orig" | cut -f1)" "${orig##*/}" \
  "$(find "$tree/vendor" -mindepth 1 -maxdepth 1 -type d | wc -l)" "$(( $(date +%s) - t0 ))"

# --- 2. two builds of each source package ---------------------------------
# Unmet build dependencies: only cargo and rustc may be, and only because
# the toolchain on PATH stands in for them (checked above).
check_build_deps() {
  local unmet
  if unmet=$(dpkg-checkbuilddeps 2>&1); then
    echo "build dependencies: all installed"
    dpkg_d=()
    return
  fi
  unmet=$(printf '%s\n' "$unmet" | sed -n 's/.*Unmet build dependencies: //p')
  [ -n "$unmet" ] || die "dpkg-checkbuilddeps failed: $(dpkg-checkbuilddeps 2>&1)"
  local others
  others=$(printf '%s\n' "$unmet" | sed -E 's/(cargo|rustc) \(>= [0-9.]+\)//g; s/^ +| +$//g')
  [ -z "$others" ] || die "unmet build dependencies: $others (apt-get install them)"
  echo "build dependencies: all installed except $unmet, for which $(command -v cargo)"
  echo "  ($(cargo --version)) and $(command -v rustc) ($have_rust) stand in:"
  echo "  Debian 12 has them only as cargo-web/rustc-web, and this host builds with"
  echo "  the toolchain on PATH; so dpkg-buildpackage -d (every other one checked)."
  dpkg_d=(-d)
}

declare -A build_time
build() {  # build SOURCE_PACKAGE DEBIAN_DIR
  local src=$1 debdir=$2 a b t
  a="$out/$src/a"
  b="$out/$src/b"
  mkdir -p "$a" "$b"

  say "$src: build 1 of 2 (source and binaries) in $a"
  tar -xzf "$out/${src}_$upstream.orig.tar.gz" -C "$a"
  ln "$out/${src}_$upstream.orig.tar.gz" "$a/"
  cp -r "$root/$debdir" "$a/sunrise-$upstream/debian"
  perl "$root/scripts/debian/complete-copyright.pl" "$a/sunrise-$upstream" \
    "$root/$debdir/copyright" > "$a/sunrise-$upstream/debian/copyright"
  cd "$a/sunrise-$upstream"
  check_build_deps
  echo "building $offline_note"
  t=$(date +%s)
  "${offline[@]}" dpkg-buildpackage -us -uc -F "${dpkg_d[@]}" > "$a/build.log" 2>&1 ||
    { tail -40 "$a/build.log"; die "$src: build 1 failed (log: $a/build.log)"; }
  build_time[$src.1]=$(( $(date +%s) - t ))
  echo "$src: build 1 took ${build_time[$src.1]}s"

  say "$src: build 2 of 2 (binaries, from the .dsc) in $b"
  cp "$a/${src}_$upstream.orig.tar.gz" "$a/${src}_$version.debian.tar.xz" "$a/${src}_$version.dsc" "$b/"
  cd "$b"
  dpkg-source -x "${src}_$version.dsc" "sunrise-$upstream" > /dev/null
  cd "$b/sunrise-$upstream"
  t=$(date +%s)
  "${offline[@]}" dpkg-buildpackage -us -uc -b "${dpkg_d[@]}" > "$b/build.log" 2>&1 ||
    { tail -40 "$b/build.log"; die "$src: build 2 failed (log: $b/build.log)"; }
  build_time[$src.2]=$(( $(date +%s) - t ))
  echo "$src: build 2 took ${build_time[$src.2]}s"
}

build sunrise debian-main
build sunrise-cuda debian-contrib

# --- 3. reproducibility, lintian -------------------------------------------
# The usual cause of a difference: a build directory compiled into a file
# (env!("CARGO_MANIFEST_DIR"), file!() outside --remap-path-prefix's reach).
explain_difference() {
  local src=$1 f=$2 g=$3 x
  x=$(mktemp -d)
  dpkg-deb -x "$f" "$x/1"
  dpkg-deb -x "$g" "$x/2"
  (cd "$x/1" && find . -type f) | while IFS= read -r file; do
    cmp -s "$x/1/$file" "$x/2/$file" && continue
    echo "  differs: ${file#.}"
    grep -aoE "[[:print:]]{0,40}$out/$src/[ab]/[[:print:]]{0,60}" "$x/1/$file" | head -5 |
      sed 's/^/    build directory compiled in: /' || true
  done
  rm -rf "$x"
}

say "reproducibility: build 1 against build 2"
repro_fail=0
for src in sunrise sunrise-cuda; do
  for f in "$out/$src/a"/*.deb "$out/$src/a"/*.ddeb; do
    [ -e "$f" ] || continue
    g="$out/$src/b/${f##*/}"
    if [ ! -e "$g" ]; then
      echo "DIFFERS  ${f##*/}: missing from build 2"; repro_fail=1
    elif cmp -s "$f" "$g"; then
      echo "identical  ${f##*/}  $(sha256sum < "$f" | cut -c1-16)"
    else
      echo "DIFFERS  ${f##*/}"; repro_fail=1
      diff <(dpkg-deb -c "$f") <(dpkg-deb -c "$g") | head -20 || true
      diff <(dpkg-deb --ctrl-tarfile "$f" | tar -xOf - ./md5sums) \
           <(dpkg-deb --ctrl-tarfile "$g" | tar -xOf - ./md5sums) | head -20 || true
      explain_difference "$src" "$f" "$g"
    fi
  done
done

say "lintian $(lintian --version | awk '{ print $2 }')"
lintian_fail=0
for src in sunrise sunrise-cuda; do
  changes=$(ls "$out/$src/a/${src}_${version}"_*.changes)
  log="$out/$src/lintian.txt"
  # Failure is read from the output: with --show-overrides, lintian 2.116's
  # exit status also counts overridden tags.
  rc=0
  lintian --display-info --show-overrides --tag-display-limit 0 "$changes" > "$log" 2>&1 || rc=$?
  if [ "$rc" != 0 ] && [ "$rc" != 2 ]; then
    tail -5 "$log"; echo "lintian failed to run (exit $rc)"; lintian_fail=1
  fi
  grep -qE '^[EW]: ' "$log" && lintian_fail=1
  counts=$(awk '/^[EWIPXO]: /{ n[substr($0,1,1)]++ }
    END { printf "%d error(s), %d warning(s), %d info, %d pedantic, %d overridden",
          n["E"], n["W"], n["I"], n["P"], n["O"] }' "$log")
  echo "$src: $counts"
  grep -E '^[EW]: ' "$log" | sed 's/^/  /' || true
done

# The packages, where test-debs.sh looks for them.
cp "$out"/sunrise/a/*.deb "$out"/sunrise-cuda/a/*.deb "$out/"
cp "$out"/sunrise/a/*.dsc "$out"/sunrise-cuda/a/*.dsc "$out"/*/a/*.debian.tar.xz "$out/"
rm -rf "$out/orig"

say "summary"
for src in sunrise sunrise-cuda; do
  printf '%-13s build 1 (source+binary): %4ss   build 2 (binary, from .dsc): %4ss\n' \
    "$src" "${build_time[$src.1]}" "${build_time[$src.2]}"
done
(cd "$out" && ls -l ./*.deb ./*.dsc ./*.orig.tar.gz | awk '{ print "  " $5 "  " $NF }')
[ "$repro_fail" = 0 ] || die "the two builds differ (see above)"
[ "$lintian_fail" = 0 ] || die "lintian reported errors or warnings (logs: $out/*/lintian.txt)"
# The unpacked build trees (each with its cargo target/, ~0.5 GB) are kept
# only when something failed, for inspection.
rm -rf "$out"/sunrise/[ab]/"sunrise-$upstream" "$out"/sunrise-cuda/[ab]/"sunrise-$upstream"
echo "build-debs: OK (reproducible, lintian clean) in $out"
