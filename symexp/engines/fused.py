"""Fused engine: forward + backward + Adam/AdamW for RF-LR ensembles in one C loop nest.

Why: at batch size 1 every step of an RF-LR member is a handful of tiny mat-vecs plus an Adam update
over ~13k parameters, so eager PyTorch (and torch.compile) is bound by per-op overhead and by streaming
the stacked (K, ...) tensors through memory once per op. Members are independent, so this engine is
cache-blocked over members: a worker thread copies ONE member's parameters, Adam moments and frozen
features into a padded, L2-resident scratch, runs all S steps of the chunk on it, and writes them back.
Each step is one pass per block forward and one fused pass per block backward (gradient, Adam moments
and parameter update of the mixer in the same sweep). Members are split across threads (pthreads).

The kernel is plain C (GCC vector extensions), compiled once with the system C compiler into a small
shared library that is loaded with ctypes: no torch headers, no ninja, builds in about a second. Two
variants: ``-mavx2 -mfma`` where the running CPU has AVX2+FMA (checked at runtime, never
``-march=native``) and a baseline ``-O3`` build otherwise. Builds are cached under the torch extensions
directory (``$TORCH_EXTENSIONS_DIR`` or ``~/.cache/torch_extensions``), keyed by a hash of source,
flags and compiler. Without a working compiler ``FusedEngine.supports`` is False and
``build_engine('auto', ...)`` falls back to the autograd engine.

Semantics are those of :class:`symexp.engines.autograd.AutogradEngine` with ``torch.optim.Adam`` /
``AdamW`` (coupled L2 resp. decoupled decay, bias corrections from the optimizer's step count). The
optimizer's own state tensors (``step``, ``exp_avg``, ``exp_avg_sq``) are updated in place, so engines
can be switched mid-run and optimizer checkpoints stay valid. With syre hooks (``fused_compatible``),
weight decay is anchored: ``hooks.anchors(model)`` maps parameter names to theta0 (or None) and the
decay term becomes ``weight_decay * (p - anchor)``; the hooks' before/after_step are NOT called.

Environment: ``SYMEXP_FUSED_ISA=baseline`` forces the portable build; ``SYMEXP_FUSED_DISABLE=1``
makes ``supports`` return False; ``CC`` picks the compiler (default ``cc``, then ``gcc``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

import torch

MAX_BLOCKS = 16  # depth + 1
MAX_RANK = 64

_C_SOURCE = r"""
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#define MAXB 16
#define MAXR 64

typedef float v8 __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

static inline v8 vset1(float a) { v8 r = {a, a, a, a, a, a, a, a}; return r; }
static inline v8 vsqrt(v8 a) {
#if defined(__AVX__)
    return (v8)_mm256_sqrt_ps((__m256)a);
#elif defined(__SSE__)
    union { v8 v; __m128 h[2]; } u;
    u.v = a; u.h[0] = _mm_sqrt_ps(u.h[0]); u.h[1] = _mm_sqrt_ps(u.h[1]);
    return u.v;
#else
    v8 r; for (int i = 0; i < 8; i++) r[i] = sqrtf(a[i]); return r;
#endif
}
static inline v8 vmask_pos(v8 val, v8 ref) {  /* val where ref > 0 else 0 */
    v8 zero = vset1(0.0f);
    v8i m = ref > zero;
    return (v8)((v8i)val & m);
}
static inline float hsum(v8 a) {
    return ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
}
static inline float vdot(const v8 *a, const v8 *b, int nb) {
    v8 s0 = vset1(0.f), s1 = s0, s2 = s0, s3 = s0;
    int j = 0;
    for (; j + 4 <= nb; j += 4) {
        s0 += a[j] * b[j]; s1 += a[j + 1] * b[j + 1];
        s2 += a[j + 2] * b[j + 2]; s3 += a[j + 3] * b[j + 3];
    }
    for (; j < nb; j++) s0 += a[j] * b[j];
    return hsum((s0 + s1) + (s2 + s3));
}

