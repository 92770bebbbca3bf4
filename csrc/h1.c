/* HTTP/1.x request-head parser; see h1.h for the contract.
 *
 * The grammar is RFC 9112 section 2-5 read strictly:
 *   request-line = method SP request-target SP HTTP-version CRLF        (9112 3)
 *   field-line   = field-name ":" OWS field-value OWS                    (9112 5)
 * - method and field-name are tokens (9110 5.6.2); no whitespace before the colon (9112 5.1);
 * - every line ends in CRLF: a bare CR or a bare LF is refused (9112 2.2 lets a recipient
 *   accept a bare LF; we do not, it is a request-smuggling vector);
 * - obs-fold (a line starting with SP/HTAB) is refused with 400 (9112 5.2);
 * - field values are HTAB / SP / VCHAR / obs-text: NUL, CR, LF and other controls are refused
 *   (9110 5.5);
 * - the request-target holds no whitespace or control bytes (9112 3.2); bytes >= 0x80 are
 *   accepted as hyper/httparse do (they are percent-decoded by nobody but the app);
 * - only HTTP/1.0 and HTTP/1.1: any other well-formed version is 505 (9110 15.6.6);
 * - empty lines (CRLF) before the request-line are skipped (9112 2.2 "SHOULD ignore at least
 *   one empty line").
 * Framing semantics (9112 6) are decided here too, so Python never scans headers.
 */
#include "h1.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#define H1_HAVE_SSE2 1
#else
#define H1_HAVE_SSE2 0
#endif

/* tchar (RFC 9110 5.6.2): "!#$%&'*+-.^_`|~", DIGIT, ALPHA. */
static const unsigned char TCHAR[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* Internal flag bits, folded into H1_F_UPGRADE at the end. */
enum { F_CONN_UPGRADE = 1 << 8, F_HAS_UPGRADE = 1 << 9 };

/* Content-Length above this cannot be an off_t; 9112 6.3 requires rejecting it (overflow). */
#define CL_MAX ((uint64_t)0x7FFFFFFFFFFFFFFFULL)

/* ASCII case-insensitive compare of a token against a lower-case literal made of letters,
 * digits and '-': `c | 0x20` maps only an upper-case letter onto its lower case among tchars
 * and value bytes (0x0D, 0x1x are never passed here). */
static int ieq(const unsigned char *s, size_t n, const char *lit, size_t litn) {
    if (n != litn) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)(s[i] | 0x20) != (unsigned char)lit[i]) return 0;
    return 1;
}

/* The field names the framing rules look at (RFC 9112 6, 9110 7.6.1, 7.8, 10.1.1, 7.2). */
enum { K_OTHER = 0, K_HOST, K_EXPECT, K_UPGRADE, K_CONNECTION, K_CONTENT_LENGTH,
       K_TRANSFER_ENCODING };

static int framing_name(const unsigned char *s, size_t n) {
    switch (n) {
    case 4: return ieq(s, n, "host", 4) ? K_HOST : K_OTHER;
    case 6: return ieq(s, n, "expect", 6) ? K_EXPECT : K_OTHER;
    case 7: return ieq(s, n, "upgrade", 7) ? K_UPGRADE : K_OTHER;
    case 10: return ieq(s, n, "connection", 10) ? K_CONNECTION : K_OTHER;
    case 14: return ieq(s, n, "content-length", 14) ? K_CONTENT_LENGTH : K_OTHER;
    case 17: return ieq(s, n, "transfer-encoding", 17) ? K_TRANSFER_ENCODING : K_OTHER;
    default: return K_OTHER;
    }
}

/* First index in [p, end) whose byte cannot be in a request-target (<= 0x20 or DEL). */
static inline size_t scan_target(const unsigned char *b, size_t p, size_t end, int simd) {
#if H1_HAVE_SSE2
    if (simd) {
        const __m128i lo = _mm_set1_epi8(0x21), del = _mm_set1_epi8(0x7F);
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + p));
            int ok = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(v, lo), v));
            int bad = (~ok & 0xFFFF) | _mm_movemask_epi8(_mm_cmpeq_epi8(v, del));
            if (bad) return p + (size_t)__builtin_ctz((unsigned)bad);
            p += 16;
        }
    }
#else
    (void)simd;
#endif
    while (p < end && b[p] > 0x20 && b[p] != 0x7F) p++;
    return p;
}

