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
#include <string.h>

static inline float bf16_to_f32(uint16_t x) {
    uint32_t u = (uint32_t)x << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* NaN stays NaN */
    u += 0x7fffu + ((u >> 16) & 1u);                                           /* round to nearest even */
    return (uint16_t)(u >> 16);
}

static inline float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

void rotary_f32(float *x, int64_t tokens, int64_t row_stride, int64_t heads, int64_t dim,
                const int64_t *positions, const float *cos, const float *sin, int threads) {
    const int64_t half = dim / 2;
#pragma omp parallel for num_threads(threads) schedule(static) if (tokens * heads >= 256)
    for (int64_t t = 0; t < tokens; t++) {
        const float *c = cos + positions[t] * dim, *s = sin + positions[t] * dim;
        for (int64_t h = 0; h < heads; h++) {
            float *row = x + t * row_stride + h * dim;
#pragma omp simd
            for (int64_t i = 0; i < half; i++) {
                const float x1 = row[i], x2 = row[i + half];
                const float a1 = x1 * c[i], b1 = -x2 * s[i];
                const float a2 = x2 * c[i + half], b2 = x1 * s[i + half];
                row[i] = a1 + b1;
                row[i + half] = a2 + b2;
            }
        }
    }
}

void rotary_bf16(uint16_t *x, int64_t tokens, int64_t row_stride, int64_t heads, int64_t dim,
                 const int64_t *positions, const float *cos, const float *sin, int threads) {
    const int64_t half = dim / 2;
#pragma omp parallel for num_threads(threads) schedule(static) if (tokens * heads >= 256)
    for (int64_t t = 0; t < tokens; t++) {
        const float *c = cos + positions[t] * dim, *s = sin + positions[t] * dim;
        for (int64_t h = 0; h < heads; h++) {
            uint16_t *row = x + t * row_stride + h * dim;
            for (int64_t i = 0; i < half; i++) {
                const float x1 = bf16_to_f32(row[i]), x2 = bf16_to_f32(row[i + half]);
                const float c1 = round_bf16(c[i]), s1 = round_bf16(s[i]);
                const float c2 = round_bf16(c[i + half]), s2 = round_bf16(s[i + half]);
                const float a1 = round_bf16(x1 * c1), b1 = round_bf16(-x2 * s1);
                const float a2 = round_bf16(x2 * c2), b2 = round_bf16(x1 * s2);
                row[i] = f32_to_bf16(a1 + b1);
                row[i + half] = f32_to_bf16(a2 + b2);
            }
        }
    }
}
