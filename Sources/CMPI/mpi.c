#include "tk_mpi.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <mpi.h>

/* Requests started and not yet completed, guarded by `lock`. A progress thread polls them while the
 * caller computes: Open MPI moves the bytes of a non-blocking collective (TCP fragments, ring rounds)
 * only inside MPI calls, so without it a bucket started during the backward would mostly travel in
 * tk_mpi_wait_all. It needs MPI_THREAD_MULTIPLE; where the library offers less, there is no thread
 * and tk_mpi_progress (called as each parameter's gradient completes) is the only poll. The thread
 * polls every TOOLKIT_MPI_POLL_US microseconds (default 1000; 0: no thread): every 200 µs cost more
 * compute than it saved on two busy cores, every 1 ms still hides most of a 1 Gbit/s link's sums. */
static MPI_Request *pending = NULL;
static size_t pending_count = 0, pending_cap = 0;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t started = PTHREAD_COND_INITIALIZER;
static pthread_t poller;
static int poller_running = 0, poller_stop = 0;
static long poll_interval_us = 1000;

static void *poll_pending(void *unused) {
    (void)unused;
    struct timespec pause = {poll_interval_us / 1000000, (poll_interval_us % 1000000) * 1000};
    pthread_mutex_lock(&lock);
    while (!poller_stop) {
        if (pending_count == 0) {
            pthread_cond_wait(&started, &lock);
            continue;
        }
        int done = 0;
        MPI_Testall((int)pending_count, pending, &done, MPI_STATUSES_IGNORE);
        pthread_mutex_unlock(&lock);
        nanosleep(&pause, NULL);
        pthread_mutex_lock(&lock);
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int tk_mpi_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMI_SIZE") != NULL || getenv("PMIX_RANK") != NULL;
}

int tk_mpi_init(void) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return 0;
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS) return -1;
    const char *interval = getenv("TOOLKIT_MPI_POLL_US");
    if (interval) poll_interval_us = atol(interval);
    if (provided == MPI_THREAD_MULTIPLE && poll_interval_us > 0)
        poller_running = pthread_create(&poller, NULL, poll_pending, NULL) == 0;
    return 0;
}

