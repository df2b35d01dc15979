"""The optional compiled span path; everything else is in pyproject.toml.

Without a C compiler the build of ``otel_carbon._speedups`` is skipped with a warning and
the package runs its pure-Python span path (same figures, slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "otel_carbon._speedups",
            ["otel_carbon/_speedups.c"],
            optional=True,
            extra_compile_args=["-O2", "-std=c11"],
        )
    ]
)
