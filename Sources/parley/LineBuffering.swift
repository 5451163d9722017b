#if canImport(Glibc)
    @preconcurrency import Glibc
#elseif canImport(Darwin)
    @preconcurrency import Darwin
#endif

extension ClientCLI {
    /// Makes stdout line-buffered, so live lines (SAS, stats) appear at once even when stdout is a pipe.
    /// Called once at the start of a command, before any other thread prints.
    static func lineBufferedOutput() {
        setvbuf(stdout, nil, _IOLBF, 0)
    }
}
