/* The aggregator tick's whole-array passes in one pass each, compiled.
 *
 * The pure-numpy tick (healthplane.aggregator.votes and tick_passes) makes
 * a few dozen whole-array passes per chunk of the slot matrix, each writing
 * a temporary array. Here the vote count reads every checker's words once,
 * tile by tile, keeps its SWAR counters in an L1-sized scratch on the stack,
 * and writes only the per-lane counts, in the same lane order the numpy
 * count produces (see votes.py), so every other pass is shared. The passes
 * after it (vote rule and quorum, changes and last-change times, the wire
 * encoding) are one loop each.
 *
 * Every pass takes buffers (numpy arrays) through the buffer protocol,
 * checks each length against the geometry it is given before touching
 * memory, and runs with the GIL released. The hot loops are plain C that
 * gcc vectorises; on x86-64 a second copy is compiled for AVX2 and chosen
 * at import by a CPU check, so the shipped build needs no -march flag and
 * other architectures build the portable copy only.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(_M_X64)) && !defined(HP_NO_AVX2)
#define HP_X86 1
#define HP_AVX2 __attribute__((target("avx2")))
#else
#define HP_X86 0
#endif

#if defined(__GNUC__)
#define HP_INLINE static inline __attribute__((always_inline))
#define HP_PREFETCH(p) __builtin_prefetch(p)
#else
#define HP_INLINE static inline
#define HP_PREFETCH(p) ((void)(p))
#endif

#define M1 0x5555555555555555ULL
#define M2 0x3333333333333333ULL
#define M4 0x0F0F0F0F0F0F0F0FULL

/* Words of one row counted together (4 KB): the 4-bit and 8-bit counters
   (12 * TILE words) stay in L1/L2 while the rows stream past. 128, 256,
   512 and 1024 measured alike within noise; 512 keeps the scratch at 48 KB. */
#ifndef TILE
#define TILE 512
#endif
/* Rows a batch of 8-bit counters holds: 17 groups of 5 triples, max 255. */
#define BATCH 255
#ifndef PF_TRIPLES
#define PF_TRIPLES 2
#endif

/* ---- the vote count ------------------------------------------------------ */

/* One word of three rows into the 4-bit counters of both planes. */
HP_INLINE void count_word(const uint64_t *restrict x0, const uint64_t *restrict x1,
                          const uint64_t *restrict x2, const uint64_t m0, const uint64_t m1,
                          const uint64_t m2, uint64_t a4[2][2][TILE], const size_t t)
{
    const uint64_t v0 = x0[t], v1 = x1[t], v2 = x2[t];
    const uint64_t h = (v0 & m0) + (v1 & m1) + (v2 & m2);
    const uint64_t u = ((v0 >> 1) & m0) + ((v1 >> 1) & m1) + ((v2 >> 1) & m2);
    a4[0][1][t] += h & M2;
    a4[0][0][t] += (h >> 2) & M2;
    a4[1][1][t] += u & M2;
    a4[1][0][t] += (u >> 2) & M2;
}

/* Count rows [0, nrows) of a tile, nrows a multiple of 3 and at most BATCH,
 * into acc8[plane][q][t]: plane 0 the low bit of each pair (healthy),
 * plane 1 the high bit (unhealthy, only when planes == 2); q = 2a + b where
 * a picks the 2-bit lane within a nibble (1: even) and b the nibble within
 * a byte (1: low), the lane order of votes.lane_of. */
