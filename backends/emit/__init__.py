"""Emission every CUDA target shares: the text writer, the kernel skeleton and its arguments,
tile addressing, and the score rules written against a fragment layout given as data."""
