"""Verified bytes: where the bytes of a download come from, and
how they are checked on the way to disk."""
