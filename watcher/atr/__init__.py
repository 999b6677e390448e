"""The ATR HTTP API: typed models, errors, a request budget and an async client."""
