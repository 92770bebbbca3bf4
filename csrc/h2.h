/* HTTP/2 server session: a thin shim over the system libnghttp2 (RFC 9113), loaded at run time.
 *
 * Nothing links against libnghttp2 and no nghttp2 header is needed to build: h2.c declares the
 * few nghttp2 prototypes and struct layouts it uses (from nghttp2's public API documentation,
 * v1 API only, which is all that 1.52 has) and finds the functions with dlopen/dlsym in
 * h2_load(). The extension therefore builds and imports everywhere; a missing library is an
 * error returned by h2_load(), and the Python side then falls back to the `h2` library.
 *
 * Every nghttp2 callback stays in C. One h2_recv() call feeds one received chunk and returns the
 * number of events it produced, written to view->ev as flat records that point into
 * view->arena (header blocks, PING payloads) or into the caller's input (DATA payloads, flag
 * H2_EVF_IN_INPUT). A request header block is laid out as
 *     "method\0path\0scheme\0authority\0name\0value\0name\0value"
 * (no trailing NUL; an absent pseudo-header is empty), a trailer block as "name\0value...":
 * nghttp2 refuses NUL in field values and the shim checks again, so Python turns a block into
 * all its bytes objects with one split.
 *
 * Output: h2_send() runs nghttp2_session_mem_send until nothing is left and returns the bytes
 * gathered in view->out (valid until the next call on the session). Response bodies are copied
 * once, into a per-stream buffer the DATA frames are read from; an empty buffer on a stream that
 * is not finished defers the stream (NGHTTP2_ERR_DEFERRED) until h2_send_data() resumes it.
 * A whole body submitted with H2_EXTERNAL is not copied at all: the caller keeps it alive and
 * unchanged, the DATA frames' headers go to view->out and each payload is listed in view->segs
 * (where in out it goes, and which bytes of the body), so the caller writes body slices straight
 * from its own object (a gathered write); view->released lists the streams whose external body
 * the shim no longer reads (all framed, or the stream is gone): the caller drops it then.
 * A stream whose buffer went above max_send_buffer and came back to it or below is listed in
 * view->drained by h2_send().
 *
 * Request-body flow control: automatic WINDOW_UPDATE is off; h2_consume() gives the window back
 * as the application reads (a stream closed with unconsumed bytes gives them back to the
 * connection window by itself).
 *
 * Results: >= 0 success; H2_GONE the stream no longer exists (closed or reset); other negative
 * values are nghttp2 error codes (<= H2_FATAL: the session is unusable, view->done is set after
 * whatever GOAWAY could still be queued).
 */
#ifndef GRANIAN_H2_H
#define GRANIAN_H2_H

#include <stddef.h>
#include <stdint.h>

/* CDEF BEGIN */
typedef struct {
    uint32_t max_concurrent_streams;         /* SETTINGS_MAX_CONCURRENT_STREAMS */
    uint32_t initial_stream_window_size;     /* SETTINGS_INITIAL_WINDOW_SIZE */
    uint32_t initial_connection_window_size; /* sent as a WINDOW_UPDATE on stream 0 */
    uint32_t max_frame_size;                 /* SETTINGS_MAX_FRAME_SIZE */
    uint32_t max_header_list_size;           /* SETTINGS_MAX_HEADER_LIST_SIZE, enforced: 431 */
    uint32_t header_table_size;              /* SETTINGS_HEADER_TABLE_SIZE, 0 = leave at 4096 */
    uint32_t max_send_buffer;                /* per-stream buffered bytes before "drained" */
    uint32_t max_empty_frames;               /* consecutive empty DATA frames, 0 = no limit */
    uint32_t max_continuations;              /* CONTINUATION frames per header block */
    uint32_t max_settings;                   /* entries per received SETTINGS frame */
    uint32_t max_outbound_ack;               /* queued PING/SETTINGS acks before "flooded" */
    uint32_t reset_burst;                    /* received RST_STREAM token bucket: size */
    uint32_t reset_rate;                     /* ... and tokens per second */
} h2_params;

typedef struct {
    int32_t type;      /* H2_EV_* */
    int32_t stream_id; /* GOAWAY: last stream id; CLOSE, SETTINGS_ACK, PING_ACK: 0 */
    uint32_t flags;    /* H2_EVF_* */
    uint32_t off;      /* payload: offset into the arena, or into the input (H2_EVF_IN_INPUT) */
    uint32_t len;      /* payload length */
    uint32_t code;     /* RESET, GOAWAY, CLOSE: error code; DATA: flow-controlled length */
} h2_event;

typedef struct {
    size_t out_off;    /* the payload goes before view->out[out_off] (after its frame header) */
    int32_t stream_id; /* whose external body */
    uint32_t len;      /* payload length */
    size_t off;        /* offset of the payload in that body */
} h2_seg;

