"""Replaying op-logs: the formats read (formats), the operations planned from them (plan), the
files opened (logs). The phase that issues them is execution.phases.replay."""
