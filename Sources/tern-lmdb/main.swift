print("tern-lmdb: not yet implemented")
