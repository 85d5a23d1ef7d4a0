"""Butlr sensors; import them from :mod:`airflow_provider_butlr.sensors.butlr`."""