typedef struct {
    int K, S, W, nblk;
    int dims[MAXB + 1];
    const float *A[MAXB], *b[MAXB], *anc[MAXB];
    float *B[MAXB], *M[MAXB], *V[MAXB];
    const float *x, *y;
    float *loss;
    const float *ss, *ib;   /* (nblk, S): step size lr/bc1, 1/sqrt(bc2) */
    float w1, beta2, c2, eps, wd, decay, lrwd;
    int mode;               /* 0: no decay, 1: coupled (Adam), 2: decoupled (AdamW) */
} job_t;

typedef struct { const job_t *job; int k0, k1, err; } slice_t;

/* Fused backward + Adam for one block. MODE and ANC are compile-time constants at each call site. */
static inline __attribute__((always_inline)) void block_backward(
    const job_t *jb, int l, int s, int nb, int Wp, v8 *Bp, v8 *Mp, v8 *Vp, const v8 *Ap,
    const v8 *U, v8 *DU, const float *dzo, const int MODE, const int ANC)
{
    const int rout = jb->dims[l + 1];
    const v8 w1 = vset1(jb->w1), beta2 = vset1(jb->beta2), c2 = vset1(jb->c2), eps = vset1(jb->eps);
    const v8 wd = vset1(jb->wd), decay = vset1(jb->decay), lrwd = vset1(jb->lrwd);
    const v8 ss = vset1(jb->ss[l * jb->S + s]), ib = vset1(jb->ib[l * jb->S + s]);
    const int nv = Wp / 8;
    for (int j = 0; j < nb; j++) DU[j] = vset1(0.f);
    for (int o = 0; o < rout; o++) {
        v8 *Bo = Bp + o * nv, *Mo = Mp + o * nv, *Vo = Vp + o * nv;
        const v8 *Ao = ANC ? Ap + o * nv : 0;
        const v8 d = vset1(dzo[o]);
        for (int j = 0; j < nb; j++) {
            v8 p = Bo[j];
            DU[j] += p * d;
            v8 g = d * U[j];
            if (MODE == 1) g += wd * (ANC ? p - Ao[j] : p);
            v8 m = Mo[j];
            m = m + w1 * (g - m);
            Mo[j] = m;
            v8 v = Vo[j] * beta2;
            v = v + c2 * (g * g);
            Vo[j] = v;
            if (MODE == 2) p = ANC ? p - lrwd * (p - Ao[j]) : p * decay;
            v8 den = vsqrt(v) * ib + eps;
            p = p - ss * (m / den);
            Bo[j] = p;
        }
    }
}

