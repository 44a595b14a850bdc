#!/usr/bin/env python3
"""GPU check of libtasp's single-device attention, driven through its C API with ctypes.

Compares tasp_attention_forward (out and LSE), tasp_attention_backward (dq, dk, dv) and
tasp_merge_partial with a float64 reference computed by PyTorch on the GPU from the same inputs,
then times forward, backward and merge against PyTorch's own SDPA on the same card. Then the
distributed executor's checks of gpu/check_executor.py (virtual ranks on one GPU, NCCL with world
size 1, per-rank attention work against SDPA).

Usage (normally through gpu/run_gpu_checks.sh):
  python3 gpu/check_attention.py --lib build/libtasp.so --out gpu-out [--skip-timing] [--no-summary]
      [--skip-executor | --executor-only] [--programs gpu/programs]

Writes <out>/results.json and <out>/summary.txt. Exit status 1 when any check failed or crashed.
"""
import argparse
import ctypes
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
try:  # the distributed executor's checks (gets this module passed in; it does not import it)
    import check_executor
    EXECUTOR_KINDS = check_executor.KINDS
    EXECUTOR_IMPORT_ERROR = ""
except Exception as _e:  # reported as an error row by main
    check_executor = None
    EXECUTOR_KINDS = ()
    EXECUTOR_IMPORT_ERROR = f"{type(_e).__name__}: {_e}"

TASP_OK = 0
BACKEND_NAMES = {1: "cpu-flash", 2: "cuda-flash", 3: "cuda-efficient"}
FLASH, EFFICIENT = 2, 3
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}

FP32_BOUND = 1e-5          # absolute, for values of order 1 (scaled by max(1, max|ref|))
FP32_RELAXED = 1e-4        # accepted with a note: the efficient kernel's fp32 path may use TF32 tricks
HALF_BOUND = 1e-2          # relative: max|err| / max|ref|


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class TaspError(RuntimeError):
    def __init__(self, call, rc, message):
        super().__init__(f"{call} returned {rc}: {message}")
        self.rc = rc


# ---- PyCapsule helpers (torch._C._aoti passes handles as capsules in current releases) -------

_capi = ctypes.pythonapi
_capi.PyCapsule_GetName.restype = ctypes.c_char_p
_capi.PyCapsule_GetName.argtypes = [ctypes.py_object]
_capi.PyCapsule_GetPointer.restype = ctypes.c_void_p
_capi.PyCapsule_GetPointer.argtypes = [ctypes.py_object, ctypes.c_char_p]
_capi.PyCapsule_New.restype = ctypes.py_object
_capi.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]


def _is_capsule(obj):
    return type(obj).__name__ == "PyCapsule"


class Bridge:
    """Turns torch tensors into AtenTensorHandles and handles back into tensors."""

    def __init__(self):
        self.aoti = torch._C._aoti
        self.to_mode = None    # what unsafe_alloc_void_ptrs_from_tensors returned
        self.from_mode = None  # what alloc_tensors_by_stealing_from_void_ptrs accepted

    def _pointer(self, obj):
        if isinstance(obj, int):
            return obj, "int"
        if isinstance(obj, ctypes.c_void_p):
            return obj.value, "ctypes.c_void_p"
        if _is_capsule(obj):
            try:
                return _capi.PyCapsule_GetPointer(obj, None), "capsule(name=NULL)"
            except (ValueError, RuntimeError):
                name = _capi.PyCapsule_GetName(obj)
                return _capi.PyCapsule_GetPointer(obj, name), f"capsule(name={name!r})"
        raise TypeError(f"unexpected handle type {type(obj).__name__} from unsafe_alloc_void_ptrs_from_tensors")

    def to_handles(self, tensors):
        """New handles (ints) for the tensors; the caller frees them with tasp_tensor_free."""
        raw = self.aoti.unsafe_alloc_void_ptrs_from_tensors(list(tensors))
        ptrs = []
        for obj in raw:
            ptr, mode = self._pointer(obj)
            if self.to_mode is None:
                self.to_mode = mode
                log(f"bridge: unsafe_alloc_void_ptrs_from_tensors returns {mode}")
            if not ptr:
                raise RuntimeError("unsafe_alloc_void_ptrs_from_tensors gave a null handle")
            ptrs.append(ptr)
        return ptrs

    def from_handle(self, ptr):
        """Steals a handle returned by libtasp (frees the handle, keeps the tensor)."""
        if not ptr:
            raise RuntimeError("libtasp returned a null handle")
        modes = [self.from_mode] if self.from_mode else ["int", "capsule"]
        errors = []
        for mode in modes:
            arg = ptr if mode == "int" else _capi.PyCapsule_New(ptr, None, None)
            try:
                tensor = self.aoti.alloc_tensors_by_stealing_from_void_ptrs([arg])[0]
            except TypeError as e:  # pybind11 refused the argument type: nothing was stolen
                errors.append(f"{mode}: {e}")
                continue
            if self.from_mode is None:
                self.from_mode = mode
                log(f"bridge: alloc_tensors_by_stealing_from_void_ptrs accepts {mode}"
                    + (f" (refused: {'; '.join(errors)})" if errors else ""))
            return tensor
        raise RuntimeError("alloc_tensors_by_stealing_from_void_ptrs took neither ints nor capsules: "
                           + " | ".join(errors))


