#include "ckernels.h"
#include "tk_math.h"
#include <string.h>

/* Element i of a tensor is column i % TK_DROPOUT_ROW of row i / TK_DROPOUT_ROW (tk_math.h). */
#define TK_DROPOUT_ROW 1024

TK_KERNEL(tk_dropout, (const float *x, float *y, long begin, long end, uint64_t seed, float p, float scale), (x, y, begin, end, seed, p, scale)) {
    const uint32_t threshold = tk_dropout_threshold(p);
    long i = begin;
    while (i < end) {
        long row = i / TK_DROPOUT_ROW, col = i % TK_DROPOUT_ROW;
        long n = TK_DROPOUT_ROW - col < end - i ? TK_DROPOUT_ROW - col : end - i;
        if (y != x) memcpy(y + i, x + i, sizeof(float) * (size_t)n);
        tk_dropout_row(y + i, (int)n, tk_dropout_key(seed, (uint64_t)row), (uint32_t)col, threshold, scale);
        i += n;
    }
}

void tk_dropout_mask(uint64_t seed, uint64_t row, uint32_t col0, int n, float p, float *out) {
    for (int c = 0; c < n; c++) out[c] = 1.0f;
    tk_dropout_row(out, n, tk_dropout_key(seed, row), col0, tk_dropout_threshold(p), 1.0f);
}
