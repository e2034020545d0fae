/* Byte-stream kernels for the shard pipeline: CRC-32 and UTF-8 validation. */
#include "ckernels.h"
#include "tk_platform.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* ---- CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320; zlib's crc32) ---- */

static uint32_t crc_tables[8][256];

static void crc_init_tables(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_tables[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++)
            crc_tables[k][i] = (crc_tables[k - 1][i] >> 8) ^ crc_tables[0][crc_tables[k - 1][i] & 0xFF];
}

/* Slicing-by-8 on the raw (not inverted) register. */
static uint32_t crc_slice8(uint32_t c, const uint8_t *p, size_t n) {
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= c;
        c = crc_tables[7][lo & 0xFF] ^ crc_tables[6][(lo >> 8) & 0xFF] ^ crc_tables[5][(lo >> 16) & 0xFF] ^
            crc_tables[4][lo >> 24] ^ crc_tables[3][hi & 0xFF] ^ crc_tables[2][(hi >> 8) & 0xFF] ^
            crc_tables[1][(hi >> 16) & 0xFF] ^ crc_tables[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) c = crc_tables[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__)
/* Carry-less multiplication folding (Gopal et al., "Fast CRC Computation for Generic Polynomials
 * Using PCLMULQDQ", Intel 2009), for the reflected CRC-32: four 128-bit lanes fold 64 bytes per
 * step, then fold to one lane, reduce 128 -> 64 bits, and finish with a Barrett reduction.
 * Constants are x^k mod P for the fold distances (bit-reflected, shifted by one), and
 * (floor(x^64 / P), P) for the reduction. n must be a multiple of 16 and at least 64. */
__attribute__((target("pclmul,sse4.1"))) static uint32_t crc_pclmul(uint32_t crc, const uint8_t *p, size_t n) {
    const __m128i k1k2 = _mm_set_epi64x(0x01c6e41596LL, 0x0154442bd4LL);
    const __m128i k3k4 = _mm_set_epi64x(0x00ccaa009eLL, 0x01751997d0LL);
    const __m128i k5 = _mm_set_epi64x(0, 0x0163cd6124LL);
    const __m128i poly = _mm_set_epi64x(0x01f7011641LL, 0x01db710641LL);
    const __m128i low32 = _mm_setr_epi32(-1, 0, -1, 0);

    __m128i x1 = _mm_loadu_si128((const __m128i *)(p + 0x00));
    __m128i x2 = _mm_loadu_si128((const __m128i *)(p + 0x10));
    __m128i x3 = _mm_loadu_si128((const __m128i *)(p + 0x20));
    __m128i x4 = _mm_loadu_si128((const __m128i *)(p + 0x30));
    x1 = _mm_xor_si128(x1, _mm_cvtsi32_si128((int)crc));
    p += 64;
    n -= 64;
    while (n >= 64) {
        __m128i a1 = _mm_clmulepi64_si128(x1, k1k2, 0x00), b1 = _mm_clmulepi64_si128(x1, k1k2, 0x11);
        __m128i a2 = _mm_clmulepi64_si128(x2, k1k2, 0x00), b2 = _mm_clmulepi64_si128(x2, k1k2, 0x11);
        __m128i a3 = _mm_clmulepi64_si128(x3, k1k2, 0x00), b3 = _mm_clmulepi64_si128(x3, k1k2, 0x11);
        __m128i a4 = _mm_clmulepi64_si128(x4, k1k2, 0x00), b4 = _mm_clmulepi64_si128(x4, k1k2, 0x11);
        x1 = _mm_xor_si128(_mm_xor_si128(a1, b1), _mm_loadu_si128((const __m128i *)(p + 0x00)));
        x2 = _mm_xor_si128(_mm_xor_si128(a2, b2), _mm_loadu_si128((const __m128i *)(p + 0x10)));
        x3 = _mm_xor_si128(_mm_xor_si128(a3, b3), _mm_loadu_si128((const __m128i *)(p + 0x20)));
        x4 = _mm_xor_si128(_mm_xor_si128(a4, b4), _mm_loadu_si128((const __m128i *)(p + 0x30)));
        p += 64;
        n -= 64;
    }
#define TK_FOLD(x, next)                                                                                   \
    x = _mm_xor_si128(_mm_xor_si128(_mm_clmulepi64_si128(x, k3k4, 0x00), _mm_clmulepi64_si128(x, k3k4, 0x11)), \
                      next)
    TK_FOLD(x1, x2);
    TK_FOLD(x1, x3);
    TK_FOLD(x1, x4);
    while (n >= 16) {
        TK_FOLD(x1, _mm_loadu_si128((const __m128i *)p));
        p += 16;
        n -= 16;
    }
#undef TK_FOLD
    /* 128 -> 64 bits */
    __m128i t = _mm_clmulepi64_si128(x1, k3k4, 0x10);
    x1 = _mm_xor_si128(_mm_srli_si128(x1, 8), t);
    t = _mm_srli_si128(x1, 4);
    x1 = _mm_xor_si128(_mm_clmulepi64_si128(_mm_and_si128(x1, low32), k5, 0x00), t);
    /* Barrett reduction 64 -> 32 bits */
    t = _mm_clmulepi64_si128(_mm_and_si128(x1, low32), poly, 0x10);
    t = _mm_clmulepi64_si128(_mm_and_si128(t, low32), poly, 0x00);
    return (uint32_t)_mm_extract_epi32(_mm_xor_si128(x1, t), 1);
}
#endif

#if defined(__x86_64__)
static int crc_use_pclmul;
#endif
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    crc_init_tables();
#if defined(__x86_64__)
    crc_use_pclmul = tk_cpu()->pclmul && tk_cpu()->sse42;
#endif
}

