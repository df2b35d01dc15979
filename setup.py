"""The optional compiled span path and sampler tick; everything else is in pyproject.toml.

Without a C compiler the build of ``otel_carbon._speedups`` is skipped with a warning and
the package runs its pure-Python span path and tick (same figures, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "otel_carbon._speedups",
            ["otel_carbon/_speedups.c", "otel_carbon/_speedups_tick.c"],
            depends=["otel_carbon/_speedups_procstat.h"],
            optional=True,
            extra_compile_args=["-O2", "-std=c11"],
        )
    ]
)
