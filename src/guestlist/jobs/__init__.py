"""Jobs: the job table, the worker and its schedule."""
