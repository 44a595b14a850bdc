#!/usr/bin/env bash
# GPU check of the native library's single-device attention and distributed executor (virtual
# ranks on one GPU, NCCL with world size 1: forward, backward, all-reduce, all-to-all; per-rank attention work vs SDPA). Run from the repository root on a
# machine with one NVIDIA GPU, nvcc, CMake and Python with PyTorch (headers included); no Java:
#   bash gpu/run_gpu_checks.sh            # results in ./gpu-out
#   OUT=/some/dir bash gpu/run_gpu_checks.sh
# Steps: (a) machine and tool versions, (b) CUDA flavor of libtasp (C API only) and a check of
# native/include/tasp_abi.h against torch's C shim headers, (c) gpu/check_attention.py (which runs
# gpu/check_executor.py's checks after its own, into the same results.json and summary).
# Exit status: 0 when every step passed, 1 otherwise. Stages keep going after a failure.
# Environment: OUT (results folder), PYTHON (default python3), CXX (for the ABI check, default
# c++), TASP_GPU_BUILD (build folder; default a fresh temporary one), TASP_CHECK_ARGS (extra
# arguments for check_attention.py, e.g. "--skip-timing", "--quick", "--skip-executor", "--executor-only").
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${OUT:-gpu-out}"
mkdir -p "$out" && out="$(cd "$out" && pwd)"
build="${TASP_GPU_BUILD:-$(mktemp -d "${TMPDIR:-/tmp}/tasp-gpu-build.XXXXXX")}"
mkdir -p "$build"
py="${PYTHON:-python3}"
cxx="${CXX:-c++}"
started=$SECONDS
declare -a verdicts=()
failed=0

say() { echo "[$(date +%H:%M:%S) +$((SECONDS - started))s] [gpu-check] $*"; }
verdict() {  # stage, status (pass|fail|skip), detail
  verdicts+=("$(printf '%-6s %-22s %s' "$2" "$1" "$3")")
  [[ "$2" == fail ]] && failed=1
  say "$1: $2${3:+ ($3)}"
}

cd "$root" || exit 1
say "repository $root; results in $out; build in $build"

# ---- (a) machine and versions ----------------------------------------------------------------
say "(a) machine and versions"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi -L
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
else
  say "nvidia-smi not found"
fi
nvcc_path="$(command -v nvcc || true)"
[[ -z "$nvcc_path" && -x /usr/local/cuda/bin/nvcc ]] && nvcc_path=/usr/local/cuda/bin/nvcc
if [[ -n "$nvcc_path" ]]; then
  export CUDACXX="$nvcc_path"
  echo "nvcc: $nvcc_path: $("$nvcc_path" --version | tail -n 1)"
else
  echo "nvcc: not found"
fi
echo "cmake: $(cmake --version 2>/dev/null | head -n 1 || echo 'not found')"
echo "c++: $("$cxx" --version 2>/dev/null | head -n 1 || echo "$cxx not found")"
echo "python: $("$py" --version 2>&1)"
torch_ok=0
if timeout 120 "$py" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
  "available", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")'; then
  torch_ok=1
else
  say "python cannot import torch"
fi

# ---- (b) build the CUDA flavor, C API only ----------------------------------------------------
say "(b) building the CUDA flavor into $build"
lib="$build/libtasp.so"
rm -f "$lib"
if [[ -z "$nvcc_path" ]]; then
  verdict build fail "nvcc not found"
elif timeout 300 cmake -S native -B "$build" -DCMAKE_BUILD_TYPE=Release -DTASP_FLAVOR=cuda -DTASP_WITH_JNI=OFF \
        -Wno-dev >"$out/build.log" 2>&1 &&
     timeout 300 cmake --build "$build" -j "$(nproc 2>/dev/null || echo 4)" >>"$out/build.log" 2>&1 &&
     [[ -f "$lib" ]]; then
  verdict build pass "$lib"
else
  tail -n 40 "$out/build.log"
  verdict build fail "see build.log"
fi

