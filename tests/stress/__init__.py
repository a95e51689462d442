"""Bounded stress and soak tests of zmq_green (see RELIABILITY.md)."""
