"""bench.stage_instructions --compile: named modules compiled by Cython in a copy of the checkout, itself untouched."""
import subprocess
import sys

import pytest

from bench.stage_instructions import ROOT, compiled_copy

MODULE = "processor.enrichments.anon_ip"


def _compiled_files(tree):
    """The compiled modules a tree imports (outside ext/, and not the build's own copies under build/)."""
    return sorted(p.relative_to(tree) for p in tree.glob("**/*.so")
                  if p.parent.name != "ext" and p.relative_to(tree).parts[0] != "build")


def test_the_copy_imports_the_named_module_from_its_compiled_file_and_the_checkout_keeps_its_python(tmp_path):
    before = _compiled_files(ROOT)
    copy = compiled_copy([MODULE], tmp_path / "copy")
    assert [p.parent.as_posix() + "/" + p.name.split(".")[0] for p in _compiled_files(copy)] == [
        "processor/enrichments/anon_ip"]
    assert not (copy / ".git").exists() and not (copy / "tests").exists()
    out = subprocess.run([sys.executable, "-c", f"import {MODULE} as m, processor.stage as s; print(m.__file__); "
                          f"print(s.__file__); print(m.AnonIp.__name__)"],
                         cwd=copy, env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out[0].startswith(str(copy)) and out[0].endswith(".so")
    assert out[1] == str(copy / "processor" / "stage.py")  # a module not named stays Python
    assert out[2] == "AnonIp"
    assert _compiled_files(ROOT) == before


def test_a_name_that_is_no_module_of_the_checkout_is_refused_before_anything_is_copied(tmp_path):
    with pytest.raises(SystemExit, match="processor.nothing is not a module"):
        compiled_copy(["processor.nothing"], tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
