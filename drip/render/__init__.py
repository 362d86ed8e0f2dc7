"""Rendering: templates → MJML → HTML and text, compiled once per step and locale."""
