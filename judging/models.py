"""Placeholder: this app is built in a later issue."""
