/*
 * LZFSE decoder for dmg chunks of type 0x80000007 (Debian has no liblzfse).
 * Handles a whole stream of blocks: bvx$ (end), bvx- (stored), bvxn (LZVN),
 * bvx1/bvx2 (LZ77 triplets and literals entropy-coded with tANS/"FSE").
 * Written from the format as Apple's reference implementation defines it;
 * one-shot (the whole chunk in memory), every read and write bounds-checked.
 */
#include "dmg.h"

#include <stdlib.h>
#include <string.h>

#define LZFSE_MAGIC_END   0x24787662u   /* "bvx$" */
#define LZFSE_MAGIC_RAW   0x2d787662u   /* "bvx-" */
#define LZFSE_MAGIC_V1    0x31787662u   /* "bvx1" */
#define LZFSE_MAGIC_V2    0x32787662u   /* "bvx2" */
#define LZFSE_MAGIC_LZVN  0x6e787662u   /* "bvxn" */

#define L_SYMBOLS 20
#define M_SYMBOLS 20
#define D_SYMBOLS 64
#define LIT_SYMBOLS 256
#define L_STATES 64
#define M_STATES 64
#define D_STATES 256
#define LIT_STATES 1024
#define MAX_MATCHES 10000
#define MAX_LITERALS (4 * MAX_MATCHES)
#define V1_HEADER_SIZE 772      /* 7 u32, i32, 4 u16, i32, 3 u16, 360 u16, pad */
#define V2_FIXED_SIZE 32        /* magic, n_raw, three packed u64 */

/* Value coding of L, M and D: an FSE-coded symbol picks a base and a number
 * of extra raw bits added to it. */
static const uint8_t l_extra[L_SYMBOLS] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 3, 5, 8,
};
static const int32_t l_base[L_SYMBOLS] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 20, 28, 60,
};
static const uint8_t m_extra[M_SYMBOLS] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 5, 8, 11,
};
static const int32_t m_base[M_SYMBOLS] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 24, 56, 312,
};
static const uint8_t d_extra[D_SYMBOLS] = {
    0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3,
    4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7,
    8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 11,
    12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15,
};
static const int32_t d_base[D_SYMBOLS] = {
    0, 1, 2, 3, 4, 6, 8, 10, 12, 16, 20, 24, 28, 36, 44, 52,
    60, 76, 92, 108, 124, 156, 188, 220, 252, 316, 380, 444, 508, 636, 764,
    892, 1020, 1276, 1532, 1788, 2044, 2556, 3068, 3580, 4092, 5116, 6140,
    7164, 8188, 10236, 12284, 14332, 16380, 20476, 24572, 28668, 32764,
    40956, 49148, 57340, 65532, 81916, 98300, 114684, 131068, 163836,
    196604, 229372,
};

/* ---- output cursor ------------------------------------------------------ */

struct out {
    uint8_t *p;
    size_t pos, len;
};

static int out_literal(struct out *o, const uint8_t *src, size_t n)
{
    if (n > o->len - o->pos)
        return -EIO;
    memcpy(o->p + o->pos, src, n);
    o->pos += n;
    return 0;
}

/* LZ match: may overlap its own output, so copy forwards byte by byte
 * when the distance is short. */
static int out_match(struct out *o, size_t dist, size_t n)
{
    uint8_t *d;

    if (dist == 0 || dist > o->pos || n > o->len - o->pos)
        return -EIO;
    d = o->p + o->pos;
    if (dist >= n) {
        memcpy(d, d - dist, n);
    } else {
        for (size_t i = 0; i < n; i++)
            d[i] = d[i - dist];
    }
    o->pos += n;
    return 0;
}

/* ---- LZVN --------------------------------------------------------------- */

/* One LZVN block: src holds exactly its payload, and it must produce
 * exactly raw bytes and end with the end-of-stream opcode. */