static void run_member(const job_t *jb, int k, float *scratch, size_t *offs) {
    const int W = jb->W, Wp = (W + 7) & ~7, nb = Wp / 8, nblk = jb->nblk, S = jb->S;
    const int d = jb->dims[0];
    v8 *At[MAXB], *bb[MAXB], *Bp[MAXB], *Mp[MAXB], *Vp[MAXB], *Ap[MAXB], *U[MAXB];
    v8 *DU = (v8 *)(scratch + offs[0]), *DP = (v8 *)(scratch + offs[1]);
    float z[MAXB + 1][MAXR];
    for (int l = 0; l < nblk; l++) {
        const int rin = jb->dims[l], rout = jb->dims[l + 1];
        size_t *o = offs + 2 + 7 * l;
        float *at = scratch + o[0], *b = scratch + o[1], *B = scratch + o[2], *M = scratch + o[3];
        float *V = scratch + o[4], *A = scratch + o[5], *u = scratch + o[6];
        const float *srcA = jb->A[l] + (size_t)k * W * rin, *srcb = jb->b[l] + (size_t)k * W;
        for (int i = 0; i < rin; i++)
            for (int j = 0; j < W; j++) at[(size_t)i * Wp + j] = srcA[(size_t)j * rin + i];
        memcpy(b, srcb, sizeof(float) * W);
        for (int oo = 0; oo < rout; oo++) {
            size_t src = ((size_t)k * rout + oo) * W, dst = (size_t)oo * Wp;
            memcpy(B + dst, jb->B[l] + src, sizeof(float) * W);
            memcpy(M + dst, jb->M[l] + src, sizeof(float) * W);
            memcpy(V + dst, jb->V[l] + src, sizeof(float) * W);
            if (jb->anc[l]) memcpy(A + dst, jb->anc[l] + src, sizeof(float) * W);
        }
        At[l] = (v8 *)at; bb[l] = (v8 *)b; Bp[l] = (v8 *)B; Mp[l] = (v8 *)M; Vp[l] = (v8 *)V;
        Ap[l] = (v8 *)A; U[l] = (v8 *)u;
    }
    for (int s = 0; s < S; s++) {
        const float *xs = jb->x + ((size_t)k * S + s) * d;
        for (int i = 0; i < d; i++) z[0][i] = xs[i];
        /* forward */
        for (int l = 0; l < nblk; l++) {
            const int rin = jb->dims[l], rout = jb->dims[l + 1];
            const v8 *at = At[l], *b = bb[l];
            v8 *u = U[l];
            for (int j = 0; j < nb; j++) {
                v8 acc = b[j];
                for (int i = 0; i < rin; i++) acc += at[(size_t)i * nb + j] * vset1(z[l][i]);
                u[j] = vmask_pos(acc, acc);
            }
            for (int o = 0; o < rout; o++) z[l + 1][o] = vdot(Bp[l] + (size_t)o * nb, u, nb);
        }
        const float err = z[nblk][0] - jb->y[(size_t)k * S + s];
        jb->loss[(size_t)k * S + s] = err * err;
        z[nblk][0] = 2.0f * err;   /* z[l+1] now holds dL/dz of block l's output */
        /* backward + Adam, last block first */
        for (int l = nblk - 1; l >= 0; l--) {
            const int anc = jb->anc[l] != 0;
            switch (jb->mode * 2 + anc) {
                case 0: case 1: block_backward(jb, l, s, nb, Wp, Bp[l], Mp[l], Vp[l], Ap[l], U[l], DU, z[l + 1], 0, 0); break;
                case 2: block_backward(jb, l, s, nb, Wp, Bp[l], Mp[l], Vp[l], Ap[l], U[l], DU, z[l + 1], 1, 0); break;
                case 3: block_backward(jb, l, s, nb, Wp, Bp[l], Mp[l], Vp[l], Ap[l], U[l], DU, z[l + 1], 1, 1); break;
                case 4: block_backward(jb, l, s, nb, Wp, Bp[l], Mp[l], Vp[l], Ap[l], U[l], DU, z[l + 1], 2, 0); break;
                default: block_backward(jb, l, s, nb, Wp, Bp[l], Mp[l], Vp[l], Ap[l], U[l], DU, z[l + 1], 2, 1); break;
            }
            if (l > 0) {
                const int rin = jb->dims[l];
                for (int j = 0; j < nb; j++) DP[j] = vmask_pos(DU[j], U[l][j]);
                for (int i = 0; i < rin; i++) z[l][i] = vdot(At[l] + (size_t)i * nb, DP, nb);
            }
        }
    }
    for (int l = 0; l < nblk; l++) {
        const int rout = jb->dims[l + 1];
        for (int oo = 0; oo < rout; oo++) {
            size_t dst = ((size_t)k * rout + oo) * W, src = (size_t)oo * Wp;
            memcpy(jb->B[l] + dst, (float *)Bp[l] + src, sizeof(float) * W);
            memcpy(jb->M[l] + dst, (float *)Mp[l] + src, sizeof(float) * W);
            memcpy(jb->V[l] + dst, (float *)Vp[l] + src, sizeof(float) * W);
        }
    }
}

static void *run_slice(void *arg) {
    slice_t *sl = (slice_t *)arg;
    const job_t *jb = sl->job;
    const int W = jb->W, Wp = (W + 7) & ~7, nblk = jb->nblk;
    size_t offs[2 + 7 * MAXB], n = 0;
    offs[0] = n; n += Wp; offs[1] = n; n += Wp;
    for (int l = 0; l < nblk; l++) {
        const int rin = jb->dims[l], rout = jb->dims[l + 1];
        size_t *o = offs + 2 + 7 * l;
        o[0] = n; n += (size_t)rin * Wp;
        o[1] = n; n += Wp;
        for (int t = 2; t < 6; t++) { o[t] = n; n += (size_t)rout * Wp; }
        o[6] = n; n += Wp;
    }
    float *scratch = (float *)aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
    if (!scratch) { sl->err = 1; return 0; }
    memset(scratch, 0, n * sizeof(float));   /* padding columns stay exactly 0 through every step */
#if defined(__x86_64__) || defined(__i386__)
    /* Flush-to-zero + denormals-are-zero while the kernel runs (restored after): Adam moments of units
       that stay inactive decay into the subnormal range (exp_avg even sticks at the smallest subnormal)
       and subnormal arithmetic is many times slower. Effect on results: values below 1.2e-38 read as 0. */
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040);
#endif
    for (int k = sl->k0; k < sl->k1; k++) run_member(jb, k, scratch, offs);
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(csr);
#endif
    free(scratch);
    return 0;
}

