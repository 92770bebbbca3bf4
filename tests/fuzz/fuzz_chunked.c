/* libFuzzer harness for the chunked decoder (csrc/chunked.c).
 *
 * Input: 2 bytes choosing where to split the stream, then the body bytes. Checks, beyond
 * ASan/UBSan: decoding in place (dst == src) and decoding in three pieces into a separate
 * buffer give the same result, the same bytes and the same end; produced never exceeds
 * consumed; an error is sticky.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chunked.h"
#include "h1.h"

static void check(int cond) {
    if (!cond) abort();
}

static void init(h1_chunked *st) {
    memset(st, 0, sizeof *st);
    st->max_line = 64; /* small limits so the fuzzer reaches them */
    st->max_trailer = 128;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    size_t cut1 = data[0], cut2 = data[0] + (size_t)data[1];
    data += 2;
    size -= 2;
    if (cut1 > size) cut1 = size;
    if (cut2 > size) cut2 = size;

    /* 1: whole, in place */
    char *inplace = malloc(size ? size : 1);
    memcpy(inplace, data, size);
    h1_chunked a;
    init(&a);
    int rc_a = h1_chunked_decode(&a, inplace, size, 0, inplace);
    check(a.end <= size && a.produced <= a.end);

    /* 2: in three pieces, each fed from a fresh exact-size buffer holding the unconsumed rest */
    char *out = malloc(size ? size : 1);
    size_t produced = 0, consumed = 0, have = 0;
    size_t bounds[3] = {cut1, cut2, size};
    h1_chunked b;
    init(&b);
    int rc_b = 0;
    for (int i = 0; i < 3; i++) {
        have = bounds[i];
        size_t n = have - consumed;
        char *piece = malloc(n ? n : 1);
        memcpy(piece, data + consumed, n);
        rc_b = h1_chunked_decode(&b, piece, n, 0, out + produced);
        free(piece);
        check(b.end <= n && b.produced <= b.end);
        produced += b.produced;
        consumed += b.end;
        if (rc_b != 0) break;
        check(consumed == have); /* "need more" means everything given was consumed */
    }
    check(rc_a == rc_b);
    if (rc_a >= 0) {
        check(a.produced == produced);
        check(memcmp(inplace, out, produced) == 0);
        check(rc_a == 0 || a.end == consumed);
    }
    if (rc_a < 0) {
        /* sticky */
        check(h1_chunked_decode(&a, inplace, size, 0, inplace) == rc_a);
    }
    free(inplace);
    free(out);
    return 0;
}
