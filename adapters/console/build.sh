#!/usr/bin/env bash
# Builds the console into adapters/assets/console/ (committed, embedded into the binary).
# Deterministic: the output depends on the source files only. Prints the gzipped sizes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/../assets/console"
mkdir -p "$out"
rm -f "$out"/*
for f in index.html console.js console.css; do
  cp "$here/src/$f" "$out/$f"
done
total=0
for f in console.js console.css index.html; do
  size=$(gzip -9 -n -c "$out/$f" | wc -c)
  total=$((total + size))
  printf '%-12s %7d bytes, %6d gzipped\n' "$f" "$(wc -c < "$out/$f")" "$size"
done
printf 'bundle total %d bytes gzipped\n' "$total"
