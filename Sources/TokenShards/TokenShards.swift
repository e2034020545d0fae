// TokenShards: see README.md in this folder.
