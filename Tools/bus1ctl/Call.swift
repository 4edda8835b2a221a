import ArgumentParser
import Bus1

/// `bus1ctl call NAME TEXT…`: one request to a service, and its reply.
struct Call: AsyncParsableCommand, BusCommand {
    static let configuration = CommandConfiguration(
        abstract: "Calls the service NAME with the TEXT words joined by spaces and prints the reply (as text, or hex).")
    @OptionGroup var busOption: BusOptions
    @ParentCommand var root: BusCtl
    @OptionGroup var wait: TimeoutOption
    @Argument(help: "The service's name.") var name: String
    @Argument(help: "The request: these words, joined by spaces (none: an empty request).") var text: [String] = []
    @Flag(help: "Print the reply as a JSON object {size, payload} or {size, payload_hex}.") var json = false

    func run() async throws {
        let reply: [UInt8]
        do {
            let client = try await ServiceClient(service: name, connecting: bus.peerOptions, timeout: wait.duration)
            reply = try await client.call(Array(text.joined(separator: " ").utf8), timeout: wait.duration)
        } catch {
            throw failure(error, Context(kind: "service", name: name, address: bus.address, waited: wait.text))
        }
        let rendered = Rendered(reply)
        if json {
            writeLine(JSON.object([("size", .number(UInt64(reply.count))), payloadMember(rendered)]).text)
        } else {
            writeLine(rendered.line)
        }
    }
}

/// `"payload": text` or `"payload_hex": hex`.
func payloadMember(_ rendered: Rendered) -> (String, JSON) {
    switch rendered {
    case .text(let text): ("payload", .string(text))
    case .hex(let hex): ("payload_hex", .string(hex))
    }
}
