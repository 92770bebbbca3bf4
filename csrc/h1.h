/* HTTP/1.x request-head parser (RFC 9110 / RFC 9112), written for granian.
 *
 * One call parses a whole request head that starts at buf[start] and reports every span as an
 * absolute offset into the caller's buffer: no malloc, no globals, no Python.h, no callbacks.
 * The caller may call again on a longer buffer when the result is "incomplete"; the answer for a
 * prefix never contradicts the answer for the whole (errors are reported at the first offending
 * byte, so a bad head is refused before its end arrives).
 *
 * Result (return value):  > 0  complete: number of uint32 words written to `out`
 *                          == 0 incomplete, still within the limits
 *                          < 0  -H1_E_* error code (the Python side maps it to a status)
 *
 * `out` layout (H1_OUT_*), capacity at least H1_OUT_HEADERS + 4 * lim->max_headers words:
 *   [END] absolute index just past the final CRLF CRLF
 *   [METHOD_START, METHOD_END] [TARGET_START, TARGET_END] [MINOR]
 *   [CL_HI, CL_LO] Content-Length, CL_HI == 0xFFFFFFFF when absent
 *   [FLAGS] H1_F_* bits   [NHEADERS]   [COPY_LEN] bytes written to `copy`
 *   then per header: name_start, name_end, value_start, value_end (value without OWS).
 *
 * `copy` (may be NULL; capacity at least lim->max_head bytes): receives the method, the target
 * and the header fields as "method\0target\0name\0value\0name\0value" with the names lower-cased.
 * NUL can be in none of them (it is refused), so the caller can build every string with one
 * split instead of one slice each: the Python side's hot path.
 *
 * h1_parse_head_ctx() is the same call with its arguments bundled in one h1_ctx, so the Python
 * side converts one pointer instead of four arguments per request.
 */
#ifndef GRANIAN_H1_H
#define GRANIAN_H1_H

#include <stddef.h>
#include <stdint.h>

/* CDEF BEGIN */
typedef struct {
    uint32_t max_head;    /* bytes from the first byte of the head through its final CRLF CRLF */
    uint32_t max_headers; /* header field lines */
    uint32_t max_target;  /* bytes of the request-target */
} h1_limits;

enum {
    H1_OUT_END = 0,
    H1_OUT_METHOD_START = 1,
    H1_OUT_METHOD_END = 2,
    H1_OUT_TARGET_START = 3,
    H1_OUT_TARGET_END = 4,
    H1_OUT_MINOR = 5,
    H1_OUT_CL_HI = 6,
    H1_OUT_CL_LO = 7,
    H1_OUT_FLAGS = 8,
    H1_OUT_NHEADERS = 9,
    H1_OUT_COPY_LEN = 10,
    H1_OUT_HEADERS = 11
};

enum {
    H1_F_CHUNKED = 1,
    H1_F_CONN_CLOSE = 2,
    H1_F_CONN_KEEPALIVE = 4,
    H1_F_EXPECT_CONTINUE = 8,
    H1_F_UPGRADE = 16
};

enum {
    H1_E_METHOD = 1,
    H1_E_TARGET = 2,
    H1_E_TARGET_TOO_LONG = 3,
    H1_E_VERSION = 4,
    H1_E_VERSION_UNSUPPORTED = 5,
    H1_E_EOL = 6,
    H1_E_HEADER_NAME = 7,
    H1_E_WS_BEFORE_COLON = 8,
    H1_E_NO_COLON = 9,
    H1_E_HEADER_VALUE = 10,
    H1_E_OBS_FOLD = 11,
    H1_E_HEAD_TOO_LARGE = 12,
    H1_E_TOO_MANY_HEADERS = 13,
    H1_E_CONTENT_LENGTH = 14,
    H1_E_CONTENT_LENGTH_MISMATCH = 15,
    H1_E_CL_AND_TE = 16,
    H1_E_TE_SYNTAX = 17,
    H1_E_TE_NOT_CHUNKED = 18,
    H1_E_TE_UNKNOWN = 19,
    H1_E_TE_HTTP10 = 20,
    H1_E_DUP_HOST = 21,
    H1_E_ARGS = 22
};

int h1_parse_head(const char *buf, size_t len, size_t start, const h1_limits *lim, uint32_t *out,
                  char *copy);
typedef struct {
    h1_limits lim;
    int simd; /* 0: force the scalar path */
    uint32_t *out;
    char *copy;
} h1_ctx;
int h1_parse_head_ctx(const char *buf, size_t len, size_t start, const h1_ctx *ctx);
/* Same result, without the SSE2 fast path: kept so tests and the fuzzer cover the scalar code. */
int h1_parse_head_scalar(const char *buf, size_t len, size_t start, const h1_limits *lim,
                         uint32_t *out, char *copy);
/* CDEF END */

#endif
