"""Parts of ``scripts/scale_check.py`` (issue 27), one job each; the deployment check's helpers
(``scripts/deploycheck``) are imported, not copied."""
