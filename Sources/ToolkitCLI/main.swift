import TensorCore

// OpenBLAS chooses its kernel in a load-time constructor, so the right OPENBLAS_CORETYPE must be
// in the environment before the process starts: re-exec once if it is not (see BLASRuntime).
BLASRuntime.ensureKernelSelected(arguments: CommandLine.arguments)
Toolkit.main()
