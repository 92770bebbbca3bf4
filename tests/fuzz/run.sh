#!/usr/bin/env bash
# Build the libFuzzer harnesses for csrc/h1.c and csrc/chunked.c with clang + ASan + UBSan and
# run each for FUZZ_SECONDS (default 60). Not part of the default pytest run.
#   bash tests/fuzz/run.sh            # both, 60 s each
#   FUZZ_SECONDS=600 bash tests/fuzz/run.sh head
# Exits non-zero if a harness finds a crash, a sanitizer report or a failed check.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
SECONDS_EACH="${FUZZ_SECONDS:-60}"
WORK="${FUZZ_WORK:-${TMPDIR:-/tmp}/granian-fuzz}"
TARGETS=("${@:-head chunked}")
read -r -a TARGETS <<< "${TARGETS[*]}"

# clang and its fuzzer/sanitizer runtimes come from Debian when missing
if ! command -v clang >/dev/null || ! clang -fsanitize=fuzzer -x c /dev/null -o /dev/null 2>/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-dev >/dev/null
fi

mkdir -p "$WORK"
CFLAGS=(-g -O1 -std=c99 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined
        -fno-sanitize-recover=all -I"$ROOT/csrc")
clang "${CFLAGS[@]}" "$HERE/fuzz_head.c" "$ROOT/csrc/h1.c" -o "$WORK/fuzz_head"
clang "${CFLAGS[@]}" "$HERE/fuzz_chunked.c" "$ROOT/csrc/chunked.c" "$ROOT/csrc/h1.c" -o "$WORK/fuzz_chunked"

# seed corpora from tests/corpus: heads get 3 limit bytes in front (max_head 2056, 64 headers,
# max_target 510), bodies 2 split bytes
python3 - "$ROOT/tests/corpus" "$WORK" <<'PY'
import pathlib, sys
corpus, work = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for name in ("seed_head", "seed_chunked"):
    (work / name).mkdir(exist_ok=True)
for i, http in enumerate(sorted(corpus.glob("*/*.http"))):
    raw = http.read_bytes()
    (work / "seed_head" / f"{i:04d}").write_bytes(b"\xff\x40\xff" + raw[:4000])
    head_end = raw.find(b"\r\n\r\n")
    if b"chunked" in raw[:head_end].lower() and head_end >= 0:
        (work / "seed_chunked" / f"{i:04d}").write_bytes(b"\x07\x30" + raw[head_end + 4 :][:4000])
PY

status=0
for t in "${TARGETS[@]}"; do
    mkdir -p "$WORK/corpus_$t"
    echo "== fuzz_$t for ${SECONDS_EACH}s"
    if ! "$WORK/fuzz_$t" -max_total_time="$SECONDS_EACH" -max_len=4096 -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$WORK/crash_${t}_" "$WORK/corpus_$t" "$WORK/seed_$t" 2>"$WORK/fuzz_$t.log"; then
        status=1
        tail -40 "$WORK/fuzz_$t.log"
    fi
    grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb)" "$WORK/fuzz_$t.log" || true
done
exit $status
