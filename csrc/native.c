#include "native.h"

/* Bumped whenever a struct or signature visible to Python changes, so a stale build is caught. */
int granian_native_abi(void) { return 1; }