HP_INLINE void count_block(const uint64_t *restrict base, size_t stride,
                           const uint64_t *restrict mask, size_t nrows, size_t len,
                           int planes, uint64_t acc8[2][4][TILE], uint64_t a4[2][2][TILE])
{
    for (int p = 0; p < planes; p++) {
        for (int q = 0; q < 4; q++) memset(acc8[p][q], 0, sizeof(uint64_t) * len);
        for (int q = 0; q < 2; q++) memset(a4[p][q], 0, sizeof(uint64_t) * len);
    }
    int groups = 0;
    for (size_t r = 0; r < nrows; r += 3) {
        const uint64_t *restrict x0 = base + r * stride;
        const uint64_t *restrict x1 = x0 + stride;
        const uint64_t *restrict x2 = x1 + stride;
        const uint64_t m0 = mask[r], m1 = mask[r + 1], m2 = mask[r + 2];
        if (planes == 2) {
            /* A cache line of each row at a time, prefetching the same line
               PF_TRIPLES triples ahead: the rows sit a chunk apart, too many
               streams for the hardware prefetcher to follow alone. */
            const int ahead = r + 3 * PF_TRIPLES + 2 < nrows;
            const size_t pf = 3 * PF_TRIPLES * stride;
            size_t t = 0;
            for (; t + 8 <= len; t += 8) {
                if (ahead) {
                    HP_PREFETCH(x0 + pf + t);
                    HP_PREFETCH(x1 + pf + t);
                    HP_PREFETCH(x2 + pf + t);
                }
                for (size_t i = t; i < t + 8; i++)
                    count_word(x0, x1, x2, m0, m1, m2, a4, i);
            }
            for (; t < len; t++)
                count_word(x0, x1, x2, m0, m1, m2, a4, t);
        } else {
            for (size_t t = 0; t < len; t++) {
                const uint64_t h = (x0[t] & m0) + (x1[t] & m1) + (x2[t] & m2);
                a4[0][1][t] += h & M2;
                a4[0][0][t] += (h >> 2) & M2;
            }
        }
        if (++groups == 5 || r + 3 == nrows) {
            /* Five triples at most 15 per nibble: widen to bytes. */
            for (int p = 0; p < planes; p++)
                for (int a = 0; a < 2; a++)
                    for (size_t t = 0; t < len; t++) {
                        const uint64_t s = a4[p][a][t];
                        acc8[p][2 * a + 1][t] += s & M4;
                        acc8[p][2 * a][t] += (s >> 4) & M4;
                        a4[p][a][t] = 0;
                    }
            groups = 0;
        }
    }
}

/* Store a batch's counters for words [w0, w0 + len) of the lanes: as is
 * when one batch covers every row (uint8 lanes), else added to uint16 lanes. */
HP_INLINE void store_block(uint64_t acc8[2][4][TILE], int planes, size_t len, size_t w0,
                           size_t nw, void *const out[2], int wide, int first)
{
    for (int p = 0; p < planes; p++)
        for (int q = 0; q < 4; q++) {
            if (!wide) {
                memcpy((uint64_t *)out[p] + (size_t)q * nw + w0, acc8[p][q], 8 * len);
                continue;
            }
            uint16_t *dst = (uint16_t *)out[p] + ((size_t)q * nw + w0) * 8;
            const uint8_t *src = (const uint8_t *)acc8[p][q];
            if (first)
                for (size_t i = 0; i < 8 * len; i++) dst[i] = src[i];
            else
                for (size_t i = 0; i < 8 * len; i++) dst[i] = (uint16_t)(dst[i] + src[i]);
        }
}

typedef struct {
    const uint64_t *words;     /* [n_chunks][rows_padded][chunk_words] */
    size_t n_chunks, rows_padded, chunk_words;
    const uint64_t *mask;      /* per padded row: M1 when it votes, else 0 */
    void *out[2];              /* healthy, unhealthy lanes */
    int wide;                  /* lanes are uint16 (more than one batch) */
    /* Regions: region[r] of each padded row (-1: none); NULL when not asked. */
    const int32_t *region;
    size_t n_regions, regions_padded;
    uint64_t *region_or;       /* scratch [regions_padded][TILE] */
    const uint64_t *region_mask; /* [regions_padded]: M1 for real regions */
    void *region_out;
    int region_wide;
    uint64_t (*acc8)[4][TILE];  /* scratch [2][4][TILE] */
    uint64_t (*a4)[2][TILE];    /* scratch [2][2][TILE] */
} count_args;

