/* Causal attention straight from the paged KV pool for a flat batch of sequences: each sequence
 * brings q_len new query tokens (a prompt chunk, or one token when decoding) after ctx_len - q_len
 * cached ones, and attends through its block table. Nothing is gathered or padded.
 *
 * Layouts (row-major, contiguous):
 *   q, out      [tokens, heads, dim]       sequence s owns rows q_starts[s] .. q_starts[s] + q_lens[s] - 1
 *   k, v        [slots, kv_heads, dim]     one layer of the pool; slot = block * block_size + offset
 *   tables      [n, table_stride] int64    block tables
 *   q_starts, q_lens, ctx_lens   [n] int64 query i of sequence s sits at position ctx_len - q_len + i
 *   window      <= 0: full attention; else each query sees only its last `window` positions
 *
 * A work item is a tile of up to TILE queries of one sequence and a range of kv heads (all of them
 * when there are enough items to keep every thread busy). Each key and value row is read once per
 * tile for every query head that uses it: a pass for the scores, a float32 softmax per query and
 * head, a pass for the weighted sum of V.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"

#define TILE 16

/* exp(x) for x <= 0 (softmax after subtracting the row max), within ~2 ulp of expf; exactly 0 below
 * -87 (and for -inf, a masked score). Plain arithmetic and bit moves, so `omp simd` loops vectorize it:
 * glibc's vector expf is only declared under -ffast-math, which would also break the -inf masking. */
static inline float exp_nonpositive(float x) {
    const float clamped = x < -87.0f ? -87.0f : x;
    const float n = floorf(clamped * 1.44269504088896341f + 0.5f);
    const float r = clamped - n * 0.693359375f + n * 2.12194440e-4f; /* ln 2 split in two for precision */
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x < -87.0f ? 0.0f : p * scale;
}

static inline float load_f32(const float *p, int64_t i) { return p[i]; }
static inline float load_bf16(const uint16_t *p, int64_t i) { return bf16_to_f32(p[i]); }
static inline void store_f32(float *p, int64_t i, float x) { p[i] = x; }
static inline void store_bf16(uint16_t *p, int64_t i, float x) { p[i] = f32_to_bf16(x); }

/* Tiles of every sequence, as (sequence, first query) pairs; returns the count or -1. */
static int64_t make_tiles(const int64_t *q_lens, int64_t n, int64_t **tiles) {
    int64_t count = 0;
    for (int64_t s = 0; s < n; s++) count += (q_lens[s] + TILE - 1) / TILE;
    *tiles = malloc(sizeof(int64_t) * 2 * (size_t)(count > 0 ? count : 1));
    if (!*tiles) return -1;
    int64_t t = 0;
    for (int64_t s = 0; s < n; s++)
        for (int64_t q0 = 0; q0 < q_lens[s]; q0 += TILE) {
            (*tiles)[2 * t] = s;
            (*tiles)[2 * t + 1] = q0;
            t++;
        }
    return count;
}

