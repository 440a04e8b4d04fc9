"""Agents giving each other image bytes (``[peers] enabled``).

``server``: the HTTP server an agent runs to hand out its cached images to
other agents, each request checked with Glance first. ``source``: the
fetching side, bytes from peers with Glance behind them. ``placement``:
who fetches from whom during a pre-cache (the caller's side; imports
nothing heavy, as the client library loads it).
"""
