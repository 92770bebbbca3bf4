/* HTTP/2 server session over the system libnghttp2, loaded with dlopen (contract: h2.h).
 *
 * The nghttp2 declarations below are written from nghttp2's public API documentation
 * (nghttp2.org/documentation/apiref.html), v1 API only: 1.52 has no *2 variants. Only the
 * members this file reads are declared; the _Static_asserts pin every offset it relies on.
 */
#define _POSIX_C_SOURCE 200809L

#include "h2.h"

#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* ---- nghttp2 ABI (public API, v1) ------------------------------------------------------ */

typedef struct nghttp2_session nghttp2_session;
typedef struct nghttp2_session_callbacks nghttp2_session_callbacks;
typedef struct nghttp2_option nghttp2_option;

typedef struct {
    size_t length;
    int32_t stream_id;
    uint8_t type;
    uint8_t flags;
    uint8_t reserved;
} nghttp2_frame_hd;

typedef struct {
    int32_t stream_id;
    int32_t weight;
    uint8_t exclusive;
} nghttp2_priority_spec;

typedef struct {
    uint8_t *name;
    uint8_t *value;
    size_t namelen;
    size_t valuelen;
    uint8_t flags;
} nghttp2_nv;

typedef struct {
    nghttp2_frame_hd hd;
    size_t padlen;
} nghttp2_data;

typedef struct {
    nghttp2_frame_hd hd;
    size_t padlen;
    nghttp2_priority_spec pri_spec;
    nghttp2_nv *nva;
    size_t nvlen;
    int cat; /* nghttp2_headers_category, an enum */
} nghttp2_headers;

typedef struct {
    nghttp2_frame_hd hd;
    uint32_t error_code;
} nghttp2_rst_stream;

typedef struct {
    int32_t settings_id;
    uint32_t value;
} nghttp2_settings_entry;

typedef struct {
    nghttp2_frame_hd hd;
    uint8_t opaque_data[8];
} nghttp2_ping;

typedef struct {
    nghttp2_frame_hd hd;
    int32_t last_stream_id;
    uint32_t error_code;
    uint8_t *opaque_data;
    size_t opaque_data_len;
    uint8_t reserved;
} nghttp2_goaway;

/* A view of the nghttp2_frame union restricted to the members read here: nghttp2 only ever
 * hands us pointers to its own frames, so the union's full size does not matter. */
typedef union {
    nghttp2_frame_hd hd;
    nghttp2_data data;
    nghttp2_headers headers;
    nghttp2_rst_stream rst_stream;
    nghttp2_ping ping;
    nghttp2_goaway goaway;
} nghttp2_frame;

typedef union {
    int fd;
    void *ptr;
} nghttp2_data_source;

typedef ssize_t (*nghttp2_data_source_read_callback)(nghttp2_session *session, int32_t stream_id,
                                                     uint8_t *buf, size_t length,
                                                     uint32_t *data_flags,
                                                     nghttp2_data_source *source,
                                                     void *user_data);

typedef struct {
    nghttp2_data_source source;
    nghttp2_data_source_read_callback read_callback;
} nghttp2_data_provider;

typedef struct {
    int age;
    int version_num;
    const char *version_str;
    const char *proto_str;
} nghttp2_info;

_Static_assert(offsetof(nghttp2_frame_hd, stream_id) == sizeof(size_t), "frame_hd.stream_id");
_Static_assert(offsetof(nghttp2_frame_hd, type) == sizeof(size_t) + 4, "frame_hd.type");
_Static_assert(offsetof(nghttp2_frame_hd, flags) == sizeof(size_t) + 5, "frame_hd.flags");
_Static_assert(sizeof(nghttp2_frame_hd) == 2 * sizeof(size_t) ||
                   sizeof(nghttp2_frame_hd) == sizeof(size_t) + 8,
               "frame_hd size");
_Static_assert(sizeof(nghttp2_priority_spec) == 12, "priority_spec size");
_Static_assert(sizeof(nghttp2_nv) == 5 * sizeof(void *), "nv size");
_Static_assert(offsetof(nghttp2_nv, namelen) == 2 * sizeof(void *), "nv.namelen");
_Static_assert(offsetof(nghttp2_nv, flags) == 4 * sizeof(void *), "nv.flags");
_Static_assert(offsetof(nghttp2_data, padlen) == sizeof(nghttp2_frame_hd), "data.padlen");
_Static_assert(offsetof(nghttp2_headers, pri_spec) == sizeof(nghttp2_frame_hd) + sizeof(size_t),
               "headers.pri_spec");
_Static_assert(offsetof(nghttp2_headers, cat) ==
                   offsetof(nghttp2_headers, nvlen) + sizeof(size_t),
               "headers.cat");
_Static_assert(offsetof(nghttp2_rst_stream, error_code) == sizeof(nghttp2_frame_hd),
               "rst_stream.error_code");
_Static_assert(offsetof(nghttp2_ping, opaque_data) == sizeof(nghttp2_frame_hd), "ping.opaque");
_Static_assert(offsetof(nghttp2_goaway, error_code) == sizeof(nghttp2_frame_hd) + 4,
               "goaway.error_code");
_Static_assert(sizeof(nghttp2_settings_entry) == 8, "settings_entry size");
_Static_assert(sizeof(nghttp2_data_provider) == 2 * sizeof(void *), "data_provider size");
_Static_assert(offsetof(nghttp2_info, version_str) == sizeof(void *), "info.version_str");
#if defined(__x86_64__) || defined(__aarch64__)
/* The LP64 layouts, spelled out. */
_Static_assert(sizeof(nghttp2_frame_hd) == 16, "frame_hd LP64");
_Static_assert(offsetof(nghttp2_headers, nva) == 40, "headers.nva LP64");
_Static_assert(offsetof(nghttp2_headers, cat) == 56, "headers.cat LP64");
_Static_assert(offsetof(nghttp2_goaway, last_stream_id) == 16, "goaway LP64");
_Static_assert(sizeof(nghttp2_nv) == 40, "nv LP64");
#endif

/* Constants of the public API (frame types and flags are RFC 9113's wire values). */
enum {
    NG_DATA = 0x0,
    NG_HEADERS = 0x1,
    NG_RST_STREAM = 0x3,
    NG_SETTINGS = 0x4,
    NG_PING = 0x6,
    NG_GOAWAY = 0x7,
    NG_FLAG_NONE = 0,
    NG_FLAG_END_STREAM = 0x1,
    NG_FLAG_ACK = 0x1,
    NG_HCAT_REQUEST = 0,
    NG_HCAT_HEADERS = 3,
    NG_DATA_FLAG_EOF = 0x1,
    NG_DATA_FLAG_NO_END_STREAM = 0x2,
    NG_DATA_FLAG_NO_COPY = 0x4,
    NG_SETTINGS_HEADER_TABLE_SIZE = 0x1,
    NG_SETTINGS_MAX_CONCURRENT_STREAMS = 0x3,
    NG_SETTINGS_INITIAL_WINDOW_SIZE = 0x4,
    NG_SETTINGS_MAX_FRAME_SIZE = 0x5,
    NG_SETTINGS_MAX_HEADER_LIST_SIZE = 0x6,
    NG_SETTINGS_NO_RFC7540_PRIORITIES = 0x9,
    NG_ERR_INVALID_ARGUMENT = -501,
    NG_ERR_DEFERRED = -508,
    NG_ERR_TEMPORAL_CALLBACK_FAILURE = -521,
    NG_ERR_NOMEM = -901,
    NG_ERR_CALLBACK_FAILURE = -902,
    NG_ERR_BAD_CLIENT_MAGIC = -903,
    NG_ERR_FLOODED = -904,
    NG_ERR_TOO_MANY_CONTINUATIONS = -905
};

