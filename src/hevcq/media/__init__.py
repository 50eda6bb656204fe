"""The media core: probe, decide, encode and verify; no queues, no AWS."""
