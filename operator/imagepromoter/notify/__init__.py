"""Notifications after a push (spec.notify): pure payloads in `events`, HTTP in `sending`."""