# ---- the library ---------------------------------------------------------------------------

class Tasp:
    def __init__(self, path, bridge):
        self.path = os.path.abspath(path)
        self.lib = ctypes.CDLL(self.path)
        self.bridge = bridge
        vp, i, d = ctypes.c_void_p, ctypes.c_int, ctypes.c_double
        pvp = ctypes.POINTER(ctypes.c_void_p)
        self._sig("tasp_init", ctypes.c_int, [ctypes.c_char_p])
        self._sig("tasp_flavor", ctypes.c_char_p, [])
        self._sig("tasp_version", ctypes.c_char_p, [])
        self._sig("tasp_last_error", ctypes.c_char_p, [])
        self._sig("tasp_attention_forward", i, [vp, vp, vp, i, i, d, pvp, pvp, ctypes.POINTER(i)])
        self._sig("tasp_attention_backward", i, [vp, vp, vp, vp, vp, vp, i, i, d, pvp, pvp, pvp])
        self._sig("tasp_merge_partial", i, [vp, vp, vp, vp])
        self._sig("tasp_tensor_free", i, [vp])

    def _sig(self, name, restype, argtypes):
        fn = getattr(self.lib, name)
        fn.restype = restype
        fn.argtypes = argtypes

    def last_error(self):
        msg = self.lib.tasp_last_error()
        return msg.decode(errors="replace") if msg else ""

    def check(self, call, rc):
        if rc != TASP_OK:
            raise TaspError(call, rc, self.last_error())

    def init(self, torch_lib_dir):
        self.check("tasp_init", self.lib.tasp_init(torch_lib_dir.encode()))

    def flavor(self):
        return self.lib.tasp_flavor().decode()

    def version(self):
        return self.lib.tasp_version().decode()

    def free(self, *handles):
        for h in handles:
            if h:
                self.check("tasp_tensor_free", self.lib.tasp_tensor_free(h))

    # Raw calls on handles (timing loops); outputs are new handles.
    def forward_raw(self, hq, hk, hv, causal, scale=None):
        out, lse, backend = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_int(0)
        rc = self.lib.tasp_attention_forward(hq, hk, hv, int(causal), 0 if scale is None else 1,
                                             0.0 if scale is None else float(scale),
                                             ctypes.byref(out), ctypes.byref(lse), ctypes.byref(backend))
        self.check("tasp_attention_forward", rc)
        return out.value, lse.value, backend.value

    def backward_raw(self, hdo, hq, hk, hv, hout, hlse, causal, scale=None):
        dq, dk, dv = ctypes.c_void_p(), ctypes.c_void_p(), ctypes.c_void_p()
        rc = self.lib.tasp_attention_backward(hdo, hq, hk, hv, hout, hlse, int(causal), 0 if scale is None else 1,
                                              0.0 if scale is None else float(scale),
                                              ctypes.byref(dq), ctypes.byref(dk), ctypes.byref(dv))
        self.check("tasp_attention_backward", rc)
        return dq.value, dk.value, dv.value

    # Tensor-level calls: handles in, tensors out, every handle freed.
    def forward(self, q, k, v, causal, scale=None):
        hs = self.bridge.to_handles([q, k, v])
        try:
            out, lse, backend = self.forward_raw(*hs, causal, scale)
        finally:
            self.free(*hs)
        return self.bridge.from_handle(out), self.bridge.from_handle(lse), backend

    def backward(self, dout, q, k, v, out, lse, causal, scale=None):
        hs = self.bridge.to_handles([dout, q, k, v, out, lse])
        try:
            dq, dk, dv = self.backward_raw(*hs, causal, scale)
        finally:
            self.free(*hs)
        return self.bridge.from_handle(dq), self.bridge.from_handle(dk), self.bridge.from_handle(dv)

    def merge(self, acc_out, acc_lse, block_out, block_lse):
        hs = self.bridge.to_handles([acc_out, acc_lse, block_out, block_lse])
        try:
            self.check("tasp_merge_partial", self.lib.tasp_merge_partial(*hs))
        finally:
            self.free(*hs)


# ---- reference and comparison ---------------------------------------------------------------

