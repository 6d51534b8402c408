#!/bin/sh
# Writes the sunrise(1) man page from the CLI definition: help2man reads the
# program's --help and --version (clap), and every subcommand's --help is
# added as a section of its own, so the page cannot drift from the program.
# Usage: sunrise-help2man.sh PROGRAM STATIC.h2m OUTPUT
# The page's date is SOURCE_DATE_EPOCH's (help2man honours it).
set -eu
prog=$1 static=$2 out=$3
include=$(mktemp)
trap 'rm -f "$include"' EXIT

cat "$static" >"$include"
# Subcommand names: the "Commands:" block of the top-level help.
subcommands=$("$prog" --help | awk '
  /^Commands:/ { in_cmds = 1; next }
  in_cmds && /^[^ ]/ { in_cmds = 0 }
  in_cmds && $1 != "" && $1 != "help" { print $1 }')
[ -n "$subcommands" ] || { echo "no subcommands found in $prog --help" >&2; exit 1; }

printf '[COMMANDS IN DETAIL]\n' >>"$include"
for cmd in $subcommands; do
  printf '.SS "sunrise %s"\n.nf\n' "$cmd"
  # roff: backslashes and hyphens escaped, control characters at line start
  # neutralised; the text stays preformatted (.nf) as clap laid it out.
  "$prog" "$cmd" --help | sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^[.']/\\\\\\&&/"
  printf '.fi\n'
done >>"$include"

help2man --no-info --section=1 \
  --name='deep-learning framework: train, evaluate, diagnose, benchmark' \
  --include="$include" --output="$out" "$prog"
