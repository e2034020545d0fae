/* The MPI seam: a few functions over the MPI C API, whose handles (MPI_COMM_WORLD, MPI_FLOAT,
 * MPI_SUM) are macros Swift cannot import. Only this file and mpi.c name MPI. */
#ifndef TK_MPI_H
#define TK_MPI_H

#include <stddef.h>

/* 1 when this process was started by an MPI launcher (mpirun/mpiexec, srun with PMI). */
int tk_mpi_launched(void);
/* MPI_Init_thread (multiple, for the progress thread); 0 on success. Errors end the whole job
 * (MPI_ERRORS_ARE_FATAL). Starts the progress thread (every TOOLKIT_MPI_POLL_US µs, default 1000; 0: none). */
int tk_mpi_init(void);
int tk_mpi_rank(void);
int tk_mpi_size(void);
/* In-place sums over all ranks. */
void tk_mpi_allreduce_sum_f32(float *buf, size_t n);
void tk_mpi_allreduce_sum_f64(double *buf, size_t n);
/* Non-blocking float32 collectives, in place. Every rank must start the same operations in the same
 * order; each returns at once and is completed by tk_mpi_wait_all (tk_mpi_progress lets MPI advance
 * them meanwhile). Reduce leaves the sum on root only; broadcast copies root's buffer everywhere. */
void tk_mpi_start_allreduce_sum_f32(float *buf, size_t n);
void tk_mpi_start_reduce_sum_f32(float *buf, size_t n, int root);
void tk_mpi_start_broadcast_f32(float *buf, size_t n, int root);
void tk_mpi_progress(void);
void tk_mpi_wait_all(void);
/* In-place reduce-scatter and allgather over a buffer split into size consecutive segments of
 * counts[r] floats (each below 2^31): after the reduce-scatter, segment r of rank r holds the sum
 * of every rank's segment r (the rest is unspecified); after the allgather, every rank holds every
 * rank's segment r. */
void tk_mpi_reduce_scatter_sum_f32(float *buf, const size_t *counts);
void tk_mpi_allgather_f32(float *buf, const size_t *counts);
/* Bytes from root to every rank. */
void tk_mpi_broadcast(void *buf, size_t bytes, int root);
void tk_mpi_barrier(void);
/* Ends every rank of the job with `code`. */
void tk_mpi_abort(int code);
void tk_mpi_finalize(void);
/* The MPI library's version string and this rank's host name (into out, cap bytes). */
void tk_mpi_library_version(char *out, int cap);
void tk_mpi_processor_name(char *out, int cap);

#endif
