"""Figures every stage reports: classification metrics and intervals from resampling people."""