int tk_mpi_rank(void) { int r = 0; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
int tk_mpi_size(void) { int s = 1; MPI_Comm_size(MPI_COMM_WORLD, &s); return s; }

/* MPI counts are ints: large buffers go in chunks. `FOR_CHUNKS(i, m, n)` runs its body for each
 * chunk [i, i + m) of [0, n). */
#define TK_MPI_CHUNK ((size_t)1 << 30)
#define FOR_CHUNKS(i, m, n) \
    for (size_t i = 0, m = (n) < TK_MPI_CHUNK ? (n) : TK_MPI_CHUNK; i < (n); \
         i += TK_MPI_CHUNK, m = (n) - i < TK_MPI_CHUNK ? (n) - i : TK_MPI_CHUNK)

/* In-place sum of n elements of `type` (each `size` bytes). */
static void allreduce_sum(void *buf, size_t n, MPI_Datatype type, size_t size) {
    FOR_CHUNKS(i, m, n) MPI_Allreduce(MPI_IN_PLACE, (char *)buf + i * size, (int)m, type, MPI_SUM, MPI_COMM_WORLD);
}

void tk_mpi_allreduce_sum_f32(float *buf, size_t n) { allreduce_sum(buf, n, MPI_FLOAT, sizeof(float)); }
void tk_mpi_allreduce_sum_f64(double *buf, size_t n) { allreduce_sum(buf, n, MPI_DOUBLE, sizeof(double)); }

/* Called with `lock` held. */
static MPI_Request *next_request(void) {
    if (pending_count == pending_cap) {
        size_t cap = pending_cap ? 2 * pending_cap : 64;
        MPI_Request *grown = realloc(pending, cap * sizeof *grown);
        if (!grown) MPI_Abort(MPI_COMM_WORLD, 1); /* out of memory for a handle: nothing sane remains */
        pending = grown;
        pending_cap = cap;
    }
    return &pending[pending_count++];
}

enum start_op { START_ALLREDUCE, START_REDUCE, START_BROADCAST };

/* Starts one non-blocking collective over buf (in chunks), records its requests and wakes the
 * progress thread. */
static void start(enum start_op op, float *buf, size_t n, int root) {
    int self = op == START_REDUCE && tk_mpi_rank() == root;
    pthread_mutex_lock(&lock);
    FOR_CHUNKS(i, m, n) {
        switch (op) {
        case START_ALLREDUCE:
            MPI_Iallreduce(MPI_IN_PLACE, buf + i, (int)m, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, next_request());
            break;
        case START_REDUCE: /* the root sums in place; the others only send */
            MPI_Ireduce(self ? MPI_IN_PLACE : buf + i, self ? buf + i : NULL, (int)m, MPI_FLOAT, MPI_SUM, root, MPI_COMM_WORLD,
                        next_request());
            break;
        case START_BROADCAST:
            MPI_Ibcast(buf + i, (int)m, MPI_FLOAT, root, MPI_COMM_WORLD, next_request());
            break;
        }
    }
    pthread_cond_signal(&started);
    pthread_mutex_unlock(&lock);
}

void tk_mpi_start_allreduce_sum_f32(float *buf, size_t n) { start(START_ALLREDUCE, buf, n, 0); }
void tk_mpi_start_reduce_sum_f32(float *buf, size_t n, int root) { start(START_REDUCE, buf, n, root); }
void tk_mpi_start_broadcast_f32(float *buf, size_t n, int root) { start(START_BROADCAST, buf, n, root); }

void tk_mpi_progress(void) {
    if (poller_running || pthread_mutex_trylock(&lock) != 0) return; /* the thread polls */
    int done = 0;
    if (pending_count) MPI_Testall((int)pending_count, pending, &done, MPI_STATUSES_IGNORE);
    pthread_mutex_unlock(&lock);
}

void tk_mpi_wait_all(void) {
    pthread_mutex_lock(&lock);
    if (pending_count) MPI_Waitall((int)pending_count, pending, MPI_STATUSES_IGNORE);
    pending_count = 0;
    pthread_mutex_unlock(&lock);
}

/* counts as ints, followed by each segment's offset (in floats): 2 * size ints, to be freed. */
static int *segments(const size_t *counts, int size) {
    int *ints = malloc(2 * (size_t)size * sizeof(int));
    if (!ints) MPI_Abort(MPI_COMM_WORLD, 1);
    size_t offset = 0;
    for (int r = 0; r < size; r++) {
        ints[r] = (int)counts[r];
        ints[size + r] = (int)offset;
        offset += counts[r];
    }
    return ints;
}

void tk_mpi_reduce_scatter_sum_f32(float *buf, const size_t *counts) {
    int size = tk_mpi_size(), rank = tk_mpi_rank();
    int *ints = segments(counts, size);
    /* In place, the result lands at the start of the buffer: move it to this rank's segment. */
    MPI_Reduce_scatter(MPI_IN_PLACE, buf, ints, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    memmove(buf + ints[size + rank], buf, counts[rank] * sizeof(float));
    free(ints);
}

void tk_mpi_allgather_f32(float *buf, const size_t *counts) {
    int size = tk_mpi_size();
    int *ints = segments(counts, size);
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, buf, ints, ints + size, MPI_FLOAT, MPI_COMM_WORLD);
    free(ints);
}

void tk_mpi_broadcast(void *buf, size_t bytes, int root) {
    FOR_CHUNKS(i, m, bytes) MPI_Bcast((char *)buf + i, (int)m, MPI_BYTE, root, MPI_COMM_WORLD);
}

void tk_mpi_barrier(void) { MPI_Barrier(MPI_COMM_WORLD); }
void tk_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

void tk_mpi_finalize(void) {
    if (poller_running) {
        pthread_mutex_lock(&lock);
        poller_stop = 1;
        pthread_cond_signal(&started);
        pthread_mutex_unlock(&lock);
        pthread_join(poller, NULL);
        poller_running = 0;
    }
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized) MPI_Finalize();
}

/* v into out (cap bytes), NUL-terminated, up to its first line break. */
static void copy_line(char *out, int cap, const char *v) {
    strncpy(out, v, (size_t)cap - 1);
    out[cap - 1] = 0;
    char *nl = strchr(out, '\n');
    if (nl) *nl = 0;
}

void tk_mpi_library_version(char *out, int cap) {
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(v, &len);
    copy_line(out, cap, v);
}

void tk_mpi_processor_name(char *out, int cap) {
    char v[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    MPI_Get_processor_name(v, &len);
    copy_line(out, cap, v);
}