static int lzvn_block(const uint8_t *src, size_t src_len, struct out *o,
                      size_t raw)
{
    size_t ip = 0, start = o->pos, dist = 0;

    if (raw > o->len - o->pos)
        return -EIO;
    for (;;) {
        size_t avail = src_len - ip, lit = 0, mlen = 0, oplen;
        uint8_t op;
        bool match = true, new_dist = true;
        size_t d = 0;

        if (avail == 0)
            return -EIO;
        op = src[ip];
        if (op == 0x06) {                       /* end of stream: 8 bytes */
            if (avail < 8)
                return -EIO;
            ip += 8;
            break;
        }
        if (op == 0x0e || op == 0x16) {         /* nop */
            ip++;
            continue;
        }
        if ((op >= 0x70 && op <= 0x7f) || (op >= 0xd0 && op <= 0xdf) ||
            ((op & 7) == 6 && op < 0x40))
            return -EIO;                        /* undefined opcodes */
        if (op >= 0xe0) {
            if (op == 0xe0 || op == 0xf0) {
                if (avail < 2)
                    return -EIO;
                oplen = 2;
                lit = op == 0xe0 ? (size_t)src[ip + 1] + 16 : 0;
                mlen = op == 0xf0 ? (size_t)src[ip + 1] + 16 : 0;
            } else {
                oplen = 1;
                lit = op < 0xf0 ? (size_t)(op & 0x0f) : 0;
                mlen = op >= 0xf0 ? (size_t)(op & 0x0f) : 0;
            }
            match = op >= 0xf0;
            new_dist = false;
        } else if (op >= 0xa0 && op <= 0xbf) {   /* medium distance */
            uint16_t w;

            if (avail < 3)
                return -EIO;
            oplen = 3;
            w = bd_le16(src + ip + 1);
            lit = (op >> 3) & 3;
            mlen = ((size_t)(op & 7) << 2 | (w & 3)) + 3;
            d = w >> 2;
        } else if ((op & 7) == 7) {              /* large distance */
            if (avail < 3)
                return -EIO;
            oplen = 3;
            lit = op >> 6;
            mlen = ((op >> 3) & 7) + 3;
            d = bd_le16(src + ip + 1);
        } else if ((op & 7) == 6) {              /* previous distance */
            oplen = 1;
            lit = op >> 6;
            mlen = ((op >> 3) & 7) + 3;
            new_dist = false;
        } else {                                 /* small distance */
            if (avail < 2)
                return -EIO;
            oplen = 2;
            lit = op >> 6;
            mlen = ((op >> 3) & 7) + 3;
            d = (size_t)(op & 7) << 8 | src[ip + 1];
        }
        ip += oplen;
        if (lit > src_len - ip || lit > start + raw - o->pos)
            return -EIO;
        if (out_literal(o, src + ip, lit) < 0)
            return -EIO;
        ip += lit;
        if (new_dist)
            dist = d;
        if (match && mlen) {
            if (mlen > start + raw - o->pos || out_match(o, dist, mlen) < 0)
                return -EIO;
        }
    }
    return ip == src_len && o->pos - start == raw ? 0 : -EIO;
}

/* ---- FSE (tANS) tables and backward bit reader ------------------------- */

struct fse_entry {          /* literal decoder: one per state */
    uint8_t bits;
    uint8_t symbol;
    uint16_t delta;
};

struct fse_value_entry {    /* L/M/D decoders: one per state */
    uint8_t total_bits;     /* state bits + extra value bits */
    uint8_t value_bits;
    uint16_t delta;
    int32_t vbase;
};

/* Spread each symbol over freq[s] consecutive states; a state reads k or
 * k-1 bits, chosen so that nstates <= freq << k < 2 * nstates. */
static int fse_spread(unsigned nstates, unsigned nsym, const uint16_t *freq,
                      void (*emit)(void *t, unsigned state, unsigned sym,
                                   unsigned bits, unsigned delta),
                      void *t)
{
    unsigned state = 0, sum = 0;
    int n_clz = __builtin_clz(nstates);

    for (unsigned s = 0; s < nsym; s++) {
        unsigned f = freq[s];
        int k;
        unsigned j0;

        if (!f)
            continue;
        sum += f;
        if (sum > nstates)
            return -EIO;
        k = __builtin_clz(f) - n_clz;
        j0 = ((2 * nstates) >> k) - f;
        for (unsigned j = 0; j < f; j++, state++) {
            if (j < j0)
                emit(t, state, s, (unsigned)k, ((f + j) << k) - nstates);
            else
                emit(t, state, s, (unsigned)k - 1, (j - j0) << (k - 1));
        }
    }
    return 0;
}

