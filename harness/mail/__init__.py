"""Patches from the mailing list: a thread's mbox read, its candidate fixes found, checked
for completeness and applied to a base tree as `git am` would."""
