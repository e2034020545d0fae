import Testing

@Test func CheckpointingTestsBuilds() { #expect(Bool(true)) }
