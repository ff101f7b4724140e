"""Backends: one implementation per `backend` / `platform`, looked up in a registry."""
