# Sourceable helper for crash-recovery tests: start a process, SIGKILL it at a random moment,
# start it again, and so on.

# kill_restart CYCLES MIN_S MAX_S START: CYCLES times, call the function START (which starts a
# process in the background and sets CPID to its pid), let it run for a random MIN_S..MAX_S
# seconds (two decimals) and kill it with SIGKILL.
kill_restart() {
    local cycles=$1 min_s=$2 max_s=$3 start=$4 _
    for _ in $(seq 1 "$cycles"); do
        "$start"
        sleep "$(python3 -c 'import random, sys; print(round(random.uniform(float(sys.argv[1]), float(sys.argv[2])), 2))' \
            "$min_s" "$max_s")"
        kill -9 "$CPID" 2>/dev/null || true
        wait "$CPID" 2>/dev/null || true
    done
}
