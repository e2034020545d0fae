#include <cblas.h>
#include <cpuid.h>

/* Declared by Debian's OpenBLAS headers too; repeated so the module does not depend on it. */
char *openblas_get_corename(void);
char *openblas_get_config(void);

/* CPUID and XGETBV for kernel selection (x86-64). Returns 0 when the leaf is unsupported. */
static inline int toolkit_cpuid(unsigned leaf, unsigned subleaf, unsigned *a, unsigned *b,
                                unsigned *c, unsigned *d) {
    return __get_cpuid_count(leaf, subleaf, a, b, c, d);
}

static inline unsigned long long toolkit_xgetbv(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}
