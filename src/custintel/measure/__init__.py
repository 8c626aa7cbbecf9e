"""Measurement: what a campaign caused, and whether it paid.

Pure logic over plain frames (one row per customer, or per journey); the pipeline gathers
those frames from the warehouse. ``lift`` compares randomized arms with intervals, CUPED
and corrections; ``power`` plans sample sizes; ``roi`` carries the lift into money.
"""
