"""drip: email courses and newsletters compiled from a content site's pillar pages."""

__version__ = "0.1.0"