static void emit_literal(void *t, unsigned state, unsigned sym, unsigned bits,
                         unsigned delta)
{
    struct fse_entry *e = (struct fse_entry *)t + state;

    e->bits = (uint8_t)bits;
    e->symbol = (uint8_t)sym;
    e->delta = (uint16_t)delta;
}

struct value_table {
    struct fse_value_entry *e;
    const uint8_t *extra;
    const int32_t *base;
};

static void emit_value(void *t, unsigned state, unsigned sym, unsigned bits,
                       unsigned delta)
{
    struct value_table *vt = t;
    struct fse_value_entry *e = &vt->e[state];

    e->value_bits = vt->extra[sym];
    e->total_bits = (uint8_t)(bits + vt->extra[sym]);
    e->delta = (uint16_t)delta;
    e->vbase = vt->base[sym];
}

/*
 * The encoder writes bits forwards; we read them backwards from the end of
 * the payload. The accumulator holds 56-63 bits after each refill, enough
 * for four literals (4 x 10) or one L, M, D triplet (14 + 17 + 23).
 */
struct bitin {
    uint64_t accum;
    int nbits;
    const uint8_t *p;       /* next byte to load is p[-1] */
    const uint8_t *start;   /* lowest byte we may load */
};

static int bitin_init(struct bitin *b, int extra, const uint8_t *end,
                      const uint8_t *start)
{
    size_t n = extra ? 8 : 7;

    if (extra < -7 || extra > 0 || (size_t)(end - start) < n)
        return -EIO;
    b->p = end - n;
    b->start = start;
    b->accum = 0;
    for (size_t i = 0; i < n; i++)
        b->accum |= (uint64_t)b->p[i] << (8 * i);
    b->nbits = (int)(8 * n) + extra;
    if (b->accum >> b->nbits)
        return -EIO;        /* the encoder leaves the unused top bits zero */
    return 0;
}

static int bitin_refill(struct bitin *b)
{
    int add = (63 - b->nbits) & ~7;
    size_t n = (size_t)add / 8;
    uint64_t in = 0;

    if (n == 0)
        return 0;
    if ((size_t)(b->p - b->start) < n)
        return -EIO;
    b->p -= n;
    for (size_t i = 0; i < n; i++)
        in |= (uint64_t)b->p[i] << (8 * i);
    b->accum = b->accum << add | in;
    b->nbits += add;
    return 0;
}

static inline uint64_t bitin_pull(struct bitin *b, unsigned n)
{
    uint64_t v;

    b->nbits -= (int)n;
    v = b->accum >> b->nbits;
    b->accum &= (UINT64_C(1) << b->nbits) - 1;
    return v;
}

static inline unsigned fse_decode(uint16_t *state, const struct fse_entry *t,
                                  struct bitin *b)
{
    const struct fse_entry *e = &t[*state];

    *state = (uint16_t)(e->delta + bitin_pull(b, e->bits));
    return e->symbol;
}

static inline int32_t fse_value(uint16_t *state,
                                 const struct fse_value_entry *t,
                                 struct bitin *b)
{
    const struct fse_value_entry *e = &t[*state];
    uint64_t v = bitin_pull(b, e->total_bits);

    *state = (uint16_t)(e->delta + (v >> e->value_bits));
    return e->vbase + (int32_t)(v & ((UINT64_C(1) << e->value_bits) - 1));
}

/* ---- LZFSE compressed blocks -------------------------------------------- */

struct lzfse_hdr {
    uint32_t n_raw, n_literals, n_matches, n_lit_payload, n_lmd_payload;
    int32_t literal_bits, lmd_bits;
    uint16_t literal_state[4], l_state, m_state, d_state;
    uint16_t freq[L_SYMBOLS + M_SYMBOLS + D_SYMBOLS + LIT_SYMBOLS];
};

