"""The pure side of Butlr's webhooks (push): payloads, dedup and revisions, conditions, subscriptions.

No Airflow, no I/O, no client: the receiver (``webhooks/``, inside Airflow's api-server) and the
subscription hook methods (``hooks/webhooks.py``) drive what is decided here.
"""
