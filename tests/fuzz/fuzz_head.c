/* libFuzzer harness for the request-head parser (csrc/h1.c).
 *
 * Input: 3 bytes choosing the limits, then the bytes of the buffer. Checks, beyond ASan/UBSan:
 * - the SSE2 and the scalar path give identical results, offsets and copies;
 * - every offset lies inside the buffer, spans are ordered, END follows all of them;
 * - the answer for a prefix never contradicts the answer for the whole buffer
 *   (incomplete → anything; error → the same error; complete → the same result).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "h1.h"

#define MAX_HEADERS_FUZZ 64

static void check(int cond) {
    if (!cond) abort();
}

typedef struct {
    int rc;
    uint32_t out[H1_OUT_HEADERS + 4 * MAX_HEADERS_FUZZ];
    char *copy;
} result;

static void run(result *r, const char *buf, size_t len, size_t start, const h1_limits *lim, int simd) {
    memset(r->out, 0xAB, sizeof r->out);
    r->rc = simd ? h1_parse_head(buf, len, start, lim, r->out, r->copy)
                 : h1_parse_head_scalar(buf, len, start, lim, r->out, r->copy);
}

static void check_offsets(const result *r, size_t len, size_t start) {
    if (r->rc <= 0) return;
    const uint32_t *o = r->out;
    uint32_t end = o[H1_OUT_END], nh = o[H1_OUT_NHEADERS];
    check(r->rc == (int)(H1_OUT_HEADERS + 4 * nh));
    check(end <= len && end > start);
    check(start <= o[H1_OUT_METHOD_START] && o[H1_OUT_METHOD_START] < o[H1_OUT_METHOD_END]);
    check(o[H1_OUT_METHOD_END] < o[H1_OUT_TARGET_START]);
    check(o[H1_OUT_TARGET_START] < o[H1_OUT_TARGET_END] && o[H1_OUT_TARGET_END] < end);
    check(o[H1_OUT_MINOR] <= 1);
    uint32_t prev = o[H1_OUT_TARGET_END];
    size_t copy_len = (o[H1_OUT_METHOD_END] - o[H1_OUT_METHOD_START]) + 1 +
                      (o[H1_OUT_TARGET_END] - o[H1_OUT_TARGET_START]);
    for (uint32_t i = 0; i < nh; i++) {
        const uint32_t *h = o + H1_OUT_HEADERS + 4 * i;
        check(prev < h[0] && h[0] < h[1] && h[1] < h[2] && h[2] <= h[3] && h[3] < end);
        prev = h[3];
        copy_len += 1 + (h[1] - h[0]) + 1 + (h[3] - h[2]);
    }
    check(o[H1_OUT_COPY_LEN] == copy_len); /* "method\0target" + "\0name\0value" each */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    h1_limits lim;
    lim.max_head = 16u + (uint32_t)data[0] * 8u;   /* 16 .. 2056 */
    lim.max_headers = data[1] % (MAX_HEADERS_FUZZ + 1);
    lim.max_target = (uint32_t)data[2] * 2u;       /* 0 .. 510 */
    size_t start = data[2] % 4;
    data += 3;
    size -= 3;
    if (start > size) start = size;

    /* an exact-size heap copy, so any read past the end is an ASan report */
    char *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    result a, b, p;
    a.copy = malloc(lim.max_head + 1);
    b.copy = malloc(lim.max_head + 1);
    p.copy = malloc(lim.max_head + 1);

    run(&a, buf, size, start, &lim, 1);
    run(&b, buf, size, start, &lim, 0);
    check(a.rc == b.rc);
    check(a.rc >= -H1_E_ARGS);
    if (a.rc > 0) {
        check(memcmp(a.out, b.out, (size_t)a.rc * sizeof(uint32_t)) == 0);
        check(memcmp(a.copy, b.copy, a.out[H1_OUT_COPY_LEN]) == 0);
        /* the copy holds exactly the spans, names lower-cased */
        const uint32_t *o = a.out;
        size_t w = 0;
        for (uint32_t k = o[H1_OUT_METHOD_START]; k < o[H1_OUT_METHOD_END]; k++) check(a.copy[w++] == buf[k]);
        check(a.copy[w++] == '\0');
        for (uint32_t k = o[H1_OUT_TARGET_START]; k < o[H1_OUT_TARGET_END]; k++) check(a.copy[w++] == buf[k]);
        for (uint32_t i = 0; i < o[H1_OUT_NHEADERS]; i++) {
            const uint32_t *h = o + H1_OUT_HEADERS + 4 * i;
            check(a.copy[w++] == '\0');
            for (uint32_t k = h[0]; k < h[1]; k++) {
                char c = buf[k];
                check(a.copy[w++] == ((c >= 'A' && c <= 'Z') ? (char)(c | 0x20) : c));
            }
            check(a.copy[w++] == '\0');
            for (uint32_t k = h[2]; k < h[3]; k++) check(a.copy[w++] == buf[k]);
        }
        check_offsets(&a, size, start);
    }

    /* prefix consistency, for every prefix length up to a bound (keeps runs fast) */
    size_t step = size > 64 ? size / 64 : 1;
    for (size_t n = start; n < size; n += step) {
        char *pre = malloc(n ? n : 1);
        memcpy(pre, buf, n);
        run(&p, pre, n, start, &lim, (int)(n & 1));
        free(pre);
        if (p.rc == 0) continue;
        check(p.rc == a.rc);
        if (p.rc > 0) check(memcmp(p.out, a.out, (size_t)a.rc * sizeof(uint32_t)) == 0);
        break;
    }
    free(a.copy);
    free(b.copy);
    free(p.copy);
    free(buf);
    return 0;
}
