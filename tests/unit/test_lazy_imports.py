"""Heavy libraries are loaded by what uses them, not by importing snowmelt up (bench/up_memory.py measures them)."""
from __future__ import annotations

import subprocess
import sys


def modules_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return set(out.stdout.split())


def test_up_without_its_store_or_kafka_loads_neither_arrow_nor_librdkafka():
    loaded = modules_after("import snowmelt.up")
    # pyarrow + numpy were 45 MB through the dashboard's query module, librdkafka 11 MB through the Kafka sink
    for heavy in ("pyarrow", "numpy", "chdb", "confluent_kafka", "py_mini_racer", "jpype"):
        assert heavy not in loaded, f"importing snowmelt.up loads {heavy}"


def test_the_kafka_sink_still_loads_librdkafka_when_made():
    loaded = modules_after("from snowmelt.config import Config\nfrom collector.kafka_sink import KafkaSink\n"
                           "KafkaSink(Config())")
    assert "confluent_kafka" in loaded
