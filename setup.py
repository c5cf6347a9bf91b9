"""Builds the optional compiled CPU fast path; without a C compiler the package still installs."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "gpu_histeq._cpu_kernels",
            ["gpu_histeq/_levels.c", "gpu_histeq/_clahe.c"],
            extra_compile_args=["-O3", "-ffp-contract=off", "-fno-trapping-math"],
            optional=True,
        )
    ]
)
