"""Builds the optional compiled CPU fast path; without a C compiler the package still installs.

Everything else (metadata, version, extras) is in ``pyproject.toml``. The compiler flags are
chosen per compiler: the kernels must not contract ``a * b + c`` into a fused multiply-add,
because they reproduce NumPy's arithmetic bit for bit. When the extension cannot be built (no
compiler, or one that fails), the build says so in a notice and goes on without it: the
portable NumPy path then does the work, 4 to 11 times slower (``gpu_histeq.show_config()``
tells which path is active).
"""

import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

#: Flags per ``compiler.compiler_type``: MSVC's, and those of GCC/clang (every other type).
MSVC_FLAGS = ["/O2", "/fp:precise"]
GCC_FLAGS = ["-O3", "-ffp-contract=off", "-fno-trapping-math"]

NOTICE = """
************************************************************************************
gpu_histeq: the optional compiled CPU fast path (gpu_histeq._cpu_kernels) was NOT
built: {reason}
The package works without it through the portable NumPy path, which is about 4.6x
slower for uint8 and 11x slower for float32 images. To build it, install a C
compiler (GCC or clang; MSVC Build Tools on Windows) and reinstall.
************************************************************************************
"""


def compile_args(compiler_type):
    """The extra compile flags for a distutils ``compiler_type`` (``"msvc"``, ``"unix"``, ...)."""
    return list(MSVC_FLAGS if compiler_type == "msvc" else GCC_FLAGS)


class OptionalBuildExt(build_ext):
    """``build_ext`` with flags per compiler, which skips the extension with a notice on failure."""

    skipped = False

    def run(self):
        try:
            super().run()
        except Exception as error:  # no compiler found at all (DistutilsPlatformError, ...)
            if not self.skipped:
                self._skip(error)

    def build_extension(self, ext):
        ext.extra_compile_args = compile_args(self.compiler.compiler_type)
        try:
            super().build_extension(ext)
        except Exception as error:  # CompileError, LinkError, a compiler that is not there
            self._skip(error)

    def _skip(self, error):
        self.skipped = True
        reason = " ".join(str(error).split()) or type(error).__name__
        print(NOTICE.format(reason=f"{type(error).__name__}: {reason}"), file=sys.stderr,
              flush=True)


setup(
    ext_modules=[
        Extension("gpu_histeq._cpu_kernels", ["gpu_histeq/_levels.c", "gpu_histeq/_clahe.c",
                                              "gpu_histeq/_color.c"])
    ],
    cmdclass={"build_ext": OptionalBuildExt},
)
