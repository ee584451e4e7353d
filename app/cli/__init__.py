"""Command lines: batch scoring of files and folders."""
