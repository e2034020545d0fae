import Foundation
import TensorCore

// The platform seam chose the SIMD level and the BLAS kernel before main (see tk_platform.h); a
// TOOLKIT_SIMD it could not apply is a usage error, not something to run past.
if let problem = SIMDLevel.environmentError {
    FileHandle.standardError.write(Data("error: \(problem)\n".utf8))
    exit(2)
}
Toolkit.main()
