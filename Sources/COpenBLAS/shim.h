/* The CBLAS interface of the system's OpenBLAS. Only CPlatform includes it (the platform seam). */
#include <cblas.h>
