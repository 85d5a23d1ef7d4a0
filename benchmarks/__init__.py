"""Side-by-side benchmarks: this provider vs raw ``requests`` vs ``HttpHook``, against the bundled emulator.

Run everything with ``python -m benchmarks`` (or ``scripts/bench.sh``); ``--quick`` for a smoke run,
``--only NAME`` for one scenario. Not part of the unit tests: numbers only ever come from here.
"""