struct lzfse_tables {
    struct fse_entry lit[LIT_STATES];
    struct fse_value_entry l[L_STATES], m[M_STATES], d[D_STATES];
    uint8_t literals[MAX_LITERALS + 4];
};

static int v1_header_decode(const uint8_t *p, size_t avail,
                            struct lzfse_hdr *h, size_t *hsize)
{
    if (avail < V1_HEADER_SIZE)
        return -EIO;
    h->n_raw = bd_le32(p + 4);
    h->n_literals = bd_le32(p + 12);
    h->n_matches = bd_le32(p + 16);
    h->n_lit_payload = bd_le32(p + 20);
    h->n_lmd_payload = bd_le32(p + 24);
    h->literal_bits = (int32_t)bd_le32(p + 28);
    for (int i = 0; i < 4; i++)
        h->literal_state[i] = bd_le16(p + 32 + 2 * i);
    h->lmd_bits = (int32_t)bd_le32(p + 40);
    h->l_state = bd_le16(p + 44);
    h->m_state = bd_le16(p + 46);
    h->d_state = bd_le16(p + 48);
    for (size_t i = 0; i < sizeof(h->freq) / sizeof(h->freq[0]); i++)
        h->freq[i] = bd_le16(p + 50 + 2 * i);
    *hsize = V1_HEADER_SIZE;
    return 0;
}

/* v2 frequency tables: a fixed prefix code read from the low bits up;
 * 2, 3 or 5 bits for small values, 8 bits for 8..23, 14 bits for 24.. */
static unsigned freq_value(uint32_t bits, unsigned *nbits)
{
    static const uint8_t len[32] = {
        2, 3, 2, 5, 2, 3, 2, 8, 2, 3, 2, 5, 2, 3, 2, 14,
        2, 3, 2, 5, 2, 3, 2, 8, 2, 3, 2, 5, 2, 3, 2, 14,
    };
    static const uint8_t val[32] = {
        0, 2, 1, 4, 0, 3, 1, 0, 0, 2, 1, 5, 0, 3, 1, 0,
        0, 2, 1, 6, 0, 3, 1, 0, 0, 2, 1, 7, 0, 3, 1, 0,
    };
    unsigned b = bits & 31;

    *nbits = len[b];
    if (len[b] == 8)
        return 8 + ((bits >> 4) & 0xf);
    if (len[b] == 14)
        return 24 + ((bits >> 4) & 0x3ff);
    return val[b];
}

static int v2_header_decode(const uint8_t *p, size_t avail,
                            struct lzfse_hdr *h, size_t *hsize)
{
    uint64_t v0, v1, v2;
    uint32_t size, accum = 0;
    unsigned accum_bits = 0;
    size_t ip = V2_FIXED_SIZE;

    if (avail < V2_FIXED_SIZE)
        return -EIO;
    h->n_raw = bd_le32(p + 4);
    v0 = bd_le64(p + 8);
    v1 = bd_le64(p + 16);
    v2 = bd_le64(p + 24);
    h->n_literals = (uint32_t)(v0 & 0xfffff);
    h->n_lit_payload = (uint32_t)((v0 >> 20) & 0xfffff);
    h->n_matches = (uint32_t)((v0 >> 40) & 0xfffff);
    h->literal_bits = (int32_t)((v0 >> 60) & 7) - 7;
    for (int i = 0; i < 4; i++)
        h->literal_state[i] = (uint16_t)((v1 >> (10 * i)) & 0x3ff);
    h->n_lmd_payload = (uint32_t)((v1 >> 40) & 0xfffff);
    h->lmd_bits = (int32_t)((v1 >> 60) & 7) - 7;
    size = (uint32_t)v2;
    h->l_state = (uint16_t)((v2 >> 32) & 0x3ff);
    h->m_state = (uint16_t)((v2 >> 42) & 0x3ff);
    h->d_state = (uint16_t)((v2 >> 52) & 0x3ff);
    if (size < V2_FIXED_SIZE || size > avail)
        return -EIO;
    memset(h->freq, 0, sizeof(h->freq));
    *hsize = size;
    if (size == V2_FIXED_SIZE)
        return 0;                       /* tables omitted */
    for (size_t i = 0; i < sizeof(h->freq) / sizeof(h->freq[0]); i++) {
        unsigned n;

        while (ip < size && accum_bits + 8 <= 32) {
            accum |= (uint32_t)p[ip++] << accum_bits;
            accum_bits += 8;
        }
        h->freq[i] = (uint16_t)freq_value(accum, &n);
        if (n > accum_bits)
            return -EIO;
        accum >>= n;
        accum_bits -= n;
    }
    /* the tables must end exactly at the header's end */
    return accum_bits < 8 && ip == size ? 0 : -EIO;
}

