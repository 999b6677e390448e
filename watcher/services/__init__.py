"""The small services every edge uses: the clock, event records, secrets, logging, metrics, systemd notify."""
