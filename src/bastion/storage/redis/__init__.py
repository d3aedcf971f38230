"""Redis adapters: shared limits, concurrency leases and holds; the change doorbell."""
