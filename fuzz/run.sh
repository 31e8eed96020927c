#!/bin/sh
# Builds the libFuzzer harnesses of fuzz/ with clang (ASan + UBSan) and runs
# each for SECONDS, starting from its seed corpus fuzz/corpus/NAME/; prints
# the executions of each and exits non-zero if any harness found a crash
# (the input is saved as build/fuzz/artifacts/NAME-crash-...).
#
#   sh fuzz/run.sh 10            (make test: ~10 s each)
#   sh fuzz/run.sh 600           (make fuzz)
#   sh fuzz/run.sh 60 fuzz_knn   (one harness)
#
# New inputs go to build/fuzz/corpus/NAME (not committed); the committed
# seeds stay small. SRC (the extension's sources) comes from the Makefile,
# or defaults to ext/*.c.
set -u
SECONDS_EACH=${1:-10}
shift 2>/dev/null || true
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cd "$root"
CLANG=${CLANG:-clang}
SQLITE_A=${SQLITE_A:-/usr/lib/x86_64-linux-gnu/libsqlite3.a}
SRC=${SRC:-$(ls ext/*.c ext/*/*.c)}
out=${FUZZ_OUT:-build/fuzz}
mkdir -p "$out/artifacts"
FLAGS="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -Iext ${FUZZ_FLAGS:-}"
names=${*:-fuzz_vector fuzz_options fuzz_sqlfn fuzz_knn fuzz_shadow}

# objects: each source compiled once (instrumented), shared by the harnesses
OBJFLAGS=$(echo "$FLAGS" | sed 's/-fsanitize=fuzzer,/-fsanitize=fuzzer-no-link,/')
obj() {
  o="$out/obj/$(basename "$1" .c).o"
  if [ ! -f "$o" ] || [ -n "$(find "$1" ext/*.h ext/*/*.h -newer "$o" 2>/dev/null | head -1)" ]; then
    mkdir -p "$out/obj"
    # shellcheck disable=SC2086
    $CLANG $OBJFLAGS -DSQLITE_CORE -c -o "$o" "$1" || return 1
  fi
  echo "$o"
}

build() {
  name=$1
  case $name in
    fuzz_vector) srcs="ext/core/vector.c ext/core/kernels.c ext/core/text.c" libs="-lm" ;;
    fuzz_options) srcs="ext/core/options.c ext/core/vector.c ext/core/text.c" libs="-lm" ;;
    *) srcs="$SRC" libs="$SQLITE_A -lm -lpthread -ldl" ;;
  esac
  objs=""
  for s in $srcs; do
    o=$(obj "$s") || return 1
    objs="$objs $o"
  done
  # shellcheck disable=SC2086
  $CLANG $FLAGS -DSQLITE_CORE -o "$out/$name" "fuzz/$name.c" $objs $libs
}

status=0
for name in $names; do
  if ! build "$name"; then
    echo "fuzz: $name: build failed"
    status=1
    continue
  fi
  mkdir -p "$out/corpus/$name" "fuzz/corpus/$name"
  log="$out/$name.log"
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1} \
    "$out/$name" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
      -timeout=20 -rss_limit_mb=2048 -max_len=4096 \
      -artifact_prefix="$out/artifacts/$name-" \
      "$out/corpus/$name" "fuzz/corpus/$name" > "$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  if [ $rc -ne 0 ]; then
    status=1
    echo "fuzz: $name: FAILED after ${execs:-?} executions (exit $rc):"
    grep -E "ERROR|runtime error|property failed|out of order|more than k|NaN distance|sqlite3_close failed|SUMMARY|Test unit written" "$log" | head -20
  else
    echo "fuzz: $name: ${execs:-?} executions in ${SECONDS_EACH} s, no crash"
  fi
done
exit $status
