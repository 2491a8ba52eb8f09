"""The nightly duty as one job (compact the day, labels, purge, snapshot, drift), in order, resumable.

Empty room: today the steps run as separate commands (see docs/operations.md).
"""
