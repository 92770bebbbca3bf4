"""Helpers for apps served by granian (Granian 2.x's `granian.utils`)."""
