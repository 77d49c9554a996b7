"""user_svc: accounts, login with JWTs, roles, and who may still use their tokens."""
