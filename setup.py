"""Build script: compiles the Cython hot path in ext/.

Everything else about the package lives in pyproject.toml.  The extensions are
required by default; ``SNOWMELT_NO_EXTENSIONS=1`` at build time skips them and
installs the pure-Python twins only.
"""
import os

from setuptools import Extension, setup

if os.environ.get("SNOWMELT_NO_EXTENSIONS") == "1":
    ext_modules = []
else:
    from Cython.Build import cythonize

    ext_modules = cythonize(
        [
            Extension("ext._thrift", ["ext/_thrift.pyx"]),
            Extension("ext._querystring", ["ext/_querystring.pyx"]),
            Extension("ext._base64url", ["ext/_base64url.pyx"]),
            Extension("ext._tsv", ["ext/_tsv.pyx"]),
            Extension("ext._params", ["ext/_params.pyx"]),
            Extension("ext._url", ["ext/_url.pyx"]),
            Extension("ext._scan", ["ext/_scan.pyx"]),
            Extension("ext._slots", ["ext/_slots.pyx"]),
            Extension("ext._records", ["ext/_records.pyx"]),
        ],
        compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
        annotate=os.environ.get("SNOWMELT_CYTHON_ANNOTATE") == "1",
        nthreads=os.cpu_count() or 1,
    )

setup(ext_modules=ext_modules, options={"build_ext": {"parallel": os.cpu_count() or 1}})
