"""Previews of a course for its authors: the send timeline, each email, and a local web page."""