#define DEFINE_ATTENTION(NAME, T, LOAD, STORE)                                                           \
    int NAME(const T *q, const T *k, const T *v, const int64_t *tables, int64_t table_stride,           \
             const int64_t *q_starts, const int64_t *q_lens, const int64_t *ctx_lens, int64_t n,        \
             int64_t heads, int64_t kv_heads, int64_t dim, int64_t block_size, int64_t window,          \
             float scale, T *out, int threads) {                                                         \
        const int64_t group = heads / kv_heads;                                                          \
        int64_t *tiles = NULL;                                                                           \
        const int64_t num_tiles = make_tiles(q_lens, n, &tiles);                                         \
        if (num_tiles < 0) return -1;                                                                    \
        const int64_t split = num_tiles >= 4 * (int64_t)threads ? 1 : kv_heads;                          \
        const int64_t span = kv_heads / split; /* kv heads per item */                                   \
        const int64_t hs = span * group;       /* query heads per item */                                \
        int64_t longest = 1;                                                                             \
        for (int64_t s = 0; s < n; s++) longest = ctx_lens[s] > longest ? ctx_lens[s] : longest;        \
        int failed = 0;                                                                                  \
        _Pragma("omp parallel num_threads(threads)")                                                     \
        {                                                                                                \
            float *qf = malloc(sizeof(float) * (size_t)(TILE * hs * dim));                              \
            float *acc = malloc(sizeof(float) * (size_t)(TILE * hs * dim));                             \
            float *scores = malloc(sizeof(float) * (size_t)(TILE * hs * longest));                      \
            if (!qf || !acc || !scores) {                                                                \
                _Pragma("omp atomic write") failed = 1;                                                  \
            } else {                                                                                     \
                _Pragma("omp for schedule(dynamic, 1)")                                                  \
                for (int64_t item = 0; item < num_tiles * split; item++) {                               \
                    const int64_t tile = item / split, kv0 = (item % split) * span, h0 = kv0 * group;    \
                    const int64_t s = tiles[2 * tile], q0 = tiles[2 * tile + 1];                         \
                    const int64_t nq = q_lens[s] - q0 < TILE ? q_lens[s] - q0 : TILE;                    \
                    const int64_t pos0 = ctx_lens[s] - q_lens[s] + q0; /* position of query 0 */         \
                    const int64_t hi = pos0 + nq;                      /* keys [lo, hi) */                \
                    const int64_t lo = (window > 0 && pos0 + 1 > window) ? pos0 + 1 - window : 0;        \
                    const int64_t len = hi - lo;                                                         \
                    const int64_t *table = tables + s * table_stride;                                    \
                    for (int64_t i = 0; i < nq; i++)                                                     \
                        for (int64_t x = 0; x < hs * dim; x++)                                           \
                            qf[i * hs * dim + x] =                                                       \
                                LOAD(q, ((q_starts[s] + q0 + i) * heads + h0) * dim + x) * scale;        \
                    for (int64_t j = lo; j < hi; j++) {                                                  \
                        const int64_t slot = table[j / block_size] * block_size + j % block_size;        \
                        for (int64_t kh = 0; kh < span; kh++) {                                          \
                            const int64_t base = (slot * kv_heads + kv0 + kh) * dim;                     \
                            for (int64_t i = 0; i < nq; i++) {                                           \
                                const int64_t pos = pos0 + i;                                            \
                                const int visible = j <= pos && (window <= 0 || j > pos - window);       \
                                for (int64_t g = 0; g < group; g++) {                                    \
                                    const int64_t h = kh * group + g;                                    \
                                    float dot = -INFINITY;                                               \
                                    if (visible) {                                                       \
                                        const float *qh = qf + (i * hs + h) * dim;                       \
                                        dot = 0.0f;                                                      \
                                        _Pragma("omp simd reduction(+:dot)")                             \
                                        for (int64_t d = 0; d < dim; d++) dot += qh[d] * LOAD(k, base + d); \
                                    }                                                                    \
                                    scores[(i * hs + h) * len + (j - lo)] = dot;                         \
                                }                                                                        \
                            }                                                                            \
                        }                                                                                \
                    }                                                                                    \
                    for (int64_t r = 0; r < nq * hs; r++) {                                              \
                        float *row = scores + r * len;                                                   \
                        float m = -INFINITY, total = 0.0f;                                               \
                        for (int64_t j = 0; j < len; j++) m = row[j] > m ? row[j] : m;                   \
                        _Pragma("omp simd reduction(+:total)")                                           \
                        for (int64_t j = 0; j < len; j++) {                                              \
                            row[j] = exp_nonpositive(row[j] - m);                                        \
                            total += row[j];                                                             \
                        }                                                                                \
                        const float inv = 1.0f / total;                                                  \
                        for (int64_t j = 0; j < len; j++) row[j] *= inv;                                 \
                    }                                                                                    \
                    memset(acc, 0, sizeof(float) * (size_t)(nq * hs * dim));                             \
                    for (int64_t j = lo; j < hi; j++) {                                                  \
                        const int64_t slot = table[j / block_size] * block_size + j % block_size;        \
                        for (int64_t kh = 0; kh < span; kh++) {                                          \
                            const int64_t base = (slot * kv_heads + kv0 + kh) * dim;                     \
                            for (int64_t r = 0; r < nq * group; r++) {                                   \
                                const int64_t i = r / group, h = kh * group + r % group;                 \
                                const float p = scores[(i * hs + h) * len + (j - lo)];                   \
                                if (p == 0.0f) continue;                                                 \
                                float *ah = acc + (i * hs + h) * dim;                                    \
                                _Pragma("omp simd")                                                      \
                                for (int64_t d = 0; d < dim; d++) ah[d] += p * LOAD(v, base + d);        \
                            }                                                                            \
                        }                                                                                \
                    }                                                                                    \
                    for (int64_t i = 0; i < nq; i++)                                                     \
                        for (int64_t x = 0; x < hs * dim; x++)                                           \
                            STORE(out, ((q_starts[s] + q0 + i) * heads + h0) * dim + x, acc[i * hs * dim + x]); \
                }                                                                                        \
            }                                                                                            \
            free(qf);                                                                                    \
            free(acc);                                                                                   \
            free(scores);                                                                                \
        }                                                                                                \
        free(tiles);                                                                                     \
        return failed ? -1 : 0;                                                                          \
    }

DEFINE_ATTENTION(paged_attention_f32, float, load_f32, store_f32)
DEFINE_ATTENTION(paged_attention_bf16, uint16_t, load_bf16, store_bf16)
