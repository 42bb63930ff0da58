"""Imported at start-up by every Python a stack test runs with ``PYTHONPATH`` on this folder."""

from __future__ import annotations

import stack_guard

stack_guard.arm()
