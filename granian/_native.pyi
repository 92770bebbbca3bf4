# Type stub for the cffi extension built by build_ffi.py: its members are generated from the
# csrc/*.h CDEF blocks, so they are typed loosely here and wrapped by typed Python modules.
from typing import Any

ffi: Any
lib: Any
