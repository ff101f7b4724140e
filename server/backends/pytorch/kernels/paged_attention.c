/* Decode attention straight from the paged KV pool: one query token per sequence, no gather copies.
 *
 * Layouts (row-major, contiguous):
 *   q, out        [n, heads, dim]
 *   k, v          [slots, kv_heads, dim]    one layer of the pool; slot = block * block_size + offset
 *   tables        [n, table_stride] int64   each sequence's block table
 *   ctx_lens      [n] int64                 keys to attend: positions 0 .. ctx_len - 1
 *   window        <= 0: full attention; else only the last `window` positions
 *
 * A work item is one sequence and a range of its kv heads (all of them when there are enough
 * sequences to keep every thread busy), so each key slot is read once, front to back, for every
 * query head that uses it: a pass for the scores, a float32 softmax, a pass for the weighted V sum.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
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

static inline float load_f32(const float *p, int64_t i) { return p[i]; }
static inline float load_bf16(const uint16_t *p, int64_t i) { return bf16_to_f32(p[i]); }
static inline void store_f32(float *p, int64_t i, float x) { p[i] = x; }
static inline void store_bf16(uint16_t *p, int64_t i, float x) { p[i] = f32_to_bf16(x); }

#define DEFINE_DECODE(NAME, T, LOAD, STORE)                                                              \
    int NAME(const T *q, const T *k, const T *v, const int64_t *tables, int64_t table_stride,           \
             const int64_t *ctx_lens, int64_t n, int64_t heads, int64_t kv_heads, int64_t dim,          \
             int64_t block_size, int64_t window, float scale, T *out, int threads) {                     \
        const int64_t group = heads / kv_heads;                                                          \
        const int64_t split = n >= 4 * (int64_t)threads ? 1 : kv_heads; /* kv-head ranges per seq */    \
        const int64_t span = kv_heads / split;                                                           \
        int64_t longest = 1;                                                                             \
        for (int64_t i = 0; i < n; i++) longest = ctx_lens[i] > longest ? ctx_lens[i] : longest;        \
        int failed = 0;                                                                                  \
        _Pragma("omp parallel num_threads(threads)")                                                     \
        {                                                                                                \
            float *qf = malloc(sizeof(float) * (size_t)(heads * dim));                                  \
            float *acc = malloc(sizeof(float) * (size_t)(heads * dim));                                 \
            float *scores = malloc(sizeof(float) * (size_t)(heads * longest));                          \
            if (!qf || !acc || !scores) {                                                                \
                _Pragma("omp atomic write") failed = 1;                                                  \
            } else {                                                                                     \
                _Pragma("omp for schedule(dynamic, 1)")                                                  \
                for (int64_t item = 0; item < n * split; item++) {                                       \
                    const int64_t s = item / split, h0 = (item % split) * span, h1 = h0 + span;          \
                    const int64_t end = ctx_lens[s];                                                     \
                    const int64_t begin = (window > 0 && end > window) ? end - window : 0;               \
                    const int64_t len = end - begin;                                                     \
                    const int64_t *table = tables + s * table_stride;                                    \
                    for (int64_t i = h0 * group * dim; i < h1 * group * dim; i++)                        \
                        qf[i] = LOAD(q, s * heads * dim + i) * scale;                                    \
                    for (int64_t j = begin; j < end; j++) {                                              \
                        const int64_t slot = table[j / block_size] * block_size + j % block_size;        \
                        for (int64_t kvh = h0; kvh < h1; kvh++) {                                        \
                            const int64_t base = (slot * kv_heads + kvh) * dim;                          \
                            for (int64_t h = kvh * group; h < (kvh + 1) * group; h++) {                  \
                                const float *qh = qf + h * dim;                                          \
                                float dot = 0.0f;                                                        \
                                _Pragma("omp simd reduction(+:dot)")                                     \
                                for (int64_t d = 0; d < dim; d++) dot += qh[d] * LOAD(k, base + d);      \
                                scores[h * longest + (j - begin)] = dot;                                 \
                            }                                                                            \
                        }                                                                                \
                    }                                                                                    \
                    for (int64_t h = h0 * group; h < h1 * group; h++) {                                  \
                        float *sh = scores + h * longest;                                                \
                        float m = -INFINITY, total = 0.0f;                                               \
                        for (int64_t j = 0; j < len; j++) m = sh[j] > m ? sh[j] : m;                     \
                        for (int64_t j = 0; j < len; j++) {                                              \
                            sh[j] = expf(sh[j] - m);                                                     \
                            total += sh[j];                                                              \
                        }                                                                                \
                        const float inv = 1.0f / total;                                                  \
                        for (int64_t j = 0; j < len; j++) sh[j] *= inv;                                  \
                    }                                                                                    \
                    memset(acc + h0 * group * dim, 0, sizeof(float) * (size_t)(span * group * dim));     \
                    for (int64_t j = begin; j < end; j++) {                                              \
                        const int64_t slot = table[j / block_size] * block_size + j % block_size;        \
                        for (int64_t kvh = h0; kvh < h1; kvh++) {                                        \
                            const int64_t base = (slot * kv_heads + kvh) * dim;                          \
                            for (int64_t h = kvh * group; h < (kvh + 1) * group; h++) {                  \
                                const float p = scores[h * longest + (j - begin)];                       \
                                float *ah = acc + h * dim;                                               \
                                _Pragma("omp simd")                                                      \
                                for (int64_t d = 0; d < dim; d++) ah[d] += p * LOAD(v, base + d);        \
                            }                                                                            \
                        }                                                                                \
                    }                                                                                    \
                    for (int64_t i = h0 * group * dim; i < h1 * group * dim; i++)                        \
                        STORE(out, s * heads * dim + i, acc[i]);                                         \
                }                                                                                        \
            }                                                                                            \
            free(qf);                                                                                    \
            free(acc);                                                                                   \
            free(scores);                                                                                \
        }                                                                                                \
        return failed ? -1 : 0;                                                                          \
    }

DEFINE_DECODE(paged_decode_f32, float, load_f32, store_f32)
DEFINE_DECODE(paged_decode_bf16, uint16_t, load_bf16, store_bf16)
