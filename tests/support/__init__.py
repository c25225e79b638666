"""Helpers shared by several test directories (unit, property, system, ansible); no tests here."""
