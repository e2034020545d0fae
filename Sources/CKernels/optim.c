/* Optimizer updates over parameter-sized buffers. */
#include "ckernels.h"
#include "tk_math.h"
#include <math.h>

/* Operations are not fused into FMAs, so every value rounds exactly as the Swift reference
 * expression (and the torch formula) does; the loops vectorise and results do not depend on the
 * vector width or on how the range is split between threads. */
#pragma clang fp contract(off)

TK_KERNEL(tk_adam_update, (float *restrict p, const float *restrict g, float *restrict m, float *restrict v, long begin, long end, const tk_adam_scalars *s), (p, g, m, v, begin, end, s)) {
    const float l2 = s->l2, shrink = s->shrink, w1 = s->w1, b2 = s->b2, w2 = s->w2;
    const float bc2 = s->bc2_sqrt, eps = s->eps, neg_step = -s->step_size;
    const int decoupled = s->decoupled, w1_small = fabsf(w1) < 0.5f;
    for (long j = begin; j < end; j++) {
        float pj = p[j];
        float d = g[j] + l2 * pj;
        if (decoupled) pj = pj * shrink;
        /* torch.lerp(m, d, w1) */
        float mj = w1_small ? m[j] + w1 * (d - m[j]) : d - (d - m[j]) * (1.0f - w1);
        float vj = v[j] * b2 + w2 * d * d;
        m[j] = mj;
        v[j] = vj;
        p[j] = pj + neg_step * (mj / (sqrtf(vj) / bc2 + eps));
    }
}
