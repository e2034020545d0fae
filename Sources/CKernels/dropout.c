#include "ckernels.h"
#include "tk_math.h"

/* Element i of a tensor is column i % TK_DROPOUT_ROW of row i / TK_DROPOUT_ROW (tk_math.h). */
#define TK_DROPOUT_ROW 1024

TK_KERNEL(tk_dropout, (const float *x, float *y, long begin, long end, uint64_t seed, float p, float scale, int accumulate), (x, y, begin, end, seed, p, scale, accumulate)) {
    const uint32_t threshold = tk_dropout_threshold(p);
    for (long i = begin; i < end;) {
        long row = i / TK_DROPOUT_ROW, col = i % TK_DROPOUT_ROW;
        long n = TK_DROPOUT_ROW - col < end - i ? TK_DROPOUT_ROW - col : end - i;
        tk_dropout_row(x + i, y + i, (int)n, tk_dropout_key(seed, (uint64_t)row), (uint32_t)col, threshold, scale, accumulate);
        i += n;
    }
}

void tk_dropout_mask(uint64_t seed, uint64_t row, uint32_t col0, int n, float p, float *out) {
    tk_dropout_factors(out, n, tk_dropout_key(seed, row), col0, tk_dropout_threshold(p), 1.0f);
}