typedef struct {
    h2_event *ev;      /* events of the last h2_recv (and of h2_send calls since) */
    uint32_t nev;
    uint32_t ndrained;
    const char *arena; /* header blocks and PING payloads of those events */
    size_t arena_len;
    const char *out;   /* bytes gathered by the last h2_send */
    int32_t *drained;  /* stream ids that went back under max_send_buffer in the last h2_send */
    int done;          /* nghttp2 wants neither to read nor to write: close the connection */
    int lib_error;     /* the nghttp2 error that ended the session, 0 if none */
    uint32_t goaway_code; /* error code of the GOAWAY the session sent, if any */
    uint32_t nstreams; /* streams alive in the shim */
    h2_seg *segs;      /* external payloads of view->out (cleared with it) */
    uint32_t nsegs;
    uint32_t nreleased; /* the caller reads view->released, then sets this to 0 */
    int32_t *released; /* streams whose external body the shim no longer reads */
} h2_view;

enum {
    H2_EV_REQUEST = 1,      /* a request header block: off/len = block, END_STREAM flag */
    H2_EV_DATA = 2,         /* request body bytes: off/len, code = flow-controlled length */
    H2_EV_TRAILERS = 3,     /* request trailers (the body ends): off/len = block */
    H2_EV_RESET = 4,        /* the stream ended before the response did: code */
    H2_EV_GOAWAY = 5,       /* the peer sent GOAWAY: stream_id = last stream id, code */
    H2_EV_SETTINGS_ACK = 6, /* the peer acknowledged our SETTINGS */
    H2_EV_PING_ACK = 7,     /* the peer answered our PING: off/len = 8 opaque bytes */
    H2_EV_CLOSE = 8         /* the session stopped reading: code = GOAWAY error code */
};

enum {
    H2_EVF_END_STREAM = 1, /* the request (body) ends with this event */
    H2_EVF_IN_INPUT = 2    /* off is an offset into the chunk given to h2_recv */
};

enum {
    H2_GONE = -1,    /* the stream no longer exists */
    H2_EHEADER = -2, /* a response header name or value is not allowed in HTTP/2 */
    H2_ESTATE = -3,  /* not allowed in the stream's state (e.g. data after the end) */
    H2_EINVAL = -4,  /* an argument is out of range */
    H2_ENOMEM = -901, /* NGHTTP2_ERR_NOMEM */
    H2_FATAL = -900  /* NGHTTP2_ERR_FATAL: nghttp2 results at or below it end the session */
};

/* Response submission flags. */
enum {
    H2_END = 1,     /* this call ends the response */
    H2_EXTERNAL = 2 /* with H2_END: the body is the caller's, kept alive until released */
};

typedef struct h2_session h2_session;

int h2_load(const char *path);          /* 0 loaded (or already), < 0 not loadable */
const char *h2_load_error(void);        /* why h2_load failed */
const char *h2_version(void);           /* libnghttp2 version string, "" if not loaded */
int h2_has_reset_rate_limit(void);      /* 1 if the RST_STREAM rate limit symbol exists */
int h2_has_max_continuations(void);     /* 1 if the CONTINUATION limit symbol exists */
const char *h2_strerror(int code);

h2_session *h2_session_new(const h2_params *params); /* NULL on failure; SETTINGS queued */
void h2_session_free(h2_session *s);
h2_view *h2_session_view(h2_session *s);
int h2_upgrade(h2_session *s, const char *settings, size_t len, int head_request);

int h2_recv(h2_session *s, const char *in, size_t len); /* number of events, or < 0 */
long h2_send(h2_session *s);                               /* bytes in view->out, or < 0 */

int h2_respond(h2_session *s, int32_t stream_id, int status, const char *hdrs, size_t hdrs_len,
               uint32_t nhdrs, const char *body, size_t body_len, int flags);
int h2_informational(h2_session *s, int32_t stream_id, int status, const char *hdrs,
                     size_t hdrs_len, uint32_t nhdrs);
long h2_send_data(h2_session *s, int32_t stream_id, const char *data, size_t len, int flags);
int h2_trailers(h2_session *s, int32_t stream_id, const char *hdrs, size_t hdrs_len,
                uint32_t nhdrs);
int h2_reset(h2_session *s, int32_t stream_id, uint32_t code);
int h2_consume(h2_session *s, int32_t stream_id, size_t n);
long h2_buffered(h2_session *s, int32_t stream_id);
int h2_goaway(h2_session *s, uint32_t code, int32_t last_stream_id); /* < 0: last processed */
int h2_shutdown_notice(h2_session *s);
int h2_terminate(h2_session *s, uint32_t code);
int h2_ping(h2_session *s, const char *opaque8);
int h2_set_local_window(h2_session *s, int32_t stream_id, int32_t size);
int32_t h2_remote_window(h2_session *s, int32_t stream_id); /* 0: the connection's */
int32_t h2_last_stream_id(h2_session *s);
/* CDEF END */

#endif
