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

MAX_LAYERS = 32  # RF-LR blocks (depth + 1) or MLP layers (seed 000 Figure 2: 17)

_C_SOURCE = r"""

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#define MAXL 32          /* layers (RF-LR blocks); must equal MAX_LAYERS */
#define MAXSLOT 64       /* trained tensors (2 x MAXL): RF-LR mixers; MLP weights then biases */

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
/* torch.relu: NaN stays NaN */
static inline v8 vrelu(v8 a) {
    v8 zero = vset1(0.0f);
    v8i m = (a > zero) | (a != a);
    return (v8)((v8i)a & m);
}
/* relu backward (threshold_backward on the output): grad where out > 0, else 0 */
static inline v8 vmask_pos(v8 val, v8 out) {
    v8 zero = vset1(0.0f);
    v8i m = out > zero;
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
static inline int pad8(int n) { return (n + 7) & ~7; }

typedef struct { int rows, cols; float *P, *M, *V; const float *anc; } slot_t;

typedef struct {
    int K, S, kind, nl, nslot;  /* kind 0: RF-LR, slot l = mixer l; kind 1: MLP, slot l = weight l, nl+l = bias l */
    int W;                      /* RF-LR width */
    int dims[MAXL + 1];
    slot_t sl[MAXSLOT];
    const float *A[MAXL], *b[MAXL];
    const float *x, *y;
    float *loss;
    const float *ss, *ib;       /* (nslot, S): step size lr/bc1 and 1/sqrt(bc2) of each step */
    float w1, beta2, c2, eps, wd, decay, lrwd;
    int mode;                   /* 0: no decay, 1: coupled (Adam), 2: decoupled (AdamW) */
} job_t;

typedef struct {                /* one thread's padded, cache-resident copy of one member */
    v8 *P[MAXSLOT], *M[MAXSLOT], *V[MAXSLOT], *A[MAXSLOT];
    v8 *At[MAXL], *bb[MAXL], *U[MAXL + 1];
    v8 *DU, *DP, *dummy;
    float *z[MAXL + 1];
} work_t;

typedef struct { const job_t *job; int *next; int err; } slice_t;   /* members are handed out one at a time */

/* Lay out the scratch (base == NULL: just count floats). Every array starts 64-byte aligned. */
static size_t layout(const job_t *jb, work_t *w, float *base) {
    size_t n = 0, maxc = 8, zs = 16;
#define TAKE(ptr, cnt) do { size_t c_ = ((size_t)(cnt) + 15) & ~(size_t)15; ptr = (void *)(base ? base + n : 0); n += c_; } while (0)
    for (int t = 0; t < jb->nslot; t++) {
        size_t sz = (size_t)jb->sl[t].rows * pad8(jb->sl[t].cols);
        if ((size_t)pad8(jb->sl[t].cols) > maxc) maxc = pad8(jb->sl[t].cols);
        TAKE(w->P[t], sz); TAKE(w->M[t], sz); TAKE(w->V[t], sz);
        if (jb->sl[t].anc) TAKE(w->A[t], sz); else w->A[t] = 0;
    }
    if (jb->kind == 0) {
        const int Wp = pad8(jb->W);
        for (int l = 0; l < jb->nl; l++) {
            TAKE(w->At[l], (size_t)jb->dims[l] * Wp); TAKE(w->bb[l], Wp); TAKE(w->U[l], Wp);
        }
    } else {
        for (int l = 0; l <= jb->nl; l++) TAKE(w->U[l], pad8(jb->dims[l]));
    }
    for (int l = 0; l <= jb->nl; l++) if ((size_t)pad8(jb->dims[l]) > zs) zs = pad8(jb->dims[l]);
    for (int l = 0; l <= jb->nl; l++) TAKE(w->z[l], zs);
    TAKE(w->DU, maxc); TAKE(w->DP, maxc); TAKE(w->dummy, maxc);
#undef TAKE
    return n;
}

/* Fused gradient + Adam for one trained tensor whose gradient is the outer product dz (rows) x U (cols):
   DU += P^T dz with the pre-step P (when NEED_DU), then the Adam step of every element.
   MODE, ANC and NEED_DU are compile-time constants at each call site. */
static inline __attribute__((always_inline)) void adam_outer(
    const job_t *jb, int t, int s, v8 *Pp, v8 *Mp, v8 *Vp, const v8 *Ap, const v8 *U, v8 *DU, const float *dz,
    const int MODE, const int ANC, const int NEED_DU)
{
    const int rows = jb->sl[t].rows, nv = pad8(jb->sl[t].cols) / 8;
    const v8 w1 = vset1(jb->w1), beta2 = vset1(jb->beta2), c2 = vset1(jb->c2), eps = vset1(jb->eps);
    const v8 wd = vset1(jb->wd), decay = vset1(jb->decay), lrwd = vset1(jb->lrwd);
    const v8 ss = vset1(jb->ss[(size_t)t * jb->S + s]), ib = vset1(jb->ib[(size_t)t * jb->S + s]);
    if (NEED_DU) for (int j = 0; j < nv; j++) DU[j] = vset1(0.f);
    for (int o = 0; o < rows; o++) {
        v8 *Po = Pp + (size_t)o * nv, *Mo = Mp + (size_t)o * nv, *Vo = Vp + (size_t)o * nv;
        const v8 *Ao = ANC ? Ap + (size_t)o * nv : 0;
        const v8 d = vset1(dz[o]);
        for (int j = 0; j < nv; j++) {
            v8 p = Po[j];
            if (NEED_DU) DU[j] += p * d;
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
            Po[j] = p;
        }
    }
}

static void adam_slot(const job_t *jb, work_t *w, int t, int s, const v8 *U, const float *dz, int need_du) {
    v8 *P = w->P[t], *M = w->M[t], *V = w->V[t], *A = w->A[t], *DU = need_du ? w->DU : w->dummy;
    const int anc = A != 0;
#define CALL(MO, AN) adam_outer(jb, t, s, P, M, V, A, U, DU, dz, MO, AN, 1)
#define CALL0(MO, AN) adam_outer(jb, t, s, P, M, V, A, U, DU, dz, MO, AN, 0)
    if (need_du) {
        switch (jb->mode * 2 + anc) {
            case 0: case 1: CALL(0, 0); break;
            case 2: CALL(1, 0); break;
            case 3: CALL(1, 1); break;
            case 4: CALL(2, 0); break;
            default: CALL(2, 1); break;
        }
    } else {
        switch (jb->mode * 2 + anc) {
            case 0: case 1: CALL0(0, 0); break;
            case 2: CALL0(1, 0); break;
            case 3: CALL0(1, 1); break;
            case 4: CALL0(2, 0); break;
            default: CALL0(2, 1); break;
        }
    }
#undef CALL
#undef CALL0
}

static void copy_slots(const job_t *jb, work_t *w, int k, int in) {
    for (int t = 0; t < jb->nslot; t++) {
        const slot_t *sl = &jb->sl[t];
        const int cp = pad8(sl->cols);
        for (int o = 0; o < sl->rows; o++) {
            const size_t g = ((size_t)k * sl->rows + o) * sl->cols, l = (size_t)o * cp;
            const size_t nbytes = sizeof(float) * sl->cols;
            if (in) {
                memcpy((float *)w->P[t] + l, sl->P + g, nbytes);
                memcpy((float *)w->M[t] + l, sl->M + g, nbytes);
                memcpy((float *)w->V[t] + l, sl->V + g, nbytes);
                if (sl->anc) memcpy((float *)w->A[t] + l, sl->anc + g, nbytes);
            } else {
                memcpy(sl->P + g, (float *)w->P[t] + l, nbytes);
                memcpy(sl->M + g, (float *)w->M[t] + l, nbytes);
                memcpy(sl->V + g, (float *)w->V[t] + l, nbytes);
            }
        }
    }
}

static void run_member_rflr(const job_t *jb, work_t *w, int k) {
    const int W = jb->W, Wp = pad8(W), nb = Wp / 8, nl = jb->nl, S = jb->S, d = jb->dims[0];
    float **z = w->z;
    for (int l = 0; l < nl; l++) {
        const int rin = jb->dims[l];
        float *at = (float *)w->At[l];
        const float *srcA = jb->A[l] + (size_t)k * W * rin;
        for (int i = 0; i < rin; i++)
            for (int j = 0; j < W; j++) at[(size_t)i * Wp + j] = srcA[(size_t)j * rin + i];
        memcpy(w->bb[l], jb->b[l] + (size_t)k * W, sizeof(float) * W);
    }
    copy_slots(jb, w, k, 1);
    for (int s = 0; s < S; s++) {
        const float *xs = jb->x + ((size_t)k * S + s) * d;
        for (int i = 0; i < d; i++) z[0][i] = xs[i];
        /* forward: u = relu(A z + b), z' = B u */
        for (int l = 0; l < nl; l++) {
            const int rin = jb->dims[l], rout = jb->dims[l + 1];
            const v8 *at = w->At[l], *b = w->bb[l];
            v8 *u = w->U[l];
            if (rin <= 8) {
                for (int j = 0; j < nb; j++) {
                    v8 acc = b[j];
                    for (int i = 0; i < rin; i++) acc += at[(size_t)i * nb + j] * vset1(z[l][i]);
                    u[j] = vrelu(acc);
                }
            } else {
                for (int j = 0; j < nb; j++) u[j] = b[j];
                int i = 0;
                for (; i + 4 <= rin; i += 4) {
                    const v8 z0 = vset1(z[l][i]), z1 = vset1(z[l][i + 1]), z2 = vset1(z[l][i + 2]), z3 = vset1(z[l][i + 3]);
                    const v8 *a0 = at + (size_t)i * nb, *a1 = a0 + nb, *a2 = a1 + nb, *a3 = a2 + nb;
                    for (int j = 0; j < nb; j++) u[j] += (a0[j] * z0 + a1[j] * z1) + (a2[j] * z2 + a3[j] * z3);
                }
                for (; i < rin; i++) {
                    const v8 zi = vset1(z[l][i]), *ai = at + (size_t)i * nb;
                    for (int j = 0; j < nb; j++) u[j] += ai[j] * zi;
                }
                for (int j = 0; j < nb; j++) u[j] = vrelu(u[j]);
            }
            for (int o = 0; o < rout; o++) z[l + 1][o] = vdot(w->P[l] + (size_t)o * nb, u, nb);
        }
        const float err = z[nl][0] - jb->y[(size_t)k * S + s];
        jb->loss[(size_t)k * S + s] = err * err;
        z[nl][0] = 2.0f * err;   /* from here z[l+1] holds dL/dz of block l's output */
        /* backward fused with Adam, last block first */
        for (int l = nl - 1; l >= 0; l--) {
            adam_slot(jb, w, l, s, w->U[l], z[l + 1], l > 0);
            if (l > 0) {
                const int rin = jb->dims[l];
                for (int j = 0; j < nb; j++) w->DP[j] = vmask_pos(w->DU[j], w->U[l][j]);
                for (int i = 0; i < rin; i++) z[l][i] = vdot(w->At[l] + (size_t)i * nb, w->DP, nb);
            }
        }
    }
    copy_slots(jb, w, k, 0);
}

static void run_member_mlp(const job_t *jb, work_t *w, int k) {
    const int nl = jb->nl, S = jb->S, d = jb->dims[0];
    const float one = 1.0f;
    copy_slots(jb, w, k, 1);
    for (int s = 0; s < S; s++) {
        const float *xs = jb->x + ((size_t)k * S + s) * d;
        float *h0 = (float *)w->U[0];
        for (int i = 0; i < d; i++) h0[i] = xs[i];
        float f = 0.f;
        /* forward: a = W h + b; h' = relu(a) (hidden), f = a (read-out) */
        for (int l = 0; l < nl; l++) {
            const int out = jb->dims[l + 1], nv = pad8(jb->dims[l]) / 8;
            const float *bias = (const float *)w->P[nl + l];
            float *hn = (float *)w->U[l + 1];
            for (int o = 0; o < out; o++) {
                const float a = bias[o] + vdot(w->P[l] + (size_t)o * nv, w->U[l], nv);
                if (l + 1 < nl) hn[o] = (a > 0.f || a != a) ? a : 0.f;
                else f = a;
            }
        }
        const float err = f - jb->y[(size_t)k * S + s];
        jb->loss[(size_t)k * S + s] = err * err;
        float *dz = w->z[nl];
        for (int i = 0; i < pad8(jb->dims[nl]); i++) dz[i] = 0.f;
        dz[0] = 2.0f * err;      /* z[l+1] = dL/da of layer l (zero padded) */
        for (int l = nl - 1; l >= 0; l--) {
            adam_slot(jb, w, nl + l, s, (const v8 *)w->z[l + 1], &one, 0);   /* bias: gradient = dL/da */
            adam_slot(jb, w, l, s, w->U[l], w->z[l + 1], l > 0);
            if (l > 0) {
                const int nv = pad8(jb->dims[l]) / 8;
                v8 *dzl = (v8 *)w->z[l];
                for (int j = 0; j < nv; j++) dzl[j] = vmask_pos(w->DU[j], w->U[l][j]);
            }
        }
    }
    copy_slots(jb, w, k, 0);
}

static void *run_slice(void *arg) {
    slice_t *sl = (slice_t *)arg;
    const job_t *jb = sl->job;
    work_t w;
    const size_t n = layout(jb, &w, 0);
    float *scratch = (float *)aligned_alloc(64, n * sizeof(float));
    if (!scratch) { sl->err = 1; return 0; }
    memset(scratch, 0, n * sizeof(float));   /* padding stays exactly 0 through every step */
    layout(jb, &w, scratch);
#if defined(__x86_64__) || defined(__i386__)
    /* Flush-to-zero + denormals-are-zero while the kernel runs (restored after): Adam moments of units
       that stay inactive decay into the subnormal range (exp_avg even sticks at the smallest subnormal)
       and subnormal arithmetic is many times slower. Effect on results: values below 1.2e-38 read as 0. */
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040);
#endif
    for (int k; (k = __atomic_fetch_add(sl->next, 1, __ATOMIC_RELAXED)) < jb->K;) {
        if (jb->kind == 0) run_member_rflr(jb, &w, k);
        else run_member_mlp(jb, &w, k);
    }
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(csr);
#endif
    free(scratch);
    return 0;
}

/* kind 0 (RF-LR): nl blocks, dims[0..nl], slots = nl mixers (K, dims[l+1], W), A/b per block.
   kind 1 (MLP): nl layers, dims[0..nl], slots = nl weights (K, dims[l+1], dims[l]) then nl biases.
   P/M/V/anc: per-slot pointers (anc entries may be NULL, anc itself may be NULL).
   hp = lr, beta1, beta2, eps, weight_decay; mode 1 = coupled, 2 = decoupled; steps0: per-slot step count. */
int symexp_fused_adam(int kind, int K, int S, int W, int nl, const int *dims,
                      void **A, void **b, void **P, void **M, void **V, void **anc,
                      const float *x, const float *y, float *loss,
                      const double *hp, int mode, const double *steps0, int nthreads)
{
    if (nl < 1 || nl > MAXL || K < 1 || S < 1 || (kind == 0 && W < 1) || kind < 0 || kind > 1) return 2;
    for (int l = 0; l <= nl; l++) if (dims[l] < 1) return 2;
    if (dims[nl] != 1) return 2;
    job_t jb;
    memset(&jb, 0, sizeof jb);
    jb.K = K; jb.S = S; jb.W = W; jb.nl = nl; jb.kind = kind;
    jb.nslot = kind == 0 ? nl : 2 * nl;
    for (int l = 0; l <= nl; l++) jb.dims[l] = dims[l];
    for (int t = 0; t < jb.nslot; t++) {
        slot_t *sl = &jb.sl[t];
        if (kind == 0) { sl->rows = dims[t + 1]; sl->cols = W; }
        else if (t < nl) { sl->rows = dims[t + 1]; sl->cols = dims[t]; }
        else { sl->rows = 1; sl->cols = dims[t - nl + 1]; }
        sl->P = (float *)P[t]; sl->M = (float *)M[t]; sl->V = (float *)V[t];
        sl->anc = anc ? (const float *)anc[t] : 0;
    }
    if (kind == 0) for (int l = 0; l < nl; l++) { jb.A[l] = (const float *)A[l]; jb.b[l] = (const float *)b[l]; }
    jb.x = x; jb.y = y; jb.loss = loss;
    const double lr = hp[0], beta1 = hp[1], beta2 = hp[2], eps = hp[3], wd = hp[4];
    jb.mode = wd != 0.0 ? mode : 0;
    if (jb.mode == 0) for (int t = 0; t < jb.nslot; t++) jb.sl[t].anc = 0;
    float *tab = (float *)malloc(sizeof(float) * 2 * (size_t)jb.nslot * S);
    if (!tab) return 1;
    for (int t = 0; t < jb.nslot; t++)
        for (int s = 0; s < S; s++) {
            const double st = steps0[t] + s + 1;
            const double bc1 = 1.0 - pow(beta1, st), bc2 = 1.0 - pow(beta2, st);
            tab[(size_t)t * S + s] = (float)(lr / bc1);
            tab[(size_t)(jb.nslot + t) * S + s] = (float)(1.0 / (double)(float)sqrt(bc2));
        }
    jb.ss = tab; jb.ib = tab + (size_t)jb.nslot * S;
    jb.w1 = (float)(1.0 - beta1); jb.beta2 = (float)beta2; jb.c2 = (float)(1.0 - beta2);
    jb.eps = (float)eps; jb.wd = (float)wd; jb.decay = (float)(1.0 - lr * wd); jb.lrwd = (float)(lr * wd);
    if (nthreads < 1) nthreads = 1;
    if (nthreads > K) nthreads = K;
    if (nthreads > 256) nthreads = 256;
    slice_t sl[256];
    int next = 0;
    pthread_t th[256];
    int started[256];
    for (int t = 0; t < nthreads; t++) {
        sl[t].job = &jb; sl[t].err = 0;
        sl[t].next = &next;
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
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return {"avx2", "fma"} <= set(line.split(":", 1)[1].split())
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
    lib_path = root / f"fused_adam_{isa}_{key}.so"
    if not lib_path.exists():
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            src = Path(tmp) / "fused_adam.c"
            src.write_text(_C_SOURCE)
            out = Path(tmp) / lib_path.name
            proc = subprocess.run([cc, *flags, str(src), "-o", str(out), "-lm"], capture_output=True,
                                  text=True, timeout=300)
            if proc.returncode != 0 or not out.exists():
                raise RuntimeError(f"building the fused kernel failed:\n{proc.stderr[-4000:]}")
            os.replace(out, lib_path)  # atomic: concurrent builders (pytest -n) each install a whole file
    fn = ctypes.CDLL(str(lib_path)).symexp_fused_adam
    p, i = ctypes.c_void_p, ctypes.c_int
    fn.argtypes = [i, i, i, i, i, p, p, p, p, p, p, p, p, p, p, p, i, p, i]
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


def _cpu_f32(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.dtype == torch.float32 and t.is_contiguous()


def _layout(model):
    """(kind, trained tensors in kernel slot order, dims) for a supported model, else None."""
    from symexp.models.mlp import MLP
    from symexp.models.rflr import RFLR

    if isinstance(model, RFLR):
        if getattr(model, "activation_name", None) != "relu" or model.biases is not None:
            return None
        mixers = list(model.mixers)
        if len(mixers) > MAX_LAYERS or model.dims[-1] != 1:
            return None
        for l in range(len(mixers)):
            if not all(_cpu_f32(t) for t in model.features(l)):
                return None
        return 0, mixers, list(model.dims)
    if isinstance(model, MLP):
        act = getattr(model, "activation_name", None)
        if (act != "relu" if act is not None else model.act is not torch.relu) or model.out_dim != 1:
            return None
        weights, biases = list(model.weights), list(model.biases)
        if len(weights) > MAX_LAYERS or len(biases) != len(weights):
            return None
        dims = [w.shape[2] for w in weights] + [weights[-1].shape[1]]
        return 1, weights + biases, dims
    return None


class FusedEngine:
    """S sequential batch-1 Adam/AdamW steps per member (RF-LR or MLP, relu), forward + backward + update
    fused in C. Same contract as AutogradEngine."""

    def __init__(self, model, optimizer: torch.optim.Optimizer, hooks=None) -> None:
        if not self.supports(model, optimizer, hooks):
            raise ValueError("FusedEngine: unsupported model/optimizer/hooks combination (or no compiler)")
        self.model, self.optimizer, self.hooks = model, optimizer, hooks
        self.kind, self.params, self.dims = _layout(model)
        names = {id(p): n for n, p in model.named_parameters()}
        self.names = [names[id(p)] for p in self.params]
        self.kernel = kernel()

    @staticmethod
    def supports(model, optimizer, hooks=None, check_kernel: bool = True) -> bool:
        """Whether the fused path applies (``check_kernel=False``: the combination alone, kernel aside)."""
        if os.environ.get("SYMEXP_FUSED_DISABLE", "") not in ("", "0"):
            return False
        lay = _layout(model)
        if lay is None:
            return False
        params = lay[1]
        if not all(_cpu_f32(p) and p.requires_grad for p in params):
            return False
        trained = [p for p in model.parameters() if p.requires_grad]
        if {id(p) for p in trained} != {id(p) for p in params}:
            return False
        if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW) or len(optimizer.param_groups) != 1:
            return False
        group = optimizer.param_groups[0]
        if len(group["params"]) != len(params) or {id(p) for p in group["params"]} != {id(p) for p in params}:
            return False
        for flag in ("amsgrad", "maximize", "differentiable", "capturable"):
            if group.get(flag, False):
                return False
        if hooks is not None and getattr(hooks, "fused_compatible", False) is not True:
            return False
        return not check_kernel or kernel() is not None

    def _state(self, p: torch.Tensor) -> dict:
        st = self.optimizer.state[p]
        if len(st) == 0:  # exactly torch.optim.Adam's lazy init (capturable/fused off)
            st["step"] = torch.tensor(0.0, dtype=torch.get_default_dtype())
            st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            st["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        for name in ("exp_avg", "exp_avg_sq"):
            t = st[name]
            if not _cpu_f32(t) or t.shape != p.shape:
                st[name] = t.detach().to(device="cpu", dtype=torch.float32).reshape(p.shape).contiguous()
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
        model, params = self.model, self.params
        K = params[0].shape[0]
        if x.dim() != 3 or x.shape[0] != K or x.shape[2] != self.dims[0] or tuple(y.shape) != tuple(x.shape[:2]):
            raise ValueError(f"FusedEngine.run: x {tuple(x.shape)} / y {tuple(y.shape)} do not fit K={K}, "
                             f"d={self.dims[0]}")
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
        states = [self._state(p) for p in params]
        anchors = self._anchors() if wd != 0 else [None] * len(params)
        if self.kind == 0:
            nl, width = len(params), model.width
            feats = [model.features(l) for l in range(nl)]
            A, b = _ptrs([f[0] for f in feats]), _ptrs([f[1] for f in feats])
        else:
            nl, width = len(params) // 2, 0
            A = b = None
        dims = (ctypes.c_int * (nl + 1))(*self.dims)
        steps0 = (ctypes.c_double * len(params))(*[float(st["step"]) for st in states])
        hp = (ctypes.c_double * 5)(lr, beta1, beta2, eps, wd)
        nthreads = max(1, min(torch.get_num_threads(), K))
        rc = self.kernel(
            self.kind, K, S, width, nl, dims, A, b,
            _ptrs([p.data for p in params]), _ptrs([st["exp_avg"] for st in states]),
            _ptrs([st["exp_avg_sq"] for st in states]), _ptrs(anchors),
            xc.data_ptr(), yc.data_ptr(), losses.data_ptr(), hp, 2 if decoupled else 1, steps0, nthreads,
        )
        if rc != 0:
            raise RuntimeError(f"fused kernel failed (code {rc})")
        # The kernel stepped the optimizer without optimizer.step(): set the flag torch's LR schedulers read
        # (their wrapper of optimizer.step sets it), else the first scheduler.step() warns falsely that it
        # ran before any optimizer step.
        self.optimizer._opt_called = True
        for st in states:
            if isinstance(st["step"], torch.Tensor):
                st["step"].add_(S)
            else:
                st["step"] = st["step"] + S
        return losses if y.dtype == torch.float32 else losses.to(y.dtype)

    def info(self) -> dict:
        """What ran, for results.json env.engine."""
        return {"name": "fused", "isa": _isa()}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        return None
