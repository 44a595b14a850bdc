#!/usr/bin/env bash
# Builds the native library with CMake, once per flavor, and copies the results to
#   <out>/<platform>/<flavor>/libtasp.so      (platform: linux-x86_64, linux-aarch64)
# Called by Maven (exec-maven-plugin, phase process-classes); runnable by hand too:
#   bash native/build.sh target/native-build target/classes/native/lib auto
# Arguments: build folder, output folder, CUDA mode (auto | on | off), JDK home (for jni.h),
# version string.
set -euo pipefail
build="${1:?build folder}"
out="${2:?output folder}"
cuda="${3:-auto}"
jdk="${4:-${JAVA_HOME:-}}"
version="${5:-dev}"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

case "$(uname -m)" in
  x86_64) platform=linux-x86_64 ;;
  aarch64) platform=linux-aarch64 ;;
  *) echo "[tasp-native] unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
if [[ -z "$jdk" ]]; then
  jdk="$(dirname "$(dirname "$(readlink -f "$(command -v javac)")")")"
fi
jobs="$(nproc 2>/dev/null || echo 2)"

build_flavor() {
  local flavor="$1"
  local dir="$build/$flavor"
  cmake -S "$src" -B "$dir" -DCMAKE_BUILD_TYPE=Release -DTASP_FLAVOR="$flavor" \
        -DTASP_JDK_HOME="$jdk" -DTASP_VERSION="$version" -Wno-dev > "$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log" >&2; echo "[tasp-native] CMake configure failed for $flavor" >&2; return 1; }
  cmake --build "$dir" --parallel "$jobs" > "$dir.build.log" 2>&1 \
    || { cat "$dir.build.log" >&2; echo "[tasp-native] build failed for $flavor" >&2; return 1; }
  mkdir -p "$out/$platform/$flavor"
  cp "$dir/libtasp.so" "$out/$platform/$flavor/libtasp.so"
  echo "[tasp-native] built $flavor flavor -> $out/$platform/$flavor/libtasp.so"
}

mkdir -p "$build"
build_flavor cpu

nvcc_path="$(command -v nvcc || true)"
[[ -z "$nvcc_path" && -x /usr/local/cuda/bin/nvcc ]] && nvcc_path=/usr/local/cuda/bin/nvcc
case "$cuda" in
  off) echo "[tasp-native] CUDA flavor skipped: disabled by -Dtasp.cuda=off" ;;
  auto|on)
    if [[ -n "$nvcc_path" ]]; then
      export CUDACXX="$nvcc_path"
      build_flavor cuda
    elif [[ "$cuda" == on ]]; then
      echo "[tasp-native] CUDA flavor requested (-Dtasp.cuda=on) but nvcc was not found" >&2; exit 1
    else
      echo "[tasp-native] CUDA flavor skipped: nvcc not found on PATH or in /usr/local/cuda/bin"
    fi ;;
  *) echo "[tasp-native] unknown CUDA mode '$cuda' (auto | on | off)" >&2; exit 1 ;;
esac