HP_INLINE void count_body(const count_args *a)
{
    const size_t c = a->chunk_words, nw = a->n_chunks * c, rows = a->rows_padded;
    /* Heap scratch, not stack: a thread's stack may be small. */
    uint64_t (*acc8)[4][TILE] = a->acc8;
    uint64_t (*a4)[2][TILE] = a->a4;
    for (size_t k = 0; k < a->n_chunks; k++) {
        const uint64_t *chunk = a->words + k * rows * c;
        for (size_t t0 = 0; t0 < c; t0 += TILE) {
            const size_t len = c - t0 < TILE ? c - t0 : TILE;
            for (size_t lo = 0; lo < rows; lo += BATCH) {
                const size_t n = rows - lo < BATCH ? rows - lo : BATCH;
                count_block(chunk + lo * c + t0, c, a->mask + lo, n, len, 2, acc8, a4);
                store_block(acc8, 2, len, k * c + t0, nw, a->out, a->wide, lo == 0);
            }
            if (a->region == NULL)
                continue;
            /* Which regions have a reporting vote, per lane: the tile's rows
               are in cache from the count above. */
            uint64_t *or_ = a->region_or;
            memset(or_, 0, sizeof(uint64_t) * TILE * a->regions_padded);
            for (size_t r = 0; r < rows; r++) {
                const int32_t g = a->region[r];
                if (g < 0)
                    continue;
                const uint64_t *restrict x = chunk + r * c + t0;
                uint64_t *restrict o = or_ + (size_t)g * TILE;
                const uint64_t m = a->mask[r];
                for (size_t t = 0; t < len; t++) o[t] |= (x[t] | (x[t] >> 1)) & m;
            }
            void *rout[2] = {a->region_out, NULL};
            for (size_t lo = 0; lo < a->regions_padded; lo += BATCH) {
                const size_t n = a->regions_padded - lo < BATCH ? a->regions_padded - lo : BATCH;
                count_block(or_ + lo * TILE, TILE, a->region_mask + lo, n, len, 1, acc8, a4);
                store_block(acc8, 1, len, k * c + t0, nw, rout, a->region_wide, lo == 0);
            }
        }
    }
}

static void count_generic(const count_args *a) { count_body(a); }
#if HP_X86
HP_AVX2 static void count_avx2(const count_args *a) { count_body(a); }
#endif

/* ---- vote rule, inversion, disabling, quorum, unknown_as ----------------- */

typedef struct {
    size_t lanes;
    const void *healthy, *unhealthy, *regions;   /* regions may be NULL */
    int wide, region_wide;
    const uint8_t *keep, *flip, *novote;
    const uint16_t *min_votes, *min_regions;
    uint64_t a, b;                 /* healthy when h * a > u * b */
    const uint8_t *fill;           /* per lane (last_known), or NULL: fill_value */
    uint8_t fill_value;
    uint8_t *status;
    void *reporting;
} finish_args;

/* One loop per combination of lane types and options, each with its inputs
 * in restrict locals: stores of uint8 may alias anything, and the compiler
 * vectorises only a loop that needs no reloads and has no branch inside. */
#define FINISH_LOOP(NAME, HT, RT, MT)                                              \
    HP_INLINE void NAME##_lanes(size_t lanes, const HT *restrict h, const HT *restrict u, \
                                const RT *restrict reg, HT *restrict rep,          \
                                uint8_t *restrict status, const uint8_t *restrict keep, \
                                const uint8_t *restrict flip,                      \
                                const uint8_t *restrict novote,                    \
                                const uint8_t *restrict fillp,                     \
                                const uint16_t *restrict minv,                     \
                                const uint16_t *restrict minr, const MT ca, const MT cb, \
                                const uint8_t fillc, const int has_reg, const int has_fill) \
    {                                                                              \
        for (size_t i = 0; i < lanes; i++) {                                       \
            const HT hi = h[i], ui = u[i];                                         \
            const HT ri = (HT)(hi + ui);                                           \
            rep[i] = ri;                                                           \
            const uint8_t ok = (MT)hi * ca > (MT)ui * cb;                          \
            const uint8_t st = (uint8_t)(((uint8_t)(2 - ok) & keep[i]) ^ flip[i]); \
            uint8_t below = (uint16_t)ri < minv[i];                                \
            if (has_reg) below |= (uint16_t)reg[i] < minr[i];                      \
            below &= novote[i] == 0;                                               \
            const uint8_t fill = has_fill ? fillp[i] : fillc;                      \
            const uint8_t pick = (uint8_t)-below;                                  \
            status[i] = (uint8_t)(st ^ ((st ^ fill) & pick));                      \
        }                                                                          \
    }                                                                              \
    HP_INLINE void NAME(const finish_args *f, const int has_reg, const int has_fill) \
    {                                                                              \
        NAME##_lanes(f->lanes, (const HT *)f->healthy, (const HT *)f->unhealthy,   \
                     (const RT *)f->regions, (HT *)f->reporting, f->status, f->keep, \
                     f->flip, f->novote, f->fill, f->min_votes, f->min_regions,    \
                     (MT)f->a, (MT)f->b, f->fill_value, has_reg, has_fill);        \
    }

