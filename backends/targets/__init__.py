"""One short data file per target: its arch, header and instruction sets."""
