/* WebSocket frame codec; see ws.h for the contract.
 *
 * Base framing (RFC 6455 5.2):
 *   byte 0: FIN(1) RSV1(1) RSV2(1) RSV3(1) opcode(4)
 *   byte 1: MASK(1) payload length(7): 0-125 the length, 126 a 16-bit length follows,
 *           127 a 64-bit length follows (most significant bit 0), network byte order
 *   then the 4-byte masking key when MASK is set, then the payload.
 * Masking (5.3): payload byte i is XORed with key[i % 4]; the decoder keeps the key index of
 * the next byte (phase) so a payload split across calls unmasks exactly as a whole one.
 */
#include "ws.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#define WS_HAVE_SSE2 1
#else
#define WS_HAVE_SSE2 0
#endif

/* The summary's byte field is 31 bits (the result stays positive); its count field 20 bits. */
#define WS_MAX_DST ((size_t)0x7FFFFFFFu)
#define WS_MAX_REC 0xFFFFFu

/* dst[i] = src[i] ^ key[(phase + i) & 3]: 64 then 16 bytes per step with SSE2, then 8 with a
 * 64-bit word, then single bytes (below 8 bytes, single bytes only). The key is rotated by
 * phase into 16 bytes once, so every step starts at a multiple of 4 payload bytes from the
 * rotated key's origin. Loads go through memcpy / loadu: src and dst have any alignment. */
static void xor_copy(unsigned char *dst, const unsigned char *src, size_t n, const unsigned char *key,
                     uint32_t phase, int simd) {
    size_t i = 0;
    if (n < 8) {
        for (; i < n; i++) dst[i] = (unsigned char)(src[i] ^ key[(phase + i) & 3]);
        return;
    }
    /* the key rotated by phase, four times over: k[j] == key[(phase + j) & 3] */
    unsigned char k[16], twice[8];
    memcpy(twice, key, 4);
    memcpy(twice + 4, key, 4);
    memcpy(k, twice + phase, 4);
    memcpy(k + 4, k, 4);
    memcpy(k + 8, k, 8);
#if WS_HAVE_SSE2
    if (simd) {
        const __m128i m = _mm_loadu_si128((const __m128i *)(const void *)k);
        for (; i + 64 <= n; i += 64) {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 32));
            __m128i e = _mm_loadu_si128((const __m128i *)(const void *)(src + i + 48));
            _mm_storeu_si128((__m128i *)(void *)(dst + i), _mm_xor_si128(a, m));
            _mm_storeu_si128((__m128i *)(void *)(dst + i + 16), _mm_xor_si128(b, m));
            _mm_storeu_si128((__m128i *)(void *)(dst + i + 32), _mm_xor_si128(c, m));
            _mm_storeu_si128((__m128i *)(void *)(dst + i + 48), _mm_xor_si128(e, m));
        }
        for (; i + 16 <= n; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(src + i));
            _mm_storeu_si128((__m128i *)(void *)(dst + i), _mm_xor_si128(a, m));
        }
    }
#else
    (void)simd;
#endif
    uint64_t m8;
    memcpy(&m8, k, 8);
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, src + i, 8);
        v ^= m8;
        memcpy(dst + i, &v, 8);
    }
    for (; i < n; i++) dst[i] = (unsigned char)(src[i] ^ k[i & 3]);
}

/* Header bytes announced by byte 1: the extended length and the masking key (5.2). */
static size_t header_size(unsigned b1) {
    unsigned l7 = b1 & 0x7F;
    return 2u + (l7 == 126 ? 2u : l7 == 127 ? 8u : 0u) + ((b1 & 0x80) ? 4u : 0u);
}

