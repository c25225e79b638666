"""Deterministic simulation of whole lockengine daemons (docs/testing.md, "Simulation")."""
