import Foundation

/// Crash-safe writes. A file is written to a temporary name in its directory, flushed, renamed over
/// the destination and the directory is flushed too, so an interruption (kill, power loss, full
/// disk) leaves either the old file or the new one, never a partial file or a lost rename. Folders
/// (checkpoints) are replaced by renaming the old one aside first and deleting it only after the
/// new one is in place. Errors name the path and the operating system's reason.
public enum AtomicFile {
    /// Writes `data` to `path` atomically, creating parent directories as needed.
    public static func write(_ data: Data, to path: String) throws {
        try write(to: path) { handle in try handle.write(contentsOf: data) }
    }

    /// Writes a UTF-8 string atomically.
    public static func write(_ string: String, to path: String) throws {
        try write(Data(string.utf8), to: path)
    }

    /// Streams content into a temporary file through `body`, then renames it over `path`.
    public static func write(to path: String, _ body: (FileHandle) throws -> Void) throws {
        let url = URL(fileURLWithPath: path)
        let dir = url.deletingLastPathComponent()
        try ensureDirectory(dir.path)
        try requireRegularFileOrAbsent(path)
        let tmp = dir.appendingPathComponent(
            ".\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp")
        guard FileManager.default.createFile(atPath: tmp.path, contents: nil) else {
            throw ToolkitError.file(path, "cannot create temporary file \(tmp.path): \(String(cString: strerror(errno)))")
        }
        do {
            let handle = try FileHandle(forWritingTo: tmp)
            defer { try? handle.close() }
            try body(handle)
            try handle.synchronize()
        } catch {
            try? FileManager.default.removeItem(at: tmp)
            throw ioError(path, error)
        }
        if rename(tmp.path, url.path) != 0 {
            let err = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: tmp)
            throw ToolkitError.file(path, "cannot rename temporary file into place: \(err)")
        }
        syncDirectory(dir.path)
    }

    /// Renames the folder `tmp` to `final`. An existing `final` is first renamed to
    /// `final + asideSuffix` and deleted only after the new one is in place; a crash in between
    /// leaves the old folder under the aside name (see `recoverAside`).
    public static func replaceDirectory(_ tmp: String, with final: String) throws {
        let aside = final + asideSuffix
        let fm = FileManager.default
        try? fm.removeItem(atPath: aside)
        let hadOld = fm.fileExists(atPath: final)
        if hadOld, rename(final, aside) != 0 {
            throw ToolkitError.file(final, "cannot move the previous folder aside: \(String(cString: strerror(errno)))")
        }
        guard rename(tmp, final) == 0 else {
            let err = String(cString: strerror(errno))
            if hadOld { _ = rename(aside, final) }
            throw ToolkitError.file(final, "cannot move the new folder into place: \(err)")
        }
        syncDirectory((final as NSString).deletingLastPathComponent)
        if hadOld { try? fm.removeItem(atPath: aside) }
    }

    /// Deletes a folder by renaming it to `path + deletingSuffix` first (one atomic step that
    /// readers skip), then removing it.
    public static func removeDirectory(_ path: String) throws {
        let doomed = path + deletingSuffix
        guard rename(path, doomed) == 0 else {
            throw ToolkitError.file(path, "cannot remove: \(String(cString: strerror(errno)))")
        }
        syncDirectory((path as NSString).deletingLastPathComponent)
        try? FileManager.default.removeItem(atPath: doomed)
    }

    public static let asideSuffix = ".replaced"
    public static let deletingSuffix = ".deleting"

    /// Flushes a directory's entries (the renames in it) to disk.
    public static func syncDirectory(_ path: String) {
        let fd = open(path.isEmpty ? "." : path, O_RDONLY)
        guard fd >= 0 else { return }
        _ = fsync(fd)
        close(fd)
    }

    /// Creates `path` (and parents) as a directory, or checks that it is one and writable.
    public static func ensureDirectory(_ path: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir) {
            guard isDir.boolValue else { throw ToolkitError.file(path, "exists and is not a folder") }
        } else {
            do { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) } catch {
                throw ioError(path, error, doing: "cannot create the folder")
            }
        }
        guard access(path, W_OK) == 0 else { throw ToolkitError.file(path, "folder is not writable: \(String(cString: strerror(errno)))") }
    }

    /// Refuses to replace anything but a regular file (a device, a folder, a socket).
    public static func requireRegularFileOrAbsent(_ path: String) throws {
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFREG || (st.st_mode & S_IFMT) == S_IFLNK else {
            throw ToolkitError.file(path, "exists and is not a regular file; refusing to replace it")
        }
    }

    /// Removes a regular file if present (a folder, device or socket at `path` is refused, never
    /// deleted): for outputs a fresh run starts over, such as a metrics file.
    public static func removeRegularFile(_ path: String) throws {
        try requireRegularFileOrAbsent(path)
        if unlink(path) != 0 && errno != ENOENT {
            throw ToolkitError.file(path, "cannot remove: \(String(cString: strerror(errno)))")
        }
    }

    /// A Foundation or POSIX error as "path: what: the system's reason".
    public static func ioError(_ path: String, _ error: Error, doing what: String = "cannot write") -> ToolkitError {
        if let e = error as? ToolkitError { return e }
        let ns = error as NSError
        var reason = ns.localizedDescription
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(underlying.code)))
        } else if ns.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(ns.code)))
        } else if ns.domain == NSCocoaErrorDomain, ns.code == NSFileWriteOutOfSpaceError {
            reason = String(cString: strerror(ENOSPC))
        }
        return ToolkitError.file(path, "\(what): \(reason)")
    }
}

/// An advisory lock on a folder (`flock` on `<folder>/.lock`), held until `release()` or the
/// process ends, so that two writers never share one output folder.
public final class FolderLock: @unchecked Sendable {
    private var fd: Int32
    public let path: String

    /// Takes the lock or throws, naming the folder (and the holder's pid, which the file records).
    public init(folder: String, what: String) throws {
        try AtomicFile.ensureDirectory(folder)
        path = folder + "/.lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw ToolkitError.file(path, "cannot open the lock file: \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw ToolkitError.file(folder, "is in use by another \(what)\(holder.isEmpty ? "" : " (pid \(holder))"); wait for it or choose another folder")
        }
        _ = ftruncate(fd, 0)
        let pid = "\(getpid())\n"
        _ = pid.withCString { write(fd, $0, strlen($0)) }
    }

    public func release() {
        guard fd >= 0 else { return }
        _ = flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}
