# Shared by tools/fuzz, tools/fuzz-ci, tools/sanitize and tools/ci-extra
# (sourced, not run). Builds the libFuzzer targets and runs one of them.

FUZZ_TARGETS=(fuzz-request fuzz-amount fuzz-journal-line fuzz-journal-file fuzz-console fuzz-server-line)
FUZZ_SCRATCH=.build-fuzz
FUZZ_BIN="$FUZZ_SCRATCH/release"

# The machine's build lock: on a machine shared by several builds, every
# build, test and fuzz run takes it for one step at a time. Not taken when
# CARTEIRA_BUILD_LOCK is empty, nor when a process above this one already
# holds it (flock would wait for itself).
CARTEIRA_BUILD_LOCK=${CARTEIRA_BUILD_LOCK-/tmp/carteira-build.lock}
if [ -n "$CARTEIRA_BUILD_LOCK" ]; then
    pid=$$
    while [ "$pid" -gt 1 ] 2>/dev/null; do
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "flock.*$(basename "$CARTEIRA_BUILD_LOCK")"; then
            CARTEIRA_BUILD_LOCK=
            break
        fi
        pid=$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null || echo 1)
    done
fi

locked() {
    if [ -n "$CARTEIRA_BUILD_LOCK" ]; then
        flock "$CARTEIRA_BUILD_LOCK" "$@"
    else
        "$@"
    fi
}

# Builds every fuzz target with libFuzzer and AddressSanitizer, in release
# (optimised code is what runs in production, and it runs ~10x more inputs).
fuzz_build() {
    locked swift build --package-path Fuzz -c release --scratch-path "$FUZZ_SCRATCH" \
        -Xswiftc -sanitize=fuzzer,address
}

# fuzz_run TARGET LIBFUZZER-FLAGS...: runs TARGET on its committed seeds plus
# its scratch corpus (.build-fuzz/corpus/TARGET, kept between runs, never
# committed); a crash is saved as .build-fuzz/artifacts/TARGET-crash-<sha1>.
# The log goes to .build-fuzz/logs/TARGET.log; prints one summary line.
fuzz_run() {
    local target=$1
    shift
    local corpus="$FUZZ_SCRATCH/corpus/$target"
    local log="$FUZZ_SCRATCH/logs/$target.log"
    mkdir -p "$corpus" "$FUZZ_SCRATCH/artifacts" "$FUZZ_SCRATCH/logs"
    local status=0
    # Swift's own crash backtracer would print over ASan's report.
    SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1} \
        locked "$FUZZ_BIN/$target" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$FUZZ_SCRATCH/artifacts/$target-" "$@" "$corpus" "Fuzz/Corpus/$target" \
        >"$log" 2>&1 || status=$?
    local runs seconds
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    seconds=$(sed -n 's/^stat::total_time_seconds\{0,1\}: *//p' "$log" | tail -1)
    local rate
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    if [ "$status" -eq 0 ]; then
        echo "fuzz: $target passed: ${runs:-?} runs, ${rate:-?} per second"
    else
        echo "fuzz: $target FAILED (exit $status): see $log"
        grep -E "fuzz property broken|ERROR: |Fatal error|SUMMARY:|Test unit written|artifact" "$log" | head -8 | sed 's/^/    /'
    fi
    return "$status"
}
