import Glibc

/// What one callgrind output file says: the cost of every event in total, and
/// per function its exclusive (self) and inclusive Ir.
///
/// Reads the format valgrind's callgrind writes (format version 1, with or
/// without name and position compression): `fn=` starts a function's block;
/// a cost line is positions then event counts; a cost line after `calls=` is
/// the inclusive cost of that call, charged to the calling function's
/// inclusive cost only. Calls of a function to itself are not added twice.
struct CallgrindProfile {
    var events: [String] = []
    /// Per event, the sum of every exclusive cost line.
    var totals: [String: Int] = [:]
    /// Per function name: exclusive Ir.
    var exclusive: [String: Int] = [:]
    /// Per function name: inclusive Ir.
    var inclusive: [String: Int] = [:]
    /// Per function name: syscalls it made itself (`sysCount`, if collected).
    var syscalls: [String: Int] = [:]

    init(path: String) throws {
        try self.init(text: try readFile(path), name: path)
    }

    init(text: String, name: String = "callgrind output") throws {
        var positions = 1
        var names: [String: String] = [:]  // "(id)" → name, for fn= and cfn=
        var function: String?
        var callee: String?
        var callCostNext = false
        var sawHeader = false
        var sysCountIndex: Int?

        func resolve(_ value: Substring) -> String {
            // "(12) name" defines id 12; "(12)" refers to it; no parenthesis: the name.
            let value = trimmed(value)
            guard value.hasPrefix("("), let close = value.firstIndex(of: ")") else { return value }
            let id = String(value[...close])
            let rest = trimmed(value[value.index(after: close)...])
            if !rest.isEmpty { names[id] = rest }
            return names[id] ?? id
        }

        for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
            guard let first = line.first else { continue }
            if first.isNumber || first == "+" || first == "-" || first == "*" {
                let fields = line.split(separator: " ")
                guard fields.count >= positions, let fn = function else {
                    throw ProfileError("\(name): a cost line outside a function: \(line)")
                }
                var costs: [Int] = []
                for field in fields.dropFirst(positions) {
                    guard let n = Int(field) else { throw ProfileError("\(name): not a cost line: \(line)") }
                    costs.append(n)
                }
                add(costs, to: fn, asCallTo: callCostNext ? .some(callee) : .none, sysCountIndex: sysCountIndex)
                callCostNext = false
                continue
            }
            guard let equals = line.firstIndex(where: { $0 == ":" || $0 == "=" }) else { continue }
            let key = line[..<equals], value = line[line.index(after: equals)...]
            switch key {
            case "events":
                events = value.split(separator: " ").map(String.init)
                sysCountIndex = events.firstIndex(of: "sysCount")
                sawHeader = true
            case "positions":
                positions = value.split(separator: " ").count
            case "fn":
                function = resolve(value)
            case "cfn":
                callee = resolve(value)
            case "calls":
                callCostNext = true
            default:
                break  // ob, fl, fi, fe, cob, cfi, cfl, version, creator, cmd, summary, totals, ...
            }
        }
        guard sawHeader else { throw ProfileError("\(name): no 'events:' line: not a callgrind output file") }
        guard events.first == "Ir" else { throw ProfileError("\(name): the first event is \(events.first ?? "none"), not Ir") }
    }

    /// One cost line of `function`: its own cost (exclusive and inclusive, event
    /// totals, syscalls), or, after a `calls=` line, the cost of its call to
    /// `callee` (inclusive only; a recursive call is not counted twice).
    private mutating func add(_ costs: [Int], to function: String, asCallTo callee: String??, sysCountIndex: Int?) {
        let ir = costs.first ?? 0
        if let callee {
            if callee != function { inclusive[function, default: 0] += ir }
            return
        }
        exclusive[function, default: 0] += ir
        inclusive[function, default: 0] += ir
        for (index, cost) in costs.enumerated() where index < events.count { totals[events[index], default: 0] += cost }
        if let index = sysCountIndex, index < costs.count, costs[index] != 0 { syscalls[function, default: 0] += costs[index] }
    }
}

