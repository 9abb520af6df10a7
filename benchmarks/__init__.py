"""Runnable benchmark scripts with targets (not timed tests); see each module's docstring."""
