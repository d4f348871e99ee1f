print("tern-bench: not yet implemented")
