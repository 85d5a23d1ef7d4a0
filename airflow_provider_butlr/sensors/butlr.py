"""The Butlr sensors (this import path is public: DAG files import them from here).

A generic poll, "the data for this window is final", and an occupancy threshold; each in poke,
reschedule or deferrable mode (see :mod:`airflow_provider_butlr.sensors.base`).
"""

from __future__ import annotations

from airflow_provider_butlr.sensors.data_complete import ButlrDataCompleteSensor
from airflow_provider_butlr.sensors.generic import ButlrSensor
from airflow_provider_butlr.sensors.occupancy import ButlrOccupancySensor

__all__ = [
    "ButlrDataCompleteSensor",
    "ButlrOccupancySensor",
    "ButlrSensor",
]
