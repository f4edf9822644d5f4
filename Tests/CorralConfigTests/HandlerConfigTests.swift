import CorralConfig
import CorralCore
import Testing

@Suite("handlers: commands for migrate and custom")
struct HandlerConfigTests {
    @Test func commandsAndTimeout() throws {
        let configuration = try ConfigLoader.load(
            """
            handlers:
              migrate: [/usr/local/bin/hand-off, --to, node-2]
              custom: [/bin/logger, corral]
              timeout: 5s
            """)
        #expect(configuration.handlers.migrate == ["/usr/local/bin/hand-off", "--to", "node-2"])
        #expect(configuration.handlers.custom == ["/bin/logger", "corral"])
        #expect(configuration.handlers.timeout == .seconds(5))
        #expect(CorralConfiguration.builtIn.handlers == HandlerCommands())
    }

    @Test(arguments: [
        ("handlers:\n  migrate: hand-off\n", "expected a list"),
        ("handlers:\n  migrate: [hand-off]\n", "the program must be an absolute path"),
        ("handlers:\n  custom: [/bin/x, {a: b}]\n", "each entry must be a non-empty string"),
        ("handlers:\n  timeout: 0s\n", "must be greater than zero"),
        ("handlers:\n  pager: [/bin/x]\n", "unknown key 'pager'"),
    ])
    func badHandlers(text: String, message: String) {
        #expect {
            try ConfigLoader.load(text)
        } throws: { error in
            guard let error = error as? ConfigError else { return false }
            return error.issues.contains { $0.message.contains(message) && $0.line >= 1 && $0.accepted != nil }
        }
    }
}
