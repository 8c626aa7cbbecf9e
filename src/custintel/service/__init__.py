"""The real-time service: FastAPI over the published serving snapshot."""
