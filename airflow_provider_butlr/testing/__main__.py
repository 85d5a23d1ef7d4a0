"""``python -m airflow_provider_butlr.testing``: serve the Butlr API emulator (see :mod:`.cli`)."""

from airflow_provider_butlr.testing.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