/* First index in [p, end) whose byte is not field-vchar / SP / HTAB (9110 5.5). */
static inline size_t scan_value(const unsigned char *b, size_t p, size_t end, int simd) {
#if H1_HAVE_SSE2
    if (simd) {
        const __m128i sp = _mm_set1_epi8(0x20), del = _mm_set1_epi8(0x7F),
                      tab = _mm_set1_epi8(0x09);
        while (end - p >= 16) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + p));
            int ok = _mm_movemask_epi8(_mm_cmpeq_epi8(_mm_max_epu8(v, sp), v)) |
                     _mm_movemask_epi8(_mm_cmpeq_epi8(v, tab));
            int bad = (~ok & 0xFFFF) | _mm_movemask_epi8(_mm_cmpeq_epi8(v, del));
            if (bad) return p + (size_t)__builtin_ctz((unsigned)bad);
            p += 16;
        }
    }
#endif
    while (p < end) {
        unsigned char c = b[p];
        if ((c < 0x20 && c != 0x09) || c == 0x7F) break;
        p++;
    }
    return p;
}

static inline int is_ows(unsigned char c) { return c == ' ' || c == '\t'; }

/* Per-request framing state gathered while the header lines go by. */
typedef struct {
    uint64_t cl;
    int has_cl, has_te, te_chunked, te_unknown, hosts;
    uint32_t flags;
} framing;

static int on_content_length(framing *f, const unsigned char *b, size_t vs, size_t ve) {
    /* Content-Length = 1*DIGIT (9110 8.6); a list ("5, 5") is refused rather than merged. */
    if (vs == ve) return -H1_E_CONTENT_LENGTH;
    uint64_t v = 0;
    for (size_t i = vs; i < ve; i++) {
        unsigned d = (unsigned)b[i] - '0';
        if (d > 9) return -H1_E_CONTENT_LENGTH;
        if (v > (CL_MAX - d) / 10) return -H1_E_CONTENT_LENGTH;
        v = v * 10 + d;
    }
    /* 9112 6.3 (5): repeated identical field lines may be accepted; differing ones may not. */
    if (f->has_cl && f->cl != v) return -H1_E_CONTENT_LENGTH_MISMATCH;
    f->has_cl = 1;
    f->cl = v;
    return 0;
}

static int on_transfer_encoding(framing *f, const unsigned char *b, size_t vs, size_t ve) {
    /* transfer-coding list (9112 6.1). Elements must be bare tokens (parameters are refused:
     * chunked takes none and we decode no other coding). chunked must be last and appear once;
     * anything after it, on this line or a later one, is refused at once. */
    size_t p = vs;
    int n = 0;
    f->has_te = 1;
    while (p < ve) {
        while (p < ve && (is_ows(b[p]) || b[p] == ',')) p++;
        if (p >= ve) break;
        size_t s = p;
        while (p < ve && b[p] != ',') p++;
        size_t e = p;
        while (e > s && is_ows(b[e - 1])) e--;
        for (size_t i = s; i < e; i++)
            if (!TCHAR[b[i]]) return -H1_E_TE_SYNTAX;
        n++;
        if (f->te_chunked) return -H1_E_TE_NOT_CHUNKED;
        if (ieq(b + s, e - s, "chunked", 7))
            f->te_chunked = 1;
        else
            f->te_unknown = 1;
    }
    if (n == 0) return -H1_E_TE_SYNTAX;
    return 0;
}

static void on_connection(framing *f, const unsigned char *b, size_t vs, size_t ve) {
    /* Connection = #connection-option (9110 7.6.1); unknown options are ignored. */
    size_t p = vs;
    while (p < ve) {
        while (p < ve && (is_ows(b[p]) || b[p] == ',')) p++;
        size_t s = p;
        while (p < ve && b[p] != ',') p++;
        size_t e = p;
        while (e > s && is_ows(b[e - 1])) e--;
        if (ieq(b + s, e - s, "close", 5))
            f->flags |= H1_F_CONN_CLOSE;
        else if (ieq(b + s, e - s, "keep-alive", 10))
            f->flags |= H1_F_CONN_KEEPALIVE;
        else if (ieq(b + s, e - s, "upgrade", 7))
            f->flags |= F_CONN_UPGRADE;
    }
}

