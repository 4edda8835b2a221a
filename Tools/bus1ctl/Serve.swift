import ArgumentParser
import Bus1
import Glibc

/// `bus1ctl serve NAME --echo`: a service that answers every call with its own payload.
struct Serve: ParsableCommand, BusCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serves NAME until killed (SIGINT or SIGTERM: exit 0). --echo answers each call with its payload.",
        discussion: "Prints \"serving NAME\" to stderr once the name is published.")
    @OptionGroup var busOption: BusOptions
    @ParentCommand var root: BusCtl
    @Argument(help: "The name to serve.") var name: String
    @Flag(help: "Answer every call with its own payload (the only behaviour for now).") var echo = false

    func validate() throws {
        if !echo { throw ValidationError("only --echo exists for now: bus1ctl serve NAME --echo") }
    }

    func run() throws {
        TerminationSignals.block()
        let context = Context(kind: "service", name: name, address: bus.address)
        let service: Service
        do { service = try Service(name: name, connecting: bus.peerOptions) } catch { throw failure(error, context) }
        TerminationSignals.interrupt(service.peer.interrupter)
        writeLine("serving \(escaped(name))", to: STDERR_FILENO)
        do {
            try service.serve { request in request.copyPayload() }
        } catch .interrupted {
            return  // SIGINT or SIGTERM
        } catch {
            throw failure(error, context)
        }
    }
}