/// Per-message costs from two runs of the same workload that differ only in how
/// many messages pass: everything done once per run (connecting, the warm-up,
/// the first pass through cold code) cancels out in the difference.
struct PerMessage {
    let messages: Int
    let instructions: Double
    /// Syscalls per message, not counting `vdsoSyscalls`; nil if not collected.
    let syscalls: Double?
    /// Syscalls per message made by functions that are vDSO calls natively
    /// (`clock_gettime`, `gettimeofday`, `time`, `getcpu`): valgrind runs no vDSO,
    /// so under callgrind (only) they enter the kernel.
    let vdsoSyscalls: Double
    /// Ir of the small run not explained by `messages` × `instructions`.
    let constant: Double
    /// (function, exclusive Ir per message, inclusive Ir per message), largest exclusive first.
    let functions: [(name: String, exclusive: Double, inclusive: Double)]

    init(small: CallgrindProfile, smallMessages: Int, large: CallgrindProfile, largeMessages: Int) throws {
        guard largeMessages > smallMessages, smallMessages > 0 else { throw ProfileError("the large run must pass more messages than the small one") }
        let n = Double(largeMessages - smallMessages)
        messages = largeMessages - smallMessages
        let smallIr = Double(small.totals["Ir"] ?? 0), largeIr = Double(large.totals["Ir"] ?? 0)
        instructions = (largeIr - smallIr) / n
        constant = smallIr - instructions * Double(smallMessages)
        func vdso(_ profile: CallgrindProfile) -> Int {
            profile.syscalls.filter { name, _ in Self.isVDSO(name) }.values.reduce(0, +)
        }
        vdsoSyscalls = Double(vdso(large) - vdso(small)) / n
        if small.events.contains("sysCount"), large.events.contains("sysCount") {
            syscalls = Double((large.totals["sysCount"] ?? 0) - (small.totals["sysCount"] ?? 0)) / n - vdsoSyscalls
        } else {
            syscalls = nil
        }
        let names = Set(small.exclusive.keys).union(large.exclusive.keys)
        functions = names.map { name in
            (name,
             Double((large.exclusive[name] ?? 0) - (small.exclusive[name] ?? 0)) / n,
             Double((large.inclusive[name] ?? 0) - (small.inclusive[name] ?? 0)) / n)
        }.sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }
    }

    /// Whether `function` (a callgrind name, perhaps with `@@GLIBC_...`) is one
    /// the vDSO serves without a syscall.
    static func isVDSO(_ function: String) -> Bool {
        let base = function.prefix { $0 != "@" }
        return ["clock_gettime", "__clock_gettime", "gettimeofday", "__gettimeofday", "time", "getcpu", "sched_getcpu"].contains(String(base))
    }
}

/// `text` without leading and trailing spaces and tabs.
func trimmed(_ text: Substring) -> String {
    String(text.drop { $0 == " " || $0 == "\t" }.reversed().drop { $0 == " " || $0 == "\t" }.reversed())
}

/// The whole file at `path`, as UTF-8 text.
func readFile(_ path: String) throws -> String {
    guard let file = fopen(path, "r") else { throw ProfileError("cannot read \(path): errno \(errno)") }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = fread(&chunk, 1, chunk.count, file)
        if n > 0 { bytes.append(contentsOf: chunk[..<n]) }
        if n < chunk.count {
            guard ferror(file) == 0 else { throw ProfileError("cannot read \(path): errno \(errno)") }
            break
        }
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// `value` with `digits` digits after the point (no Foundation: the profiled
/// binary stays small for valgrind).
func fixed(_ value: Double, _ digits: Int = 1) -> String {
    var scale = 1.0
    for _ in 0..<digits { scale *= 10 }
    let scaled = (abs(value) * scale).rounded()
    let whole = Int(scaled / scale), fraction = Int(scaled - Double(whole) * scale)
    let sign = value < 0 && scaled != 0 ? "-" : ""
    guard digits > 0 else { return sign + String(whole) }
    let digitsText = String(fraction)
    return sign + String(whole) + "." + String(repeating: "0", count: digits - digitsText.count) + digitsText
}
