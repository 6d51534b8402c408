#!/usr/bin/env bash
# Install-tests the packages scripts/build-debs.sh made, in a fresh Debian 12
# (bookworm) chroot that has only the main component (mmdebstrap, from
# deb.debian.org):
#
#   scripts/test-debs.sh [DEBDIR]          (default: target/debian)
#
#   (a) sunrise alone: `sunrise doctor` and the main job work, the man page
#       and the empty system plugin directory are there, `ldd` shows no
#       CUDA library, and no contrib or non-free package got in;
#   (b) sunrise-backend-cuda beside it, with empty stand-ins (equivs) for
#       the NVIDIA library packages its Depends name, which main lacks:
#       `sunrise doctor` finds the plugin in the system directory and says
#       that libcuda.so.1 is missing and which Debian package brings it; an
#       explicit CUDA request fails saying so; the main job runs on the CPU;
#       still nothing from contrib or non-free but the plugin itself;
#   (d) each source package's debian/tests (autopkgtest, virt-chroot, -B)
#       against the installed packages;
#   (c) removing sunrise removes the plugin with it and nothing else, leaves
#       no file behind and no broken package.
#
# Every check prints PASS or FAIL; the script ends with the counts and exits
# non-zero if any check failed. Needs root (chroot, mount), mmdebstrap,
# equivs, autopkgtest and network access to deb.debian.org.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
debs=$(cd "${1:-$root/target/debian}" && pwd)
export LC_ALL=C.UTF-8
mirror=${SUNRISE_TEST_MIRROR:-http://deb.debian.org/debian}
suite=bookworm

die() { printf 'test-debs: error: %s\n' "$*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "needs root (chroot and mount)"
for tool in mmdebstrap equivs-build autopkgtest dpkg-deb; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install mmdebstrap equivs autopkgtest)"
done

arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
plugin_dir=/usr/lib/$multiarch/sunrise/backends-1
plugin=$plugin_dir/libsunrise_backend_cuda.so
one() {  # the single file matching a glob
  local m=("$@")
  [ ${#m[@]} = 1 ] && [ -e "${m[0]}" ] || die "expected one file, found: ${m[*]}"
  printf '%s\n' "${m[0]}"
}
main_deb=$(one "$debs"/sunrise_*_"$arch".deb)
dev_deb=$(one "$debs"/sunrise-backend-dev_*_all.deb)
cuda_deb=$(one "$debs"/sunrise-backend-cuda_*_"$arch".deb)

work=$debs/test
chroot_dir=$work/chroot
passed=0
failed=0
failures=()
log=$work/checks.log

mounted=()
cleanup() {
  local m
  for m in "${mounted[@]}"; do umount -l "$m" 2>/dev/null || true; done
}
trap cleanup EXIT

# check DESCRIPTION COMMAND...: runs COMMAND, output to the log; PASS/FAIL.
check() {
  local desc=$1
  shift
  printf '\n### %s\n$ %s\n' "$desc" "$*" >> "$log"
  if "$@" >> "$log" 2>&1; then
    passed=$((passed + 1))
    printf 'PASS  %s\n' "$desc"
  else
    failed=$((failed + 1))
    failures+=("$desc")
    printf 'FAIL  %s\n' "$desc"
    tail -15 "$log" | sed 's/^/      | /'
  fi
}
# Runs a command inside the chroot with a clean environment.
inside() {
  chroot "$chroot_dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
    LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive "$@"
}
# Runs a shell snippet inside the chroot.
sh_in() { inside /bin/sh -euc "$1"; }

# --- the chroot -------------------------------------------------------------
rm -rf "$work"
mkdir -p "$work"
: > "$log"
echo "=== $suite chroot (main only) from $mirror"
t0=$(date +%s)
mmdebstrap --quiet --variant=apt --components=main --skip=cleanup/apt/lists \
  "$suite" "$chroot_dir" "$mirror" >> "$log" 2>&1 ||
  { tail -20 "$log"; die "mmdebstrap failed"; }
cp -L /etc/resolv.conf "$chroot_dir/etc/resolv.conf"
mount -t proc proc "$chroot_dir/proc" && mounted+=("$chroot_dir/proc")
mkdir -p "$chroot_dir/tmp/debs"
cp "$main_deb" "$dev_deb" "$cuda_deb" "$chroot_dir/tmp/debs/"
echo "chroot ready in $(( $(date +%s) - t0 ))s: $(sh_in 'dpkg-query -W | wc -l') packages"

# Components of every APT source in the chroot: main only.
only_main_sources() {
  local comps
  comps=$(sh_in "apt-get indextargets --format '\$(COMPONENT)' | sort -u")
  echo "APT components: $comps"
  [ "$comps" = main ]
}
# Installed packages that no APT source offers (apt list's "local") must be
# exactly the expected set; every other installed package comes from main,
# and no installed package's Section is contrib/ or non-free/ except the
# listed ones.
only_expected_outside_main() {
  local expected_local=$1 allowed_sections=$2 local_pkgs bad
  local_pkgs=$(sh_in "apt list --installed 2>/dev/null | grep ',local\]' | cut -d/ -f1 | sort" | xargs)
  echo "installed, not from any APT source: $local_pkgs"
  [ "$local_pkgs" = "$expected_local" ] || { echo "expected: $expected_local"; return 1; }
  bad=$(sh_in "dpkg-query -W -f '\${db:Status-Abbrev} \${Section} \${Package}\n'" |
    awk -v ok=" $allowed_sections " '$1 ~ /^.i/ && $2 ~ /^(contrib|non-free|non-free-firmware)\// && index(ok, " " $3 " ") == 0')
  echo "contrib/non-free packages installed (besides: ${allowed_sections:-none}): ${bad:-none}"
  [ -z "$bad" ]
}
no_cuda_in_ldd() {
  local out
  out=$(inside ldd "$1")
  printf '%s\n' "$out"
  ! printf '%s\n' "$out" | grep -Eiq 'cuda|cublas|cudnn|nvrtc|not found'
}

# --- (a) sunrise alone ------------------------------------------------------
echo
echo "=== (a) sunrise alone"
check "(a) apt installs sunrise from its .deb" \
  sh_in "apt-get install -y --no-install-recommends /tmp/debs/${main_deb##*/}"
check "(a) sunrise --version" inside sunrise --version
check "(a) sunrise doctor exits 0, system directory $plugin_dir compiled in and present" \
  sh_in "sunrise doctor | tee /tmp/doctor-a.txt
         grep -qx '  system directory compiled in: $plugin_dir' /tmp/doctor-a.txt
         grep -q '^  system directory  *$plugin_dir\$' /tmp/doctor-a.txt
         ! grep -q '\[absent\]' /tmp/doctor-a.txt
         test -d $plugin_dir"
check "(a) sunrise doctor --json names the system directory and selects the CPU" \
  sh_in "sunrise doctor --json > /tmp/doctor-a.json
         grep -q '\"system_dir\":\"$plugin_dir\"' /tmp/doctor-a.json
         grep -q '\"selected\":\"cpu\"' /tmp/doctor-a.json"
check "(a) the main job: sunrise train reaches >= 80% held-out accuracy" \
  sh_in "cd /tmp && sunrise train --quiet | tee /tmp/train-a.txt
         acc=\$(sed -n 's/^done: held-out accuracy \([0-9.]*\)%.*/\1/p' /tmp/train-a.txt)
         awk -v a=\"\$acc\" 'BEGIN { exit !(a >= 80) }'"
check "(a) the man page sunrise(1) is installed and names every subcommand" \
  sh_in "zcat /usr/share/man/man1/sunrise.1.gz > /tmp/sunrise.1
         for c in train eval info doctor bench; do grep -q \"sunrise \$c\" /tmp/sunrise.1; done"
check "(a) ldd /usr/bin/sunrise: no CUDA library" no_cuda_in_ldd /usr/bin/sunrise
check "(a) APT sources: main only" only_main_sources
check "(a) nothing from contrib or non-free; only sunrise not from main" \
  only_expected_outside_main "sunrise" ""

# --- (b) the CUDA plugin beside it -------------------------------------------
echo
echo "=== (b) sunrise-backend-cuda beside sunrise"
# Stand-ins: for each dependency of the plugin that nothing in this chroot
# can satisfy (the NVIDIA library packages, outside main), an empty package
# named after its first alternative, at the lowest version it accepts.
mkdir -p "$work/standins"
standins=()
deps=$(dpkg-deb -f "$cuda_deb" Depends | tr ',' '\n' | sed 's/^ *//; s/ *$//')
while IFS= read -r group; do
  [ -n "$group" ] || continue
  satisfied=no
  IFS='|' read -ra alts <<< "$group"
  for alt in "${alts[@]}"; do
    name=$(printf '%s' "$alt" | awk '{ print $1 }')
    case "$name" in sunrise-backend-abi-*) satisfied=ours ;; esac
    # A real package with a candidate version, or a virtual one with a provider.
    if [ "$satisfied" = no ] && sh_in "apt-cache policy '$name' | grep -q '^  Candidate: [^(]' || \
         apt-cache showpkg '$name' | sed -n '/^Reverse Provides:/,\$p' | tail -n +2 | grep -q ." ; then
      satisfied=main
    fi
  done
  [ "$satisfied" = no ] || continue
  first=$(printf '%s' "${alts[0]}" | sed 's/^ *//; s/ *$//')
  name=${first%% *}
  version=0
  if [[ $first =~ \(\>=\ *([^\)]+)\) ]]; then version=${BASH_REMATCH[1]}; fi
  cat > "$work/standins/$name.ctl" <<EOF
Section: misc
Priority: optional
Standards-Version: 4.6.2

Package: $name
Version: $version+standin
Maintainer: sunrise test-debs.sh <maintainers@users.noreply.r-seed-7ae33880.example>
Architecture: all
Description: empty stand-in for $name (sunrise's test-debs.sh only)
 Satisfies sunrise-backend-cuda's dependency "$group" in a test chroot with
 only Debian main. It contains no library.
EOF
  (cd "$work/standins" && equivs-build "$name.ctl" >> "$log" 2>&1) || die "equivs-build $name failed"
  standins+=("$name")
done <<< "$deps"
echo "stand-ins (empty, built with equivs): ${standins[*]:-none}"
cp "$work"/standins/*.deb "$chroot_dir/tmp/debs/" 2>/dev/null || true

check "(b) stand-ins ship no file outside /usr/share/doc" \
  sh_in "for d in /tmp/debs/*+standin_all.deb; do
           dpkg-deb -c \"\$d\" | awk '{ print \$6 }' | grep -v '^\./usr/share/doc/' | grep -v '/\$' && exit 1
         done; true"
check "(b) apt installs sunrise-backend-cuda with the stand-ins" \
  sh_in "apt-get install -y --no-install-recommends /tmp/debs/${cuda_deb##*/} \
         $(for s in "${standins[@]}"; do printf '/tmp/debs/%s_*+standin_all.deb ' "$s"; done)"
check "(b) the plugin is $plugin, mode 0644" \
  sh_in "test \"\$(stat -c %a $plugin)\" = 644
         dpkg-query -L sunrise-backend-cuda | grep -qx $plugin"
check "(b) ldd of the plugin: no CUDA library (all dlopened)" no_cuda_in_ldd "$plugin"
check "(b) sunrise doctor finds the plugin in the system directory, skipped: libcuda.so.1 missing, Debian package named" \
  sh_in "sunrise doctor | tee /tmp/doctor-b.txt
         awk -v p='$plugin' '
           index(\$0, \"  skipped  \" p \": \") == 1 { found = 1; next }
           found && /^           missing: libcuda\\.so\\.1\$/ { missing = 1 }
           found && /^           hint: .*nvidia-driver.*libcuda1/ { hint = 1 }
           found && /^  [a-z]/ { found = 0 }
           END { exit !(missing && hint) }' /tmp/doctor-b.txt"
check "(b) sunrise doctor --json: the plugin's candidate names libcuda.so.1" \
  sh_in "sunrise doctor --json > /tmp/doctor-b.json
         grep -q '\"component\":\"libcuda.so.1\"' /tmp/doctor-b.json
         grep -q '\"path\":\"$plugin\"' /tmp/doctor-b.json"
check "(b) SUNRISE_DEVICE=cuda sunrise doctor fails, saying libcuda.so.1 is missing" \
  sh_in "if SUNRISE_DEVICE=cuda sunrise doctor > /tmp/doctor-cuda.txt; then exit 1; fi
         cat /tmp/doctor-cuda.txt
         grep -q 'Requested device \"cuda\": UNUSABLE: .*libcuda\\.so\\.1' /tmp/doctor-cuda.txt"
check "(b) the main job still runs, on the CPU" \
  sh_in "cd /tmp && sunrise train --quiet | tee /tmp/train-b.txt
         grep -q '^device cpu,' /tmp/train-b.txt
         grep -q '^done: held-out accuracy' /tmp/train-b.txt"
check "(b) APT sources: main only" only_main_sources
check "(b) nothing from contrib or non-free but the plugin; only ours and the stand-ins not from main" \
  only_expected_outside_main \
  "$(printf '%s\n' sunrise sunrise-backend-cuda "${standins[@]}" | sort | xargs)" "sunrise-backend-cuda"

# --- (d) autopkgtest ----------------------------------------------------------
echo
echo "=== (d) autopkgtest (debian/tests) against the installed packages"
check "(d) apt installs sunrise-backend-dev (for the c-plugin test)" \
  sh_in "apt-get install -y --no-install-recommends /tmp/debs/${dev_deb##*/}"
run_autopkgtest() {  # SOURCE_NAME DEBIAN_DIR
  local src=$1 debdir=$2 tree=$work/autopkgtest/$1 rc=0 line name result
  mkdir -p "$tree"
  cp -r "$root/$debdir" "$tree/debian"
  autopkgtest --no-built-binaries --summary-file="$work/autopkgtest/$src.summary" \
    --output-dir="$work/autopkgtest/$src.out" "$tree/" -- chroot "$chroot_dir" \
    >> "$log" 2>&1 || rc=$?
  echo "autopkgtest $src: exit $rc" >> "$log"
  # One check per test, from the summary ("NAME PASS|FAIL|SKIP ...").
  local results
  results=$(awk '$2 ~ /^(PASS|FAIL|SKIP|FLAKY|NEUTRAL)$/ { print $1, $2 }' \
    "$work/autopkgtest/$src.summary" 2>/dev/null || true)
  while read -r name result; do
    [ -n "$name" ] || continue
    check "(d) autopkgtest $src/$name: $result" test "$result" = PASS
  done <<< "$results"
  [ -n "$results" ] || check "(d) autopkgtest $src produced results (exit $rc)" false
}
run_autopkgtest sunrise debian-main
run_autopkgtest sunrise-cuda debian-contrib

# --- (c) removing sunrise -------------------------------------------------------
echo
echo "=== (c) removing sunrise"
sh_in "dpkg-query -W -f '\${Package}\n' | sort" > "$work/before.txt"
sh_in "dpkg-query -L sunrise sunrise-backend-cuda" | sort -u |
  while IFS= read -r f; do [ -d "$chroot_dir$f" ] || printf '%s\n' "$f"; done > "$work/files.txt"
check "(c) apt's plan: remove sunrise and sunrise-backend-cuda, nothing else" \
  sh_in "apt-get -s remove sunrise | tee /tmp/plan.txt
         test \"\$(grep '^Remv ' /tmp/plan.txt | awk '{ print \$2 }' | sort | xargs)\" = 'sunrise sunrise-backend-cuda'"
check "(c) apt-get remove sunrise" sh_in "apt-get remove -y sunrise"
sh_in "dpkg-query -W -f '\${Package}\n' | sort" > "$work/after.txt"
check "(c) exactly sunrise and sunrise-backend-cuda are gone" \
  test "$(comm -23 "$work/before.txt" "$work/after.txt" | xargs)" = "sunrise sunrise-backend-cuda"
check "(c) nothing half-installed or broken (dpkg --audit, apt-get check)" \
  sh_in "test -z \"\$(dpkg --audit)\" && apt-get check"
# Files (not directories) of both packages, recorded before the removal.
no_file_left() {
  local f left=0
  while IFS= read -r f; do
    if [ -e "$chroot_dir$f" ] || [ -L "$chroot_dir$f" ]; then echo "left: $f"; left=1; fi
  done < "$work/files.txt"
  [ ! -e "$chroot_dir/usr/lib/$multiarch/sunrise" ] || { echo "left: /usr/lib/$multiarch/sunrise"; left=1; }
  [ "$left" = 0 ]
}
check "(c) no file of either package left, the plugin directory gone" no_file_left
check "(c) the stand-ins and sunrise-backend-dev stay installed and unbroken" \
  sh_in "for p in sunrise-backend-dev ${standins[*]}; do
           test \"\$(dpkg-query -W -f '\${db:Status-Abbrev}' \$p)\" = 'ii '
         done"

echo
echo "test-debs: $passed passed, $failed failed (log: $log)"
if [ "$failed" != 0 ]; then
  printf '  failed: %s\n' "${failures[@]}"
  exit 1
fi
