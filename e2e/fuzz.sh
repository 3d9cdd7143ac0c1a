#!/usr/bin/env bash
# Builds every fuzz target (cargo fuzz: libFuzzer with coverage
# instrumentation and no sanitizer, so stable Rust builds it) and runs each
# for FUZZ_SECONDS (default 20). A crash fails the script; its input is left
# in fuzz/artifacts/<target>/ (replay: cargo fuzz run -s none <target> <file>).
# New inputs go to fuzz/corpus/<target>/; fuzz/seeds/<target>/ is read too.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }
seconds=${FUZZ_SECONDS:-20}

if ! cargo fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi
say "cargo fuzz build"
cargo fuzz build -s none
for target in $(cargo fuzz list); do
  say "fuzzing $target for ${seconds}s"
  mkdir -p "fuzz/corpus/$target"
  dirs=("fuzz/corpus/$target")
  if [ -d "fuzz/seeds/$target" ]; then
    dirs+=("fuzz/seeds/$target")
  fi
  log="fuzz/logs/$target.log"
  mkdir -p fuzz/logs
  if ! cargo fuzz run -s none "$target" "${dirs[@]}" -- -max_total_time="$seconds" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    say "$target failed: the input is in fuzz/artifacts/$target/"
    exit 1
  fi
  grep -E '^Done' "$log" >&2 || true
done
