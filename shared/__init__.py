"""Contracts shared by triggers, orchestrators and activities: models, errors, settings, naming."""
