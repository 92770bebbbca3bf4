# cffi's `cffi_modules` needs a setup() call; everything else lives in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["build_ffi.py:ffibuilder"])
