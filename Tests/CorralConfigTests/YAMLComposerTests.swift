import CorralConfig
import Testing

/// The composer over libyaml's events: the tree, positions, styles, aliases,
/// duplicates kept, and its errors.
@Suite("YAML composer")
struct YAMLComposerTests {
    func compose(_ text: String) throws -> ComposedYAML {
        try YAMLComposer.compose(text).get()
    }

    func failure(_ text: String) -> YAMLComposer.Failure? {
        if case .failure(let failure) = YAMLComposer.compose(text) { return failure }
        return nil
    }

    @Test func mappingsSequencesAndScalarsWithPositionsAndStyles() throws {
        let root = try #require(try compose("a: 1\nb:\n  - 'x'\n  - \"y\"\n  - |\n    z\n").root)
        let mapping = try #require(root.mapping)
        #expect(mapping.position == YAMLPosition(line: 1, column: 1))
        #expect(mapping.map { $0.key.string } == ["a", "b"])
        let a = try #require(mapping[0].value.scalar)
        #expect((a.string, a.style, a.position) == ("1", .plain, YAMLPosition(line: 1, column: 4)))
        guard case .sequence(let items) = mapping[1].value else {
            Issue.record("b is not a list: \(mapping[1].value)")
            return
        }
        #expect(items.position == YAMLPosition(line: 3, column: 3))
        #expect(items.map { $0.scalar?.style } == [.singleQuoted, .doubleQuoted, .literal])
        #expect(items.map { $0.string } == ["x", "y", "z\n"])
        #expect(items.map { $0.position.line } == [3, 4, 5])
    }

    @Test func emptyTextAndCommentsHaveNoRoot() throws {
        #expect(try compose("").root == nil)
        #expect(try compose("# only a comment\n").root == nil)
        #expect(try compose("key:\n").root?.mapping?.first?.value.isNull == true)
    }

    @Test func aliasesResolveToTheAnchoredNode() throws {
        let root = try #require(try compose("a: &x {k: v}\nb: *x\nc: &s text\nd: *s\n").root?.mapping)
        #expect(root[1].value.mapping?.first?.value.string == "v")
        #expect(root[3].value.string == "text")
    }

    @Test func duplicatedKeysAreKeptAndNamedByTheirFirstPosition() throws {
        let composed = try compose("a: 1\nb: {x: 1, x: 2}\na: 3\na: 4\n")
        #expect(composed.root?.mapping?.count == 4)
        #expect(composed.duplicatedKeys == [YAMLPosition(line: 1, column: 1): "a", YAMLPosition(line: 2, column: 5): "x"])
    }

    @Test func errorsCarryLibyamlsWordsAndMarks() throws {
        let undefined = try #require(failure("a: *nowhere\n"))
        #expect(undefined.error.problem == "found undefined alias")
        #expect(undefined.error.position == YAMLPosition(line: 1, column: 4))

        let second = try #require(failure("a: 1\n---\nb: 2\n"))
        #expect(second.error.description == "but found another document (expected a single document in the stream at 1:1)")
        #expect(second.error.position == YAMLPosition(line: 2, column: 1))

        let unclosed = try #require(failure("a: 1\na: 2\nb: {c: 1\n"))
        #expect(unclosed.error.problem == "did not find expected ',' or '}'")
        #expect(unclosed.error.context?.position == YAMLPosition(line: 3, column: 4))
        #expect(unclosed.duplicatesBefore == [YAMLPosition(line: 1, column: 1): "a"])

        let control = try #require(failure("a: caf\u{E9}\u{7}\n"))
        guard case .reader(let offset, let value) = control.error.stage else {
            Issue.record("not a reader error: \(control.error)")
            return
        }
        #expect((offset, value) == (8, 7), "a byte offset: é is two bytes")
    }

    /// The composer keeps its own stack: far deeper than any thread's stack
    /// would allow when recursing is refused as an error, not a crash.
    @Test func deepNestingIsRefused() throws {
        let deep = try #require(failure(String(repeating: "[", count: 200_000)))
        #expect(deep.error.problem == "nested too deeply (more than \(YAMLComposer.maximumDepth) levels)")
        #expect(deep.error.position == YAMLPosition(line: 1, column: YAMLComposer.maximumDepth + 1))
        let fine = String(repeating: "[", count: YAMLComposer.maximumDepth) + String(repeating: "]", count: YAMLComposer.maximumDepth)
        #expect(try compose(fine).root != nil)
    }
}
