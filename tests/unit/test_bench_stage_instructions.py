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


def test_the_oracle_corpus_is_the_bench_traffic_and_a_bad_event_in_fifty(tmp_path):
    import json

    from bench.stage_instructions import prepare
    from processor.iglu import EmbeddedRepository, Resolver
    from processor.stage import Enricher

    assert prepare(tmp_path, 20, "oracle") == 23  # 20 records of 5.5 events, and 110 // 50 bad GETs (3 at least)
    records = [bytes.fromhex(r) for r in json.loads((tmp_path / "records.json").read_text())]
    enricher = Enricher(Resolver([EmbeddedRepository("bench", str(tmp_path / "registry"))], include_builtin=True))
    outputs = [enricher.enrich(record) for record in records]
    assert sum(len(out.good) for out in outputs[:20]) == 110 and not any(out.bad for out in outputs[:20])
    assert [(len(out.good), len(out.bad)) for out in outputs[20:]] == [(0, 1)] * 3
