"""Declarative REST sources: a vendor described in YAML (see docs/declarative.md).

spec.py reads and checks a spec; render.py fills its templates once per window; auth.py
signs its calls; mapping.py turns one vendor object into a record; connector.py makes a
Connector of it. Recipes shipped with alertpull live in recipes/ as ordinary source types.
"""