# ---- (b') tasp_abi.h against torch's C shim headers -------------------------------------------
# Every function-pointer type of tasp_abi.h, with the libtorch functions looked up through it.
abi_table=(
  "aoti_int_getter_fn aoti_torch_dtype_float32 aoti_torch_dtype_float16 aoti_torch_dtype_bfloat16
   aoti_torch_dtype_float64 aoti_torch_device_type_cpu aoti_torch_device_type_cuda"
  "aoti_get_i32_fn aoti_torch_get_dtype aoti_torch_get_device_type aoti_torch_get_device_index"
  "aoti_get_i64_fn aoti_torch_get_dim aoti_torch_get_storage_offset"
  "aoti_get_i64_array_fn aoti_torch_get_sizes aoti_torch_get_strides"
  "aoti_delete_tensor_fn aoti_torch_delete_tensor_object"
  "aoti_new_uninitialized_tensor_fn aoti_torch_new_uninitialized_tensor"
  "aoti_empty_strided_fn aoti_torch_empty_strided"
  "aoti_reinterpret_tensor_fn aoti_torch__reinterpret_tensor"
  "aoti_copy_fn aoti_torch_copy_"
  "aoti_zero_fn aoti_torch_zero_"
  "aoti_get_data_ptr_fn aoti_torch_get_data_ptr"
  "aoti_cpu_flash_fwd_fn aoti_torch_cpu__scaled_dot_product_flash_attention_for_cpu"
  "aoti_cpu_flash_bwd_fn aoti_torch_cpu__scaled_dot_product_flash_attention_for_cpu_backward"
  "aoti_cuda_flash_fwd_fn aoti_torch_cuda__scaled_dot_product_flash_attention"
  "aoti_cuda_flash_bwd_fn aoti_torch_cuda__scaled_dot_product_flash_attention_backward"
  "aoti_cuda_efficient_fwd_fn aoti_torch_cuda__scaled_dot_product_efficient_attention"
  "aoti_cuda_efficient_bwd_fn aoti_torch_cuda__scaled_dot_product_efficient_attention_backward"
  "aoti_add_tensor_fn aoti_torch_cpu_add_Tensor aoti_torch_cuda_add_Tensor"
  "aoti_get_current_cuda_stream_fn aoti_torch_get_current_cuda_stream"
)

abi_check() {
  local rc=0
  : >"$out/abi_check.log"
  abi_check_body || rc=1
  cat "$out/abi_check.log"
  return $rc
}

