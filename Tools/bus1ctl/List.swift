import ArgumentParser
import Bus1

/// `bus1ctl list`: every published name with its owner.
struct List: ParsableCommand, BusCommand {
    static let configuration = CommandConfiguration(
        abstract: "Lists the published names with their owner's peer id, pid, uid and command.",
        discussion: "Names and commands are chosen by other processes: characters a terminal would act on are shown as \\xNN.")
    @OptionGroup var busOption: BusOptions
    @ParentCommand var root: BusCtl
    @Flag(help: "Print a JSON array of {name, peer, pid, uid, command} instead of a table.") var json = false

    func run() throws {
        let names: [PublishedName]
        do {
            names = try Peer.connect(options: bus.peerOptions).publishedNames()
        } catch {
            throw failure(error, Context(kind: "name", name: "", address: bus.address))
        }
        if json {
            writeLine(JSON.array(names.map { entry in
                .object([("name", .string(entry.name)), ("peer", .number(entry.owner.peer)), ("pid", .signed(Int64(entry.owner.pid))),
                         ("uid", .number(UInt64(entry.owner.uid))), ("command", .string(entry.command))])
            }).lines)
            return
        }
        var table = Table(["NAME", "PEER", "PID", "UID", "COMMAND"], numeric: [false, true, true, true, false])
        for entry in names {
            table.add([escaped(entry.name), String(entry.owner.peer), String(entry.owner.pid), String(entry.owner.uid), escaped(entry.command)])
        }
        writeLine(table.render())
    }
}

/// A text table: a header row, left-aligned text, right-aligned numbers.
struct Table {
    let headers: [String]
    let numeric: [Bool]
    private var rows: [[String]] = []

    init(_ headers: [String], numeric: [Bool]) {
        self.headers = headers
        self.numeric = numeric
    }

    mutating func add(_ cells: [String]) { rows.append(cells) }

    /// The table without a final newline; "(none)" under the headers if empty.
    func render() -> String {
        var widths = headers.map(\.count)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return numeric[i] ? pad + cell : (i == cells.count - 1 ? cell : cell + pad)
            }.joined(separator: "  ")
        }
        return ([line(headers)] + (rows.isEmpty ? ["(none)"] : rows.map(line))).joined(separator: "\n")
    }
}
