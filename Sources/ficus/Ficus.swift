import ArgumentParser

@main
struct Ficus: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ficus",
        abstract: "A strangler-fig migration proxy: route, shadow and cut over between a legacy monolith and new services.",
        subcommands: [Serve.self]
    )
}
