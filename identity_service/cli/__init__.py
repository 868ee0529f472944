"""The identity-service command line."""
