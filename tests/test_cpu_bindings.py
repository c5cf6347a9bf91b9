"""The ctypes table of the compiled CPU kernels matches their C declarations.

ctypes trusts ``_cpu._SIGNATURES`` blindly: a wrong argument count, width or kind corrupts memory
silently. The C sources are run through the C preprocessor (their declarations are partly made by
macros) and every exported ``gpu_histeq_*`` function's parameters are compared with the table.
"""

import re
import shutil
import subprocess
import sysconfig
from pathlib import Path

import ctypes
import pytest

from gpu_histeq import _cpu

SOURCES = [Path(_cpu.__file__).with_name(name) for name in ("_levels.c", "_clahe.c", "_color.c")]
#: C parameter type -> the ctypes type the table must use.
C_TO_CTYPES = {"int64_t": ctypes.c_int64, "int32_t": ctypes.c_int32, "float": ctypes.c_float,
               "double": ctypes.c_double}


def preprocessed(path):
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        pytest.skip("no C compiler to preprocess the kernels")
    result = subprocess.run(
        [compiler, "-E", "-P", f"-I{sysconfig.get_paths()['include']}", str(path)],
        capture_output=True, text=True, check=True)
    return result.stdout


def declarations():
    """``{name: [parameter type, ...]}`` of every exported function, from the preprocessed C."""
    found = {}
    for path in SOURCES:
        text = " ".join(preprocessed(path).split())
        for match in re.finditer(r"\bint gpu_histeq_(\w+)\s*\(([^)]*)\)\s*\{", text):
            params = [p.strip() for p in match.group(2).split(",")]
            found[match.group(1)] = [re.sub(r"\s*\b\w+$", "", p) for p in params]
    return found


def ctype_of(c_type):
    if "*" in c_type:
        return ctypes.c_void_p
    return C_TO_CTYPES[c_type.replace("const", "").strip()]


def test_every_binding_matches_its_declaration():
    declared = declarations()
    assert set(_cpu._SIGNATURES) <= set(declared), set(_cpu._SIGNATURES) - set(declared)
    for name, argtypes in _cpu._SIGNATURES.items():
        expected = [ctype_of(t) for t in declared[name]]
        assert argtypes == expected, f"gpu_histeq_{name}: ctypes {argtypes} vs C {declared[name]}"


def test_the_parser_sees_a_wrong_binding():
    declared = declarations()
    wrong = [ctype_of(t) for t in declared["count_u8"]][:-1]
    assert wrong != _cpu._SIGNATURES["count_u8"]
    assert [ctype_of(t) for t in declared["clahe_tables_u8"]].count(ctypes.c_float) == 1
