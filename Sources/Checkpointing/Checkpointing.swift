// Checkpointing: see README.md in this folder.
