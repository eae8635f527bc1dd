import FicusCore
import FicusRules
import FicusStore

extension ApplyCommand {
    /// Throws the located problems of every rule in `desired` whose name an earlier revision used and `base` does not
    /// have (a retired name coming back), or returns when there is none.
    ///
    /// The store refuses such a commit anyway (buckets hash rule names, so a retired name would give a new rule the
    /// old rule's users); checking with the other validation, before the plan, lets a dry run refuse it too and
    /// points at the rules file's line.
    static func refuseRetiredRuleNames(
        _ desired: Configuration,
        base: Configuration,
        everUsed: Set<String>,
        files: RulesFiles
    ) throws {
        let current = base.ruleNames
        var problems: [RulesProblem] = []
        for (routeIndex, route) in desired.routes.enumerated() {
            for (index, rule) in route.rules.enumerated()
            where everUsed.contains(rule.name) && !current.contains(rule.name) {
                let error = ValidationError(
                    object: route.name.isEmpty ? "route \(routeIndex + 1)" : "route '\(route.name)'",
                    field: "rule \(index + 1) ('\(rule.name)')",
                    message: "rule name '\(rule.name)' was used before and is retired: rule names are never reused, "
                        + "pick another"
                )
                problems.append(files.locate(error))
            }
        }
        guard problems.isEmpty else {
            throw CLIError.rulesFiles(problems)
        }
    }
}
