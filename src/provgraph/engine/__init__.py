"""Execution: jobs, the submitter's run loop and the events it emits."""
