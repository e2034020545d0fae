import CPlatform

/// The BLAS library behind `tk_sgemm` and how its kernel was chosen (see `tk_platform.h`).
public enum BLASLibrary {
    /// Where the kernel choice came from.
    public enum Source: String, Codable, Sendable {
        case user, toolkit, library
    }

    /// "OpenBLAS" or "Accelerate".
    public static var name: String { String(cString: tk_blas_library()) }
    /// The kernel in use (`openblas_get_corename`).
    public static var kernel: String { String(cString: tk_blas_kernel()) }
    /// The library's build configuration.
    public static var configuration: String {
        let s = String(cString: tk_blas_config())
        return String(s.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
    public static var source: Source {
        switch Int(tk_blas_kernel_source()) {
        case Int(TK_BLAS_CHOSEN_BY_USER): .user
        case Int(TK_BLAS_CHOSEN_BY_TOOLKIT): .toolkit
        default: .library
        }
    }
    /// Kernels for this CPU and SIMD level, best first.
    public static var candidates: [String] { split(tk_blas_candidates()) }
    /// Kernels the start-up check tried, in order ("library": OpenBLAS's own choice).
    public static var tried: [String] { split(tk_blas_tried()) }
    /// Relative error of the start-up product check with the kernel in use.
    public static var startupError: Double { tk_blas_startup_error() }

    /// The library's own thread count (the toolkit keeps it at 1 and splits products itself).
    public static var threads: Int {
        get { Int(tk_blas_threads()) }
        set { tk_blas_set_threads(Int32(newValue)) }
    }

    private static func split(_ p: UnsafePointer<CChar>?) -> [String] {
        guard let p else { return [] }
        return String(cString: p).split(separator: ",").map(String.init)
    }
}

/// Thread, memory and process policy.
public enum SystemPolicy {
    /// Cores this process may run on (its affinity mask, where the OS has one).
    public static var availableCores: Int { Int(tk_cpu_count()) }

    /// Bytes a new allocation can use without swapping (Linux `MemAvailable`, else physical
    /// memory); nil when the OS does not say.
    public static var availableMemory: Int? {
        let b = tk_available_memory()
        return b > 0 ? Int(clamping: b) : nil
    }

    /// Asks for transparent huge pages over a block (a hint; nothing where the OS lacks them).
    public static func adviseHugePages(_ p: UnsafeMutableRawPointer, bytes: Int) {
        tk_advise_huge_pages(p, bytes)
    }

    /// A child process that keeps one core busy until `stop()` or this process's exit.
    public final class BusyNeighbour: @unchecked Sendable {
        private var pid: Int32
        public init?() {
            pid = tk_busy_start()
            if pid <= 0 { return nil }
        }
        public func stop() {
            tk_busy_stop(pid)
            pid = -1
        }
        deinit { if pid > 0 { tk_busy_stop(pid) } }
    }
}
