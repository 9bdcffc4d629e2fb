"""Accounts, roles, login and logout, password hashing, API tokens and the `itvsh users` CLI."""
