"""Loaded by every Python process the tests start (this folder is on their PYTHONPATH)."""

import verbatim_netguard

verbatim_netguard.install()
