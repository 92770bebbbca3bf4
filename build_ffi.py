"""cffi builder for granian._native.

The cdef is read from the csrc/*.h headers: each header keeps the declarations Python may see
between the markers `/* CDEF BEGIN */` and `/* CDEF END */` (plain C, no preprocessor lines), so a
declaration is written once. Every csrc/*.c is compiled into the one extension, with the
machine's C compiler and nothing else.
"""

from __future__ import annotations

import pathlib
import re

from cffi import FFI

HERE = pathlib.Path(__file__).resolve().parent
CSRC = HERE / "csrc"
_CDEF_RE = re.compile(r"/\* CDEF BEGIN \*/(.*?)/\* CDEF END \*/", re.S)


def _cdef() -> str:
    parts = []
    for header in sorted(CSRC.glob("*.h")):
        parts.extend(m.group(1) for m in _CDEF_RE.finditer(header.read_text()))
    return "\n".join(parts)


ffibuilder = FFI()
ffibuilder.cdef(_cdef())
ffibuilder.set_source(
    "granian._native",
    "\n".join(f'#include "{h.name}"' for h in sorted(CSRC.glob("*.h"))),
    sources=[str(p.relative_to(HERE)) for p in sorted(CSRC.glob("*.c"))],
    include_dirs=[str(CSRC.relative_to(HERE))],
    extra_compile_args=["-O3", "-std=c99", "-Wall", "-Wextra"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
