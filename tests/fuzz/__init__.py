"""Coverage-guided fuzz targets (atheris) for ``ext`` and the enrichment stage.

``tests.fuzz.targets`` defines the targets and a runner; ``tests/unit/test_fuzz_bounded.py``
runs each for a few seconds, ``bench/fuzz.py`` for as long as asked.
"""
