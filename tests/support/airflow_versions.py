"""The one place that knows which Airflow minor release is installed.

Version flags in the style of ``airflow.providers.common.compat.version_compat`` (whose header asks
providers to keep their own copy rather than import another provider's). Import this module only
from code that already imports Airflow; :func:`airflow_provider_butlr.get_provider_info` must not.
"""

from __future__ import annotations

from airflow import __version__ as AIRFLOW_VERSION
from packaging.version import Version


def airflow_version_tuple() -> tuple[int, int, int]:
    """The installed Airflow release as ``(major, minor, micro)``, pre-release suffixes dropped."""
    version = Version(AIRFLOW_VERSION)
    return version.major, version.minor, version.micro


AIRFLOW_V_3_1_PLUS: bool = airflow_version_tuple() >= (3, 1, 0)
# 3.2: declarative ``conn-fields`` / ``ui-field-behaviour`` in the provider info drive the form.
AIRFLOW_V_3_2_PLUS: bool = airflow_version_tuple() >= (3, 2, 0)
# 3.3: the connection form never imports hooks; the legacy hook classmethods are ignored.
AIRFLOW_V_3_3_PLUS: bool = airflow_version_tuple() >= (3, 3, 0)

if AIRFLOW_V_3_2_PLUS:
    from airflow.sdk.exceptions import AirflowRescheduleException
else:  # 3.0 / 3.1: the Task SDK's sensors raise the core class; common.compat.sdk does not export it
    from airflow.exceptions import AirflowRescheduleException

__all__ = [
    "AIRFLOW_VERSION",
    "AIRFLOW_V_3_1_PLUS",
    "AIRFLOW_V_3_2_PLUS",
    "AIRFLOW_V_3_3_PLUS",
    "AirflowRescheduleException",
    "airflow_version_tuple",
]
