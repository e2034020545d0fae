#include "tk_mpi.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <mpi.h>

int tk_mpi_launched(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMI_SIZE") != NULL || getenv("PMIX_RANK") != NULL;
}

int tk_mpi_init(void) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (initialized) return 0;
    int provided = 0;
    return MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) == MPI_SUCCESS ? 0 : -1;
}

int tk_mpi_rank(void) { int r = 0; MPI_Comm_rank(MPI_COMM_WORLD, &r); return r; }
int tk_mpi_size(void) { int s = 1; MPI_Comm_size(MPI_COMM_WORLD, &s); return s; }

/* MPI counts are ints: large buffers go in chunks. */
#define TK_MPI_CHUNK ((size_t)1 << 30)

/* In-place sum of n elements of `type` (each `size` bytes), in chunks of at most TK_MPI_CHUNK. */
static void allreduce_sum(void *buf, size_t n, MPI_Datatype type, size_t size) {
    for (size_t i = 0; i < n; i += TK_MPI_CHUNK) {
        size_t m = n - i < TK_MPI_CHUNK ? n - i : TK_MPI_CHUNK;
        MPI_Allreduce(MPI_IN_PLACE, (char *)buf + i * size, (int)m, type, MPI_SUM, MPI_COMM_WORLD);
    }
}

void tk_mpi_allreduce_sum_f32(float *buf, size_t n) { allreduce_sum(buf, n, MPI_FLOAT, sizeof(float)); }
void tk_mpi_allreduce_sum_f64(double *buf, size_t n) { allreduce_sum(buf, n, MPI_DOUBLE, sizeof(double)); }

void tk_mpi_broadcast(void *buf, size_t bytes, int root) {
    for (size_t i = 0; i < bytes; i += TK_MPI_CHUNK) {
        size_t m = bytes - i < TK_MPI_CHUNK ? bytes - i : TK_MPI_CHUNK;
        MPI_Bcast((char *)buf + i, (int)m, MPI_BYTE, root, MPI_COMM_WORLD);
    }
}

void tk_mpi_barrier(void) { MPI_Barrier(MPI_COMM_WORLD); }
void tk_mpi_abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

void tk_mpi_finalize(void) {
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized) MPI_Finalize();
}

void tk_mpi_library_version(char *out, int cap) {
    char v[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(v, &len);
    strncpy(out, v, (size_t)cap - 1);
    out[cap - 1] = 0;
    char *nl = strchr(out, '\n');
    if (nl) *nl = 0;
}

void tk_mpi_processor_name(char *out, int cap) {
    char v[MPI_MAX_PROCESSOR_NAME];
    int len = 0;
    MPI_Get_processor_name(v, &len);
    strncpy(out, v, (size_t)cap - 1);
    out[cap - 1] = 0;
}
