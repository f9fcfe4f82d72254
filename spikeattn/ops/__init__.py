"""Accelerated ops: one folder each, a torch reference beside every fast path."""
