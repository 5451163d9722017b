// SignalBench: a load generator for Parley's signaling server (docs/PROTOCOL.md §3), driven by
// scripts/bench-signal.sh.
//
//   SignalBench accounts --users N --out DIR
//       N users u0…u<N-1> with one device `bench` each: DIR/keys/u<i>.key (Parley key files) and
//       DIR/accounts.conf (for `parley serve --signal-accounts-file`).
//   SignalBench run --port P --server-pid PID --keys DIR [options]
//       logs every user in, then runs call setups between pairs of them; prints a report.
//       Run without arguments for the options.

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

let usage = """
    usage:
      SignalBench accounts --users N --out DIR
      SignalBench run --port P --server-pid PID --keys DIR [options]

    run options (defaults in brackets):
      --host H              server address [127.0.0.1]
      --users N             connections to log in, users u0…u<N-1> (one each) [20000]
      --sources A-B|A,B,…   local source addresses, round robin [127.0.0.2-127.0.0.9]; "" for the default
      --threads T           client event loops [2]
      --window W            logins in flight at once (connect → hello → login → welcome) [1000]
      --settle S            seconds to wait before reading the server's RSS [3]
      --pairs P             caller/callee pairs for the call phases (users u0…u<2P-1) [1000]
      --closed-seconds S    closed-loop call setup phase length [10]
      --open-seconds S      open-loop latency phase length [10]
      --warmup S            seconds at the start of each call phase left out of the figures [2]
      --rate R              open-loop offered call setups per second [1000]
      --blob-bytes B        size of the offer and of the answer before base64url [512]
      --samples-out FILE    write every measured open-loop setup (slot time, latencies in µs) to FILE
    """

func main() -> Int32 {
    let argv = CommandLine.arguments
    guard argv.count >= 2 else {
        say(usage)
        return 2
    }
    do {
        var options = try Options(argv.dropFirst(2))
        switch argv[1] {
        case "accounts":
            let users = try options.int("users", 0)
            let out = options.string("out", "")
            try options.checkAllUsed()
            guard users > 0, !out.isEmpty else { throw BenchError("accounts needs --users N (> 0) and --out DIR") }
            let t = monoNanos()
            try BenchAccounts.generate(users: users, dir: out)
            log("wrote \(users) key files and \(out)/accounts.conf in \(fmt(Double(monoNanos() - t) / 1e9, 1)) s")
            return 0
        case "run":
            return try BenchRun(options: &options).run()
        default:
            say(usage)
            return 2
        }
    } catch {
        log("error: \(error)")
        return 1
    }
}

exit(main())
