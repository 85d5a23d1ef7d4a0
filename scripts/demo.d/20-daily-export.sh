# Sourced by scripts/demo.sh after the quickstart (uses run_dag, $WORK, $REPO, $BUTLR_EXPORT_BASE_PATH).
# Runs the nightly export and the asset inventory for the most recent 09:00 UTC schedule (so the
# exported day, the one before, is over in every site's timezone), then prints a human summary.
DEMO_LOGICAL_DATE="${DEMO_LOGICAL_DATE:-$(python - <<'PY'
import datetime as dt
now = dt.datetime.now(dt.timezone.utc)
run = now.replace(hour=9, minute=0, second=0, microsecond=0)
print((run if run <= now else run - dt.timedelta(days=1)).isoformat())
PY
)}"
run_dag butlr_daily_occupancy_export "$DEMO_LOGICAL_DATE"
run_dag butlr_asset_inventory "$DEMO_LOGICAL_DATE"
python "$REPO/scripts/demo_summary.py" --base "$BUTLR_EXPORT_BASE_PATH" --logical-date "$DEMO_LOGICAL_DATE"
