"""Export files: CSV, JSON Lines and Parquet, written atomically to a local or object-storage path."""
