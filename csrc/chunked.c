/* Chunked transfer-coding decoder; see chunked.h for the contract.
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF                 (RFC 9112 7.1)
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   chunk-size   = 1*HEXDIG
 *   chunk-ext    = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
 *   trailer-section = *( field-line CRLF )
 * - chunk-size overflowing 63 bits is refused (9112 7.1: "MUST ... anticipate potential
 *   integer conversion overflows"), as is a size line longer than max_line (extensions are
 *   otherwise unbounded: node's CVE-2024-22019 fix caps them the same way);
 * - extensions must start with ";" after optional whitespace and may hold no control bytes;
 *   they carry no meaning for us and are skipped;
 * - trailer fields follow the header-field rules (token name, no whitespace before ":", no
 *   control bytes in the value, no obs-fold) and are discarded (9112 7.1.2 allows it); their
 *   total size is capped by max_trailer;
 * - every line ends in CRLF (no bare LF), as in the head.
 */
#include "chunked.h"

#include "h1.h"

#include <string.h>

enum {
    CS_SIZE0 = 0, /* zero state: a fresh decoder expects the first hex digit */
    CS_SIZE,
    CS_EXT_WS,
    CS_EXT,
    CS_SIZE_LF,
    CS_DATA,
    CS_DATA_CR,
    CS_DATA_LF,
    CS_TRAILER_START,
    CS_TRAILER_NAME,
    CS_TRAILER_VALUE,
    CS_TRAILER_LF,
    CS_END_LF,
    CS_DONE
};

#define SIZE_MAX63 ((uint64_t)0x7FFFFFFFFFFFFFFFULL)

static int is_tchar(unsigned char c) {
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return 1;
    switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '.': case '^': case '_': case '`': case '|': case '~':
        return 1;
    default:
        return 0;
    }
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* field-vchar / SP / HTAB (RFC 9110 5.5) */
static int is_value_byte(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7F); }

int h1_chunked_decode(h1_chunked *st, const char *src_, size_t len, size_t start, char *dst) {
    const unsigned char *src = (const unsigned char *)src_;
    size_t p = start, w = 0;
    st->produced = 0;
    st->end = start;
    if (st->error) return st->error;
    if (start > len) return -H1_E_ARGS; /* a caller bug, not the peer's: not sticky */

#define FAIL(code)                                                                             \
    do {                                                                                       \
        st->end = p;                                                                           \
        st->produced = w;                                                                      \
        st->error = -(code);                                                                   \
        return -(code);                                                                        \
    } while (0)
#define LINE_BYTE()                                                                            \
    do {                                                                                       \
        if (++st->line_len > st->max_line) FAIL(H1_E_CHUNK_LINE_TOO_LONG);                     \
    } while (0)
#define TRAILER_BYTE()                                                                         \
    do {                                                                                       \
        if (++st->trailer_len > st->max_trailer) FAIL(H1_E_TRAILER_TOO_LARGE);                 \
    } while (0)

    while (p < len && st->state != CS_DONE) {
        unsigned char c = src[p];
        switch (st->state) {
        case CS_SIZE0: {
            int v = hexval(c);
            if (v < 0) FAIL(H1_E_CHUNK_SIZE);
            LINE_BYTE();
            st->size = (uint64_t)v;
            st->state = CS_SIZE;
            p++;
            break;
        }
        case CS_SIZE: {
            int v = hexval(c);
            if (v >= 0) {
                LINE_BYTE();
                if (st->size > (SIZE_MAX63 >> 4)) FAIL(H1_E_CHUNK_OVERFLOW);
                st->size = (st->size << 4) | (uint64_t)v;
                p++;
            } else if (c == '\r') {
                st->state = CS_SIZE_LF;
                p++;
            } else if (c == ';') {
                LINE_BYTE();
                st->state = CS_EXT;
                p++;
            } else if (c == ' ' || c == '\t') {
                LINE_BYTE();
                st->state = CS_EXT_WS;
                p++;
            } else if (c == '\n') {
                FAIL(H1_E_CHUNK_EOL);
            } else {
                FAIL(H1_E_CHUNK_SIZE);
            }
            break;
        }
        case CS_EXT_WS:
            /* BWS before ";": whitespace then a ";" must follow */
            LINE_BYTE();
            if (c == ';')
                st->state = CS_EXT;
            else if (c != ' ' && c != '\t')
                FAIL(H1_E_CHUNK_EXT);
            p++;
            break;
        case CS_EXT:
            if (c == '\r') {
                st->state = CS_SIZE_LF;
            } else {
                if (!is_value_byte(c)) FAIL(c == '\n' ? H1_E_CHUNK_EOL : H1_E_CHUNK_EXT);
                LINE_BYTE();
            }
            p++;
            break;
        case CS_SIZE_LF:
            if (c != '\n') FAIL(H1_E_CHUNK_EOL);
            p++;
            st->line_len = 0;
            st->state = st->size ? CS_DATA : CS_TRAILER_START;
            break;
        case CS_DATA: {
            size_t n = len - p;
            if ((uint64_t)n > st->size) n = (size_t)st->size;
            /* memmove: dst may alias src (in-place decoding), never ahead of p */
            if (dst + w != (char *)(src + p)) memmove(dst + w, src + p, n);
            w += n;
            p += n;
            st->size -= n;
            if (st->size == 0) st->state = CS_DATA_CR;
            break;
        }
        case CS_DATA_CR:
            if (c != '\r') FAIL(H1_E_CHUNK_EOL);
            st->state = CS_DATA_LF;
            p++;
            break;
        case CS_DATA_LF:
            if (c != '\n') FAIL(H1_E_CHUNK_EOL);
            st->state = CS_SIZE0;
            p++;
            break;
        case CS_TRAILER_START:
            TRAILER_BYTE();
            if (c == '\r')
                st->state = CS_END_LF;
            else if (is_tchar(c))
                st->state = CS_TRAILER_NAME;
            else
                FAIL(c == '\n' ? H1_E_CHUNK_EOL : H1_E_TRAILER);
            p++;
            break;
        case CS_TRAILER_NAME:
            TRAILER_BYTE();
            if (c == ':')
                st->state = CS_TRAILER_VALUE;
            else if (!is_tchar(c))
                FAIL(H1_E_TRAILER);
            p++;
            break;
        case CS_TRAILER_VALUE:
            TRAILER_BYTE();
            if (c == '\r')
                st->state = CS_TRAILER_LF;
            else if (!is_value_byte(c))
                FAIL(c == '\n' ? H1_E_CHUNK_EOL : H1_E_TRAILER);
            p++;
            break;
        case CS_TRAILER_LF:
            TRAILER_BYTE();
            if (c != '\n') FAIL(H1_E_CHUNK_EOL);
            st->state = CS_TRAILER_START;
            p++;
            break;
        case CS_END_LF:
            if (c != '\n') FAIL(H1_E_CHUNK_EOL);
            st->state = CS_DONE;
            p++;
            break;
        default:
            FAIL(H1_E_ARGS);
        }
    }
#undef FAIL
#undef LINE_BYTE
#undef TRAILER_BYTE
    st->end = p;
    st->produced = w;
    return st->state == CS_DONE ? 1 : 0;
}
