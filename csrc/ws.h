/* WebSocket frame codec (RFC 6455 section 5), written for granian.
 *
 * One ws_decode() call per received chunk: it parses every frame header in buf[0:len),
 * checks the frame-level rules of RFC 6455 (and RFC 7692's use of RSV1), unmasks the payload
 * bytes a vector at a time into one output buffer and describes what it wrote as records.
 * No malloc, no globals, no Python.h, no callbacks. The decoder state lives in a ws_decoder
 * the caller owns (one per connection, about 100 bytes); the output space lives in a ws_out
 * the caller may share between connections of one thread (the Python side reads every record
 * back before the next call); the decoder points at it, so a call takes three arguments.
 *
 * Frames may be split anywhere: a header that stops short is kept in the decoder (14 bytes at
 * most) and completed by the next call; a payload that stops short gives a record for the
 * bytes that did arrive, so a text message can be UTF-8 checked as its bytes arrive.
 *
 * Records (3 uint32 words each, in o->rec):
 *   [0] info: bits 0-7 the frame's first header byte (FIN 0x80, RSV1-3 0x70, opcode 0x0F),
 *             WS_REC_START when the frame's header was parsed by this record (the record is
 *             the frame's first), WS_REC_END when the frame's payload is complete;
 *   [1] offset of this record's payload bytes in o->dst (unmasked);
 *   [2] number of payload bytes.
 * A frame whose header arrived but none of its payload yields a START record of 0 bytes, so
 * the header's facts are known before its payload arrives.
 *
 * Result (return value, 64-bit):
 *   >= 0            everything up to len was consumed. The value is a summary, so the common
 *                   case (one whole frame per chunk) needs no record read back:
 *                     bits 0-11   the info word of the last record written (0 if none),
 *                     bits 12-31  the number of records written,
 *                     bits 32-62  the payload bytes written to o->dst (the first record of a
 *                                 call starts at offset 0, so with one record, its length);
 *   -WS_E_FULL      o->rec or o->dst is full: o->nrec records were written and o->consumed is
 *                   the absolute index reached; read the records, then ws_decode_from() there;
 *   -WS_E_*         a protocol error (sticky: later calls return it again). The o->nrec records
 *                   before the offending frame are valid and the caller should act on them
 *                   first; o->consumed is where the offending frame starts or stops.
 * Frame rules checked here (each maps to close code 1002 unless noted):
 *   client frames must be masked (5.1, when require_mask); RSV bits no extension owns (5.2;
 *   rsv_allowed is given for the first frame of a data message only: RFC 7692 6.1 puts RSV1 on
 *   the first frame alone and never on control frames); reserved opcodes (5.2); control frames
 *   fragmented or longer than 125 bytes (5.5); a continuation without a message, a new data
 *   message inside another (5.4); a 64-bit length with its most significant bit set (5.2);
 *   a data message longer than max_message (1009, 7.4.1), counted over its frames at header
 *   time, before any of its payload is buffered; compressed messages (RSV1 on their first
 *   frame) are not counted here: their bound is on the decompressed size, in Python.
 * Lengths encoded in more bytes than needed are accepted (5.2 tells the sender to be minimal;
 * websockets and tungstenite accept them too).
 */
#ifndef GRANIAN_WS_H
#define GRANIAN_WS_H

#include <stddef.h>
#include <stdint.h>

/* CDEF BEGIN */
enum {
    WS_REC_START = 0x100,
    WS_REC_END = 0x200,
    WS_REC_WORDS = 3
};

enum {
    WS_E_UNMASKED = 1,
    WS_E_RSV = 2,
    WS_E_OPCODE = 3,
    WS_E_CONTROL_FRAGMENTED = 4,
    WS_E_CONTROL_TOO_LONG = 5,
    WS_E_NO_MESSAGE = 6,
    WS_E_IN_MESSAGE = 7,
    WS_E_LENGTH = 8,
    WS_E_TOO_BIG = 9,
    WS_E_FULL = 10,
    WS_E_ARGS = 11
};

typedef struct {
    uint32_t *rec;    /* WS_REC_WORDS words per record */
    uint32_t rec_cap; /* records, below 2**20 (the summary's count field) */
    uint32_t nrec;    /* out: records written by the last call */
    char *dst;        /* unmasked payload bytes */
    size_t dst_cap;   /* bytes; at most 2**31 - 1 are used (the summary's byte field) */
    size_t consumed;  /* out: absolute index in buf reached by the last call */
    int simd;         /* 0: unmask with the word loop only (tests cover both paths) */
} ws_out;

typedef struct {
    /* configuration, set once (ws_decoder_init) */
    ws_out *out;           /* where records and payload go: the thread's output space */
    uint64_t max_message;  /* payload bytes of an uncompressed data message; 0: unbounded */
    uint32_t rsv_allowed;  /* RSV bits of byte 0 an extension owns: 0x40 with permessage-deflate */
    uint32_t require_mask; /* 1 on the server side */
    /* state */
    uint64_t remaining;    /* payload bytes of the current frame still to come */
    uint64_t msg_len;      /* payload bytes of the current data message so far */
    uint32_t in_payload;   /* 1 between a frame's header and the end of its payload */
    uint32_t b0;           /* first header byte of the current frame */
    uint32_t masked;
    uint32_t phase;        /* index in key of the next payload byte's mask byte */
    uint32_t in_message;   /* a data message was started and its FIN frame not seen yet */
    uint32_t compressed;   /* the current data message has RSV1 on its first frame */
    int32_t error;         /* sticky WS_E_* */
    uint32_t hdr_len;      /* bytes of a split header kept in hdr */
    unsigned char key[4];
    unsigned char hdr[14];
} ws_decoder;

void ws_decoder_init(ws_decoder *d, ws_out *out, uint64_t max_message, uint32_t rsv_allowed,
                     int require_mask);
/* Decodes buf[0:len). */
int64_t ws_decode(ws_decoder *d, const char *buf, size_t len);
/* Decodes buf[start:len): after -WS_E_FULL, from o->consumed. */
int64_t ws_decode_from(ws_decoder *d, const char *buf, size_t len, size_t start);
/* Writes a frame header (2, 4 or 10 bytes; 4 more with a mask key) to out, which holds at
 * least 14 bytes; b0 is FIN | RSV | opcode; key is NULL for server frames (5.1). Returns the
 * header's length, the minimal encoding of len (5.2). */
size_t ws_frame_header(char *out, unsigned int b0, uint64_t len, const char *key);
/* dst[i] = src[i] ^ key[(phase + i) % 4] for i < n; dst may be src (in place). */
void ws_mask(char *dst, const char *src, size_t n, const char *key, uint32_t phase);
/* CDEF END */

#endif