def reference(q, k, v, causal, dout=None):
    """float64 attention on the GPU: out, lse (natural log) and, with dout, (dq, dk, dv)."""
    group = q.shape[1] // k.shape[1]
    grad = dout is not None
    q64 = q.detach().double().requires_grad_(grad)
    k64 = k.detach().double().requires_grad_(grad)
    v64 = v.detach().double().requires_grad_(grad)
    kx = k64.repeat_interleave(group, dim=1)
    vx = v64.repeat_interleave(group, dim=1)
    scale = 1.0 / math.sqrt(q.shape[-1])
    out = F.scaled_dot_product_attention(q64, kx, vx, is_causal=causal, scale=scale)
    with torch.no_grad():
        scores = (q64 @ kx.transpose(-1, -2)) * scale
        if causal:
            sq, sk = scores.shape[-2:]
            keep = torch.ones(sq, sk, dtype=torch.bool, device=q.device).tril()
            scores = scores.masked_fill(~keep, float("-inf"))
        lse = torch.logsumexp(scores, dim=-1)
        del scores
    grads = None
    if grad:
        grads = torch.autograd.grad(out, (q64, k64, v64), dout.detach().double())
    return out.detach(), lse, grads


def error_of(got, ref, dtype_name):
    """(metric, max abs err, max abs ref); fp32: absolute scaled to max(1, max|ref|); else relative."""
    diff = (got.detach().double() - ref.double()).abs()
    err = diff.max().item()
    if not torch.isfinite(got.detach().double()).all().item():
        err = float("nan")
    ref_max = ref.double().abs().max().item()
    if dtype_name == "fp32":
        metric = err / max(1.0, ref_max)
    else:
        metric = err / ref_max if ref_max > 0 else err
    return metric, err, ref_max


def judge(metric, dtype_name):
    """(status, bound, note)"""
    if not math.isfinite(metric):
        return "fail", FP32_BOUND if dtype_name == "fp32" else HALF_BOUND, "non-finite values"
    if dtype_name == "fp32":
        if metric <= FP32_BOUND:
            return "pass", FP32_BOUND, ""
        if metric <= FP32_RELAXED:
            return "pass-relaxed", FP32_RELAXED, f"above {FP32_BOUND:g}, within the relaxed fp32 bound {FP32_RELAXED:g}"
        return "fail", FP32_RELAXED, ""
    return ("pass" if metric <= HALF_BOUND else "fail"), HALF_BOUND, ""


class Report:
    def __init__(self):
        self.rows = []
        self.timings = []

    def add(self, family, name, status, metric=None, bound=None, note="", **extra):
        row = {"family": family, "name": name, "status": status, "metric": metric, "bound": bound, "note": note}
        row.update(extra)
        self.rows.append(row)
        m = "-" if metric is None else f"{metric:.3e}"
        b = "-" if bound is None else f"{bound:.0e}"
        log(f"  {status:<12} {family:<8} {name:<44} err {m:>10}  bound {b:>6}  {note}")

    def compare(self, family, name, got, ref, dtype_name, fail_note="", **extra):
        """A row judged by the dtype's bound; a non-empty fail_note fails it whatever the error."""
        metric, err, ref_max = error_of(got, ref, dtype_name)
        status, bound, note = judge(metric, dtype_name)
        if fail_note:
            status = "fail"
        extra_note = "; ".join(x for x in (extra.pop("note", ""), fail_note) if x)
        self.add(family, name, status, metric, bound, "; ".join(x for x in (note, extra_note) if x),
                 max_abs_err=err, max_abs_ref=ref_max, **extra)
        return status


# ---- correctness checks ---------------------------------------------------------------------

def make_qkv(b, hq, hkv, sq, sk, d, dtype, seed):
    g = torch.Generator(device="cuda").manual_seed(seed)
    q = torch.randn(b, hq, sq, d, device="cuda", dtype=torch.float32, generator=g).to(dtype)
    k = torch.randn(b, hkv, sk, d, device="cuda", dtype=torch.float32, generator=g).to(dtype)
    v = torch.randn(b, hkv, sk, d, device="cuda", dtype=torch.float32, generator=g).to(dtype)
    do = torch.randn(b, hq, sq, d, device="cuda", dtype=torch.float32, generator=g).to(dtype)
    return q, k, v, do


def expected_backend(dtype_name, d):
    if dtype_name in ("bf16", "fp16") and d % 8 == 0 and d <= 256:
        return FLASH
    return EFFICIENT


