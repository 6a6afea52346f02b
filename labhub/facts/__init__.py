"""pyinfra facts of labhub hosts."""
