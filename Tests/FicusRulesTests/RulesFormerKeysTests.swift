import FicusCore
import FicusRules
import Foundation
import Testing

/// Every rules-file key is snake_case; the five former camelCase names are still read, with a located warning each.
@Suite struct RulesFormerKeysTests {
    /// A route that uses every renamed field, written with the names given.
    static func file(
        setHeaders: String, removeHeaders: String, connect: String, responseHeader: String, caseInsensitive: String
    ) -> String {
        """
        upstreams:
          - name: legacy
            addresses: ["127.0.0.1:8080"]
          - name: orders-v2
            addresses: ["127.0.0.1:8081"]
        segments:
          - name: beta
            constraints:
              - {attribute: "header:X-Beta", op: equals, values: ["yes"], \(caseInsensitive): true}
        routes:
          - name: orders
            path: /orders
            legacy: legacy
            rewrites:
              orders-v2:
                \(setHeaders): [{name: X-Migrated, value: "1"}]
                \(removeHeaders): [X-Debug]
            timeouts: {\(connect): 250, \(responseHeader): 9000}
        """
    }

    static let current = Self.file(
        setHeaders: "set_headers", removeHeaders: "remove_headers", connect: "connect_milliseconds",
        responseHeader: "response_header_milliseconds", caseInsensitive: "case_insensitive")

    static let former = Self.file(
        setHeaders: "setHeaders", removeHeaders: "removeHeaders", connect: "connectMilliseconds",
        responseHeader: "responseHeaderMilliseconds", caseInsensitive: "caseInsensitive")

    @Test func theCurrentNamesLoadWithoutWarnings() throws {
        let files = try RulesFiles.load(text: Self.current, file: "new.yaml")
        #expect(files.warnings.isEmpty, "\(files.warnings)")
        let route = try #require(files.configuration.routes.first)
        #expect(route.timeouts == RouteTimeouts(connectMilliseconds: 250, responseHeaderMilliseconds: 9000))
        #expect(route.rewrites["orders-v2"]?.setHeaders == [HeaderField(name: "X-Migrated", value: "1")])
        #expect(route.rewrites["orders-v2"]?.removeHeaders == ["X-Debug"])
        #expect(files.configuration.segments.first?.constraints.first?.caseInsensitive == true)
    }

    /// The old spellings give the same configuration, and one warning per field naming the new name and its place.
    @Test func theFormerNamesLoadTheSameConfigurationWithAWarningEach() throws {
        let old = try RulesFiles.load(text: Self.former, file: "old.yaml")
        let new = try RulesFiles.load(text: Self.current, file: "new.yaml")
        #expect(old.configuration == new.configuration)
        let warnings = old.warnings.map(\.description).sorted()
        #expect(
            warnings == [
                "old.yaml:16:9: route 'orders': rewrites: orders-v2: 'setHeaders' is now 'set_headers'; the old name "
                    + "is still read, rename it",
                "old.yaml:17:9: route 'orders': rewrites: orders-v2: 'removeHeaders' is now 'remove_headers'; the old "
                    + "name is still read, rename it",
                "old.yaml:18:16: route 'orders': timeouts: 'connectMilliseconds' is now 'connect_milliseconds'; the "
                    + "old name is still read, rename it",
                "old.yaml:18:42: route 'orders': timeouts: 'responseHeaderMilliseconds' is now "
                    + "'response_header_milliseconds'; the old name is still read, rename it",
                "old.yaml:9:67: segment 'beta': constraint 1: 'caseInsensitive' is now 'case_insensitive'; the old "
                    + "name is still read, rename it",
            ],
            "\(warnings)")
        try old.check(old.standalone)
    }

    /// Both names of one field: one would silently win, so the file is refused at the former name.
    @Test func bothNamesOfOneFieldAreRefused() {
        let text = Self.current.replacingOccurrences(
            of: "{connect_milliseconds: 250,", with: "{connect_milliseconds: 250, connectMilliseconds: 100,")
        do {
            _ = try RulesFiles.load(text: text, file: "both.yaml")
            Issue.record("a file with both names of a field loaded")
        } catch {
            #expect(
                error.problems.map(\.description) == [
                    "both.yaml:18:43: route 'orders': timeouts: 'connect_milliseconds' and 'connectMilliseconds' "
                        + "together: 'connectMilliseconds' is the former name of 'connect_milliseconds'; keep "
                        + "'connect_milliseconds' only"
                ],
                "\(error.problems)")
        }
    }

    /// An export writes only the current names, so applying it back gives no warning.
    @Test func exportsWriteTheCurrentNames() throws {
        let old = try RulesFiles.load(text: Self.former, file: "old.yaml")
        let exported = try old.configuration.yamlDocument(header: [])
        for (former, current) in FormerKeys.renamed {
            #expect(!exported.contains(former + ":"), "\(exported)")
            #expect(exported.contains(current + ":"), "\(current) missing from \(exported)")
        }
        let again = try RulesFiles.load(text: exported, file: "export.yaml")
        #expect(again.warnings.isEmpty)
        #expect(again.configuration == old.configuration)
    }

    /// Unknown-field messages list only the current names.
    @Test func unknownFieldsSuggestOnlyCurrentNames() {
        let text = Self.current.replacingOccurrences(of: "connect_milliseconds: 250", with: "connect_ms: 250")
        do {
            _ = try RulesFiles.load(text: text, file: "typo.yaml")
            Issue.record("an unknown field loaded")
        } catch {
            #expect(
                error.problems.first?.message
                    == "route 'orders': timeouts: unknown field 'connect_ms' (expected one of: connect_milliseconds, "
                    + "response_header_milliseconds)",
                "\(error.problems)")
        }
    }
}
