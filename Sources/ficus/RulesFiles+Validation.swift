import FicusCore
import FicusRules

extension RulesFiles {
    /// Validates `configuration` as `check` does, with the shadow-path checks that only the executable can make.
    ///
    /// FicusRules depends on FicusCore alone, and whether a shadow path parses is FicusDiff's to say; every command
    /// that takes rules files goes through here so that none of them forgets those checks.
    func validate(_ configuration: Configuration) throws {
        try self.check(configuration, also: configuration.shadowPathErrors())
    }
}
