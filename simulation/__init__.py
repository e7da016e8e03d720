"""Simulated CMRxRecon-format data: phantom, real-anatomy loading, coil maps, phase and noise."""