int symexp_rflr_adam(int K, int S, int W, int nblk, const int *dims,
                     void **A, void **b, void **B, void **M, void **V, void **anc,
                     const float *x, const float *y, float *loss,
                     const double *hp, int mode, const double *steps0, int nthreads)
{
    if (nblk < 1 || nblk > MAXB || K < 1 || S < 1 || W < 1) return 2;
    for (int l = 0; l <= nblk; l++) if (dims[l] < 1 || dims[l] > MAXR) return 2;
    if (dims[nblk] != 1) return 2;
    job_t jb;
    memset(&jb, 0, sizeof jb);
    jb.K = K; jb.S = S; jb.W = W; jb.nblk = nblk;
    for (int l = 0; l <= nblk; l++) jb.dims[l] = dims[l];
    for (int l = 0; l < nblk; l++) {
        jb.A[l] = (const float *)A[l]; jb.b[l] = (const float *)b[l];
        jb.B[l] = (float *)B[l]; jb.M[l] = (float *)M[l]; jb.V[l] = (float *)V[l];
        jb.anc[l] = anc ? (const float *)anc[l] : 0;
    }
    jb.x = x; jb.y = y; jb.loss = loss;
    const double lr = hp[0], beta1 = hp[1], beta2 = hp[2], eps = hp[3], wd = hp[4];
    float *tab = (float *)malloc(sizeof(float) * 2 * (size_t)nblk * S);
    if (!tab) return 1;
    for (int l = 0; l < nblk; l++)
        for (int s = 0; s < S; s++) {
            const double t = steps0[l] + s + 1;
            const double bc1 = 1.0 - pow(beta1, t), bc2 = 1.0 - pow(beta2, t);
            tab[(size_t)l * S + s] = (float)(lr / bc1);
            tab[(size_t)(nblk + l) * S + s] = (float)(1.0 / (double)(float)sqrt(bc2));
        }
    jb.ss = tab; jb.ib = tab + (size_t)nblk * S;
    jb.w1 = (float)(1.0 - beta1); jb.beta2 = (float)beta2; jb.c2 = (float)(1.0 - beta2);
    jb.eps = (float)eps; jb.wd = (float)wd; jb.decay = (float)(1.0 - lr * wd); jb.lrwd = (float)(lr * wd);
    jb.mode = wd != 0.0 ? mode : 0;
    if (nthreads < 1) nthreads = 1;
    if (nthreads > K) nthreads = K;
    if (nthreads > 256) nthreads = 256;
    slice_t sl[256];
    pthread_t th[256];
    int started[256];
    for (int t = 0; t < nthreads; t++) {
        sl[t].job = &jb; sl[t].err = 0;
        sl[t].k0 = (int)((long long)K * t / nthreads); sl[t].k1 = (int)((long long)K * (t + 1) / nthreads);
    }
    for (int t = 1; t < nthreads; t++) started[t] = pthread_create(&th[t], 0, run_slice, &sl[t]) == 0;
    run_slice(&sl[0]);
    for (int t = 1; t < nthreads; t++) {
        if (started[t]) pthread_join(th[t], 0);
        else run_slice(&sl[t]);
    }
    free(tab);
    int err = 0;
    for (int t = 0; t < nthreads; t++) err |= sl[t].err;
    return err;
}
"""

_lock = threading.Lock()
_cache: dict[str, object] = {}


def _cpu_has_avx2_fma() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
        for line in flags.splitlines():
            if line.startswith("flags"):
                f = set(line.split(":", 1)[1].split())
                return {"avx2", "fma"} <= f
    except OSError:
        pass
    try:
        return torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
    except Exception:
        return False


def _isa() -> str:
    forced = os.environ.get("SYMEXP_FUSED_ISA", "").strip().lower()
    if forced in ("baseline", "avx2"):
        return forced
    return "avx2" if _cpu_has_avx2_fma() else "baseline"


def _compiler() -> str | None:
    for cand in (os.environ.get("CC"), "cc", "gcc"):
        if cand and shutil.which(cand):
            return shutil.which(cand)
    return None


def _build_root() -> Path:
    root = os.environ.get("TORCH_EXTENSIONS_DIR")
    if root:
        return Path(root) / "symexp_fused"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "torch_extensions" / "symexp_fused"


def _load(isa: str):
    """Compile (once, cached on disk) and load the kernel library for ``isa``; raises on failure."""
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set CC)")
    flags = ["-O3", "-fPIC", "-shared", "-std=gnu11", "-fno-math-errno", "-pthread"]
    if isa == "avx2":
        flags += ["-mavx2", "-mfma"]
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"C compiler {cc} does not run: {exc}") from exc
    key = hashlib.sha256("\0".join([_C_SOURCE, cc, version, *flags]).encode()).hexdigest()[:16]
    root = _build_root()
    lib_path = root / f"rflr_adam_{isa}_{key}.so"
    if not lib_path.exists():
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            src = Path(tmp) / "rflr_adam.c"
            src.write_text(_C_SOURCE)
            out = Path(tmp) / lib_path.name
            proc = subprocess.run([cc, *flags, str(src), "-o", str(out), "-lm"], capture_output=True,
                                  text=True, timeout=300)
            if proc.returncode != 0 or not out.exists():
                raise RuntimeError(f"building the fused kernel failed:\n{proc.stderr[-4000:]}")
            os.replace(out, lib_path)  # atomic: concurrent builders (pytest -n) each install a whole file
    lib = ctypes.CDLL(str(lib_path))
    fn = lib.symexp_rflr_adam
    p, i = ctypes.c_void_p, ctypes.c_int
    fn.argtypes = [i, i, i, i, p, p, p, p, p, p, p, p, p, p, p, i, p, i]
    fn.restype = i
    return fn


def kernel(isa: str | None = None):
    """The loaded kernel function for ``isa`` (default: best for this CPU), or None if unavailable."""
    isa = isa or _isa()
    with _lock:
        if isa not in _cache:
            try:
                _cache[isa] = _load(isa)
            except Exception as exc:  # no compiler, build failure, load failure: report unsupported
                _cache[isa] = exc
        got = _cache[isa]
    return None if isinstance(got, Exception) else got


def build_error(isa: str | None = None) -> Exception | None:
    """Why the kernel is unavailable (None when it loaded)."""
    kernel(isa)
    got = _cache.get(isa or _isa())
    return got if isinstance(got, Exception) else None


def _ptrs(tensors) -> ctypes.Array:
    return (ctypes.c_void_p * len(tensors))(*[0 if t is None else t.data_ptr() for t in tensors])


class FusedEngine:
    """S sequential batch-1 Adam/AdamW steps per RF-LR member, fused in C. Same contract as AutogradEngine."""

    def __init__(self, model, optimizer: torch.optim.Optimizer, hooks=None) -> None:
        if not self.supports(model, optimizer, hooks):
            raise ValueError("FusedEngine: unsupported model/optimizer/hooks combination (or no compiler)")
        self.model, self.optimizer, self.hooks = model, optimizer, hooks
        self.params = list(model.mixers)
        names = {id(p): n for n, p in model.named_parameters()}
        self.names = [names[id(p)] for p in self.params]
        self.kernel = kernel()

    @staticmethod
    def supports(model, optimizer, hooks=None) -> bool:
        if os.environ.get("SYMEXP_FUSED_DISABLE", "") not in ("", "0"):
            return False
        from symexp.models.rflr import RFLR

        if not isinstance(model, RFLR) or getattr(model, "activation_name", None) != "relu":
            return False
        if model.biases is not None or len(model.mixers) > MAX_BLOCKS:
            return False
        if any(r > MAX_RANK for r in model.dims) or model.dims[-1] != 1:
            return False
        params = list(model.mixers)
        for l, p in enumerate(params):
            A, b = model.features(l)
            for t in (p, A, b):
                if t.device.type != "cpu" or t.dtype != torch.float32 or not t.is_contiguous():
                    return False
            if not p.requires_grad:
                return False
        if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW) or len(optimizer.param_groups) != 1:
            return False
        group = optimizer.param_groups[0]
        if {id(p) for p in group["params"]} != {id(p) for p in params} or len(group["params"]) != len(params):
            return False
        for flag in ("amsgrad", "maximize", "differentiable", "capturable"):
            if group.get(flag, False):
                return False
        if any(isinstance(group[k], torch.Tensor) and group[k].requires_grad for k in ("lr", "weight_decay")):
            return False
        if hooks is not None and getattr(hooks, "fused_compatible", False) is not True:
            return False
        return kernel() is not None

    def _state(self, p: torch.Tensor) -> dict:
        st = self.optimizer.state[p]
        if len(st) == 0:  # exactly torch.optim.Adam's lazy init (capturable/fused off)
            st["step"] = torch.tensor(0.0, dtype=torch.get_default_dtype())
            st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        for name in ("exp_avg", "exp_avg_sq"):
            t = st[name]
            if t.dtype != torch.float32 or t.device.type != "cpu" or not t.is_contiguous() or t.shape != p.shape:
                st[name] = t.detach().to(device="cpu", dtype=torch.float32).contiguous().reshape(p.shape)
        return st

    def _anchors(self) -> list[torch.Tensor | None]:
        if self.hooks is None or not hasattr(self.hooks, "anchors"):
            return [None] * len(self.params)
        got = self.hooks.anchors(self.model) or {}
        out = []
        for name, p in zip(self.names, self.params):
            a = got.get(name)
            if a is not None:
                a = a.detach().to(device="cpu", dtype=torch.float32).expand_as(p).contiguous()
            out.append(a)
        return out

    @torch.no_grad()
    def run(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (K, S, d), y (K, S) -> pre-update losses (K, S)."""
        model = self.model
        K, W = model.members, model.width
        if x.dim() != 3 or x.shape[0] != K or x.shape[2] != model.in_dim or y.shape != x.shape[:2]:
            raise ValueError(f"FusedEngine.run: x {tuple(x.shape)} / y {tuple(y.shape)} do not fit K={K}, "
                             f"d={model.in_dim}")
        S = x.shape[1]
        losses = torch.empty(K, S, dtype=torch.float32)
        if S == 0:
            return losses.to(y.dtype)
        xc = x.detach().to(device="cpu", dtype=torch.float32).contiguous()
        yc = y.detach().to(device="cpu", dtype=torch.float32).contiguous()
        group = self.optimizer.param_groups[0]
        lr, wd, eps = float(group["lr"]), float(group["weight_decay"]), float(group["eps"])
        beta1, beta2 = (float(b) for b in group["betas"])
        decoupled = bool(group.get("decoupled_weight_decay", isinstance(self.optimizer, torch.optim.AdamW)))
        states = [self._state(p) for p in self.params]
        feats = [model.features(l) for l in range(len(self.params))]
        anchors = self._anchors() if wd != 0 else [None] * len(self.params)
        nblk = len(self.params)
        dims = (ctypes.c_int * (nblk + 1))(*model.dims)
        steps0 = (ctypes.c_double * nblk)(*[float(st["step"]) for st in states])
        hp = (ctypes.c_double * 5)(lr, beta1, beta2, eps, wd)
        nthreads = max(1, min(torch.get_num_threads(), K))
        params = [p.data for p in self.params]
        rc = self.kernel(
            K, S, W, nblk, dims,
            _ptrs([A for A, _ in feats]), _ptrs([b for _, b in feats]), _ptrs(params),
            _ptrs([st["exp_avg"] for st in states]), _ptrs([st["exp_avg_sq"] for st in states]),
            _ptrs(anchors), xc.data_ptr(), yc.data_ptr(), losses.data_ptr(),
            hp, 2 if decoupled else 1, steps0, nthreads,
        )
        if rc != 0:
            raise RuntimeError(f"fused RF-LR kernel failed (code {rc})")
        for st in states:
            if isinstance(st["step"], torch.Tensor):
                st["step"].add_(S)
            else:
                st["step"] = st["step"] + S
        return losses.to(y.dtype) if y.dtype != torch.float32 else losses

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None
