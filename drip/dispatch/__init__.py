"""Sending what is due: the worker loop, one pass over claimed deliveries, and personalisation."""