/* The rules bytes 0 and 1 alone decide, checked before the rest of the header arrives. */
static int check_start(const ws_decoder *d, unsigned b0, unsigned b1) {
    unsigned op = b0 & 0x0F, rsv = b0 & 0x70;
    /* 3-7 are reserved non-control opcodes, 0xB-0xF reserved control opcodes (5.2, 11.8) */
    if ((op > 2 && op < 8) || op > 10) return WS_E_OPCODE;
    if (op >= 8) {
        if (rsv) return WS_E_RSV; /* no extension here defines RSV on control frames (7692 6) */
        if (!(b0 & 0x80)) return WS_E_CONTROL_FRAGMENTED; /* 5.5 */
        if ((b1 & 0x7F) > 125) return WS_E_CONTROL_TOO_LONG; /* 5.5 */
    } else if (op == 0) {
        if (rsv) return WS_E_RSV; /* RSV1 only on a message's first frame (7692 6.1) */
        if (!d->in_message) return WS_E_NO_MESSAGE; /* 5.4 */
    } else {
        if (rsv & ~d->rsv_allowed) return WS_E_RSV; /* 5.2 */
        if (d->in_message) return WS_E_IN_MESSAGE; /* 5.4: fragments are not interleaved */
    }
    if (d->require_mask && !(b1 & 0x80)) return WS_E_UNMASKED; /* 5.1 */
    return 0;
}

/* A complete header at h: length, key, message bookkeeping and the size bound. */
static int take_header(ws_decoder *d, const unsigned char *h) {
    unsigned b0 = h[0], b1 = h[1], l7 = b1 & 0x7F;
    uint64_t len;
    size_t p;
    if (l7 == 126) {
        len = ((uint64_t)h[2] << 8) | h[3];
        p = 4;
    } else if (l7 == 127) {
        len = 0;
        for (unsigned i = 0; i < 8; i++) len = (len << 8) | h[2 + i];
        p = 10;
        if (len >> 63) return WS_E_LENGTH; /* 5.2: the most significant bit MUST be 0 */
    } else {
        len = l7;
        p = 2;
    }
    unsigned op = b0 & 0x0F;
    if (op < 8) {
        if (op) {
            d->compressed = (b0 & 0x40) != 0;
            d->msg_len = 0;
        }
        if (!d->compressed && d->max_message) {
            /* msg_len <= max_message always holds, so the subtraction cannot wrap */
            if (len > d->max_message - d->msg_len) return WS_E_TOO_BIG;
            d->msg_len += len;
        }
        d->in_message = !(b0 & 0x80);
    }
    d->masked = (b1 & 0x80) != 0;
    if (d->masked) memcpy(d->key, h + p, 4);
    d->b0 = b0;
    d->remaining = len;
    d->phase = 0;
    return 0;
}

void ws_decoder_init(ws_decoder *d, ws_out *out, uint64_t max_message, uint32_t rsv_allowed,
                     int require_mask) {
    memset(d, 0, sizeof(*d));
    d->out = out;
    d->max_message = max_message;
    d->rsv_allowed = rsv_allowed & 0x70;
    d->require_mask = require_mask ? 1 : 0;
}