static int freq_sum_ok(const uint16_t *f, unsigned n, unsigned nstates)
{
    unsigned sum = 0;

    for (unsigned i = 0; i < n; i++)
        sum += f[i];
    return sum <= nstates;
}

static int lzfse_build_tables(const struct lzfse_hdr *h,
                              struct lzfse_tables *t)
{
    const uint16_t *lf = h->freq, *mf = lf + L_SYMBOLS, *df = mf + M_SYMBOLS,
                   *litf = df + D_SYMBOLS;
    struct value_table vl = { t->l, l_extra, l_base };
    struct value_table vm = { t->m, m_extra, m_base };
    struct value_table vd = { t->d, d_extra, d_base };

    if (!freq_sum_ok(lf, L_SYMBOLS, L_STATES) ||
        !freq_sum_ok(mf, M_SYMBOLS, M_STATES) ||
        !freq_sum_ok(df, D_SYMBOLS, D_STATES) ||
        !freq_sum_ok(litf, LIT_SYMBOLS, LIT_STATES))
        return -EIO;
    /* states no symbol reaches stay zero: they decode to state 0 */
    memset(t->lit, 0, sizeof(t->lit));
    memset(t->l, 0, sizeof(t->l));
    memset(t->m, 0, sizeof(t->m));
    memset(t->d, 0, sizeof(t->d));
    if (fse_spread(LIT_STATES, LIT_SYMBOLS, litf, emit_literal, t->lit) < 0 ||
        fse_spread(L_STATES, L_SYMBOLS, lf, emit_value, &vl) < 0 ||
        fse_spread(M_STATES, M_SYMBOLS, mf, emit_value, &vm) < 0 ||
        fse_spread(D_STATES, D_SYMBOLS, df, emit_value, &vd) < 0)
        return -EIO;
    return 0;
}

static int lzfse_literals(const struct lzfse_hdr *h, struct lzfse_tables *t,
                          const uint8_t *payload_end, const uint8_t *stream)
{
    struct bitin b;
    uint16_t st[4];

    for (int i = 0; i < 4; i++) {
        st[i] = h->literal_state[i];
        if (st[i] >= LIT_STATES)
            return -EIO;
    }
    if (bitin_init(&b, h->literal_bits, payload_end, stream) < 0)
        return -EIO;
    for (uint32_t i = 0; i < h->n_literals; i += 4) {
        if (bitin_refill(&b) < 0)
            return -EIO;
        for (int j = 0; j < 4; j++)
            t->literals[i + j] = (uint8_t)fse_decode(&st[j], t->lit, &b);
    }
    return 0;
}

static int lzfse_lmd(const struct lzfse_hdr *h, const struct lzfse_tables *t,
                     const uint8_t *payload_end, const uint8_t *stream,
                     struct out *o)
{
    uint16_t ls = h->l_state, ms = h->m_state, ds = h->d_state;
    size_t lit = 0, start = o->pos;
    int64_t dist = -1;          /* no previous distance yet */
    struct bitin b;

