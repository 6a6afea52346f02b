"""pyinfra operations of labhub hosts."""
