#!/usr/bin/env bash
# From a fresh clone: install what is missing, build, generate a text data set and run word
# count on the embedded default (local Lambda-compatible runtime, a directory as the store).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
[ -d datasets/text ] || build/bin/lambdamr gen text --size 64M --out datasets/text
build/bin/lambdamr run wordcount --input datasets/text --output out/wc --overwrite
echo
echo "output: out/wc/part-r-* (word<TAB>count), report: out/wc/_lambdamr/report.json"
