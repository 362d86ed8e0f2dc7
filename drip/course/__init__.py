"""Schedules compiled against pillars into courses: steps, keys, timing, and edits to a running course."""
