"""Campaigns and next-best action: who gets which offer, on which channel, and who is
held out, with a reason for everyone who gets nothing (docs/campaigns.md).

Pure logic over one frame of customers (their addresses, consent, contact history,
scores and features as of the decision date) that the pipeline builds from the
warehouse; nothing here reads or writes tables.
"""
