"""C extensions for the hot paths; everything else is in pyproject.toml.

Each extension is optional: without a compiler the build goes on and the
pure-Python fallback runs (see healthplane.runtime.native).
"""

from setuptools import Extension, setup

CFLAGS = ["-O3", "-std=c11", "-Wall", "-Wextra", "-fno-strict-aliasing"]

EXTENSIONS: list[Extension] = [
    Extension("healthplane.checker._engine",
              sources=["checker/engine/module.c", "checker/engine/engine.c", "checker/engine/conn.c",
                       "checker/engine/llhttp/llhttp.c", "checker/engine/llhttp/api.c",
                       "checker/engine/llhttp/http.c"],
              include_dirs=["checker/engine"], optional=True, extra_compile_args=CFLAGS),
]

setup(ext_modules=EXTENSIONS)
