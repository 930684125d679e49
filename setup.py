"""C extensions for the hot paths; everything else is in pyproject.toml.

Each extension is optional: without a compiler the build goes on and the
pure-Python fallback runs (see healthplane.runtime.native).
"""

from setuptools import Extension, setup

CFLAGS = ["-O3", "-std=c11", "-Wall", "-Wextra", "-fno-strict-aliasing"]

EXTENSIONS: list[Extension] = [
    Extension("healthplane.aggregator.dns._fastdns", ["aggregator/dns/_fastdns.c"],
              optional=True, extra_compile_args=CFLAGS),
    Extension("healthplane.aggregator._tick_kernel", ["aggregator/_tick_kernel.c"],
              optional=True, extra_compile_args=CFLAGS),
    Extension("healthplane.checker._engine",
              sources=[f"checker/engine/{c}.c" for c in (
                  "module", "engine", "conn", "llhttp/llhttp", "llhttp/api", "llhttp/http")],
              include_dirs=["checker/engine"], optional=True, extra_compile_args=CFLAGS),
]

setup(ext_modules=EXTENSIONS)