abi_check_body() {
  local dir="$build/abi" log="$out/abi_check.log"
  mkdir -p "$dir"
  # The table must cover every typedef of tasp_abi.h and every shim function the sources name.
  local listed typedefs used missing=""
  listed=" $(printf '%s ' "${abi_table[@]}" | tr -s ' \n' '  ') "
  # (the libtorch shim's typedefs; NCCL's and the CUDA driver's are checked by the next stage)
  typedefs="$(grep -o 'typedef [^;]*(\*aoti_[a-z0-9_]*_fn)' native/include/tasp_abi.h | grep -o 'aoti_[a-z0-9_]*_fn' | sort -u)"
  # (names the sources look up: the literals on torch_fn<...>( and require( lines)
  used="$(grep -h 'torch_fn<\|require(' native/src/* | grep -o '"aoti_torch_[A-Za-z0-9_]*"' | tr -d '"' | sort -u)"
  for name in $typedefs $used; do
    [[ "$listed" == *" $name "* ]] || missing+=" $name"
  done
  [[ -n "$missing" ]] && echo "NOT IN THE CHECK TABLE (add them to run_gpu_checks.sh):$missing" >>"$log"

  local inc_lines inc root_inc="" flags=()
  if ! inc_lines="$(timeout 120 "$py" -c 'import torch.utils.cpp_extension as c; print("\n".join(c.include_paths()))')"; then
    echo "cannot get torch's include paths" >>"$log"; return 1
  fi
  while IFS= read -r inc; do
    [[ -n "$inc" ]] || continue
    flags+=("-I$inc")
    [[ -z "$root_inc" && -d "$inc/torch/csrc/inductor/aoti_torch" ]] && root_inc="$inc"
  done <<<"$inc_lines"
  if [[ -z "$root_inc" ]]; then
    echo "torch/csrc/inductor/aoti_torch not found under: $inc_lines" >>"$log"; return 1
  fi
  echo "torch include root: $root_inc" >>"$log"
  local headers=() h
  for h in torch/csrc/inductor/aoti_torch/c/shim.h torch/csrc/inductor/aoti_torch/generated/c_shim_cpu.h \
           torch/csrc/inductor/aoti_torch/generated/c_shim_cuda.h; do
    if [[ -f "$root_inc/$h" ]]; then headers+=("$h"); else echo "MISSING HEADER: $h (continuing without it)" >>"$log"; fi
  done
  ((${#headers[@]})) || { echo "no shim header found" >>"$log"; return 1; }

  prelude() {  # extra headers, if any
    echo "#define USE_CUDA 1  // declares aoti_torch_get_current_cuda_stream"
    echo "#include <type_traits>"
    local x
    for x in "${headers[@]}" "$@"; do echo "#include <$x>"; done
    echo "#include \"tasp_abi.h\""
  }
  local compile=("$cxx" -std=c++17 -fsyntax-only "${flags[@]}" -Inative/include)
  prelude >"$dir/base.cpp"
  if ! "${compile[@]}" "$dir/base.cpp" >"$dir/base.err" 2>&1; then
    { echo "torch's shim headers and tasp_abi.h do not compile together:"; head -n 60 "$dir/base.err"; } >>"$log"
    return 1
  fi

  # One translation unit per function, compiled in parallel, so one absent or mismatched
  # function does not hide the others.
  local row type rest fn where
  declare -A fn_type=() fn_header=()
  for row in "${abi_table[@]}"; do
    read -r type rest <<<"$(echo $row)"
    for fn in $rest; do
      fn_type[$fn]="$type"
      # Where torch declares it: one of the three headers above, or another one (included too).
      where="$(cd "$root_inc" && grep -lw "$fn" "${headers[@]}" 2>/dev/null | head -n 1)"
      [[ -n "$where" ]] || where="$(cd "$root_inc" && grep -rlw --include='*.h' "$fn" torch/csrc torch/headeronly \
                                    2>/dev/null | head -n 1)"
      fn_header[$fn]="$where"
      [[ -n "$where" ]] || continue
      { prelude "$where"
        echo "static_assert(std::is_same_v<decltype(&$fn), $type>, \"tasp_abi.h: $type does not match $fn\");"
      } >"$dir/$fn.cpp"
      "${compile[@]}" "$dir/$fn.cpp" >"$dir/$fn.err" 2>&1 &
    done
  done
  wait
  local ok=0 bad=0 absent=0 all="$dir/all.cpp" status extra=()
  for fn in "${!fn_header[@]}"; do
    h="${fn_header[$fn]}"
    [[ -n "$h" && " ${headers[*]} ${extra[*]} " != *" $h "* ]] && extra+=("$h")
  done
  prelude "${extra[@]}" >"$all"
  for fn in $(printf '%s\n' "${!fn_type[@]}" | sort); do
    type="${fn_type[$fn]}"
    if [[ -z "${fn_header[$fn]}" ]]; then
      status="ABSENT (not in torch's headers; the library resolves it lazily at run time)"; absent=$((absent + 1))
    elif [[ ! -s "$dir/$fn.err" ]]; then
      status="match"; ok=$((ok + 1))
      echo "static_assert(std::is_same_v<decltype(&$fn), $type>, \"$type vs $fn\");" >>"$all"
    elif grep -q 'static assert\|static_assert' "$dir/$fn.err"; then
      status="MISMATCH (see below)"; bad=$((bad + 1))
    else
      status="ERROR (see below)"; bad=$((bad + 1))
    fi
    printf '%-70s %-34s %s\n' "$fn" "$type" "$status" >>"$log"
    if [[ "$status" == MISMATCH* || "$status" == ERROR* ]]; then
      { echo "---- $fn (declared in ${fn_header[$fn]}):"; grep -w -A24 "$fn" "$root_inc/${fn_header[$fn]}" | head -n 40
        echo "---- compiler:"; head -n 30 "$dir/$fn.err"; } >>"$log"
    fi
  done
  # All matching signatures in one translation unit, kept beside the results.
  if "${compile[@]}" "$all" >"$dir/all.err" 2>&1; then
    echo "combined translation unit ($ok static_asserts) compiles" >>"$log"
  else
    { echo "combined translation unit failed:"; head -n 30 "$dir/all.err"; } >>"$log"; bad=$((bad + 1))
  fi
  cp "$all" "$out/abi_check.cpp"
  abi_detail="$ok match, $bad mismatched or failed, $absent absent from the headers"
  [[ -z "$missing" && $bad -eq 0 ]]
}

say "(b') checking native/include/tasp_abi.h against torch's C shim headers"
abi_detail=""
if ((torch_ok == 0)); then
  verdict abi-check fail "torch not importable"
elif ! command -v "$cxx" >/dev/null 2>&1; then
  verdict abi-check fail "no C++ compiler ($cxx)"
elif abi_check; then
  verdict abi-check pass "$abi_detail"
else
  verdict abi-check fail "${abi_detail:-see abi_check.log}"
fi

# ---- (b'') NCCL's and the CUDA driver's signatures in tasp_abi.h against nccl.h and cuda.h ------
# tasp_abi.h declares these with its own names (plain ints for their enums), so the check compares
# each signature's shape: the number of parameters and, for the result and every parameter, its
# size and kind (pointer, integer or enum, floating point, struct). The function of a typedef is
# found by name: nccl_comm_init_rank_fn -> ncclCommInitRank, cu_stream_wait_event_fn ->
# cuStreamWaitEvent, so a typedef added to tasp_abi.h is checked without editing this script.
find_nccl_h() {
  local d
  d="$(timeout 60 "$py" -c 'import nvidia.nccl as m; print(list(m.__path__)[0])' 2>/dev/null)"
  [[ -n "$d" && -f "$d/include/nccl.h" ]] && { echo "$d/include"; return; }
  for d in /usr/include /usr/local/include /usr/local/cuda/include; do
    [[ -f "$d/nccl.h" ]] && { echo "$d"; return; }
  done
}

c_abi_check() {
  local log="$out/abi_c_check.log" dir="$build/abi_c" cuda_inc nccl_inc
  mkdir -p "$dir"
  : >"$log"
  cuda_inc="$(dirname "$(dirname "${nvcc_path:-/usr/local/cuda/bin/nvcc}")")/include"
  [[ -f "$cuda_inc/cuda.h" ]] || cuda_inc="$(dirname "$(readlink -f "${nvcc_path:-/usr/local/cuda/bin/nvcc}")")/../include"
  [[ -f "$cuda_inc/cuda.h" ]] || cuda_inc=/usr/local/cuda/include
  nccl_inc="${TASP_NCCL_INCLUDE:-$(find_nccl_h)}"
  echo "cuda.h from: $cuda_inc; nccl.h from: ${nccl_inc:-not found}" >>"$log"
  [[ -f "$cuda_inc/cuda.h" ]] || { echo "cuda.h not found" >>"$log"; return 1; }
  local tu="$dir/c_abi.cpp" typedef fn n=0 fields=0 missing_nccl=0
  {
    echo '#include <limits.h>'
    echo '#include <stddef.h>'
    echo '#include <stdint.h>'
    echo '#include <type_traits>'
    echo '#include <cuda.h>'
    [[ -n "$nccl_inc" ]] && echo '#include <nccl.h>'
    echo '// tasp_abi.h in a namespace of its own: its NCCL names would clash with nccl.h.'
    echo 'namespace ours {'
    echo '#include "tasp_abi.h"'
    echo '}'
    echo 'template <int Kind, size_t Size> struct Item {};'
    echo 'template <class T> constexpr int kind() {'
    echo '  if constexpr (std::is_void_v<T>) return 0;'
    echo '  else if constexpr (std::is_pointer_v<T>) return 1;'
    echo '  else if constexpr (std::is_integral_v<T> || std::is_enum_v<T>) return 2;'
    echo '  else if constexpr (std::is_floating_point_v<T>) return 3;'
    echo '  else return 4;'
    echo '}'
    echo 'template <class T> constexpr size_t size() { if constexpr (std::is_void_v<T>) return 0; else return sizeof(T); }'
    echo 'template <class T> using ItemOf = Item<kind<std::remove_cv_t<T>>(), size<T>()>;'
    echo 'template <class... T> struct Sig {};'
    echo 'template <class F> struct Shape;'
    echo 'template <class R, class... A> struct Shape<R (*)(A...)> { using type = Sig<ItemOf<R>, ItemOf<A>...>; };'
    echo 'template <class A, class B> constexpr bool same_shape = std::is_same_v<typename Shape<A>::type, typename Shape<B>::type>;'
  } >"$tu"
  for typedef in $(grep -o 'typedef [^;]*(\*\(nccl\|cu\)_[a-z0-9_]*_fn)' native/include/tasp_abi.h | grep -o '\(nccl\|cu\)_[a-z0-9_]*_fn' | sort -u); do
    case "$typedef" in
      nccl_*) [[ -n "$nccl_inc" ]] || { missing_nccl=$((missing_nccl + 1)); continue; } ;;
    esac
    fn="$(echo "$typedef" | sed -E 's/_fn$//; s/_([a-z])/\U\1/g')"
    echo "static_assert(same_shape<decltype(&::$fn), ours::$typedef>, \"tasp_abi.h: $typedef does not have the shape of $fn\");" >>"$tu"
    printf '%-34s %s\n' "$typedef" "$fn" >>"$log"
    n=$((n + 1))
  done
  if [[ -n "$nccl_inc" ]]; then
    # Our ncclConfig_t prefix (tasp_nccl_config): NCCL reads a config by its size and version, so
    # the fields we have must sit where nccl.h has them.
    local field
    for field in size magic version blocking cgaClusterSize minCTAs maxCTAs netName; do
      echo "static_assert(offsetof(::ncclConfig_t, $field) == offsetof(ours::tasp_nccl_config, $field), \"tasp_nccl_config.$field is not where ncclConfig_t has it\");" >>"$tu"
      fields=$((fields + 1))
    done
  fi
  echo "int main() { return 0; }" >>"$tu"
  if "$cxx" -std=c++17 -fsyntax-only -I"$cuda_inc" ${nccl_inc:+-I"$nccl_inc"} -Inative/include "$tu" >"$dir/c_abi.err" 2>&1; then
    c_abi_detail="$n signatures and $fields ncclConfig_t fields match"
    ((missing_nccl)) && c_abi_detail+="; $missing_nccl NCCL ones unchecked (no nccl.h)"
    echo "$c_abi_detail" >>"$log"
    cp "$tu" "$out/abi_c_check.cpp"
    return 0
  fi
  { echo "FAILED:"; grep -E 'error|static assert|static_assert' "$dir/c_abi.err" | head -n 40; } >>"$log"
  cp "$tu" "$out/abi_c_check.cpp"
  c_abi_detail="mismatch or error, see abi_c_check.log"
  return 1
}

say "(b'') checking NCCL's and the CUDA driver's signatures in native/include/tasp_abi.h"
c_abi_detail=""
if ! command -v "$cxx" >/dev/null 2>&1; then
  verdict abi-nccl-cuda fail "no C++ compiler ($cxx)"
elif c_abi_check; then
  verdict abi-nccl-cuda pass "$c_abi_detail"
else
  verdict abi-nccl-cuda fail "$c_abi_detail"
fi
cat "$out/abi_c_check.log"

# ---- (c) the attention checks -----------------------------------------------------------------
say "(c) gpu/check_attention.py (+ gpu/check_executor.py)"
rm -f "$out/summary.txt"
if ((torch_ok == 0)); then
  verdict attention fail "torch not importable"
elif [[ ! -f "$lib" ]]; then
  verdict attention fail "no library to check (build failed)"
else
  # shellcheck disable=SC2086
  timeout 480 "$py" -u gpu/check_attention.py --lib "$lib" --out "$out" --no-summary ${TASP_CHECK_ARGS:-} \
    2>&1 | tee "$out/checks.log"
  rc=${PIPESTATUS[0]}
  case $rc in
    0) verdict attention pass "results.json" ;;
    124) verdict attention fail "timed out after 480 s (results.json holds the stages that finished)" ;;
    *) verdict attention fail "exit $rc; see checks.log and results.json" ;;
  esac
fi

# ---- summary, last ---------------------------------------------------------------------------
echo
say "done in $((SECONDS - started)) s; files in $out: $(cd "$out" && ls | tr '\n' ' ')"
echo "== stages =="
printf '  %s\n' "${verdicts[@]}"
[[ -f "$out/summary.txt" ]] && cat "$out/summary.txt"
echo "OVERALL: $([[ $failed -eq 0 ]] && echo PASS || echo FAIL)"
exit "$failed"
