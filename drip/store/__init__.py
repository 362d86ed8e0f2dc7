"""The state: subscribers, enrollments and deliveries, in SQLite or PostgreSQL."""