/* RFC 9113 section 7 error codes. */
enum {
    E_NO_ERROR = 0x0,
    E_PROTOCOL_ERROR = 0x1,
    E_INTERNAL_ERROR = 0x2,
    E_ENHANCE_YOUR_CALM = 0xb
};

typedef int (*ng_frame_cb)(nghttp2_session *, const nghttp2_frame *, void *);
typedef int (*ng_header_cb)(nghttp2_session *, const nghttp2_frame *, const uint8_t *, size_t,
                            const uint8_t *, size_t, uint8_t, void *);
typedef int (*ng_chunk_cb)(nghttp2_session *, uint8_t, int32_t, const uint8_t *, size_t, void *);
typedef int (*ng_close_cb)(nghttp2_session *, int32_t, uint32_t, void *);
typedef int (*ng_send_data_cb)(nghttp2_session *, nghttp2_frame *, const uint8_t *, size_t,
                               nghttp2_data_source *, void *);

/* ---- the loaded library ---------------------------------------------------------------- */

static struct {
    int loaded;
    void *handle;
    int (*callbacks_new)(nghttp2_session_callbacks **);
    void (*callbacks_del)(nghttp2_session_callbacks *);
    void (*set_on_begin_headers)(nghttp2_session_callbacks *, ng_frame_cb);
    void (*set_on_header)(nghttp2_session_callbacks *, ng_header_cb);
    void (*set_on_frame_recv)(nghttp2_session_callbacks *, ng_frame_cb);
    void (*set_on_frame_send)(nghttp2_session_callbacks *, ng_frame_cb);
    void (*set_on_data_chunk_recv)(nghttp2_session_callbacks *, ng_chunk_cb);
    void (*set_on_stream_close)(nghttp2_session_callbacks *, ng_close_cb);
    void (*set_send_data)(nghttp2_session_callbacks *, ng_send_data_cb);
    int (*option_new)(nghttp2_option **);
    void (*option_del)(nghttp2_option *);
    void (*option_set_no_auto_window_update)(nghttp2_option *, int);
    int (*server_new2)(nghttp2_session **, const nghttp2_session_callbacks *, void *,
                       const nghttp2_option *);
    void (*session_del)(nghttp2_session *);
    ssize_t (*mem_recv)(nghttp2_session *, const uint8_t *, size_t);
    ssize_t (*mem_send)(nghttp2_session *, const uint8_t **);
    int (*submit_settings)(nghttp2_session *, uint8_t, const nghttp2_settings_entry *, size_t);
    int (*submit_response)(nghttp2_session *, int32_t, const nghttp2_nv *, size_t,
                           const nghttp2_data_provider *);
    int32_t (*submit_headers)(nghttp2_session *, uint8_t, int32_t, const nghttp2_priority_spec *,
                              const nghttp2_nv *, size_t, void *);
    int (*submit_trailer)(nghttp2_session *, int32_t, const nghttp2_nv *, size_t);
    int (*submit_rst_stream)(nghttp2_session *, uint8_t, int32_t, uint32_t);
    int (*submit_goaway)(nghttp2_session *, uint8_t, int32_t, uint32_t, const uint8_t *, size_t);
    int (*submit_shutdown_notice)(nghttp2_session *);
    int (*submit_ping)(nghttp2_session *, uint8_t, const uint8_t *);
    int (*terminate_session)(nghttp2_session *, uint32_t);
    int32_t (*get_last_proc_stream_id)(nghttp2_session *);
    int (*consume)(nghttp2_session *, int32_t, size_t);
    int (*consume_connection)(nghttp2_session *, size_t);
    int (*resume_data)(nghttp2_session *, int32_t);
    int (*want_read)(nghttp2_session *);
    int (*want_write)(nghttp2_session *);
    void *(*get_stream_user_data)(nghttp2_session *, int32_t);
    int (*set_stream_user_data)(nghttp2_session *, int32_t, void *);
    int (*set_local_window_size)(nghttp2_session *, uint8_t, int32_t, int32_t);
    int (*upgrade2)(nghttp2_session *, const uint8_t *, size_t, int, void *);
    int32_t (*get_remote_window_size)(nghttp2_session *);
    int32_t (*get_stream_remote_window_size)(nghttp2_session *, int32_t);
    const char *(*strerror)(int);
    nghttp2_info *(*version)(int);
    /* optional: flood guards that older builds lack (CVE-2023-44487, CVE-2024-27316) */
    void (*option_set_stream_reset_rate_limit)(nghttp2_option *, uint64_t, uint64_t);
    void (*option_set_max_continuations)(nghttp2_option *, size_t);
    void (*option_set_max_settings)(nghttp2_option *, size_t);
    void (*option_set_max_outbound_ack)(nghttp2_option *, size_t);
} ng;

static char load_error[512];

#define SYM(field, name, required) {name, (void **)&ng.field, required}
static const struct {
    const char *name;
    void **slot;
    int required;
} symbols[] = {
    SYM(callbacks_new, "nghttp2_session_callbacks_new", 1),
    SYM(callbacks_del, "nghttp2_session_callbacks_del", 1),
    SYM(set_on_begin_headers, "nghttp2_session_callbacks_set_on_begin_headers_callback", 1),
    SYM(set_on_header, "nghttp2_session_callbacks_set_on_header_callback", 1),
    SYM(set_on_frame_recv, "nghttp2_session_callbacks_set_on_frame_recv_callback", 1),
    SYM(set_on_frame_send, "nghttp2_session_callbacks_set_on_frame_send_callback", 1),
    SYM(set_on_data_chunk_recv, "nghttp2_session_callbacks_set_on_data_chunk_recv_callback", 1),
    SYM(set_on_stream_close, "nghttp2_session_callbacks_set_on_stream_close_callback", 1),
    SYM(set_send_data, "nghttp2_session_callbacks_set_send_data_callback", 1),
    SYM(option_new, "nghttp2_option_new", 1),
    SYM(option_del, "nghttp2_option_del", 1),
    SYM(option_set_no_auto_window_update, "nghttp2_option_set_no_auto_window_update", 1),
    SYM(server_new2, "nghttp2_session_server_new2", 1),
    SYM(session_del, "nghttp2_session_del", 1),
    SYM(mem_recv, "nghttp2_session_mem_recv", 1),
    SYM(mem_send, "nghttp2_session_mem_send", 1),
    SYM(submit_settings, "nghttp2_submit_settings", 1),
    SYM(submit_response, "nghttp2_submit_response", 1),
    SYM(submit_headers, "nghttp2_submit_headers", 1),
    SYM(submit_trailer, "nghttp2_submit_trailer", 1),
    SYM(submit_rst_stream, "nghttp2_submit_rst_stream", 1),
    SYM(submit_goaway, "nghttp2_submit_goaway", 1),
    SYM(submit_shutdown_notice, "nghttp2_submit_shutdown_notice", 1),
    SYM(submit_ping, "nghttp2_submit_ping", 1),
    SYM(terminate_session, "nghttp2_session_terminate_session", 1),
    SYM(get_last_proc_stream_id, "nghttp2_session_get_last_proc_stream_id", 1),
    SYM(consume, "nghttp2_session_consume", 1),
    SYM(consume_connection, "nghttp2_session_consume_connection", 1),
    SYM(resume_data, "nghttp2_session_resume_data", 1),
    SYM(want_read, "nghttp2_session_want_read", 1),
    SYM(want_write, "nghttp2_session_want_write", 1),
    SYM(get_stream_user_data, "nghttp2_session_get_stream_user_data", 1),
    SYM(set_stream_user_data, "nghttp2_session_set_stream_user_data", 1),
    SYM(set_local_window_size, "nghttp2_session_set_local_window_size", 1),
    SYM(upgrade2, "nghttp2_session_upgrade2", 1),
    SYM(get_remote_window_size, "nghttp2_session_get_remote_window_size", 1),
    SYM(get_stream_remote_window_size, "nghttp2_session_get_stream_remote_window_size", 1),
    SYM(strerror, "nghttp2_strerror", 1),
    SYM(version, "nghttp2_version", 1),
    SYM(option_set_stream_reset_rate_limit, "nghttp2_option_set_stream_reset_rate_limit", 0),
    SYM(option_set_max_continuations, "nghttp2_option_set_max_continuations", 0),
    SYM(option_set_max_settings, "nghttp2_option_set_max_settings", 0),
    SYM(option_set_max_outbound_ack, "nghttp2_option_set_max_outbound_ack", 0),
};

