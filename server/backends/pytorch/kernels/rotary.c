/* Rotary position embedding (the rotate-half form) applied in place to a [tokens, heads, dim] view
 * whose rows may be strided (the q or k part of a fused qkv projection): for i < dim/2,
 *   x[i]         = x[i] * cos[i]         + (-x[i + dim/2]) * sin[i]
 *   x[i + dim/2] = x[i + dim/2] * cos[i] + x[i] * sin[i]
 * rounded exactly as torch's `x * cos + cat(-x2, x1) * sin` rounds it: every product and the sum are
 * separate float operations (no fused multiply-add), and in bfloat16 each result is rounded to bfloat16,
 * as each torch op would, so outputs match the reference implementation bit for bit.
 *
 * cos, sin: [positions, dim] float32 tables (the two halves of a row are equal); positions: [tokens].
 */
#pragma GCC optimize("fp-contract=off")
#pragma STDC FP_CONTRACT OFF
#include <stdint.h>

#include "bf16.h"

static inline float load_f32(const float *p, int64_t i) { return p[i]; }
static inline float load_bf16(const uint16_t *p, int64_t i) { return bf16_to_f32(p[i]); }
static inline void store_f32(float *p, int64_t i, float x) { p[i] = x; }
static inline void store_bf16(uint16_t *p, int64_t i, float x) { p[i] = f32_to_bf16(x); }
static inline float same_f32(float x) { return x; }
static inline float round_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }

/* ROUND is what each torch op's result goes through in the tensor's dtype (nothing for float32). */
#define DEFINE_ROTARY(NAME, T, LOAD, STORE, ROUND)                                                       \
    void NAME(T *x, int64_t tokens, int64_t row_stride, int64_t heads, int64_t dim,                     \
              const int64_t *positions, const float *cos, const float *sin, int threads) {               \
        const int64_t half = dim / 2;                                                                    \
        _Pragma("omp parallel for num_threads(threads) schedule(static) if (tokens * heads >= 256)")    \
        for (int64_t t = 0; t < tokens; t++) {                                                           \
            const float *c = cos + positions[t] * dim, *s = sin + positions[t] * dim;                    \
            for (int64_t h = 0; h < heads; h++) {                                                        \
                T *row = x + t * row_stride + h * dim;                                                   \
                _Pragma("omp simd")                                                                      \
                for (int64_t i = 0; i < half; i++) {                                                     \
                    const float x1 = LOAD(row, i), x2 = LOAD(row, i + half);                             \
                    const float c1 = ROUND(c[i]), s1 = ROUND(s[i]);                                      \
                    const float c2 = ROUND(c[i + half]), s2 = ROUND(s[i + half]);                        \
                    const float a1 = ROUND(x1 * c1), b1 = ROUND(-x2 * s1);                               \
                    const float a2 = ROUND(x2 * c2), b2 = ROUND(x1 * s2);                                \
                    STORE(row, i, a1 + b1);                                                              \
                    STORE(row, i + half, a2 + b2);                                                       \
                }                                                                                        \
            }                                                                                            \
        }                                                                                                \
    }

DEFINE_ROTARY(rotary_f32, float, load_f32, store_f32, same_f32)
DEFINE_ROTARY(rotary_bf16, uint16_t, load_bf16, store_bf16, round_bf16)
