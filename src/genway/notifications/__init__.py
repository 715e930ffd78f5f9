"""Notifications: in-app (each also a `notification.new` event for its user) and by email
through a durable outbox sent over SMTP; per-user preferences."""
