"""Transports: outbox (default), smtp, sendgrid — one module each behind one interface."""