FINISH_LOOP(finish_8_8_32, uint8_t, uint8_t, uint32_t)
FINISH_LOOP(finish_8_8_64, uint8_t, uint8_t, uint64_t)
FINISH_LOOP(finish_8_16_32, uint8_t, uint16_t, uint32_t)
FINISH_LOOP(finish_8_16_64, uint8_t, uint16_t, uint64_t)
FINISH_LOOP(finish_16_8_32, uint16_t, uint8_t, uint32_t)
FINISH_LOOP(finish_16_8_64, uint16_t, uint8_t, uint64_t)
FINISH_LOOP(finish_16_16_32, uint16_t, uint16_t, uint32_t)
FINISH_LOOP(finish_16_16_64, uint16_t, uint16_t, uint64_t)

/* The options as constants, so each inlined copy drops its dead branches. */
#define FINISH_OPTS(FN)                                                            \
    do {                                                                           \
        const int r_ = f->regions != NULL, l_ = f->fill != NULL;                   \
        if (r_ && l_) FN(f, 1, 1);                                                 \
        else if (r_) FN(f, 1, 0);                                                  \
        else if (l_) FN(f, 0, 1);                                                  \
        else FN(f, 0, 0);                                                          \
    } while (0)

HP_INLINE void finish_body(const finish_args *f, int mul64)
{
    const int rw = f->regions != NULL && f->region_wide;
    if (!f->wide) {
        if (!rw) { if (mul64) FINISH_OPTS(finish_8_8_64); else FINISH_OPTS(finish_8_8_32); }
        else { if (mul64) FINISH_OPTS(finish_8_16_64); else FINISH_OPTS(finish_8_16_32); }
    } else {
        if (!rw) { if (mul64) FINISH_OPTS(finish_16_8_64); else FINISH_OPTS(finish_16_8_32); }
        else { if (mul64) FINISH_OPTS(finish_16_16_64); else FINISH_OPTS(finish_16_16_32); }
    }
}

static void finish_generic(const finish_args *f, int mul64) { finish_body(f, mul64); }
#if HP_X86
HP_AVX2 static void finish_avx2(const finish_args *f, int mul64) { finish_body(f, mul64); }
#endif

/* ---- changes and last-change times --------------------------------------- */

#define CHANGE_BLOCK 256

typedef struct {
    size_t lanes;
    const uint8_t *status, *prev, *established;  /* established may be NULL */
    const int64_t *prev_lc;
    int64_t *out_lc;
    int64_t now;
    int64_t *kept;
    size_t max_kept, n_kept;
    size_t changed;
} change_args;

/* Lanes [0, n) of a block: moved flags, last-change times, the count. */
HP_INLINE size_t changes_block(size_t n, const uint8_t *restrict status,
                               const uint8_t *restrict prev, const uint8_t *restrict est,
                               const int64_t *restrict prev_lc, int64_t *restrict out_lc,
                               uint8_t *restrict moved, const int64_t now, const int has_est)
{
    size_t block = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t m = status[i] != prev[i];
        if (has_est) m &= est[i] != 0;
        moved[i] = m;
        block += m;
        /* now where moved, else prev: a select by mask, without a branch
           (and without a 64-bit multiply, which SSE2 and AVX2 lack). */
        const uint64_t p = (uint64_t)prev_lc[i], sel = (uint64_t)0 - (uint64_t)m;
        out_lc[i] = (int64_t)(p ^ ((p ^ (uint64_t)now) & sel));
    }
    return block;
}

HP_INLINE void changes_loop(change_args *c, const int has_est)
{
    uint8_t moved[CHANGE_BLOCK];
    const size_t lanes = c->lanes, max_kept = c->max_kept;
    size_t changed = 0, n_kept = 0;
    for (size_t lo = 0; lo < lanes; lo += CHANGE_BLOCK) {
        const size_t n = lanes - lo < CHANGE_BLOCK ? lanes - lo : CHANGE_BLOCK;
        const size_t block = changes_block(n, c->status + lo, c->prev + lo,
                                           has_est ? c->established + lo : NULL,
                                           c->prev_lc + lo, c->out_lc + lo, moved, c->now,
                                           has_est);
        changed += block;
        if (block != 0 && n_kept < max_kept)
            for (size_t i = 0; i < n && n_kept < max_kept; i++)
                if (moved[i]) c->kept[n_kept++] = (int64_t)(lo + i);
    }
    c->changed = changed;
    c->n_kept = n_kept;
}

