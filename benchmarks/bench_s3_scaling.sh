#!/usr/bin/env bash
# Scaling under S3-like latency (issue 16 item 4): word count and BDB Query 2 with s3:// input
# and output through tests/tools/s3_fault_proxy.py's shaping (first-byte latency per request,
# bandwidth per connection, S3's per-prefix request rates), at concurrency 1, 2, 4 ... 64 and at
# several latency settings, and at read-ahead 1, 2, 4 with one function in flight (each
# reader's ranged GETs of --read-part bytes, LMR_S3_READ_PART_BYTES, default 128K here so that a
# 512 KiB shard is four GETs that read-ahead can overlap). The per-connection bandwidth is
# scaled down (default 1 MB/s) so the function processes mostly wait on the network and this
# machine's cores are not the limit: what matters is the shape of the curves, not AWS's
# absolute numbers.
#
#   benchmarks/bench_s3_scaling.sh [--size 32M] [--concurrency "1 2 4 8 16 32 64"]
#       [--latency "0 10 25 50 100"] [--latency-concurrency 16] [--bandwidth-mbs 1]
#       [--base-latency 20:50] [--read-ahead N] [--read-ahead-curve "1 2 4"]
#       [--read-part 128K] [--upstream URL | --moto] [--repeats 1]
#       [--only wordcount,q2] [--out DIR] [--lambdamr PATH] [--no-check]
#
# Upstream: by default build/bin/lmr_s3server (tests/tools/lmr_s3server.c: S3 in memory, in C,
# SigV4 checked, conditional writes enforced; tests/integration/s3_server.sh), which keeps up
# with the proxy. --moto uses moto_server instead (tests/integration/lib/moto.sh; slow per
# request, so at high concurrency it becomes the limit), and --upstream URL any S3-compatible
# server you started (path-style, SigV4; export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/
# AWS_REGION for it).
#
# Every run's output is fetched and compared with a local run of the same job (counts exactly,
# sums to 1e-9 relative) unless --no-check. Writes OUT/scaling-s3.csv, OUT/scaling-s3.md,
# OUT/scaling-s3-{concurrency,latency,read_ahead}.{png,svg} (gnuplot; OUT defaults to
# benchmarks/results) and prints the table. Do not time it on a loaded machine.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
SIZE=32M
CONC="1 2 4 8 16 32 64"
LATS="0 10 25 50 100"
LAT_CONC=16
BW=1
BASE_LAT=20:50
READ_AHEAD=
RA_CURVE="1 2 4"
READ_PART=128K
UPSTREAM=
USE_MOTO=0
REPEATS=1
ONLY=wordcount,q2
OUT="$HERE/results"
LMR="$ROOT/build/bin/lambdamr"
CHECK=1
usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --size) SIZE=$2; shift 2 ;;
        --concurrency) CONC=$2; shift 2 ;;
        --latency) LATS=$2; shift 2 ;;
        --latency-concurrency) LAT_CONC=$2; shift 2 ;;
        --bandwidth-mbs) BW=$2; shift 2 ;;
        --base-latency) BASE_LAT=$2; shift 2 ;;
        --read-ahead) READ_AHEAD=$2; shift 2 ;;
        --read-ahead-curve) RA_CURVE=$2; shift 2 ;;
        --read-part) READ_PART=$2; shift 2 ;;
        --upstream) UPSTREAM=$2; shift 2 ;;
        --moto) USE_MOTO=1; shift ;;
        --repeats) REPEATS=$2; shift 2 ;;
        --only) ONLY=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --lambdamr) LMR=$2; shift 2 ;;
        --no-check) CHECK=0; shift ;;
        -h | --help) usage; exit 0 ;;
        *) echo "bench_s3_scaling.sh: unknown option '$1' (see --help)" >&2; exit 2 ;;
    esac
done
[ -x "$LMR" ] || { echo "bench_s3_scaling.sh: $LMR not found; build first (cmake -S . -B build && cmake --build build -j2)" >&2; exit 1; }
command -v aws > /dev/null || { echo "bench_s3_scaling.sh: the AWS CLI (aws) is needed to load the data" >&2; exit 1; }
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/lmr-s3scale-XXXXXX)
# Chain clean-ups with moto.sh's lmr_on_exit (it defines it), or a trap of our own.
source "$ROOT/tests/integration/lib/moto.sh"
source "$ROOT/tests/integration/lib/s3server.sh"
lmr_on_exit 'rm -rf "$WORK"'
if [ -n "$UPSTREAM" ]; then
    UPSTREAM_KIND="$UPSTREAM"
elif [ "$USE_MOTO" = 1 ]; then
    echo "starting moto_server as the upstream" >&2
    moto_start
    UPSTREAM=$MOTO_URL
    UPSTREAM_KIND="moto_server $(python3 -c 'import moto; print(moto.__version__)')"
else
    echo "starting lmr_s3server as the upstream" >&2
    LMR_S3SERVER="$(dirname "$LMR")/lmr_s3server" s3server_start --threads 2 --max-bytes 8G
    UPSTREAM=$S3SERVER_URL
    UPSTREAM_KIND="lmr_s3server (in memory, 2 threads)"
fi
export AWS_ENDPOINT_URL=$UPSTREAM
# Checksums only where required: newer CLIs otherwise send aws-chunked bodies.
export AWS_REQUEST_CHECKSUM_CALCULATION=when_required AWS_RESPONSE_CHECKSUM_VALIDATION=when_required

echo "generating $SIZE of text and of uservisits (lambdamr gen --seed 1)" >&2
"$LMR" gen text --size "$SIZE" --out "$WORK/text" --seed 1 --quiet
# bdb --size is the total; uservisits gets about 90% of it.
bytes=$(python3 -c "
import sys; s=sys.argv[1]; m={'K':1<<10,'M':1<<20,'G':1<<30}
print(int(float(s[:-1])*m[s[-1].upper()]) if s[-1].upper() in m else int(s))" "$SIZE")
"$LMR" gen bdb --size $(((bytes * 10 + 8) / 9)) --out "$WORK/bdb" --seed 1 --quiet
aws s3 mb s3://scale-in > /dev/null
aws s3 mb s3://scale-out > /dev/null
aws s3 cp --recursive --quiet "$WORK/text" s3://scale-in/text/
aws s3 cp --recursive --quiet "$WORK/bdb/uservisits" s3://scale-in/uservisits/

export BENCH_WORK=$WORK BENCH_OUT=$OUT BENCH_LMR=$LMR BENCH_CONC=$CONC BENCH_LATS=$LATS BENCH_LAT_CONC=$LAT_CONC \
    BENCH_BW=$BW BENCH_BASE_LAT=$BASE_LAT BENCH_READ_AHEAD=$READ_AHEAD BENCH_RA_CURVE=$RA_CURVE BENCH_READ_PART=$READ_PART BENCH_UPSTREAM=$UPSTREAM \
    BENCH_UPSTREAM_KIND=$UPSTREAM_KIND BENCH_REPEATS=$REPEATS BENCH_ONLY=$ONLY BENCH_CHECK=$CHECK \
    BENCH_PROXY="$ROOT/tests/tools/s3_fault_proxy.py"
python3 "$HERE/s3_scaling.py"