int64_t ws_decode_from(ws_decoder *d, const char *buf, size_t len, size_t start) {
    const unsigned char *b = (const unsigned char *)buf;
    ws_out *o = d->out;
    if (!o) return -WS_E_ARGS;
    o->nrec = 0;
    o->consumed = start;
    if (start > len || !o->rec || (!o->dst && o->dst_cap) || o->rec_cap > WS_MAX_REC) return -WS_E_ARGS;
    if (d->error) return -d->error;
    size_t dst_cap = o->dst_cap < WS_MAX_DST ? o->dst_cap : WS_MAX_DST;
    size_t pos = start, dpos = 0;
    uint32_t nrec = 0;
    uint32_t *cur = NULL; /* this call's record of the current frame, while it is open */
    int err = 0;
    for (;;) {
        if (!d->in_payload) {
            if (pos == len) break;
            if (nrec == o->rec_cap) {
                err = WS_E_FULL;
                break;
            }
            const unsigned char *h;
            if (d->hdr_len == 0 && len - pos >= 2) {
                /* the usual case: the header's first two bytes are here, read it in place */
                int e = check_start(d, b[pos], b[pos + 1]);
                if (e) {
                    err = e;
                    break;
                }
                size_t need = header_size(b[pos + 1]);
                if (len - pos < need) {
                    memcpy(d->hdr, b + pos, len - pos);
                    d->hdr_len = (uint32_t)(len - pos);
                    pos = len;
                    break;
                }
                h = b + pos;
                pos += need;
            } else {
                /* a header split across calls: gather it in d->hdr */
                while (d->hdr_len < 2 && pos < len) d->hdr[d->hdr_len++] = b[pos++];
                if (d->hdr_len < 2) break;
                int e = check_start(d, d->hdr[0], d->hdr[1]);
                if (e) {
                    err = e;
                    break;
                }
                size_t need = header_size(d->hdr[1]);
                size_t take = need - d->hdr_len;
                if (take > len - pos) take = len - pos;
                memcpy(d->hdr + d->hdr_len, b + pos, take);
                d->hdr_len += (uint32_t)take;
                pos += take;
                if (d->hdr_len < need) break;
                h = d->hdr;
                d->hdr_len = 0;
            }
            int e = take_header(d, h);
            if (e) {
                err = e;
                break;
            }
            cur = o->rec + (size_t)WS_REC_WORDS * nrec++;
            cur[0] = d->b0 | WS_REC_START;
            cur[1] = (uint32_t)dpos;
            cur[2] = 0;
            if (d->remaining == 0) {
                cur[0] |= WS_REC_END;
                cur = NULL;
                continue;
            }
            d->in_payload = 1;
        }
        if (pos == len) break;
        if (dpos == dst_cap) {
            err = WS_E_FULL;
            break;
        }
        if (!cur) {
            /* the frame started in an earlier call */
            if (nrec == o->rec_cap) {
                err = WS_E_FULL;
                break;
            }
            cur = o->rec + (size_t)WS_REC_WORDS * nrec++;
            cur[0] = d->b0;
            cur[1] = (uint32_t)dpos;
            cur[2] = 0;
        }
        size_t n = len - pos;
        if (n > d->remaining) n = (size_t)d->remaining;
        if (n > dst_cap - dpos) n = dst_cap - dpos;
        if (d->masked) {
            xor_copy((unsigned char *)o->dst + dpos, b + pos, n, d->key, d->phase, o->simd);
            d->phase = (uint32_t)((d->phase + n) & 3);
        } else {
            memcpy(o->dst + dpos, b + pos, n);
        }
        cur[2] += (uint32_t)n;
        pos += n;
        dpos += n;
        d->remaining -= n;
        if (d->remaining == 0) {
            cur[0] |= WS_REC_END;
            cur = NULL;
            d->in_payload = 0;
        }
    }
    o->nrec = nrec;
    o->consumed = pos;
    if (err) {
        if (err != WS_E_FULL) d->error = err;
        return -err;
    }
    uint32_t last = nrec ? o->rec[(size_t)WS_REC_WORDS * (nrec - 1)] : 0;
    return (int64_t)(((uint64_t)dpos << 32) | ((uint64_t)nrec << 12) | last);
}

int64_t ws_decode(ws_decoder *d, const char *buf, size_t len) { return ws_decode_from(d, buf, len, 0); }

size_t ws_frame_header(char *out, unsigned int b0, uint64_t len, const char *key) {
    unsigned char *h = (unsigned char *)out;
    unsigned m = key ? 0x80 : 0;
    size_t p;
    h[0] = (unsigned char)b0;
    if (len < 126) {
        h[1] = (unsigned char)(m | len);
        p = 2;
    } else if (len <= 0xFFFF) {
        h[1] = (unsigned char)(m | 126);
        h[2] = (unsigned char)(len >> 8);
        h[3] = (unsigned char)len;
        p = 4;
    } else {
        h[1] = (unsigned char)(m | 127);
        for (unsigned i = 0; i < 8; i++) h[2 + i] = (unsigned char)(len >> (56 - 8 * i));
        p = 10;
    }
    if (key) {
        memcpy(h + p, key, 4);
        p += 4;
    }
    return p;
}

void ws_mask(char *dst, const char *src, size_t n, const char *key, uint32_t phase) {
    xor_copy((unsigned char *)dst, (const unsigned char *)src, n, (const unsigned char *)key, phase & 3, 1);
}