int h2_load(const char *path) {
    if (ng.loaded) return 0;
    void *h = dlopen(path && *path ? path : "libnghttp2.so.14", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = dlerror();
        snprintf(load_error, sizeof load_error, "%s", e ? e : "dlopen failed");
        return -1;
    }
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        void *p = dlsym(h, symbols[i].name);
        if (!p && symbols[i].required) {
            snprintf(load_error, sizeof load_error, "libnghttp2 lacks %s", symbols[i].name);
            for (size_t j = 0; j < i; j++) *symbols[j].slot = NULL;
            dlclose(h);
            return -2;
        }
        *symbols[i].slot = p;
    }
    ng.handle = h;
    ng.loaded = 1;
    load_error[0] = '\0';
    return 0;
}

const char *h2_load_error(void) { return load_error; }

const char *h2_version(void) {
    if (!ng.loaded) return "";
    nghttp2_info *info = ng.version(0);
    return info && info->version_str ? info->version_str : "";
}

int h2_has_reset_rate_limit(void) { return ng.option_set_stream_reset_rate_limit != NULL; }
int h2_has_max_continuations(void) { return ng.option_set_max_continuations != NULL; }

const char *h2_strerror(int code) {
    switch (code) {
    case H2_GONE: return "stream closed";
    case H2_EHEADER: return "header field not allowed in HTTP/2";
    case H2_ESTATE: return "not allowed in the stream's state";
    case H2_EINVAL: return "argument out of range";
    default: return ng.loaded ? ng.strerror(code) : "libnghttp2 not loaded";
    }
}

/* ---- buffers ----------------------------------------------------------------------------- */

typedef struct {
    char *p;
    size_t len, cap;
} h2_buf;

