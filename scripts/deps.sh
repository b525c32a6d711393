#!/usr/bin/env bash
# Install the Debian packages lambdamr needs to build and test, if any are missing.
# Usage: scripts/deps.sh [--test]   (--test: also what only the test suite uses, e.g. Chromium)
set -euo pipefail
PKGS=(build-essential cmake pkg-config libcurl4-openssl-dev libssl-dev libzstd-dev zstd libmsgpack-dev
      libjansson-dev libexpat1-dev libmicrohttpd-dev libxxhash-dev libcmocka-dev zlib1g-dev curl
      g++ libdouble-conversion-dev libzip-dev busybox-static unzip)
# Test-only: headless Chromium for the HTML report test; clang and its libFuzzer runtime for fuzz/;
# python3-protobuf to regenerate tests/unit/kpl_vectors.h (tests/unit/gen_kpl_vectors.py).
TEST_PKGS=(chromium clang-14 libclang-rt-14-dev python3-protobuf)
if [ "${1:-}" = "--test" ]; then
    PKGS+=("${TEST_PKGS[@]}")
fi
missing=()
for p in "${PKGS[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
