"""Destinations beyond HTTP: publishers that put the webhook envelope on a message broker."""