static int buf_reserve(h2_buf *b, size_t extra) {
    if (b->cap - b->len >= extra) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_append(h2_buf *b, const void *data, size_t n) {
    if (buf_reserve(b, n)) return -1;
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    return 0;
}

static void buf_free(h2_buf *b) {
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

/* An idle connection keeps no more than this per buffer: one large response or header block
 * must not stay resident for the connection's life (worker RSS). */
#define H2_KEEP_BYTES (256 * 1024)

static void buf_empty(h2_buf *b) {
    b->len = 0;
    if (b->cap > H2_KEEP_BYTES) buf_free(b);
}

/* ---- session and streams ------------------------------------------------------------------ */

enum {
    ST_DELIVERED = 1,    /* its REQUEST event was emitted */
    ST_LOCAL_DONE = 2,   /* the application ended or reset the response */
    ST_LOCAL_RESET = 4,  /* the application reset it */
    ST_RESPONDED = 8,    /* response HEADERS submitted */
    ST_PROVIDER = 16,    /* a data provider reads the body from buf */
    ST_ENDED = 32,       /* no more body bytes will be added */
    ST_DEFERRED = 64,    /* the provider returned NGHTTP2_ERR_DEFERRED */
    ST_OVER = 128,       /* buffered above max_send_buffer: report when back under */
    ST_REJECTED = 256    /* the header list was over the limit: answered 431 */
};

typedef struct h2_stream {
    struct h2_stream *prev, *next;
    int32_t id;
    uint32_t flags;
    size_t unconsumed;  /* DATA bytes delivered to the application, not yet consumed */
    h2_buf body;        /* response body bytes not yet framed, from body_off */
    size_t body_off;
    const char *ext;    /* or the caller's whole body (H2_EXTERNAL), framed from body_off */
    size_t ext_len;
    nghttp2_nv *tr_nv;  /* trailers to submit when the body ends (one block with their bytes) */
    size_t tr_n;
} h2_stream;

struct h2_session {
    h2_view v; /* first member: h2_session_view() returns it */
    nghttp2_session *ng;
    h2_params p;
    uint32_t evcap, dcap, ev_mark, segcap, relcap;
    h2_buf arena, out, scratch, pseudo;
    nghttp2_nv *nv;
    size_t nvcap;
    const char *in;
    size_t inlen;
    int in_recv, out_keep;
    int deleting; /* inside nghttp2_session_del: callbacks must not call back into nghttp2 */
    /* the header block being received (only one at a time: RFC 9113 section 6.10) */
    int32_t hsid;
    int hkind; /* 1 request, 2 trailers */
    size_t hblk, hsize;
    int flushed; /* pseudo-headers copied to the arena */
    size_t ps_off[4], ps_len[4];
    size_t host_off, host_len;
    int hosts;
    size_t orphan;      /* connection window owed by streams closed with unconsumed bytes */
    uint32_t empty_run; /* consecutive empty DATA frames */
    h2_stream *streams;
};

static h2_stream *stream_get(h2_session *s, int32_t sid) {
    return sid > 0 ? (h2_stream *)ng.get_stream_user_data(s->ng, sid) : NULL;
}

static h2_stream *stream_new(h2_session *s, int32_t sid) {
    h2_stream *st = calloc(1, sizeof *st);
    if (!st) return NULL;
    st->id = sid;
    st->next = s->streams;
    if (s->streams) s->streams->prev = st;
    s->streams = st;
    s->v.nstreams++;
    return st;
}

static int released_push(h2_session *s, int32_t sid);

static void stream_free(h2_session *s, h2_stream *st) {
    /* the caller may drop an external body the shim will never read again (if the list cannot
     * grow, it keeps the body until the session ends: memory, never a dangling read) */
    if (st->ext && !s->deleting) (void)released_push(s, st->id);
    if (st->prev) st->prev->next = st->next;
    else s->streams = st->next;
    if (st->next) st->next->prev = st->prev;
    buf_free(&st->body);
    free(st->tr_nv);
    free(st);
    s->v.nstreams--;
}

static int ev_push(h2_session *s, int type, int32_t sid, uint32_t flags, size_t off, size_t len,
                   uint32_t code) {
    if (s->v.nev == s->evcap) {
        uint32_t cap = s->evcap ? s->evcap * 2 : 64;
        h2_event *ev = realloc(s->v.ev, cap * sizeof *ev);
        if (!ev) return -1;
        s->v.ev = ev;
        s->evcap = cap;
    }
    h2_event *e = &s->v.ev[s->v.nev++];
    e->type = type;
    e->stream_id = sid;
    e->flags = flags;
    e->off = (uint32_t)off;
    e->len = (uint32_t)len;
    e->code = code;
    return 0;
}

static int drained_push(h2_session *s, int32_t sid) {
    if (s->v.ndrained == s->dcap) {
        uint32_t cap = s->dcap ? s->dcap * 2 : 16;
        int32_t *d = realloc(s->v.drained, cap * sizeof *d);
        if (!d) return -1;
        s->v.drained = d;
        s->dcap = cap;
    }
    s->v.drained[s->v.ndrained++] = sid;
    return 0;
}

/* ngsession.py unpacks view->segs with struct "<QiIQ" (x86-64 and aarch64 Linux layouts) */
_Static_assert(sizeof(h2_seg) == 24 && offsetof(h2_seg, off) == 16, "h2_seg layout");

static int released_push(h2_session *s, int32_t sid) {
    if (s->v.nreleased == s->relcap) {
        uint32_t cap = s->relcap ? s->relcap * 2 : 16;
        int32_t *d = realloc(s->v.released, cap * sizeof *d);
        if (!d) return -1;
        s->v.released = d;
        s->relcap = cap;
    }
    s->v.released[s->v.nreleased++] = sid;
    return 0;
}

static int seg_push(h2_session *s, int32_t sid, size_t off, size_t len) {
    if (s->v.nsegs == s->segcap) {
        uint32_t cap = s->segcap ? s->segcap * 2 : 32;
        h2_seg *d = realloc(s->v.segs, cap * sizeof *d);
        if (!d) return -1;
        s->v.segs = d;
        s->segcap = cap;
    }
    h2_seg *g = &s->v.segs[s->v.nsegs++];
    g->out_off = s->out.len;
    g->stream_id = sid;
    g->len = (uint32_t)len;
    g->off = off;
    return 0;
}

static size_t buffered(const h2_stream *st) {
    return (st->ext ? st->ext_len : st->body.len) - st->body_off;
}

/* ---- receiving ----------------------------------------------------------------------------- */

static int flush_pseudo(h2_session *s) {
    /* method, path, scheme, authority, in that order, each followed by NUL */
    for (int i = 0; i < 4; i++) {
        if (buf_append(&s->arena, s->pseudo.p + s->ps_off[i], s->ps_len[i])) return -1;
        if (buf_append(&s->arena, "", 1)) return -1;
    }
    s->flushed = 1;
    return 0;
}

static int cb_begin_headers(nghttp2_session *session, const nghttp2_frame *f, void *ud) {
    h2_session *s = ud;
    (void)session;
    if (f->hd.type != NG_HEADERS) return 0;
    int32_t sid = f->hd.stream_id;
    if (f->headers.cat == NG_HCAT_REQUEST) {
        h2_stream *st = stream_new(s, sid);
        if (!st) return NG_ERR_CALLBACK_FAILURE;
        if (ng.set_stream_user_data(s->ng, sid, st) != 0) {
            stream_free(s, st);
            return NG_ERR_CALLBACK_FAILURE;
        }
        s->hkind = 1;
        s->flushed = 0;
    } else if (f->headers.cat == NG_HCAT_HEADERS) {
        s->hkind = 2;
        s->flushed = 1; /* trailers carry no pseudo-headers (nghttp2 refuses them) */
    } else {
        return 0;
    }
    s->hsid = sid;
    s->hblk = s->arena.len;
    s->hsize = 0;
    s->pseudo.len = 0;
    memset(s->ps_len, 0, sizeof s->ps_len);
    memset(s->ps_off, 0, sizeof s->ps_off);
    s->hosts = 0;
    return 0;
}

static int pseudo_slot(const uint8_t *name, size_t len) {
    switch (len) {
    case 5: return memcmp(name, ":path", 5) == 0 ? 1 : -1;
    case 7:
        if (memcmp(name, ":method", 7) == 0) return 0;
        if (memcmp(name, ":scheme", 7) == 0) return 2;
        return -1;
    case 10: return memcmp(name, ":authority", 10) == 0 ? 3 : -1;
    default: return -1;
    }
}

static int cb_header(nghttp2_session *session, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *ud) {
    h2_session *s = ud;
    (void)session;
    (void)flags;
    if (f->hd.type != NG_HEADERS || f->hd.stream_id != s->hsid) return 0;
    /* RFC 9113 section 6.5.2: an entry counts its name, its value and 32 octets. */
    s->hsize += namelen + valuelen + 32;
    if (s->hsize > s->p.max_header_list_size) {
        if (s->hkind == 2) return NG_ERR_TEMPORAL_CALLBACK_FAILURE; /* RST_STREAM */
        h2_stream *st = stream_get(s, s->hsid);
        if (st) st->flags |= ST_REJECTED; /* answered 431 once the block ends */
        return 0;
    }
    if (s->hkind == 1) {
        h2_stream *st = stream_get(s, s->hsid);
        if (!st || (st->flags & ST_REJECTED)) return 0;
    }
    /* nghttp2 refuses NUL in a field value (RFC 9113 section 8.2.1); the arena's layout relies
     * on it, so check again instead of trusting a library we do not build. */
    if (memchr(value, '\0', valuelen) || memchr(name, '\0', namelen))
        return NG_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (namelen && name[0] == ':') {
        int slot = pseudo_slot(name, namelen);
        if (slot < 0 || s->hkind != 1) return 0; /* nghttp2 already refuses unknown ones */
        s->ps_off[slot] = s->pseudo.len;
        s->ps_len[slot] = valuelen;
        return buf_append(&s->pseudo, value, valuelen) ? NG_ERR_CALLBACK_FAILURE : 0;
    }
    if (!s->flushed && flush_pseudo(s)) return NG_ERR_CALLBACK_FAILURE;
    if (s->hkind == 1 && namelen == 4 && memcmp(name, "host", 4) == 0) {
        s->hosts++;
        s->host_off = s->arena.len + 5 - s->hblk;
        s->host_len = valuelen;
    }
    if (buf_reserve(&s->arena, namelen + valuelen + 2)) return NG_ERR_CALLBACK_FAILURE;
    char *p = s->arena.p + s->arena.len;
    memcpy(p, name, namelen);
    p[namelen] = '\0';
    if (valuelen) memcpy(p + namelen + 1, value, valuelen);
    p[namelen + 1 + valuelen] = '\0';
    s->arena.len += namelen + valuelen + 2;
    return 0;
}

static int ascii_casecmp(const char *a, const char *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
        if (x >= 'A' && x <= 'Z') x += 32;
        if (y >= 'A' && y <= 'Z') y += 32;
        if (x != y) return 1;
    }
    return 0;
}

static int respond_status_only(h2_session *s, int32_t sid, int status);

/* Checks RFC 9113 leaves to the server (nghttp2 does the rest: required, duplicated, unknown
 * and misplaced pseudo-headers, connection-specific fields, TE, Content-Length vs DATA). */
static int request_is_valid(h2_session *s) {
    const char *ps = s->pseudo.p;
    const char *method = ps + s->ps_off[0], *path = ps + s->ps_off[1];
    size_t mlen = s->ps_len[0], plen = s->ps_len[1];
    int is_connect = mlen == 7 && memcmp(method, "CONNECT", 7) == 0;
    /* section 8.3.1: an http(s) :path is "/..." or "*" for OPTIONS (nghttp2 checks only that
     * it is present and its characters) */
    if (!is_connect) {
        if (plen == 0) return 0;
        if (path[0] != '/') {
            int options = mlen == 7 && memcmp(method, "OPTIONS", 7) == 0;
            if (!(options && plen == 1 && path[0] == '*')) return 0;
        }
    }
    /* section 8.3.1: a Host that differs from :authority makes the request malformed; RFC 9110
     * section 7.2 refuses more than one Host */
    if (s->hosts > 1) return 0;
    if (s->hosts == 1 && s->ps_len[3]) {
        const char *host = s->arena.p + s->hblk + s->host_off;
        if (s->host_len != s->ps_len[3] || ascii_casecmp(host, ps + s->ps_off[3], s->host_len))
            return 0;
    }
    return 1;
}

static int finish_headers(h2_session *s, const nghttp2_frame *f) {
    int32_t sid = s->hsid;
    int kind = s->hkind;
    s->hsid = 0;
    h2_stream *st = stream_get(s, sid);
    if (!st) return 0;
    uint32_t evf = (f->hd.flags & NG_FLAG_END_STREAM) ? H2_EVF_END_STREAM : 0;
    if (kind == 1) {
        if (st->flags & ST_REJECTED) {
            /* RFC 9113 section 10.5.1 / RFC 6585: 431 for a header list over our limit */
            s->arena.len = s->hblk;
            st->flags |= ST_LOCAL_DONE;
            return respond_status_only(s, sid, 431);
        }
        if (!s->flushed && flush_pseudo(s)) return NG_ERR_CALLBACK_FAILURE;
        if (!request_is_valid(s)) {
            s->arena.len = s->hblk;
            st->flags |= ST_LOCAL_DONE | ST_LOCAL_RESET;
            return ng.submit_rst_stream(s->ng, NG_FLAG_NONE, sid, E_PROTOCOL_ERROR) < 0
                       ? NG_ERR_CALLBACK_FAILURE
                       : 0;
        }
        st->flags |= ST_DELIVERED;
        size_t len = s->arena.len - s->hblk - 1; /* without the last NUL */
        return ev_push(s, H2_EV_REQUEST, sid, evf, s->hblk, len, 0) ? NG_ERR_CALLBACK_FAILURE : 0;
    }
    if (!(st->flags & ST_DELIVERED)) {
        s->arena.len = s->hblk;
        return 0;
    }
    size_t len = s->arena.len - s->hblk;
    if (len) len--;
    return ev_push(s, H2_EV_TRAILERS, sid, H2_EVF_END_STREAM, s->hblk, len, 0)
               ? NG_ERR_CALLBACK_FAILURE
               : 0;
}

static int cb_frame_recv(nghttp2_session *session, const nghttp2_frame *f, void *ud) {
    h2_session *s = ud;
    (void)session;
    switch (f->hd.type) {
    case NG_HEADERS:
        if (f->hd.stream_id == s->hsid) return finish_headers(s, f);
        return 0;
    case NG_DATA: {
        int32_t sid = f->hd.stream_id;
        /* RFC 9113 section 10.5 / CVE-2019-9518: a run of empty DATA frames costs us work and
         * the peer nothing; netty bounds it the same way (consecutive empty frames). */
        if (f->hd.length == 0 && !(f->hd.flags & NG_FLAG_END_STREAM)) {
            if (s->p.max_empty_frames && ++s->empty_run > s->p.max_empty_frames)
                return ng.terminate_session(s->ng, E_ENHANCE_YOUR_CALM) < 0
                           ? NG_ERR_CALLBACK_FAILURE
                           : 0;
        } else if (f->hd.length) {
            s->empty_run = 0;
        }
        if (f->data.padlen) {
            /* padding is flow-controlled (section 6.1) but never reaches the application:
             * give it back at once */
            if (ng.consume(s->ng, sid, f->data.padlen) < 0) return NG_ERR_CALLBACK_FAILURE;
        }
        if (!(f->hd.flags & NG_FLAG_END_STREAM)) return 0;
        h2_stream *st = stream_get(s, sid);
        if (!st || !(st->flags & ST_DELIVERED)) return 0;
        if (s->v.nev > s->ev_mark) {
            h2_event *last = &s->v.ev[s->v.nev - 1];
            if (last->type == H2_EV_DATA && last->stream_id == sid) {
                last->flags |= H2_EVF_END_STREAM;
                return 0;
            }
        }
        return ev_push(s, H2_EV_DATA, sid, H2_EVF_END_STREAM, 0, 0, 0) ? NG_ERR_CALLBACK_FAILURE
                                                                          : 0;
    }
    case NG_SETTINGS:
        if (f->hd.flags & NG_FLAG_ACK)
            return ev_push(s, H2_EV_SETTINGS_ACK, 0, 0, 0, 0, 0) ? NG_ERR_CALLBACK_FAILURE : 0;
        return 0;
    case NG_PING:
        if (f->hd.flags & NG_FLAG_ACK) {
            size_t off = s->arena.len;
            if (buf_append(&s->arena, f->ping.opaque_data, 8)) return NG_ERR_CALLBACK_FAILURE;
            return ev_push(s, H2_EV_PING_ACK, 0, 0, off, 8, 0) ? NG_ERR_CALLBACK_FAILURE : 0;
        }
        return 0;
    case NG_GOAWAY:
        return ev_push(s, H2_EV_GOAWAY, f->goaway.last_stream_id, 0, 0, 0, f->goaway.error_code)
                   ? NG_ERR_CALLBACK_FAILURE
                   : 0;
    default:
        return 0;
    }
}

static int cb_data_chunk(nghttp2_session *session, uint8_t flags, int32_t sid,
                         const uint8_t *data, size_t len, void *ud) {
    h2_session *s = ud;
    (void)session;
    (void)flags;
    h2_stream *st = stream_get(s, sid);
    if (!st || !(st->flags & ST_DELIVERED) || (st->flags & ST_LOCAL_RESET)) {
        /* nobody will read it: give the connection window back now */
        s->orphan += len;
        return 0;
    }
    st->unconsumed += len;
    const char *p = (const char *)data;
    if (s->in && p >= s->in && len <= s->inlen && (size_t)(p - s->in) <= s->inlen - len)
        return ev_push(s, H2_EV_DATA, sid, H2_EVF_IN_INPUT, (size_t)(p - s->in), len,
                       (uint32_t)len)
                   ? NG_ERR_CALLBACK_FAILURE
                   : 0;
    size_t off = s->arena.len;
    if (buf_append(&s->arena, data, len)) return NG_ERR_CALLBACK_FAILURE;
    return ev_push(s, H2_EV_DATA, sid, 0, off, len, (uint32_t)len) ? NG_ERR_CALLBACK_FAILURE : 0;
}

static int cb_stream_close(nghttp2_session *session, int32_t sid, uint32_t code, void *ud) {
    h2_session *s = ud;
    (void)session;
    if (s->deleting) return 0; /* h2_session_free frees what is left */
    h2_stream *st = stream_get(s, sid);
    if (!st) return 0;
    if (sid == s->hsid) s->hsid = 0;
    s->orphan += st->unconsumed;
    uint32_t fl = st->flags;
    int normal = (fl & ST_LOCAL_DONE) && code == E_NO_ERROR;
    if ((fl & ST_DELIVERED) && !(fl & ST_LOCAL_RESET) && !normal) {
        if (ev_push(s, H2_EV_RESET, sid, 0, 0, 0, code)) return NG_ERR_CALLBACK_FAILURE;
    }
    ng.set_stream_user_data(s->ng, sid, NULL);
    stream_free(s, st);
    return 0;
}

static int cb_frame_send(nghttp2_session *session, const nghttp2_frame *f, void *ud) {
    h2_session *s = ud;
    (void)session;
    if (f->hd.type == NG_GOAWAY) s->v.goaway_code = f->goaway.error_code;
    return 0;
}

/* ---- sending ------------------------------------------------------------------------------ */

/* The DATA source. NGHTTP2_DATA_FLAG_NO_COPY: nghttp2 only learns the length here, and
 * send_body() below writes the frame header and the bytes straight from the stream's buffer
 * into s->out, one copy fewer than framing them in nghttp2's own buffer. */
static ssize_t read_body(nghttp2_session *session, int32_t sid, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *ud) {
    h2_session *s = ud;
    h2_stream *st = source->ptr;
    (void)session;
    (void)buf;
    size_t avail = buffered(st);
    if (avail == 0 && !(st->flags & ST_ENDED)) {
        st->flags |= ST_DEFERRED;
        return NG_ERR_DEFERRED;
    }
    size_t n = avail < length ? avail : length;
    *data_flags |= NG_DATA_FLAG_NO_COPY;
    if (n == avail && (st->flags & ST_ENDED)) {
        *data_flags |= NG_DATA_FLAG_EOF;
        if (st->tr_n) {
            /* nghttp2 allows submitting the trailers from here (RFC 9113 section 8.1) */
            *data_flags |= NG_DATA_FLAG_NO_END_STREAM;
            int rv = ng.submit_trailer(s->ng, sid, st->tr_nv, st->tr_n);
            free(st->tr_nv);
            st->tr_nv = NULL;
            st->tr_n = 0;
            if (rv < 0) return NG_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
    }
    return (ssize_t)n;
}

static int send_body(nghttp2_session *session, nghttp2_frame *f, const uint8_t *framehd,
                     size_t length, nghttp2_data_source *source, void *ud) {
    h2_session *s = ud;
    h2_stream *st = source->ptr;
    (void)session;
    size_t pad = f->data.padlen; /* 0: we set no padding callback; handled all the same */
    const char *src = st->ext ? st->ext : st->body.p;
    if (st->ext && !pad) {
        /* an external body: only the frame header is copied; the payload is a segment */
        if (buf_append(&s->out, framehd, 9)) return NG_ERR_CALLBACK_FAILURE;
        if (length && seg_push(s, st->id, st->body_off, length)) return NG_ERR_CALLBACK_FAILURE;
    } else {
        if (buf_reserve(&s->out, 9 + pad + length)) return NG_ERR_CALLBACK_FAILURE;
        char *p = s->out.p + s->out.len;
        memcpy(p, framehd, 9);
        p += 9;
        if (pad) *p++ = (char)(pad - 1);
        if (length) memcpy(p, src + st->body_off, length);
        p += length;
        if (pad > 1) {
            memset(p, 0, pad - 1);
            p += pad - 1;
        }
        s->out.len = (size_t)(p - s->out.p);
    }
    st->body_off += length;
    if (st->ext) {
        if (st->body_off == st->ext_len) {
            if (released_push(s, st->id)) return NG_ERR_CALLBACK_FAILURE;
            st->ext = NULL;
            st->ext_len = st->body_off = 0;
        }
    } else if (st->body_off == st->body.len) {
        st->body_off = st->body.len = 0;
    } else if (st->body_off > st->body.cap / 2) {
        memmove(st->body.p, st->body.p + st->body_off, st->body.len - st->body_off);
        st->body.len -= st->body_off;
        st->body_off = 0;
    }
    if ((st->flags & ST_OVER) && buffered(st) <= s->p.max_send_buffer) {
        st->flags &= ~(uint32_t)ST_OVER;
        if (drained_push(s, st->id)) return NG_ERR_CALLBACK_FAILURE;
    }
    if (buffered(st) == 0 && (st->flags & ST_ENDED)) buf_free(&st->body);
    return 0;
}

static const unsigned char tchar[256] = {
    /* RFC 9110 section 5.6.2 token characters, upper-case letters excluded (HTTP/2 field names
     * are lower-case, RFC 9113 section 8.2.1; the caller lower-cases first) */
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1, ['~'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1,
    ['8'] = 1, ['9'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1,
    ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1,
    ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1,
    ['y'] = 1, ['z'] = 1,
};

static int name_is(const char *n, size_t len, const char *lit) {
    size_t l = strlen(lit);
    return len == l && memcmp(n, lit, l) == 0;
}

/* Builds s->nv from "name\0value\0name\0value" (exactly nhdrs pairs: a NUL inside a field would
 * change the count and is refused) with an optional :status first. Names are lower-cased into
 * s->scratch; values are trimmed of surrounding SP/HTAB (RFC 9113 section 8.2.1) and keep
 * pointing into the caller's buffer (nghttp2 copies both). Connection-specific fields are
 * dropped (section 8.2.2), TE only kept as "trailers". Returns the nv count or H2_EHEADER. */
static long build_nv(h2_session *s, int status, const char *hdrs, size_t hlen, uint32_t nhdrs) {
    size_t need = (size_t)nhdrs + 1;
    if (need > s->nvcap) {
        nghttp2_nv *nv = realloc(s->nv, need * sizeof *nv);
        if (!nv) return H2_ENOMEM;
        s->nv = nv;
        s->nvcap = need;
    }
    s->scratch.len = 0;
    if (buf_reserve(&s->scratch, hlen + 4)) return H2_ENOMEM;
    char *sc = s->scratch.p;
    size_t k = 0, so = 0;
    if (status >= 0) {
        sc[0] = (char)('0' + status / 100);
        sc[1] = (char)('0' + status / 10 % 10);
        sc[2] = (char)('0' + status % 10);
        so = 3;
        s->nv[k++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)sc, 7, 3, 0};
    }
    if (nhdrs == 0) return hlen == 0 ? (long)k : H2_EHEADER;
    const char *p = hdrs, *end = hdrs + hlen;
    for (uint32_t i = 0; i < nhdrs; i++) {
        const char *q = memchr(p, '\0', (size_t)(end - p));
        if (!q) return H2_EHEADER;
        size_t nlen = (size_t)(q - p);
        const char *v = q + 1, *vend;
        if (i + 1 == nhdrs) {
            vend = end;
            if (memchr(v, '\0', (size_t)(end - v))) return H2_EHEADER;
        } else {
            vend = memchr(v, '\0', (size_t)(end - v));
            if (!vend) return H2_EHEADER;
        }
        if (nlen == 0) return H2_EHEADER;
        char *n = sc + so;
        for (size_t j = 0; j < nlen; j++) {
            unsigned char c = (unsigned char)p[j];
            if (c >= 'A' && c <= 'Z') c += 32;
            if (!tchar[c]) return H2_EHEADER;
            n[j] = (char)c;
        }
        while (v < vend && (*v == ' ' || *v == '\t')) v++;
        const char *ve = vend;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        size_t vlen = (size_t)(ve - v);
        if (memchr(v, '\r', vlen) || memchr(v, '\n', vlen)) return H2_EHEADER;
        p = vend + 1;
        int drop = 0;
        switch (nlen) {
        case 2: drop = n[0] == 't' && n[1] == 'e' && !(vlen == 8 && !ascii_casecmp(v, "trailers", 8)); break;
        case 7: drop = name_is(n, nlen, "upgrade"); break;
        case 10: drop = name_is(n, nlen, "connection") || name_is(n, nlen, "keep-alive"); break;
        case 16: drop = name_is(n, nlen, "proxy-connection"); break;
        case 17: drop = name_is(n, nlen, "transfer-encoding"); break;
        default: break;
        }
        if (drop) continue;
        so += nlen;
        s->nv[k++] = (nghttp2_nv){(uint8_t *)n, (uint8_t *)v, nlen, vlen, 0};
    }
    return (long)k;
}

static int respond_status_only(h2_session *s, int32_t sid, int status) {
    long n = build_nv(s, status, "", 0, 0);
    if (n < 0) return NG_ERR_CALLBACK_FAILURE;
    return ng.submit_response(s->ng, sid, s->nv, (size_t)n, NULL) < 0 ? NG_ERR_CALLBACK_FAILURE : 0;
}

static void mark_over(h2_session *s, h2_stream *st) {
    if (buffered(st) > s->p.max_send_buffer) st->flags |= ST_OVER;
}

int h2_respond(h2_session *s, int32_t sid, int status, const char *hdrs, size_t hdrs_len,
               uint32_t nhdrs, const char *body, size_t body_len, int flags) {
    h2_stream *st = stream_get(s, sid);
    if (!st || (st->flags & ST_LOCAL_RESET)) return H2_GONE;
    if (st->flags & ST_RESPONDED) return H2_ESTATE;
    if (status < 200 || status > 999) return H2_EINVAL;
    long n = build_nv(s, status, hdrs, hdrs_len, nhdrs);
    if (n < 0) return (int)n;
    int rv;
    if ((flags & H2_END) && body_len == 0) {
        rv = ng.submit_response(s->ng, sid, s->nv, (size_t)n, NULL);
        if (rv < 0) return rv;
        st->flags |= ST_RESPONDED | ST_ENDED | ST_LOCAL_DONE;
        return 0;
    }
    int ext = (flags & H2_EXTERNAL) && (flags & H2_END) && body_len;
    if (ext) {
        st->ext = body;
        st->ext_len = body_len;
        st->body_off = 0;
    } else if (body_len && buf_append(&st->body, body, body_len)) {
        return H2_ENOMEM;
    }
    nghttp2_data_provider prd;
    prd.source.ptr = st;
    prd.read_callback = read_body;
    rv = ng.submit_response(s->ng, sid, s->nv, (size_t)n, &prd);
    if (rv < 0) {
        st->body.len = st->body_off = 0;
        st->ext = NULL; /* not submitted: the caller still owns it and knows (rv < 0) */
        st->ext_len = 0;
        return rv;
    }
    st->flags |= ST_RESPONDED | ST_PROVIDER;
    if (flags & H2_END) st->flags |= ST_ENDED | ST_LOCAL_DONE;
    mark_over(s, st);
    return (int)(buffered(st) > 0x7fffffff ? 0x7fffffff : buffered(st));
}

int h2_informational(h2_session *s, int32_t sid, int status, const char *hdrs, size_t hdrs_len,
                     uint32_t nhdrs) {
    h2_stream *st = stream_get(s, sid);
    if (!st || (st->flags & ST_LOCAL_RESET)) return H2_GONE;
    if (st->flags & ST_RESPONDED) return H2_ESTATE;
    if (status < 100 || status > 199 || status == 101) return H2_EINVAL; /* RFC 9113 8.6 */
    long n = build_nv(s, status, hdrs, hdrs_len, nhdrs);
    if (n < 0) return (int)n;
    int32_t rv = ng.submit_headers(s->ng, NG_FLAG_NONE, sid, NULL, s->nv, (size_t)n, NULL);
    return rv < 0 ? rv : 0;
}

long h2_send_data(h2_session *s, int32_t sid, const char *data, size_t len, int flags) {
    h2_stream *st = stream_get(s, sid);
    if (!st || (st->flags & ST_LOCAL_RESET)) return H2_GONE;
    if (!(st->flags & ST_PROVIDER) || (st->flags & ST_ENDED)) return H2_ESTATE;
    if (len && buf_append(&st->body, data, len)) return H2_ENOMEM;
    if (flags & H2_END) st->flags |= ST_ENDED | ST_LOCAL_DONE;
    if ((st->flags & ST_DEFERRED) && (len || (flags & H2_END))) {
        st->flags &= ~(uint32_t)ST_DEFERRED;
        int rv = ng.resume_data(s->ng, sid);
        if (rv < 0) return rv;
    }
    mark_over(s, st);
    return (long)buffered(st);
}

int h2_trailers(h2_session *s, int32_t sid, const char *hdrs, size_t hdrs_len, uint32_t nhdrs) {
    h2_stream *st = stream_get(s, sid);
    if (!st || (st->flags & ST_LOCAL_RESET)) return H2_GONE;
    if (!(st->flags & ST_PROVIDER) || (st->flags & ST_ENDED)) return H2_ESTATE;
    long n = build_nv(s, -1, hdrs, hdrs_len, nhdrs);
    if (n < 0) return (int)n;
    if (n > 0) {
        /* one block: the nv array, then every name and value it points to */
        size_t bytes = (size_t)n * sizeof(nghttp2_nv);
        for (long i = 0; i < n; i++) bytes += s->nv[i].namelen + s->nv[i].valuelen;
        nghttp2_nv *nv = malloc(bytes);
        if (!nv) return H2_ENOMEM;
        uint8_t *q = (uint8_t *)(nv + n);
        for (long i = 0; i < n; i++) {
            nv[i] = s->nv[i];
            memcpy(q, s->nv[i].name, s->nv[i].namelen);
            nv[i].name = q;
            q += s->nv[i].namelen;
            if (s->nv[i].valuelen) memcpy(q, s->nv[i].value, s->nv[i].valuelen);
            nv[i].value = q;
            q += s->nv[i].valuelen;
        }
        free(st->tr_nv);
        st->tr_nv = nv;
        st->tr_n = (size_t)n;
    }
    st->flags |= ST_ENDED | ST_LOCAL_DONE;
    if (st->flags & ST_DEFERRED) {
        st->flags &= ~(uint32_t)ST_DEFERRED;
        int rv = ng.resume_data(s->ng, sid);
        if (rv < 0) return rv;
    }
    return 0;
}

int h2_reset(h2_session *s, int32_t sid, uint32_t code) {
    h2_stream *st = stream_get(s, sid);
    if (!st || (st->flags & ST_LOCAL_RESET)) return H2_GONE;
    st->flags |= ST_LOCAL_RESET | ST_LOCAL_DONE;
    buf_free(&st->body);
    st->body_off = 0;
    return ng.submit_rst_stream(s->ng, NG_FLAG_NONE, sid, code);
}

int h2_consume(h2_session *s, int32_t sid, size_t n) {
    h2_stream *st = stream_get(s, sid);
    if (!st) return H2_GONE; /* its bytes went back to the connection when it closed */
    if (n > st->unconsumed) n = st->unconsumed;
    if (!n) return 0;
    st->unconsumed -= n;
    return ng.consume(s->ng, sid, n);
}

long h2_buffered(h2_session *s, int32_t sid) {
    h2_stream *st = stream_get(s, sid);
    return st ? (long)buffered(st) : H2_GONE;
}

int h2_goaway(h2_session *s, uint32_t code, int32_t last) {
    if (last < 0) last = ng.get_last_proc_stream_id(s->ng);
    return ng.submit_goaway(s->ng, NG_FLAG_NONE, last, code, NULL, 0);
}

int h2_shutdown_notice(h2_session *s) { return ng.submit_shutdown_notice(s->ng); }

int h2_terminate(h2_session *s, uint32_t code) { return ng.terminate_session(s->ng, code); }

int h2_ping(h2_session *s, const char *opaque8) {
    return ng.submit_ping(s->ng, NG_FLAG_NONE, (const uint8_t *)opaque8);
}

int h2_set_local_window(h2_session *s, int32_t sid, int32_t size) {
    if (size < 0) return H2_EINVAL;
    return ng.set_local_window_size(s->ng, NG_FLAG_NONE, sid, size);
}

int32_t h2_remote_window(h2_session *s, int32_t sid) {
    return sid == 0 ? ng.get_remote_window_size(s->ng)
                    : ng.get_stream_remote_window_size(s->ng, sid);
}

int32_t h2_last_stream_id(h2_session *s) { return ng.get_last_proc_stream_id(s->ng); }

/* ---- the session ---------------------------------------------------------------------------- */

static void give_back_orphans(h2_session *s) {
    if (s->orphan && !s->v.lib_error) {
        if (ng.consume_connection(s->ng, s->orphan) == 0) s->orphan = 0;
    }
}

/* mem_send until nothing is left, appending to s->out. */
static long gather(h2_session *s) {
    for (;;) {
        const uint8_t *p = NULL;
        ssize_t n = ng.mem_send(s->ng, &p);
        if (n < 0) return (long)n;
        if (n == 0) return 0;
        if (buf_append(&s->out, p, (size_t)n)) return H2_ENOMEM;
    }
}

/* Output accumulates from the first gather after the last h2_send until the next h2_send
 * returns it; the drained list likewise. */
static void out_begin(h2_session *s) {
    if (!s->out_keep) {
        buf_empty(&s->out);
        s->v.ndrained = 0;
        s->v.nsegs = 0;
    }
    s->out_keep = 1;
}

static void publish(h2_session *s) {
    s->v.arena = s->arena.p;
    s->v.arena_len = s->arena.len;
    s->v.out = s->out.p;
}

static void session_over(h2_session *s, int lib_error) {
    if (lib_error && !s->v.lib_error) s->v.lib_error = lib_error;
    s->v.done = 1;
}

int h2_recv(h2_session *s, const char *in, size_t len) {
    /* drop the events Python read after the last call; keep any h2_send queued since */
    if (s->ev_mark) {
        memmove(s->v.ev, s->v.ev + s->ev_mark, (s->v.nev - s->ev_mark) * sizeof(h2_event));
        s->v.nev -= s->ev_mark;
        s->ev_mark = 0;
    }
    /* the arena keeps only a header block still waiting for its CONTINUATION frames */
    if (s->hsid && s->hblk <= s->arena.len) {
        memmove(s->arena.p, s->arena.p + s->hblk, s->arena.len - s->hblk);
        s->arena.len -= s->hblk;
        s->hblk = 0;
    } else {
        s->hsid = 0;
        buf_empty(&s->arena);
    }
    if (s->v.done) {
        publish(s);
        s->ev_mark = s->v.nev;
        return (int)s->v.nev;
    }
    s->in = in;
    s->inlen = len;
    s->in_recv = 1;
    ssize_t rv = ng.mem_recv(s->ng, (const uint8_t *)in, len);
    s->in_recv = 0;
    s->in = NULL;
    if (rv < 0) {
        /* <= NGHTTP2_ERR_FATAL: the session is unusable. Still try to tell the peer (RFC 9113
         * section 5.4.1); a bad preface may go without GOAWAY (section 3.4). */
        uint32_t code = E_INTERNAL_ERROR;
        if (rv == NG_ERR_BAD_CLIENT_MAGIC) code = E_PROTOCOL_ERROR;
        else if (rv == NG_ERR_FLOODED || rv == NG_ERR_TOO_MANY_CONTINUATIONS)
            code = E_ENHANCE_YOUR_CALM;
        out_begin(s);
        if (ng.terminate_session(s->ng, code) == 0) (void)gather(s);
        session_over(s, (int)rv);
        if (!s->v.goaway_code) s->v.goaway_code = code;
        s->v.nev = 0;
        ev_push(s, H2_EV_CLOSE, 0, 0, 0, 0, s->v.goaway_code);
    } else {
        give_back_orphans(s);
        /* Gather the output now: a connection error only queues its GOAWAY, and nghttp2 stops
         * wanting to read once that GOAWAY is sent, so this is how a closing session shows. */
        out_begin(s);
        long g = gather(s);
        if (g < 0 || !ng.want_read(s->ng)) {
            /* The session reads no more and the connection closes once the output is written:
             * nothing of this batch can still be answered (a rapid reset past nghttp2's limit
             * opened streams after its GOAWAY's last stream id), so CLOSE is all it reports. */
            session_over(s, g < 0 ? (int)g : 0);
            s->v.nev = 0;
            ev_push(s, H2_EV_CLOSE, 0, 0, 0, 0, s->v.goaway_code);
        }
    }
    publish(s);
    s->ev_mark = s->v.nev;
    return (int)s->v.nev;
}

long h2_send(h2_session *s) {
    out_begin(s);
    if (!s->v.lib_error) {
        give_back_orphans(s);
        long rv = gather(s);
        if (rv < 0) session_over(s, (int)rv);
        else if (!ng.want_read(s->ng) && !ng.want_write(s->ng)) session_over(s, 0);
    }
    publish(s);
    s->out_keep = 0; /* returned to the caller: the next gather starts afresh */
    return (long)s->out.len;
}

h2_session *h2_session_new(const h2_params *p) {
    if (!ng.loaded) return NULL;
    h2_session *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->p = *p;
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    if (ng.callbacks_new(&cbs) != 0) goto fail;
    ng.set_on_begin_headers(cbs, cb_begin_headers);
    ng.set_on_header(cbs, cb_header);
    ng.set_on_frame_recv(cbs, cb_frame_recv);
    ng.set_on_frame_send(cbs, cb_frame_send);
    ng.set_on_data_chunk_recv(cbs, cb_data_chunk);
    ng.set_on_stream_close(cbs, cb_stream_close);
    ng.set_send_data(cbs, send_body);
    if (ng.option_new(&opt) != 0) goto fail;
    ng.option_set_no_auto_window_update(opt, 1);
    if (ng.option_set_stream_reset_rate_limit && p->reset_burst)
        ng.option_set_stream_reset_rate_limit(opt, p->reset_burst, p->reset_rate);
    if (ng.option_set_max_continuations && p->max_continuations)
        ng.option_set_max_continuations(opt, p->max_continuations);
    if (ng.option_set_max_settings && p->max_settings)
        ng.option_set_max_settings(opt, p->max_settings);
    if (ng.option_set_max_outbound_ack && p->max_outbound_ack)
        ng.option_set_max_outbound_ack(opt, p->max_outbound_ack);
    if (ng.server_new2(&s->ng, cbs, s, opt) != 0) goto fail;
    ng.callbacks_del(cbs);
    ng.option_del(opt);
    cbs = NULL;
    opt = NULL;

    /* The server's connection preface is its SETTINGS (RFC 9113 section 3.4), queued before
     * anything is read. NO_RFC7540_PRIORITIES (RFC 9218 section 2.1): we never schedule by the
     * deprecated priority tree, so nghttp2 need not build it for a peer's PRIORITY frames. */
    nghttp2_settings_entry iv[6];
    size_t niv = 0;
    iv[niv++] = (nghttp2_settings_entry){NG_SETTINGS_MAX_CONCURRENT_STREAMS, p->max_concurrent_streams};
    iv[niv++] = (nghttp2_settings_entry){NG_SETTINGS_INITIAL_WINDOW_SIZE, p->initial_stream_window_size};
    iv[niv++] = (nghttp2_settings_entry){NG_SETTINGS_MAX_FRAME_SIZE, p->max_frame_size};
    iv[niv++] = (nghttp2_settings_entry){NG_SETTINGS_MAX_HEADER_LIST_SIZE, p->max_header_list_size};
    if (p->header_table_size)
        iv[niv++] = (nghttp2_settings_entry){NG_SETTINGS_HEADER_TABLE_SIZE, p->header_table_size};
    iv[niv++] = (nghttp2_settings_entry){NG_SETTINGS_NO_RFC7540_PRIORITIES, 1};
    if (ng.submit_settings(s->ng, NG_FLAG_NONE, iv, niv) != 0 &&
        ng.submit_settings(s->ng, NG_FLAG_NONE, iv, niv - 1) != 0)
        goto fail;
    if (p->initial_connection_window_size != 65535 &&
        ng.set_local_window_size(s->ng, NG_FLAG_NONE, 0,
                                 (int32_t)p->initial_connection_window_size) != 0)
        goto fail;
    publish(s);
    return s;
fail:
    if (cbs) ng.callbacks_del(cbs);
    if (opt) ng.option_del(opt);
    h2_session_free(s);
    return NULL;
}

int h2_upgrade(h2_session *s, const char *settings, size_t len, int head_request) {
    h2_stream *st = stream_new(s, 1);
    if (!st) return H2_ENOMEM;
    st->flags = ST_DELIVERED;
    int rv = ng.upgrade2(s->ng, (const uint8_t *)settings, len, head_request, st);
    /* a server session does not keep upgrade2's stream_user_data: set it ourselves */
    if (rv == 0) rv = ng.set_stream_user_data(s->ng, 1, st);
    if (rv < 0) stream_free(s, st);
    return rv;
}

h2_view *h2_session_view(h2_session *s) { return &s->v; }

void h2_session_free(h2_session *s) {
    if (!s) return;
    s->deleting = 1;
    if (s->ng) ng.session_del(s->ng);
    while (s->streams) stream_free(s, s->streams);
    free(s->v.ev);
    free(s->v.drained);
    free(s->v.segs);
    free(s->v.released);
    free(s->nv);
    buf_free(&s->arena);
    buf_free(&s->out);
    buf_free(&s->scratch);
    buf_free(&s->pseudo);
    free(s);
}
