/* CPU feature detection and the SIMD level the C kernels dispatch on. */
#include "tk_platform.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define TK_X86 1
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#elif defined(__aarch64__) && defined(__APPLE__)
#include <sys/sysctl.h>
#endif

static tk_cpu_info cpu;
static pthread_once_t cpu_once = PTHREAD_ONCE_INIT;

#if defined(TK_X86)
static unsigned long long read_xcr0(void) {
    unsigned eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static void detect_x86(tk_cpu_info *f) {
    unsigned a = 0, b = 0, c = 0, d = 0;
    strcpy(f->arch, "x86_64");
    if (!__get_cpuid_count(0, 0, &a, &b, &c, &d)) return;
    unsigned max_leaf = a;
    memcpy(f->vendor, &b, 4);
    memcpy(f->vendor + 4, &d, 4);
    memcpy(f->vendor + 8, &c, 4);
    f->vendor[12] = 0;
    unsigned ext = 0;
    if (__get_cpuid_count(0x80000000u, 0, &a, &b, &c, &d)) ext = a;
    if (ext >= 0x80000004u) {
        unsigned r[12];
        for (unsigned i = 0; i < 3; i++) __get_cpuid_count(0x80000002u + i, 0, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        char brand[49];
        memcpy(brand, r, 48);
        brand[48] = 0;
        const char *s = brand;
        while (*s == ' ') s++;
        snprintf(f->model, sizeof f->model, "%s", s);
        for (size_t n = strlen(f->model); n > 0 && f->model[n - 1] == ' '; n--) f->model[n - 1] = 0;
    } else {
        strcpy(f->model, "unknown");
    }
    if (ext >= 0x80000001u && __get_cpuid_count(0x80000001u, 0, &a, &b, &c, &d)) f->lzcnt = (c >> 5) & 1;
    if (max_leaf < 1) return;
    __get_cpuid_count(1, 0, &a, &b, &c, &d);
    f->sse42 = (c >> 20) & 1;
    f->pclmul = (c >> 1) & 1;
    f->movbe = (c >> 22) & 1;
    f->f16c = (c >> 29) & 1;
    int osxsave = (c >> 27) & 1, cpu_avx = (c >> 28) & 1, cpu_fma = (c >> 12) & 1;
    unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
    int os_avx = (xcr0 & 0x6) == 0x6;                      /* XMM and YMM state */
    int os_avx512 = (xcr0 & 0xE6) == 0xE6;                 /* plus opmask, ZMM_Hi256, Hi16_ZMM */
    int os_amx = (xcr0 & (3ull << 17)) == (3ull << 17);    /* XTILECFG, XTILEDATA */
    f->avx = cpu_avx && os_avx;
    f->fma = cpu_fma && f->avx;
    f->f16c = f->f16c && f->avx;
    if (max_leaf < 7) return;
    __get_cpuid_count(7, 0, &a, &b, &c, &d);
    f->bmi1 = (b >> 3) & 1;
    f->bmi2 = (b >> 8) & 1;
    f->avx2 = f->avx && ((b >> 5) & 1);
    f->avx512f = os_avx512 && ((b >> 16) & 1);
    f->avx512dq = os_avx512 && ((b >> 17) & 1);
    f->avx512cd = os_avx512 && ((b >> 28) & 1);
    f->avx512bw = os_avx512 && ((b >> 30) & 1);
    f->avx512vl = os_avx512 && ((b >> 31) & 1);
    f->avx512vnni = os_avx512 && ((c >> 11) & 1);
    f->amx_bf16 = os_amx && ((d >> 22) & 1);
    f->amx_tile = os_amx && ((d >> 24) & 1);
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) f->avx512bf16 = os_avx512 && ((a >> 5) & 1);
}
#endif

#if defined(__aarch64__)
static void detect_arm(tk_cpu_info *f) {
    strcpy(f->arch, "aarch64");
    strcpy(f->vendor, "ARM");
    strcpy(f->model, "aarch64");
    f->neon = 1; /* Advanced SIMD is mandatory in ARMv8-A */
#if defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    f->asimddp = (hw >> 20) & 1;   /* HWCAP_ASIMDDP */
    f->sve = (hw >> 22) & 1;       /* HWCAP_SVE */
    f->arm_crc32 = (hw >> 7) & 1;  /* HWCAP_CRC32 */
    f->arm_bf16 = (hw2 >> 14) & 1; /* HWCAP2_BF16 */
#elif defined(__APPLE__)
    int v = 0;
    size_t n = sizeof v;
    if (sysctlbyname("hw.optional.arm.FEAT_DotProd", &v, &n, NULL, 0) == 0) f->asimddp = v;
    n = sizeof v;
    if (sysctlbyname("hw.optional.arm.FEAT_BF16", &v, &n, NULL, 0) == 0) f->arm_bf16 = v;
    n = sizeof v;
    if (sysctlbyname("hw.optional.armv8_crc32", &v, &n, NULL, 0) == 0) f->arm_crc32 = v;
    char brand[64];
    n = sizeof brand;
    if (sysctlbyname("machdep.cpu.brand_string", brand, &n, NULL, 0) == 0) snprintf(f->model, sizeof f->model, "%s", brand);
#endif
}
#endif

static void detect(void) {
#if defined(TK_X86)
    detect_x86(&cpu);
#elif defined(__aarch64__)
    detect_arm(&cpu);
#else
    strcpy(cpu.arch, "other");
    strcpy(cpu.vendor, "unknown");
    strcpy(cpu.model, "unknown");
#endif
}

const tk_cpu_info *tk_cpu(void) {
    pthread_once(&cpu_once, detect);
    return &cpu;
}

/* MARK: - SIMD level */

int tk_simd_current = TK_SIMD_PORTABLE;
static char simd_env_error[160];

int tk_simd_supported(int level) {
    const tk_cpu_info *f = tk_cpu();
    switch (level) {
    case TK_SIMD_PORTABLE: return 1;
    case TK_SIMD_AVX2:
        return f->avx2 && f->fma && f->bmi1 && f->bmi2 && f->f16c && f->lzcnt && f->movbe;
    case TK_SIMD_AVX512:
        return tk_simd_supported(TK_SIMD_AVX2) && f->avx512f && f->avx512bw && f->avx512dq && f->avx512vl && f->avx512cd;
    case TK_SIMD_NEON:
#if defined(__aarch64__)
        return f->neon;
#else
        return 0;
#endif
    default: return 0;
    }
}

int tk_simd_best(void) {
    if (tk_simd_supported(TK_SIMD_AVX512)) return TK_SIMD_AVX512;
    if (tk_simd_supported(TK_SIMD_AVX2)) return TK_SIMD_AVX2;
    if (tk_simd_supported(TK_SIMD_NEON)) return TK_SIMD_NEON;
    return TK_SIMD_PORTABLE;
}

static const char *const simd_names[] = {"portable", "avx2", "avx512", "neon"};

const char *tk_simd_name(int level) { return level >= 0 && level <= TK_SIMD_NEON ? simd_names[level] : NULL; }

int tk_simd_parse(const char *name) {
    for (int i = 0; i <= TK_SIMD_NEON; i++)
        if (name && strcmp(name, simd_names[i]) == 0) return i;
    return -1;
}

int tk_simd_set(int level) {
    if (!tk_simd_supported(level)) return -1;
    __atomic_store_n(&tk_simd_current, level, __ATOMIC_RELAXED);
    return 0;
}

const char *tk_simd_env_error(void) { return simd_env_error[0] ? simd_env_error : NULL; }

/* Runs before main (and before the BLAS selection, which reads the level). */
__attribute__((constructor(101))) static void simd_init(void) {
    int level = tk_simd_best();
    const char *env = getenv("TOOLKIT_SIMD");
    if (env && *env) {
        int want = tk_simd_parse(env);
        if (want < 0) {
            snprintf(simd_env_error, sizeof simd_env_error,
                     "TOOLKIT_SIMD=%.40s is not a SIMD level (portable, avx2, avx512, neon)", env);
        } else if (!tk_simd_supported(want)) {
            snprintf(simd_env_error, sizeof simd_env_error,
                     "TOOLKIT_SIMD=%s: this CPU does not support it (best: %s)", env, tk_simd_name(level));
        } else {
            level = want;
        }
    }
    tk_simd_current = level;
}
