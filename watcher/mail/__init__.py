"""Mail out: rendering from templates, the outbox that writes mail down before sending it, and SMTP."""