HP_INLINE void changes_body(change_args *c)
{
    if (c->established != NULL) changes_loop(c, 1);
    else changes_loop(c, 0);
}

static void changes_generic(change_args *c) { changes_body(c); }
#if HP_X86
HP_AVX2 static void changes_avx2(change_args *c) { changes_body(c); }
#endif

/* ---- dispatch -------------------------------------------------------------- */

static void (*count_impl)(const count_args *) = count_generic;
static void (*finish_impl)(const finish_args *, int) = finish_generic;
static void (*changes_impl)(change_args *) = changes_generic;
static const char *isa_name = "generic";

/* ---- Python glue ----------------------------------------------------------- */

/* Borrow buf as a C-contiguous buffer of exactly n items of itemsize bytes. */
static int get_buf(PyObject *obj, Py_buffer *view, int writable, Py_ssize_t itemsize,
                   Py_ssize_t n, const char *what)
{
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    if (view->itemsize != itemsize || view->len != n * itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: expected %zd items of %zd bytes, got %zd bytes "
                     "of %zd-byte items", what, n, itemsize, view->len, view->itemsize);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static void release(Py_buffer *views, int n)
{
    for (int i = 0; i < n; i++)
        if (views[i].obj != NULL) PyBuffer_Release(&views[i]);
}

PyDoc_STRVAR(count_doc,
"count(words, fresh, rows_padded, chunk_words, healthy, unhealthy,\n"
"      region_of_row=None, n_regions=0, regions=None)\n\n"
"Healthy and unhealthy votes per lane over the fresh rows, into the given\n"
"lane arrays (uint8 when rows_padded <= 255, else uint16); with\n"
"region_of_row (int32 per row, -1 none), also the number of regions with a\n"
"reporting vote per lane (uint8 when n_regions <= 255, else uint16).");

static PyObject *py_count(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_words, *o_fresh, *o_h, *o_u, *o_reg = Py_None, *o_regout = Py_None;
    Py_ssize_t rows_padded, chunk_words, n_regions = 0;
    if (!PyArg_ParseTuple(args, "OOnnOO|OnO", &o_words, &o_fresh, &rows_padded, &chunk_words,
                          &o_h, &o_u, &o_reg, &n_regions, &o_regout))
        return NULL;
    Py_buffer v[6];
    memset(v, 0, sizeof v);
    uint64_t *mask = NULL, *scratch = NULL, *region_mask = NULL, *counters = NULL;
    int32_t *region = NULL;
    PyObject *result = NULL;
    if (rows_padded < 3 || rows_padded % 3 != 0 || chunk_words < 1) {
        PyErr_SetString(PyExc_ValueError, "rows_padded must be a positive multiple of 3 "
                        "and chunk_words positive");
        return NULL;
    }
    if (PyObject_GetBuffer(o_words, &v[0], PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    const Py_ssize_t block = rows_padded * chunk_words;
    if (v[0].itemsize != 8 || v[0].len % (8 * block) != 0 || v[0].len == 0) {
        PyErr_SetString(PyExc_ValueError, "words: not a whole number of uint64 chunks");
        goto done;
    }
    const Py_ssize_t n_chunks = v[0].len / (8 * block);
    if (PyObject_GetBuffer(o_fresh, &v[1], PyBUF_C_CONTIGUOUS) < 0)
        goto done;
    const Py_ssize_t n_rows = v[1].len;
    if (v[1].itemsize != 1 || n_rows > rows_padded) {
        PyErr_SetString(PyExc_ValueError, "fresh: one byte per row, at most rows_padded");
        goto done;
    }
    const Py_ssize_t lanes = 32 * n_chunks * chunk_words;
    const int wide = rows_padded > BATCH;
    if (get_buf(o_h, &v[2], 1, wide ? 2 : 1, lanes, "healthy") < 0 ||
        get_buf(o_u, &v[3], 1, wide ? 2 : 1, lanes, "unhealthy") < 0)
        goto done;
    const int with_regions = o_reg != Py_None;
    Py_ssize_t regions_padded = 0;
    int region_wide = 0;
    if (with_regions) {
        if (n_regions < 1 || n_regions > 65535) {
            PyErr_SetString(PyExc_ValueError, "n_regions must be 1..65535");
            goto done;
        }
        regions_padded = (n_regions + 2) / 3 * 3;
        region_wide = regions_padded > BATCH;
        if (get_buf(o_reg, &v[4], 0, 4, n_rows, "region_of_row") < 0 ||
            get_buf(o_regout, &v[5], 1, region_wide ? 2 : 1, lanes, "regions") < 0)
            goto done;
        region = malloc(sizeof(int32_t) * (size_t)rows_padded);
        scratch = malloc(sizeof(uint64_t) * TILE * (size_t)regions_padded);
        region_mask = malloc(sizeof(uint64_t) * (size_t)regions_padded);
        if (region == NULL || scratch == NULL || region_mask == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        const int32_t *src = v[4].buf;
        for (Py_ssize_t r = 0; r < rows_padded; r++) {
            const int32_t g = r < n_rows ? src[r] : -1;
            if (g < -1 || g >= n_regions) {
                PyErr_Format(PyExc_ValueError, "region_of_row[%zd] = %d, not in -1..%zd",
                             r, (int)g, n_regions - 1);
                goto done;
            }
            region[r] = g;
        }
        for (Py_ssize_t g = 0; g < regions_padded; g++)
            region_mask[g] = g < n_regions ? M1 : 0;
    }
    mask = malloc(sizeof(uint64_t) * (size_t)rows_padded);
    counters = malloc(sizeof(uint64_t) * 12 * TILE);
    if (mask == NULL || counters == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const uint8_t *fresh = v[1].buf;
    for (Py_ssize_t r = 0; r < rows_padded; r++)
        mask[r] = r < n_rows && fresh[r] ? M1 : 0;
    count_args a = {
        .words = v[0].buf, .n_chunks = (size_t)n_chunks, .rows_padded = (size_t)rows_padded,
        .chunk_words = (size_t)chunk_words, .mask = mask, .out = {v[2].buf, v[3].buf},
        .wide = wide, .region = region, .n_regions = (size_t)n_regions,
        .regions_padded = (size_t)regions_padded, .region_or = scratch,
        .region_mask = region_mask, .region_out = with_regions ? v[5].buf : NULL,
        .region_wide = region_wide,
        .acc8 = (uint64_t (*)[4][TILE])counters,
        .a4 = (uint64_t (*)[2][TILE])(counters + 8 * TILE),
    };
    Py_BEGIN_ALLOW_THREADS
    count_impl(&a);
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    free(counters);
    free(mask);
    free(scratch);
    free(region_mask);
    free(region);
    release(v, 6);
    return result;
}

PyDoc_STRVAR(finish_doc,
"finish(healthy, unhealthy, regions, keep, flip, novote, min_votes, min_regions,\n"
"       a, b, fill, fill_value, status, reporting)\n\n"
"Per lane: reporting = healthy + unhealthy; the vote status (healthy when\n"
"healthy * a > unhealthy * b) with keep/flip applied; below the quorum\n"
"(and not novote) the fill instead (fill per lane, or fill_value when fill\n"
"is None). regions may be None (no region quorum).");

static PyObject *py_finish(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_h, *o_u, *o_reg, *o_keep, *o_flip, *o_novote, *o_minv, *o_minr, *o_fill,
        *o_status, *o_rep;
    unsigned long long ca, cb;
    int fill_value;
    if (!PyArg_ParseTuple(args, "OOOOOOOOKKOiOO", &o_h, &o_u, &o_reg, &o_keep, &o_flip,
                          &o_novote, &o_minv, &o_minr, &ca, &cb, &o_fill, &fill_value,
                          &o_status, &o_rep))
        return NULL;
    Py_buffer v[10];
    memset(v, 0, sizeof v);
    PyObject *result = NULL;
    if (PyObject_GetBuffer(o_h, &v[0], PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    const Py_ssize_t isz = v[0].itemsize, lanes = isz ? v[0].len / isz : 0;
    if (isz != 1 && isz != 2) {
        PyErr_SetString(PyExc_ValueError, "healthy: uint8 or uint16 lanes");
        goto done;
    }
    if (fill_value < 0 || fill_value > 3) {
        PyErr_SetString(PyExc_ValueError, "fill_value must be 0..3");
        goto done;
    }
    if (get_buf(o_u, &v[1], 0, isz, lanes, "unhealthy") < 0 ||
        get_buf(o_keep, &v[2], 0, 1, lanes, "keep") < 0 ||
        get_buf(o_flip, &v[3], 0, 1, lanes, "flip") < 0 ||
        get_buf(o_novote, &v[4], 0, 1, lanes, "novote") < 0 ||
        get_buf(o_minv, &v[5], 0, 2, lanes, "min_votes") < 0 ||
        get_buf(o_minr, &v[6], 0, 2, lanes, "min_regions") < 0 ||
        get_buf(o_status, &v[7], 1, 1, lanes, "status") < 0 ||
        get_buf(o_rep, &v[8], 1, isz, lanes, "reporting") < 0)
        goto done;
    int region_wide = 0;
    if (o_reg != Py_None) {
        if (PyObject_GetBuffer(o_reg, &v[9], PyBUF_C_CONTIGUOUS) < 0)
            goto done;
        region_wide = v[9].itemsize == 2;
        if ((v[9].itemsize != 1 && v[9].itemsize != 2) || v[9].len != lanes * v[9].itemsize) {
            PyErr_SetString(PyExc_ValueError, "regions: uint8 or uint16, one per lane");
            goto done;
        }
    }
    Py_buffer fill_view;
    memset(&fill_view, 0, sizeof fill_view);
    if (o_fill != Py_None && get_buf(o_fill, &fill_view, 0, 1, lanes, "fill") < 0)
        goto done;
    const uint64_t max_votes = isz == 1 ? 0xFF : 0xFFFF;
    /* 32-bit products when they cannot overflow, so the loop vectorises. */
    /* Otherwise 64-bit products: the caller keeps a and b small enough that
       no count it can produce overflows them (VoteRule.coefficients), and
       unsigned arithmetic wraps without undefined behaviour anyway. */
    const int mul64 = ca > UINT32_MAX / max_votes || cb > UINT32_MAX / max_votes;
    finish_args f = {
        .lanes = (size_t)lanes, .healthy = v[0].buf, .unhealthy = v[1].buf,
        .regions = o_reg != Py_None ? v[9].buf : NULL, .wide = isz == 2,
        .region_wide = region_wide, .keep = v[2].buf, .flip = v[3].buf, .novote = v[4].buf,
        .min_votes = v[5].buf, .min_regions = v[6].buf, .a = ca, .b = cb,
        .fill = fill_view.obj != NULL ? fill_view.buf : NULL, .fill_value = (uint8_t)fill_value,
        .status = v[7].buf, .reporting = v[8].buf,
    };
    Py_BEGIN_ALLOW_THREADS
    finish_impl(&f, mul64);
    Py_END_ALLOW_THREADS
    if (fill_view.obj != NULL) PyBuffer_Release(&fill_view);
    result = Py_None;
    Py_INCREF(result);
done:
    release(v, 10);
    return result;
}

PyDoc_STRVAR(changes_doc,
"changes(status, prev, established, prev_lc, out_lc, now, kept) -> (changed, n_kept)\n\n"
"Lanes whose status differs from prev (and, unless established is None,\n"
"are established) are counted; out_lc = now there, prev_lc elsewhere; the\n"
"first len(kept) such lanes go into kept (int64).");

static PyObject *py_changes(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_s, *o_p, *o_e, *o_pl, *o_ol, *o_kept;
    long long now;
    if (!PyArg_ParseTuple(args, "OOOOOLO", &o_s, &o_p, &o_e, &o_pl, &o_ol, &now, &o_kept))
        return NULL;
    Py_buffer v[6];
    memset(v, 0, sizeof v);
    PyObject *result = NULL;
    if (PyObject_GetBuffer(o_s, &v[0], PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    const Py_ssize_t lanes = v[0].len;
    if (v[0].itemsize != 1) {
        PyErr_SetString(PyExc_ValueError, "status: uint8 lanes");
        goto done;
    }
    if (get_buf(o_p, &v[1], 0, 1, lanes, "prev") < 0 ||
        (o_e != Py_None && get_buf(o_e, &v[2], 0, 1, lanes, "established") < 0) ||
        get_buf(o_pl, &v[3], 0, 8, lanes, "prev_lc") < 0 ||
        get_buf(o_ol, &v[4], 1, 8, lanes, "out_lc") < 0)
        goto done;
    if (PyObject_GetBuffer(o_kept, &v[5], PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
        goto done;
    if (v[5].itemsize != 8) {
        PyErr_SetString(PyExc_ValueError, "kept: int64");
        goto done;
    }
    if (v[3].buf == v[4].buf && lanes > 0) {
        PyErr_SetString(PyExc_ValueError, "prev_lc and out_lc must differ");
        goto done;
    }
    change_args c = {
        .lanes = (size_t)lanes, .status = v[0].buf, .prev = v[1].buf,
        .established = o_e != Py_None ? v[2].buf : NULL, .prev_lc = v[3].buf,
        .out_lc = v[4].buf, .now = (int64_t)now, .kept = v[5].buf,
        .max_kept = (size_t)(v[5].len / 8), .n_kept = 0, .changed = 0,
    };
    Py_BEGIN_ALLOW_THREADS
    changes_impl(&c);
    Py_END_ALLOW_THREADS
    result = Py_BuildValue("nn", (Py_ssize_t)c.changed, (Py_ssize_t)c.n_kept);
done:
    release(v, 6);
    return result;
}

PyDoc_STRVAR(encode_doc,
"encode(status, nbytes) -> bytes\n\n"
"Lane-order statuses (one byte each, 0..3) to the 2-bit wire layout.");

static PyObject *py_encode(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *o_s;
    Py_ssize_t nbytes;
    if (!PyArg_ParseTuple(args, "On", &o_s, &nbytes))
        return NULL;
    Py_buffer v;
    if (PyObject_GetBuffer(o_s, &v, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    const Py_ssize_t nw = v.len / 32;
    if (v.itemsize != 1 || v.len % 32 != 0 || nbytes < 0 || nbytes > 8 * nw) {
        PyBuffer_Release(&v);
        PyErr_SetString(PyExc_ValueError, "status: 32 lanes per word, nbytes within them");
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, nbytes);
    if (out == NULL) {
        PyBuffer_Release(&v);
        return NULL;
    }
    const uint64_t *s = v.buf;   /* buffer protocol data is at least 8-aligned for numpy */
    uint8_t *dst = (uint8_t *)PyBytes_AS_STRING(out);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t w = 0; w < nw && 8 * w < nbytes; w++) {
        uint64_t s00, s01, s10, s11;
        memcpy(&s00, (const uint8_t *)s + 8 * (0 * nw + w), 8);
        memcpy(&s01, (const uint8_t *)s + 8 * (1 * nw + w), 8);
        memcpy(&s10, (const uint8_t *)s + 8 * (2 * nw + w), 8);
        memcpy(&s11, (const uint8_t *)s + 8 * (3 * nw + w), 8);
        const uint64_t word = (((s00 << 4) | s01) << 2) | (s10 << 4) | s11;
        const Py_ssize_t n = nbytes - 8 * w < 8 ? nbytes - 8 * w : 8;
        memcpy(dst + 8 * w, &word, (size_t)n);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&v);
    return out;
}

static PyObject *py_isa(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    return PyUnicode_FromString(isa_name);
}

static PyMethodDef methods[] = {
    {"count", py_count, METH_VARARGS, count_doc},
    {"finish", py_finish, METH_VARARGS, finish_doc},
    {"changes", py_changes, METH_VARARGS, changes_doc},
    {"encode", py_encode, METH_VARARGS, encode_doc},
    {"isa", py_isa, METH_NOARGS, "The instruction set the loops were chosen for."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tick_kernel",
    "Compiled passes of the aggregator tick (see healthplane.aggregator.tick_kernel).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__tick_kernel(void)
{
#if HP_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && getenv("HEALTHPLANE_TICK_GENERIC") == NULL) {
        count_impl = count_avx2;
        finish_impl = finish_avx2;
        changes_impl = changes_avx2;
        isa_name = "avx2";
    }
#endif
    return PyModule_Create(&module);
}
