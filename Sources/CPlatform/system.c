/* Thread, memory and process policy. */
#define _GNU_SOURCE
#include "tk_platform.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#if defined(__linux__)
#include <sched.h>
#include <sys/prctl.h>
#endif

int tk_cpu_count(void) {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
#endif
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* Bytes of memory a new allocation can use without swapping: Linux's MemAvailable (free plus
 * reclaimable cache), else the physical memory size; 0 when unknown. */
unsigned long long tk_available_memory(void) {
#if defined(__linux__)
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        unsigned long long kb = 0;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
        }
        fclose(f);
        if (kb > 0) return kb * 1024ULL;
    }
#endif
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    if (pages > 0 && size > 0) return (unsigned long long)pages * (unsigned long long)size;
#endif
    return 0;
}

void tk_advise_huge_pages(void *p, size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    (void)madvise(p, bytes, MADV_HUGEPAGE);
#else
    (void)p;
    (void)bytes;
#endif
}

int tk_busy_start(void) {
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0) return pid < 0 ? -1 : (int)pid;
    /* Child: only async-signal-safe calls from here on (the parent may have had other threads). */
#if defined(__linux__)
    prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
    volatile unsigned long x = 1;
    for (;;) {
        for (int i = 0; i < 1 << 20; i++) x = x * 6364136223846793005ul + 1;
        if (getppid() != parent) _exit(0);
    }
}

void tk_busy_stop(int pid) {
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
}
