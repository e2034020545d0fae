import Testing

@Test func TokenizationTestsBuilds() { #expect(Bool(true)) }
