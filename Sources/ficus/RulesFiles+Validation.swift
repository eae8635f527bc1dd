import FicusCore
import FicusRules

extension RulesFiles {
    /// Validates `configuration` as `check` does, with the shadow-path checks that only the executable can make.
    ///
    /// FicusRules depends on FicusCore alone, and whether a shadow path parses is FicusDiff's to say; every command
    /// that takes rules files goes through here so that none of them forgets those checks. The files' warnings (fields
    /// under a former name) go to standard error first, as `file:line:column: warning: ...`, and refuse nothing.
    func validate(_ configuration: Configuration) throws {
        for warning in self.warnings {
            var located = warning
            located.message = "warning: " + warning.message
            Console.err(located.description)
        }
        try self.check(configuration, also: configuration.shadowPathErrors())
    }
}
