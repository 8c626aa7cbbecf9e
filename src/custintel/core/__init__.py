"""Core: configuration, warehouse, data contracts, lineage. Imports nothing above it."""
