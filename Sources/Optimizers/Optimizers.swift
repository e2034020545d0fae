// Optimizers: see README.md in this folder.