static inline int parse_head(const unsigned char *b, size_t len, size_t start, const h1_limits *lim,
                             uint32_t *out, char *copy, int simd) {
    /* Offsets are uint32 and the word count an int: refuse arguments that could overflow them. */
    if (start > len || len > (size_t)UINT32_MAX || lim->max_headers > (1u << 24)) return -H1_E_ARGS;
    /* Only the first max_head bytes are looked at; running out of them is 431 if more bytes
     * exist, "incomplete" otherwise. */
    size_t avail = len - start;
    int truncated = avail > lim->max_head;
    size_t end = truncated ? start + lim->max_head : len;
#define NEED(pos)                                                                              \
    do {                                                                                       \
        if ((pos) >= end) return truncated ? -H1_E_HEAD_TOO_LARGE : 0;                         \
    } while (0)

    size_t p = start;
    /* 9112 2.2: ignore empty lines before the request-line (CRLF only). */
    for (;;) {
        NEED(p);
        if (b[p] == '\r') {
            NEED(p + 1);
            if (b[p + 1] != '\n') return -H1_E_EOL;
            p += 2;
        } else if (b[p] == '\n') {
            return -H1_E_EOL;
        } else {
            break;
        }
    }

    /* method = token SP */
    size_t ms = p;
    while (p < end && TCHAR[b[p]]) p++;
    NEED(p);
    if (p == ms || b[p] != ' ') return -H1_E_METHOD;
    size_t me = p++;

    /* request-target SP */
    size_t ts = p;
    size_t q = scan_target(b, p, end, simd);
    if (q - ts > lim->max_target) return -H1_E_TARGET_TOO_LONG;
    NEED(q);
    if (b[q] != ' ' || q == ts) return -H1_E_TARGET;
    size_t te = q;
    p = q + 1;

    /* HTTP-version = "HTTP/" DIGIT "." DIGIT, then CRLF */
    static const char http[5] = {'H', 'T', 'T', 'P', '/'};
    for (int i = 0; i < 5; i++, p++) {
        NEED(p);
        if (b[p] != (unsigned char)http[i]) return -H1_E_VERSION;
    }
    NEED(p);
    unsigned major = (unsigned)b[p] - '0';
    if (major > 9) return -H1_E_VERSION;
    p++;
    NEED(p);
    if (b[p] != '.') return -H1_E_VERSION;
    p++;
    NEED(p);
    unsigned minor = (unsigned)b[p] - '0';
    if (minor > 9) return -H1_E_VERSION;
    p++;
    NEED(p);
    if (b[p] == '\n') return -H1_E_EOL;
    if (b[p] != '\r') return -H1_E_VERSION;
    p++;
    NEED(p);
    if (b[p] != '\n') return -H1_E_EOL;
    p++;
    if (major != 1 || minor > 1) return -H1_E_VERSION_UNSUPPORTED;

    if (copy) {
        memcpy(copy, b + ms, me - ms);
        copy[me - ms] = '\0';
        memcpy(copy + (me - ms) + 1, b + ts, te - ts);
    }
    /* bytes written to copy so far ("method\0target"); each header adds "\0name\0value" */
    size_t w = (me - ms) + 1 + (te - ts);

    framing f = {0, 0, 0, 0, 0, 0, 0};
    uint32_t nh = 0;
    uint32_t *h = out + H1_OUT_HEADERS;
    for (;;) {
        NEED(p);
        unsigned char c = b[p];
        if (c == '\r') {
            NEED(p + 1);
            if (b[p + 1] != '\n') return -H1_E_EOL;
            p += 2;
            break;
        }
        if (c == '\n') return -H1_E_EOL;
        if (is_ows(c)) return -H1_E_OBS_FOLD;
        if (nh >= lim->max_headers) return -H1_E_TOO_MANY_HEADERS;

        size_t ns = p;
        while (p < end && TCHAR[b[p]]) p++;
        NEED(p);
        c = b[p];
        if (c != ':') {
            if (p == ns) return -H1_E_HEADER_NAME;
            if (is_ows(c)) return -H1_E_WS_BEFORE_COLON;
            if (c == '\r' || c == '\n') return -H1_E_NO_COLON;
            return -H1_E_HEADER_NAME;
        }
        if (p == ns) return -H1_E_HEADER_NAME;
        size_t ne = p++;

        while (p < end && is_ows(b[p])) p++;
        size_t vs = p;
        p = scan_value(b, p, end, simd);
        NEED(p);
        if (b[p] != '\r') return b[p] == '\n' ? -H1_E_EOL : -H1_E_HEADER_VALUE;
        NEED(p + 1);
        if (b[p + 1] != '\n') return -H1_E_EOL;
        size_t ve = p;
        while (ve > vs && is_ows(b[ve - 1])) ve--;
        p += 2;

        int k = framing_name(b + ns, ne - ns);
        int rc = 0;
        switch (k) {
        case K_CONTENT_LENGTH:
            rc = on_content_length(&f, b, vs, ve);
            break;
        case K_TRANSFER_ENCODING:
            rc = on_transfer_encoding(&f, b, vs, ve);
            break;
        case K_CONNECTION:
            on_connection(&f, b, vs, ve);
            break;
        case K_EXPECT:
            if (ieq(b + vs, ve - vs, "100-continue", 12)) f.flags |= H1_F_EXPECT_CONTINUE;
            break;
        case K_UPGRADE:
            f.flags |= F_HAS_UPGRADE;
            break;
        case K_HOST:
            /* 9112 3.2: more than one Host field line is a 400. */
            if (++f.hosts > 1) rc = -H1_E_DUP_HOST;
            break;
        default:
            break;
        }
        if (rc) return rc;
        h[0] = (uint32_t)ns;
        h[1] = (uint32_t)ne;
        h[2] = (uint32_t)vs;
        h[3] = (uint32_t)ve;
        h += 4;
        nh++;
        if (copy) {
            /* "\0name\0value": never longer than the "name:value\r\n" it came from */
            copy[w++] = '\0';
            for (size_t i = ns; i < ne; i++) {
                unsigned char c2 = b[i];
                copy[w++] = (char)(c2 >= 'A' && c2 <= 'Z' ? c2 | 0x20 : c2);
            }
            copy[w++] = '\0';
            memcpy(copy + w, b + vs, ve - vs);
            w += ve - vs;
        } else {
            w += 1 + (ne - ns) + 1 + (ve - vs);
        }
    }
#undef NEED

    /* Message framing, 9112 6.1 and 6.3. */
    if (f.has_te) {
        if (f.has_cl) return -H1_E_CL_AND_TE; /* 6.1: MAY reject; it is the smuggling classic */
        if (minor == 0) return -H1_E_TE_HTTP10;   /* 6.1: framing of a 1.0 message with TE is faulty */
        if (!f.te_chunked) return -H1_E_TE_NOT_CHUNKED; /* 6.3 (4): MUST respond 400 */
        if (f.te_unknown) return -H1_E_TE_UNKNOWN;      /* 6.1: SHOULD respond 501 */
        f.flags |= H1_F_CHUNKED;
    }
    uint32_t flags = f.flags & (H1_F_CONN_CLOSE | H1_F_CONN_KEEPALIVE | H1_F_EXPECT_CONTINUE |
                                H1_F_CHUNKED);
    if ((f.flags & F_CONN_UPGRADE) && (f.flags & F_HAS_UPGRADE)) flags |= H1_F_UPGRADE;

    out[H1_OUT_END] = (uint32_t)p;
    out[H1_OUT_METHOD_START] = (uint32_t)ms;
    out[H1_OUT_METHOD_END] = (uint32_t)me;
    out[H1_OUT_TARGET_START] = (uint32_t)ts;
    out[H1_OUT_TARGET_END] = (uint32_t)te;
    out[H1_OUT_MINOR] = minor;
    if (f.has_cl) {
        out[H1_OUT_CL_HI] = (uint32_t)(f.cl >> 32);
        out[H1_OUT_CL_LO] = (uint32_t)(f.cl & 0xFFFFFFFFu);
    } else {
        out[H1_OUT_CL_HI] = 0xFFFFFFFFu;
        out[H1_OUT_CL_LO] = 0xFFFFFFFFu;
    }
    out[H1_OUT_FLAGS] = flags;
    out[H1_OUT_NHEADERS] = nh;
    out[H1_OUT_COPY_LEN] = (uint32_t)w;
    return (int)(H1_OUT_HEADERS + 4 * nh);
}

int h1_parse_head(const char *buf, size_t len, size_t start, const h1_limits *lim, uint32_t *out,
                  char *copy) {
    return parse_head((const unsigned char *)buf, len, start, lim, out, copy, 1);
}

int h1_parse_head_scalar(const char *buf, size_t len, size_t start, const h1_limits *lim,
                         uint32_t *out, char *copy) {
    return parse_head((const unsigned char *)buf, len, start, lim, out, copy, 0);
}

int h1_parse_head_ctx(const char *buf, size_t len, size_t start, const h1_ctx *ctx) {
    return parse_head((const unsigned char *)buf, len, start, &ctx->lim, ctx->out, ctx->copy,
                      ctx->simd);
}