def attention_case(tasp, rep, dtype_name, causal, b, hq, hkv, sq, sk, d, seed, probe=False):
    """Forward (out, lse) and backward rows for one shape. probe: a shape a kernel may refuse."""
    tag = (f"{dtype_name} {'causal' if causal else 'full'} g{hq // hkv} d{d} "
           f"S{sq}/{sk}" + (f" B{b}H{hq}" if (b, hq) != (2, 8) else ""))
    shape = {"dtype": dtype_name, "causal": causal, "B": b, "Hq": hq, "Hkv": hkv, "Sq": sq, "Sk": sk, "D": d}
    dtype = DTYPES[dtype_name]
    try:
        q, k, v, do = make_qkv(b, hq, hkv, sq, sk, d, dtype, seed)
        torch.cuda.synchronize()
        try:
            out, lse, backend = tasp.forward(q, k, v, causal)
            torch.cuda.synchronize()
        except TaspError as e:
            if probe:
                rep.add("forward", tag, "unsupported", note=str(e)[:200], **shape)
                return
            raise
        ref_out, ref_lse, ref_grads = reference(q, k, v, causal, do)
        torch.cuda.synchronize()
        bname = BACKEND_NAMES.get(backend, f"#{backend}")
        want = expected_backend(dtype_name, d)
        note = "" if backend == want else f"backend {bname}, expected {BACKEND_NAMES[want]}"
        rep.compare("forward", tag, out, ref_out, dtype_name, fail_note=note, backend=bname, **shape)
        if tuple(out.shape) != tuple(q.shape) or out.dtype != dtype:
            rep.add("forward", tag + " shape/dtype", "fail",
                    note=f"out {tuple(out.shape)} {out.dtype}, expected {tuple(q.shape)} {dtype}", **shape)
        if lse.dtype != torch.float32 or tuple(lse.shape) != (b, hq, sq):
            rep.add("lse", tag, "fail", note=f"lse {tuple(lse.shape)} {lse.dtype}, expected {(b, hq, sq)} float32",
                    **shape)
        else:
            rep.compare("lse", tag, lse, ref_lse, dtype_name, backend=bname, **shape)
        try:
            dq, dk, dv = tasp.backward(do, q, k, v, out, lse, causal)
            torch.cuda.synchronize()
        except TaspError as e:
            if probe:
                rep.add("backward", tag, "unsupported", note=str(e)[:200], backend=bname, **shape)
                return
            raise
        parts = []
        for label, got, ref in (("dq", dq, ref_grads[0]), ("dk", dk, ref_grads[1]), ("dv", dv, ref_grads[2])):
            if tuple(got.shape) != tuple(ref.shape):
                rep.add("backward", f"{tag} {label}", "fail",
                        note=f"shape {tuple(got.shape)}, expected {tuple(ref.shape)}", **shape)
                return
            parts.append((label,) + error_of(got, ref, dtype_name))
        worst = max(parts, key=lambda p: p[1] if math.isfinite(p[1]) else float("inf"))
        status, bound, note = judge(worst[1] if all(math.isfinite(p[1]) for p in parts) else float("nan"), dtype_name)
        detail = ", ".join(f"{p[0]} {p[1]:.2e}" for p in parts)
        rep.add("backward", tag, status, worst[1], bound, "; ".join(x for x in (detail, note) if x),
                backend=bname, grads={p[0]: {"metric": p[1], "max_abs_err": p[2], "max_abs_ref": p[3]} for p in parts},
                **shape)
    except Exception as e:  # one failure must not stop the rest
        rep.add("forward", tag, "error", note=f"{type(e).__name__}: {str(e)[:300]}", **shape)
        traceback.print_exc()
    finally:
        torch.cuda.empty_cache()


def merge_case(tasp, rep, dtype_name, hq, hkv, sq, sk, d, splits, seed, torch_partials=False):
    """Folds the attention of q over each key block into fp32 accumulators and compares with the
    whole. torch_partials: the partials come from PyTorch (float64, cast to the dtype), so head
    dimensions the attention kernels refuse still exercise the merge."""
    tag = (f"{dtype_name} g{hq // hkv} d{d} S{sq}/{sk} {'torch partials' if torch_partials else 'blocks'} "
           f"{'+'.join(map(str, splits))}")
    shape = {"dtype": dtype_name, "Hq": hq, "Hkv": hkv, "Sq": sq, "Sk": sk, "D": d, "blocks": splits}
    try:
        assert sum(splits) == sk
        q, k, v, _ = make_qkv(2, hq, hkv, sq, sk, d, DTYPES[dtype_name], seed)
        acc_out = torch.zeros(2, hq, sq, d, device="cuda", dtype=torch.float32)
        acc_lse = torch.full((2, hq, sq), float("-inf"), device="cuda", dtype=torch.float32)
        start = 0
        backends = []
        for n in splits:
            # Slices along the sequence: non-contiguous views, as a received chunk might be.
            kb, vb = k[:, :, start:start + n], v[:, :, start:start + n]
            if torch_partials:
                out, lse, _ = reference(q, kb, vb, False)
                out, lse, backend = out.to(q.dtype), lse.float(), "torch"
            else:
                out, lse, backend = tasp.forward(q, kb, vb, False)
            backends.append(BACKEND_NAMES.get(backend, f"#{backend}") if backend != "torch" else "torch")
            tasp.merge(acc_out, acc_lse, out, lse)
            start += n
        torch.cuda.synchronize()
        ref_out, ref_lse, _ = reference(q, k, v, False)
        rep.compare("merge", tag + " out", acc_out, ref_out, dtype_name, backend=",".join(sorted(set(backends))),
                    **shape)
        rep.compare("merge", tag + " lse", acc_lse, ref_lse, dtype_name, **shape)
    except Exception as e:
        rep.add("merge", tag, "error", note=f"{type(e).__name__}: {str(e)[:300]}", **shape)
        traceback.print_exc()
    finally:
        torch.cuda.empty_cache()


