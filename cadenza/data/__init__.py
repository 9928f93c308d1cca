"""Training data made offline from what ships in packages (the symbolic corpus rendered to audio)."""
