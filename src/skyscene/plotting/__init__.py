"""Figures (matplotlib ``Figure`` objects, Agg; no pyplot state)."""
