// bus1-example-rpc: a request/reply service on Bus1, to copy from.
//
// The server answers "upper" requests: the reply is the request's text in upper
// case, written straight into the reply's slice. The client makes `--calls`
// calls, `--concurrency` at a time, from one ServiceClient (an actor: any number
// of tasks may call it at once), checks every reply, and prints the call rate.
// Run a bus first (`bus1d &`), then:
//
//   bus1-example-rpc server --name upper
//   bus1-example-rpc client --name upper --calls 10000 --concurrency 16
//
// Kill the server while the client runs: the client's pending calls fail at
// once with "the service upper is gone" (its node's destruction), not by timeout.
import ArgumentParser
import Bus1
import Glibc

@main
struct RPCExample: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus1-example-rpc",
        abstract: "A request/reply service on Bus1.",
        subcommands: [Server.self, Client.self])
}

struct Server: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve upper-casing calls.")
    @Option(help: "The service's name.") var name = "upper"
    @Option(help: "Bus socket path (default: $BUS1_ADDRESS, then the user bus).") var address: String?

    func run() throws {
        let service = try Service(name: name, connecting: PeerOptions(address: address))
        print("serving \(name)")
        fflush(nil)
        while true {
            let request = try service.nextRequest()
            var reply = try service.replyLoan(request.payload.count, for: request)
            upper(request, into: &reply)
            try service.reply(to: request, with: reply)  // the request's slice goes back to its client as `request` ends
        }
    }

    /// Writes the request's bytes, ASCII letters upper-cased, into the reply's slice.
    func upper(_ request: borrowing ServiceRequest, into reply: inout Loan) {
        let source = request.payload
        var target = reply.bytes
        for i in source.indices {
            let byte = source[i]
            target[i] = (0x61...0x7A).contains(byte) ? byte - 0x20 : byte
        }
    }
}

struct Client: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Call the service and check the replies.")
    @Option(help: "The service's name.") var name = "upper"
    @Option(help: "Bus socket path (default: $BUS1_ADDRESS, then the user bus).") var address: String?
    @Option(help: "Calls to make.") var calls = 10_000
    @Option(help: "Calls in flight at once.") var concurrency = 16

    func validate() throws {
        guard calls >= 1, (1...4096).contains(concurrency) else { throw ValidationError("--calls ≥ 1, --concurrency 1 ... 4096") }
    }

    func run() async throws {
        let client = try await ServiceClient(service: name, connecting: PeerOptions(address: address))
        let start = ContinuousClock.now
        let (calls, concurrency) = (self.calls, self.concurrency)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for worker in 0..<concurrency {
                group.addTask {
                    for i in stride(from: worker, to: calls, by: concurrency) {
                        let text = "call \(i) from bus1-example-rpc"
                        let reply = try await client.call(Array(text.utf8), timeout: .seconds(10))
                        guard reply == Array(text.uppercased().utf8) else { throw ValidationError("call \(i): wrong reply") }
                    }
                }
            }
            try await group.waitForAll()
        }
        let seconds = Double((ContinuousClock.now - start).components.attoseconds) / 1e18 + Double((ContinuousClock.now - start).components.seconds)
        print("\(calls) calls, \(concurrency) in flight: \(Int(Double(calls) / seconds)) calls/s, every reply checked")
    }
}
