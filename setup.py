"""Build hook for the optional compiled fast paths (rtcap._speedups, written in C).

Everything else is configured in pyproject.toml. The extension is optional: where no C
compiler or Python headers exist the build goes on without it and rtcap runs its pure-Python
modules, which stay the reference (``RTCAP_PURE=1`` selects them at run time too).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "rtcap._speedups",
            ["rtcap/_speedups.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
