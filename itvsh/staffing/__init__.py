"""Staffing: seconded staff, their secondments and assignments, capacity, and personnel cost."""