uint32_t tk_crc32(uint32_t crc, const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    uint32_t c = ~crc;
#if defined(__x86_64__)
    /* The portable SIMD level takes the table path, so that tests cover it on every machine. */
    if (crc_use_pclmul && tk_simd_level() != TK_SIMD_PORTABLE && n >= 64) {
        size_t bulk = n & ~(size_t)15;
        c = crc_pclmul(c, p, bulk);
        p += bulk;
        n -= bulk;
    }
#endif
    return ~crc_slice8(c, p, n);
}

uint32_t tk_crc32_portable(uint32_t crc, const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    return ~crc_slice8(~crc, data, n);
}

/* ---- UTF-8 validation (Unicode 15, table 3-7: no overlongs, surrogates or values > U+10FFFF) ---- */

ptrdiff_t tk_utf8_invalid_offset(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (p[i] < 0x80) {
            /* ASCII run: 32 bytes per step while no byte has its high bit set */
            while (i + 32 <= n) {
                uint64_t a, b, c, d;
                memcpy(&a, p + i, 8);
                memcpy(&b, p + i + 8, 8);
                memcpy(&c, p + i + 16, 8);
                memcpy(&d, p + i + 24, 8);
                if ((a | b | c | d) & 0x8080808080808080ULL) break;
                i += 32;
            }
            while (i < n && p[i] < 0x80) i++;
            continue;
        }
        uint8_t c = p[i];
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            need = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            need = 2;
            if (c == 0xE0) lo = 0xA0;
            if (c == 0xED) hi = 0x9F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            need = 3;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;
        } else {
            return (ptrdiff_t)i;
        }
        if (i + need >= n) return (ptrdiff_t)i; /* truncated sequence */
        if (p[i + 1] < lo || p[i + 1] > hi) return (ptrdiff_t)i;
        for (size_t k = 2; k <= need; k++)
            if ((p[i + k] & 0xC0) != 0x80) return (ptrdiff_t)i;
        i += need + 1;
    }
    return -1;
}
