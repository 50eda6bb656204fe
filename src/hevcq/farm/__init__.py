"""The farm assembled from its parts: the embedded farm on one machine and ``build_worker``,
which wires a worker's adapters from settings."""
