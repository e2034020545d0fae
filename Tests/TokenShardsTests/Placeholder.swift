import Testing

@Test func TokenShardsTestsBuilds() { #expect(Bool(true)) }
