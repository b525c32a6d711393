#!/usr/bin/env bash
# Install what the benchmark harness needs beyond the build: DuckDB's Node API (npm ci from the
# committed lock file into benchmarks/peers/node_modules) and gnuplot-nox for the plots.
# Not part of scripts/deps.sh: building and testing lambdamr needs neither. The S3 upstream of
# bench_s3_scaling.sh needs nothing installed: it is tests/tools/lmr_s3server, built with the
# rest (no S3-compatible server in Debian 12; the npm registry's s3rver 3.7.1 and fauxqs 2.4.1
# do not enforce If-None-Match/If-Match on PUT, which lambdamr's commits rely on).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    echo "benchmarks/deps.sh: node and npm are needed for the DuckDB peer; install them (apt-get install nodejs npm)" >&2
    exit 1
fi
if [ ! -d "$here/peers/node_modules/@duckdb/node-api" ]; then
    echo "installing the DuckDB peer (npm ci in benchmarks/peers)" >&2
    (cd "$here/peers" && npm ci --no-audit --no-fund --loglevel=error)
fi
if ! command -v gnuplot >/dev/null; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo -n"
    echo "installing gnuplot-nox (apt) for the plots" >&2
    if ! { $SUDO apt-get install -y -qq gnuplot-nox >/dev/null 2>&1 ||
           { $SUDO apt-get update -qq >/dev/null 2>&1 && $SUDO apt-get install -y -qq gnuplot-nox >/dev/null 2>&1; }; }; then
        echo "benchmarks/deps.sh: could not install gnuplot-nox; the harness will skip the plots" >&2
    fi
fi
