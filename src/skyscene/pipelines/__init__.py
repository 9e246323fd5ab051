"""Orchestration: file-level jobs, batch runs through Dask, progress and logging."""
