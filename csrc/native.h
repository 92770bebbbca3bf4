/* Shared definitions of granian's C core. Declarations between the CDEF markers are what
 * build_ffi.py exposes to Python (plain C only, no preprocessor lines inside the markers). */
#ifndef GRANIAN_NATIVE_H
#define GRANIAN_NATIVE_H

/* CDEF BEGIN */
int granian_native_abi(void);
/* CDEF END */

#endif
