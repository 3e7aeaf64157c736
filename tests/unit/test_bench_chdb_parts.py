"""bench.chdb_parts compares the store's own ``events`` DDL with variants of its part-format setting."""
import subprocess
import sys

from bench.chdb_parts import VARIANTS, table_ddl
from loaders.clickhouse import COMPACT_PARTS, events_ddl


def test_each_variant_is_the_stores_ddl_with_only_its_part_setting_changed():
    store = events_ddl("x", 0).replace("`x`.events", "x.t")
    ddls = {label: table_ddl("t", settings) for label, settings in VARIANTS.items()}
    assert ddls["the store's DDL (Compact below 1 GiB)"] == store
    assert COMPACT_PARTS in store
    for label, settings in VARIANTS.items():
        if settings:
            ddl = ddls[label]
            assert ddl.endswith(settings) and COMPACT_PARTS not in ddl
            assert ddl.replace(settings, "") == store.replace(COMPACT_PARTS, "")
    assert len(set(ddls.values())) == len(VARIANTS)


def test_inserts_reports_each_table_at_each_size():
    out = subprocess.run([sys.executable, "-m", "bench.chdb_parts", "inserts", "--sizes", "1,3", "--inserts", "2",
                          "--records", "20"], capture_output=True, text=True, timeout=300, check=True).stdout
    lines = [line.split() for line in out.splitlines() if " rows into " in line]
    assert [(words[0], words[3]) for words in lines] == [
        (size, table) for size in ("1", "3") for table in ("store", "null", "narrow")]
    assert all(float(words[4]) > 0 for words in lines)