    if (ls >= L_STATES || ms >= M_STATES || ds >= D_STATES)
        return -EIO;
    if (bitin_init(&b, h->lmd_bits, payload_end, stream) < 0)
        return -EIO;
    for (uint32_t i = 0; i < h->n_matches; i++) {
        int32_t l, m, d;

        if (bitin_refill(&b) < 0)
            return -EIO;
        l = fse_value(&ls, t->l, &b);
        m = fse_value(&ms, t->m, &b);
        d = fse_value(&ds, t->d, &b);
        if (d)
            dist = d;
        if ((uint32_t)l > h->n_literals - lit ||
            (size_t)l + (size_t)m > start + h->n_raw - o->pos)
            return -EIO;
        if (out_literal(o, t->literals + lit, (size_t)l) < 0)
            return -EIO;
        lit += (size_t)l;
        if (dist < 0 || (uint64_t)dist > o->pos)
            return -EIO;
        if (m && out_match(o, (size_t)dist, (size_t)m) < 0)
            return -EIO;
    }
    return o->pos - start == h->n_raw ? 0 : -EIO;
}

static int lzfse_block(const uint8_t *src, size_t src_len, size_t *ip,
                       uint32_t magic, struct lzfse_tables *t, struct out *o)
{
    struct lzfse_hdr h;
    const uint8_t *p = src + *ip, *lit_end, *lmd_end;
    size_t avail = src_len - *ip, hsize;
    int ret;

    ret = magic == LZFSE_MAGIC_V1 ? v1_header_decode(p, avail, &h, &hsize)
                                  : v2_header_decode(p, avail, &h, &hsize);
    if (ret < 0)
        return ret;
    if (h.n_literals > MAX_LITERALS || h.n_matches > MAX_MATCHES ||
        h.n_raw > o->len - o->pos ||
        (uint64_t)h.n_lit_payload + h.n_lmd_payload > avail - hsize)
        return -EIO;
    if (lzfse_build_tables(&h, t) < 0)
        return -EIO;
    lit_end = p + hsize + h.n_lit_payload;
    lmd_end = lit_end + h.n_lmd_payload;
    /* Like the reference decoder, the backward readers may look at bytes
     * before their payload (never before the stream); a valid stream does
     * not consume those bits. */
    if (lzfse_literals(&h, t, lit_end, src) < 0 ||
        lzfse_lmd(&h, t, lmd_end, src, o) < 0)
        return -EIO;
    *ip = (size_t)(lmd_end - src);
    return 0;
}

int dmg_lzfse_decode(const uint8_t *src, size_t src_len, uint8_t *dst,
                     size_t dst_len)
{
    struct out o = { .p = dst, .len = dst_len };
    struct lzfse_tables *t = NULL;
    size_t ip = 0;
    int ret = -EIO;

    for (;;) {
        uint32_t magic, n_raw, n_payload;

        if (src_len - ip < 4)
            goto out;
        magic = bd_le32(src + ip);
        if (magic == LZFSE_MAGIC_END)
            break;
        switch (magic) {
        case LZFSE_MAGIC_RAW:
            if (src_len - ip < 8)
                goto out;
            n_raw = bd_le32(src + ip + 4);
            ip += 8;
            if (n_raw > src_len - ip || out_literal(&o, src + ip, n_raw) < 0)
                goto out;
            ip += n_raw;
            break;
        case LZFSE_MAGIC_LZVN:
            if (src_len - ip < 12)
                goto out;
            n_raw = bd_le32(src + ip + 4);
            n_payload = bd_le32(src + ip + 8);
            ip += 12;
            if (n_payload > src_len - ip ||
                lzvn_block(src + ip, n_payload, &o, n_raw) < 0)
                goto out;
            ip += n_payload;
            break;
        case LZFSE_MAGIC_V1:
        case LZFSE_MAGIC_V2:
            if (!t && !(t = malloc(sizeof(*t)))) {
                ret = -ENOMEM;
                goto out;
            }
            if (lzfse_block(src, src_len, &ip, magic, t, &o) < 0)
                goto out;
            break;
        default:
            goto out;
        }
    }
    ret = o.pos == dst_len ? 0 : -EIO;
out:
    free(t);
    return ret;
}
