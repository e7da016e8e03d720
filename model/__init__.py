"""GENRE-CMR: physics, networks and reconstructors. Importable without the challenge code."""
