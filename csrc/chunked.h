/* Resumable chunked transfer-coding decoder (RFC 9112 section 7.1).
 *
 * State lives in an h1_chunked the caller owns (zero it, then set the two limits); each call
 * decodes src[start:len) and writes the chunk-data to dst. dst may be src + start: the decoder
 * never writes ahead of what it has read, so the body can be decoded in place.
 *
 * Result: 1 the last chunk and the trailer section are consumed (st->end points just past them,
 *         pipelined bytes follow), 0 more bytes are needed (everything up to len was consumed),
 *         < 0 -H1_E_CHUNK_* error (sticky: later calls return it again).
 * st->end is the absolute index in src consumed by this call, st->produced the bytes written.
 */
#ifndef GRANIAN_CHUNKED_H
#define GRANIAN_CHUNKED_H

#include <stddef.h>
#include <stdint.h>

/* CDEF BEGIN */
typedef struct {
    uint64_t size;        /* chunk-size being read, then the chunk-data bytes still to come */
    uint32_t state;
    uint32_t line_len;    /* bytes of the current chunk-size line (size + extensions) */
    uint32_t trailer_len; /* bytes of the trailer section so far */
    uint32_t max_line;    /* limit on line_len */
    uint32_t max_trailer; /* limit on trailer_len */
    int32_t error;
    size_t end;           /* out: absolute index in src just past the consumed bytes */
    size_t produced;      /* out: chunk-data bytes written to dst by this call */
} h1_chunked;

enum {
    H1_E_CHUNK_SIZE = 30,
    H1_E_CHUNK_OVERFLOW = 31,
    H1_E_CHUNK_EXT = 32,
    H1_E_CHUNK_EOL = 33,
    H1_E_TRAILER = 34,
    H1_E_CHUNK_LINE_TOO_LONG = 35,
    H1_E_TRAILER_TOO_LARGE = 36
};

int h1_chunked_decode(h1_chunked *st, const char *src, size_t len, size_t start, char *dst);
/* CDEF END */

#endif