def merge_empty_case(tasp, rep, dtype_name, d, seed):
    """Partials whose LSE is -inf (no key seen) or +inf/NaN (a kernel's fully masked row) are empty:
    merging them, with garbage in their output rows, must leave the accumulators exactly as they were."""
    tag = f"{dtype_name} d{d} empty partials (-inf, +inf, NaN LSE rows)"
    shape = {"dtype": dtype_name, "D": d}
    try:
        q, k, v, _ = make_qkv(1, 4, 4, 96, 200, d, DTYPES[dtype_name], seed)
        acc_out = torch.zeros(1, 4, 96, d, device="cuda", dtype=torch.float32)
        acc_lse = torch.full((1, 4, 96), float("-inf"), device="cuda", dtype=torch.float32)
        out, lse, _ = reference(q, k, v, False)
        out, lse = out.to(q.dtype), lse.float()
        tasp.merge(acc_out, acc_lse, out, lse)
        before_out, before_lse = acc_out.clone(), acc_lse.clone()
        junk = torch.full_like(out, float("nan"))
        junk_lse = torch.empty_like(lse)
        junk_lse[..., 0::3] = float("-inf")
        junk_lse[..., 1::3] = float("inf")
        junk_lse[..., 2::3] = float("nan")
        tasp.merge(acc_out, acc_lse, junk, junk_lse)
        torch.cuda.synchronize()
        same = torch.equal(acc_out, before_out) and torch.equal(acc_lse, before_lse)
        rep.add("merge", tag, "pass" if same else "fail",
                note="" if same else "an empty partial changed the accumulators", **shape)
    except Exception as e:
        rep.add("merge", tag, "error", note=f"{type(e).__name__}: {str(e)[:300]}", **shape)
        traceback.print_exc()
    finally:
        torch.cuda.empty_cache()


def correctness(tasp, rep, quick):
    seed = 1000
    groups = (1, 2, 8)
    dims = (64, 128)
    for dtype_name in ("bf16", "fp16", "fp32"):
        log(f"forward/lse/backward: {dtype_name}")
        for causal in (False, True):
            for group in groups:
                for d in dims:
                    seed += 1
                    hkv = 8 // group
                    attention_case(tasp, rep, dtype_name, causal, 2, 8, hkv, 256, 256, d, seed)
                    if quick:
                        break
        # Odd lengths: causal 1000/1000, and 77 queries over 1000 keys.
        seed += 1
        attention_case(tasp, rep, dtype_name, True, 1, 8, 4, 1000, 1000, 128, seed)
        seed += 1
        attention_case(tasp, rep, dtype_name, False, 1, 8, 4, 77, 1000, 128, seed)
    log("forward/lse/backward: other head dimensions")
    attention_case(tasp, rep, "bf16", True, 2, 8, 2, 200, 200, 96, 2001)
    attention_case(tasp, rep, "fp16", False, 2, 8, 8, 130, 257, 96, 2002)
    # Head dimensions flash refuses (d % 8 != 0 or d > 256): the efficient kernel, if it takes them.
    attention_case(tasp, rep, "bf16", False, 2, 8, 4, 128, 160, 60, 2003, probe=True)
    attention_case(tasp, rep, "fp16", True, 2, 8, 8, 128, 128, 260, 2004, probe=True)
    attention_case(tasp, rep, "fp16", False, 1, 8, 2, 64, 300, 260, 2005, probe=True)

    log("merge: 3 uneven key blocks folded into fp32 accumulators")
    merge_case(tasp, rep, "bf16", 8, 8, 300, 1000, 128, [137, 500, 363], 3001)
    merge_case(tasp, rep, "bf16", 8, 2, 300, 1000, 128, [137, 500, 363], 3002)
    merge_case(tasp, rep, "fp16", 8, 4, 129, 777, 64, [1, 400, 376], 3003)
    merge_case(tasp, rep, "fp32", 8, 8, 300, 1000, 128, [137, 500, 363], 3004)  # strided LSE (efficient)
    merge_case(tasp, rep, "fp32", 8, 2, 77, 1000, 64, [600, 33, 367], 3005)
    # d % 4 != 0: the merge kernel's scalar path (the rows above take 4-element loads).
    merge_case(tasp, rep, "bf16", 4, 2, 100, 300, 62, [150, 150], 3006, torch_partials=True)
    merge_empty_case(tasp, rep, "bf16", 128, 3007)
    merge_empty_case(tasp, rep, "fp16", 62, 3008)


