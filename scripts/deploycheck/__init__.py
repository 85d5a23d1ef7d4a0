"""Helpers of ``scripts/deployment_check.py``: processes, Airflow state, scans."""
