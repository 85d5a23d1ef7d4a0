"""Butlr webhooks inside Airflow: the receiver plugin (api-server) and the assets it feeds.

Importing this package imports nothing heavy: the plugin (``webhooks.plugin``) builds its FastAPI app
on the first request, so the scheduler, workers and the DAG processor, which load plugins too, pay
nothing for it.
"""
