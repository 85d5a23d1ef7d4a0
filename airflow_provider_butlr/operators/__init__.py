"""Butlr operators; import them from :mod:`airflow_provider_butlr.operators.butlr`."""
