"""What every component runs on: the event loop, clocks, schedules, logging.

Both the checker and the aggregator import from here (never from each
other), so each runtime idea is written once and a fix lands everywhere.
"""