# ---- timing ---------------------------------------------------------------------------------

def sdpa_flash_context():
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
        return lambda: sdpa_kernel(SDPBackend.FLASH_ATTENTION), "torch.nn.attention.sdpa_kernel(FLASH_ATTENTION)"
    except ImportError:
        pass
    if hasattr(torch.backends.cuda, "sdp_kernel"):
        return (lambda: torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=False,
                                                       enable_mem_efficient=False),
                "torch.backends.cuda.sdp_kernel(flash only)")
    import contextlib
    return contextlib.nullcontext, "default SDPA backend"


class Timer:
    """Median of CUDA-event times; a GPU sleep before each run keeps host launch time out of it."""

    def __init__(self, warmup=5, iters=20):
        self.warmup, self.iters = warmup, iters
        self.sleep = hasattr(torch.cuda, "_sleep")

    def __call__(self, fn):
        for _ in range(self.warmup):
            fn()
        torch.cuda.synchronize()
        times = []
        for _ in range(self.iters):
            if self.sleep:
                torch.cuda._sleep(2_000_000)  # about 1 ms: the launches below queue up behind it
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        torch.cuda.synchronize()
        return statistics.median(times)


def timing(tasp, rep, card):
    timer = Timer()
    ctx, ctx_name = sdpa_flash_context()
    log(f"timing: median of {timer.iters} after {timer.warmup} warmups, CUDA events, on {card}; torch via {ctx_name}"
        + ("" if timer.sleep else " (no torch.cuda._sleep: host launch time included)"))
    b, h, s, d = 1, 32, 8192, 128
    for hkv in (8, 32):
        for causal in (False, True):
            name = f"bf16 B{b} H{h} Hkv{hkv} S{s} D{d} {'causal' if causal else 'full'}"
            try:
                q, k, v, do = make_qkv(b, h, hkv, s, s, d, torch.bfloat16, 4000 + hkv + causal)
                flops = 4.0 * b * h * s * s * d * (0.5 if causal else 1.0)
                hq_, hk_, hv_, hdo = tasp.bridge.to_handles([q, k, v, do])
                held = [hq_, hk_, hv_, hdo]
                try:
                    def ours_fwd():
                        o, l, _ = tasp.forward_raw(hq_, hk_, hv_, causal)
                        tasp.free(o, l)

                    ours_f = timer(ours_fwd)
                    ho, hl, backend = tasp.forward_raw(hq_, hk_, hv_, causal)
                    held += [ho, hl]

                    def ours_bwd():
                        tasp.free(*tasp.backward_raw(hdo, hq_, hk_, hv_, ho, hl, causal))

                    ours_b = timer(ours_bwd)
                finally:
                    tasp.free(*held)
                note = []
                qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
                kwargs = {"is_causal": causal}
                if hkv != h:
                    kwargs["enable_gqa"] = True
                with ctx():
                    try:
                        F.scaled_dot_product_attention(q, k, v, **kwargs)
                        kt, vt = k, v
                    except (TypeError, RuntimeError) as e:
                        kwargs.pop("enable_gqa", None)
                        kt, vt = (k.repeat_interleave(h // hkv, 1), v.repeat_interleave(h // hkv, 1))
                        kg, vg = (t.detach().clone().requires_grad_(True) for t in (kt, vt))
                        note.append(f"torch got k/v expanded ({type(e).__name__})")
                    torch_f = timer(lambda: F.scaled_dot_product_attention(q, kt, vt, **kwargs))
                    out_t = F.scaled_dot_product_attention(qg, kg, vg, **kwargs)
                torch_b = timer(lambda: torch.autograd.grad(out_t, (qg, kg, vg), do, retain_graph=True))
                # Same data, same answer? (relative to the largest value)
                ours_out, _, _ = tasp.forward(q, k, v, causal)
                diff = ((ours_out.float() - out_t.detach().float()).abs().max() /
                        out_t.detach().float().abs().max()).item()
                del out_t, ours_out
                row = {
                    "name": name, "card": card, "kind": "attention", "backend": BACKEND_NAMES.get(backend),
                    "fwd_ours_ms": ours_f, "fwd_torch_ms": torch_f, "fwd_ratio": ours_f / torch_f,
                    "fwd_ours_tflops": flops / ours_f / 1e9, "fwd_torch_tflops": flops / torch_f / 1e9,
                    "bwd_ours_ms": ours_b, "bwd_torch_ms": torch_b, "bwd_ratio": ours_b / torch_b,
                    "bwd_ours_tflops": 2.5 * flops / ours_b / 1e9, "bwd_torch_tflops": 2.5 * flops / torch_b / 1e9,
                    "out_rel_diff_vs_torch": diff, "note": "; ".join(note),
                }
                rep.timings.append(row)
                log(f"  {card} | {name} | fwd ours {ours_f:.3f} ms ({row['fwd_ours_tflops']:.0f} TFLOP/s) torch "
                    f"{torch_f:.3f} ms ({row['fwd_torch_tflops']:.0f}) ratio {row['fwd_ratio']:.3f} | bwd ours "
                    f"{ours_b:.3f} ms torch {torch_b:.3f} ms ratio {row['bwd_ratio']:.3f} | out diff {diff:.1e}")
                status = "pass" if diff <= HALF_BOUND else "fail"
                rep.add("timing", name + " vs torch", status, diff, HALF_BOUND, "our output vs torch SDPA output")
            except Exception as e:
                rep.timings.append({"name": name, "card": card, "kind": "attention", "error": f"{type(e).__name__}: {e}"})
                rep.add("timing", name, "error", note=f"{type(e).__name__}: {str(e)[:300]}")
                traceback.print_exc()
            finally:
                torch.cuda.empty_cache()

    name = f"merge bf16 block into fp32 acc 1x{h}x{s}x{d}"
    try:
        acc_out = torch.zeros(1, h, s, d, device="cuda", dtype=torch.float32)
        acc_lse = torch.full((1, h, s), float("-inf"), device="cuda", dtype=torch.float32)
        blk = torch.randn(1, h, s, d, device="cuda", dtype=torch.bfloat16)
        blk_lse = torch.randn(1, h, s, device="cuda", dtype=torch.float32)
        hs = tasp.bridge.to_handles([acc_out, acc_lse, blk, blk_lse])
        try:
            ms = timer(lambda: tasp.check("tasp_merge_partial", tasp.lib.tasp_merge_partial(*hs)))
        finally:
            tasp.free(*hs)
        nbytes = acc_out.numel() * (4 + 4 + 2) + acc_lse.numel() * (4 + 4 + 4)
        row = {"name": name, "card": card, "kind": "merge", "ms": ms, "gb_per_s": nbytes / ms / 1e6}
        rep.timings.append(row)
        log(f"  {card} | {name} | {ms:.3f} ms, {row['gb_per_s']:.0f} GB/s")
    except Exception as e:
        rep.timings.append({"name": name, "card": card, "kind": "merge", "error": f"{type(e).__name__}: {e}"})
        rep.add("timing", name, "error", note=f"{type(e).__name__}: {str(e)[:300]}")
        traceback.print_exc()


# ---- summary --------------------------------------------------------------------------------

def summary_text(rep, meta):
    lines = [f"== tasp GPU attention check on {meta['card']} (torch {meta['torch']}, CUDA {meta['torch_cuda']}, "
             f"libtasp {meta.get('tasp_version')} {meta.get('tasp_flavor')}) =="]
    fams = {}
    for r in rep.rows:
        f = fams.setdefault(r["family"], {})
        f[r["status"]] = f.get(r["status"], 0) + 1
    for fam, counts in fams.items():
        worst = max((r["metric"] for r in rep.rows if r["family"] == fam and r["metric"] is not None
                     and math.isfinite(r["metric"])), default=None)
        lines.append(f"  {fam:<9} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                     + ("" if worst is None else f"   (worst err {worst:.2e})"))
    notable = [r for r in rep.rows if r["status"] != "pass"]
    if notable:
        lines.append("  not plain passes:")
        lines.append(f"    {'status':<12} {'family':<9} {'name':<46} {'err':>9} {'bound':>6}  note")
        for r in notable[:40]:
            m = "-" if r["metric"] is None else f"{r['metric']:.2e}"
            bnd = "-" if r["bound"] is None else f"{r['bound']:.0e}"
            lines.append(f"    {r['status']:<12} {r['family']:<9} {r['name']:<46} {m:>9} {bnd:>6}  {r['note'][:90]}")
        if len(notable) > 40:
            lines.append(f"    ... {len(notable) - 40} more in results.json")
    if rep.timings:
        lines.append(f"  timing on {meta['card']} (median ms; TFLOP/s; attention rows: ratio = ours/torch; "
                     "per-rank row: SDPA/TASP):")
        for t in rep.timings:
            if t.get("kind") in EXECUTOR_KINDS:
                lines.extend(check_executor.timing_lines(t))
            elif "error" in t:
                lines.append(f"    {t['name']}: ERROR {t['error'][:100]}")
            elif t["kind"] == "merge":
                lines.append(f"    {t['name']}: {t['ms']:.3f} ms, {t['gb_per_s']:.0f} GB/s")
            else:
                lines.append(f"    {t['name']}: fwd {t['fwd_ours_ms']:.3f} vs {t['fwd_torch_ms']:.3f} ms "
                             f"({t['fwd_ours_tflops']:.0f} vs {t['fwd_torch_tflops']:.0f} TFLOP/s, x{t['fwd_ratio']:.3f})"
                             f" | bwd {t['bwd_ours_ms']:.3f} vs {t['bwd_torch_ms']:.3f} ms (x{t['bwd_ratio']:.3f})"
                             + (f" [{t['note']}]" if t.get("note") else ""))
    bad = sum(1 for r in rep.rows if r["status"] in ("fail", "error"))
    lines.append(f"  RESULT: {'FAIL' if bad else 'PASS'} ({len(rep.rows)} rows, {bad} failed or crashed)")
    return "\n".join(lines)


def save(rep, meta, out):
    """results.json as it stands (written again after every stage, so a timeout keeps what ran)."""
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": rep.rows, "timings": rep.timings}, f, indent=1, default=str)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lib", default=os.environ.get("TASP_LIB", "build/libtasp.so"), help="path of libtasp.so")
    ap.add_argument("--out", default=os.environ.get("OUT") or "gpu-out", help="folder for results.json")
    ap.add_argument("--skip-timing", action="store_true")
    ap.add_argument("--quick", action="store_true", help="fewer correctness shapes")
    ap.add_argument("--no-summary", action="store_true", help="write summary.txt without printing it")
    ap.add_argument("--skip-executor", action="store_true", help="no distributed-executor checks")
    ap.add_argument("--executor-only", action="store_true", help="only the distributed-executor checks")
    ap.add_argument("--programs", default=None, help="folder of `tasp plan --programs` JSON (default gpu/programs)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    rep = Report()
    meta = {"card": "(no GPU)", "torch": torch.__version__, "torch_cuda": torch.version.cuda,
            "python": platform.python_version(), "lib": os.path.abspath(args.lib),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    t0 = time.time()
    try:
        if not torch.cuda.is_available():
            raise RuntimeError("torch.cuda.is_available() is False")
        meta["card"] = torch.cuda.get_device_name()
        meta["capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
        log(f"card {meta['card']} (sm {meta['capability']}), torch {torch.__version__}, CUDA {torch.version.cuda}")
        bridge = Bridge()
        tasp = Tasp(args.lib, bridge)
        meta["tasp_flavor"], meta["tasp_version"] = tasp.flavor(), tasp.version()
        torch_lib_dir = os.path.join(os.path.dirname(torch.__file__), "lib")
        try:
            tasp.init(torch_lib_dir)
        except TaspError as e:
            log(f"tasp_init({torch_lib_dir}) failed: {e}")
            raise
        log(f"libtasp {meta['tasp_version']} flavor {meta['tasp_flavor']} initialized from {torch_lib_dir}")
        if meta["tasp_flavor"] != "cuda":
            rep.add("setup", "library flavor", "fail", note=f"flavor is {meta['tasp_flavor']}, expected cuda")
        if not args.executor_only:
            correctness(tasp, rep, args.quick)
            save(rep, meta, args.out)
            if not args.skip_timing:
                timing(tasp, rep, meta["card"])
                save(rep, meta, args.out)
        if not args.skip_executor:
            if check_executor is None:
                rep.add("setup", "import check_executor", "error", note=EXECUTOR_IMPORT_ERROR)
            else:
                check_executor.run(sys.modules[__name__], tasp, rep, meta["card"], args.programs, args.skip_timing)
        meta["bridge_to_handles"], meta["bridge_from_handles"] = bridge.to_mode, bridge.from_mode
    except Exception as e:
        rep.add("setup", "harness", "error", note=f"{type(e).__name__}: {e}")
        traceback.print_exc()
    meta["seconds"] = round(time.time() - t0, 1)

    save(rep, meta, args.out)
    text = summary_text(rep, meta)
    with open(os.path.join(args.out, "summary.txt"), "w") as f:
        f.write(text + "\n")
    log(f"wrote {os.path.join(args.out, 'results.json')} ({meta['seconds']} s)")
    if not args.no_summary:
        print(text, flush=True)
    return 1 if any(r["status"] in ("fail", "error") for r in rep.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
